"""Shared fixtures for the FHIR facade tests: a province behind the app, member credentials, resource builders.

The province is :func:`contracts_world.standard` (an Internet hospital with a
gateway and doctors, a physical clinic, a pharmacy, an insurer), built by
signed transactions with the node's clock under the test's control, served by
``create_app`` through Starlette's TestClient. Each member that talks FHIR
gets a bearer credential bound to its own key file, exactly as an operator
issues one (``Credentials.issue(member, signing_key=...)``).
"""

from __future__ import annotations

import base64
import sqlite3
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "contracts"))

from contracts_world import DAY, MIN, World, drug_for, standard

from medledger.api import create_app
from medledger.api.fhir import conventions as cv
from medledger.ledger.keys import SigningKey
from medledger.ledger.sqlite_store import DB_NAME
from medledger.ledger.timefmt import format_ms
from medledger.node.bootstrap import REGULATOR_TOKEN
from medledger.node.credentials import Credentials

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

FHIR_JSON = "application/fhir+json"
SYNTHETIC = Path(__file__).parent / "fixtures" / "synthetic"
#: members that get a signing credential in every FHIR province
WRITERS = ("hosp/gw", "hosp/admin", "clinic/dr-offline", "pharm/gw", "ins/claims", "hosp/dr-li")
V2 = cv.V2_0203

__all__ = ["DAY", "MIN", "FhirLedger", "drug_for", "fhir_province"]


@dataclass
class FhirLedger:
    """A province, its app behind a TestClient, and a token per member."""

    w: World
    http: TestClient
    tokens: dict[str, str] = field(default_factory=dict)
    seq: int = 0

    @property
    def data(self) -> Path:
        return self.w.data

    def token_for(self, member: str, *, signing: bool = True) -> str:
        key_file = self.data / "keys" / (member.replace("/", "__") + ".key")
        if signing:
            self.w.keys[member].to_file(key_file)
        return Credentials(self.data).issue(member, signing_key=key_file if signing else None, label="fhir-test")

    def headers(self, who: str, content_type: str | None = FHIR_JSON, **extra: str) -> dict[str, str]:
        out = {"authorization": f"Bearer {self.tokens[who]}", **extra}
        if content_type is not None:
            out["content-type"] = content_type
        return out

    def post(
        self, path: str, body: Any, *, who: str = "hosp/gw", content_type: str | None = FHIR_JSON, **extra: str
    ) -> httpx.Response:
        import orjson

        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return self.http.post(path, content=content, headers=self.headers(who, content_type, **extra))

    def committed(self, tx_id: str) -> dict[str, Any]:
        """The committed transaction, read back through the native API with the regulator's credential."""
        r = self.http.get(f"/v1/transactions/{tx_id}", headers=self.headers("regulator", None))
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    def snapshot(self) -> dict[str, Any]:
        head = self.http.get("/v1/tree-head").json()
        conn = sqlite3.connect(f"file:{self.data / DB_NAME}?mode=ro", uri=True)
        try:
            tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        finally:
            conn.close()
        return {"tree_size": head["tree_size"], "root_hash": head["root_hash"], **counts}

    def name(self, prefix: str) -> str:
        """A fresh id, letters and dashes only (FHIR ids; record ids refuse long digit runs)."""
        self.seq += 1
        return f"{prefix}-{_letters(self.seq)}"

    # -- the clinical story, through FHIR ---------------------------------------------------------------

    def patient_id(self, national_id: str, birth: str = "1980-05-17") -> str:
        r = self.post("/fhir/Patient", patient(national_id, birth))
        assert r.status_code in (200, 201), r.text
        return str(r.json()["id"])

    def offline_diagnosis(self, pseudonym: str, icd10: str = "I10", day: str = "2026-02-20") -> str:
        """An offline encounter at the clinic, through FHIR; returns its document digest (its logical id)."""
        enc = offline_encounter(self.name("enc"), pseudonym, icd10, day)
        r = self.post("/fhir/Encounter", enc, who="clinic/dr-offline")
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def ready_visit(self, national_id: str, icd10: str = "I10", doctor: str = "hosp/dr-li") -> tuple[str, str]:
        """(pseudonym, prior document) with the doctor authenticated 20 minutes ago: a consultation may start."""
        self.w.advance(DAY)
        pseudonym = self.patient_id(national_id)
        prior = self.offline_diagnosis(pseudonym, icd10)
        self.w.authenticate(doctor, offset_ms=-20 * MIN, by="hosp/admin")
        return pseudonym, prior


def _letters(n: int) -> str:
    out = ""
    n += 26 * 26
    while n:
        n, r = divmod(n, 26)
        out = chr(97 + r) + out
    return out


def fhir_province(tmp: Path) -> Iterator[FhirLedger]:
    """Build the province, mount the app, issue credentials; closes the node afterwards."""
    w = standard(tmp)
    try:
        with TestClient(create_app(w.node)) as client:
            ledger = FhirLedger(w, client)
            ledger.tokens["regulator"] = (tmp / REGULATOR_TOKEN).read_text().strip()
            for member in WRITERS:
                ledger.tokens[member] = ledger.token_for(member)
            ledger.tokens["readonly"] = ledger.token_for("hosp/gw", signing=False)
            yield ledger
    finally:
        w.close()


@pytest.fixture(scope="module")
def fhir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[FhirLedger]:
    yield from fhir_province(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))


# -- resource builders --------------------------------------------------------------------------------------


def iso(ms: int) -> str:
    """An instant as a hospital system writes it: local time with its offset (+08:00)."""
    from datetime import UTC, datetime, timedelta, timezone

    dt = datetime.fromtimestamp(ms / 1000, UTC).astimezone(timezone(timedelta(hours=8)))
    return dt.isoformat(timespec="milliseconds")


def patient(
    national_id: str, birth: str = "1980-05-17", *, name: str = "Zhang San", phone: str = "13800138000"
) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "type": {"coding": [{"system": V2, "code": "MR"}]},
                "system": "urn:hosp:mrn",
                "value": "MRN-" + national_id,
            },
            {"type": {"coding": [{"system": V2, "code": "NI"}]}, "system": "urn:cn:resident-id", "value": national_id},
        ],
        "name": [{"text": name}],
        "telecom": [{"system": "phone", "value": phone}],
        "address": [{"text": "88 Canary Road, Yinchuan"}],
        "birthDate": birth,
    }


def icd10(code: str) -> dict[str, Any]:
    return {"coding": [{"system": cv.ICD10, "code": code}]}


def offline_encounter(encounter_id: str, pseudonym: str, dx: str = "I10", day: str = "2026-02-20") -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "identifier": [{"system": cv.SID_RECORD, "value": encounter_id}],
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pseudonym}"},
        "period": {"start": f"{day}T09:00:00+08:00", "end": f"{day}T09:20:00+08:00"},
        "reasonCode": [icd10(dx)],
    }


def consultation(
    cid: str,
    pseudonym: str,
    licence: str,
    prior: str | None,
    started_ms: int,
    dx: str = "I10",
    specialty: str = "cardiology",
) -> dict[str, Any]:
    enc: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "in-progress",
        "identifier": [{"system": cv.SID_RECORD, "value": cid}],
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR"},
        "serviceType": {"coding": [{"system": cv.CS_SPECIALTY, "code": specialty}]},
        "subject": {"reference": f"Patient/{pseudonym}"},
        "participant": [{"individual": {"reference": f"Practitioner/{licence}"}}],
        "period": {"start": iso(started_ms)},
        "reasonCode": [icd10(dx)],
    }
    if prior is not None:
        enc["partOf"] = {"reference": f"Encounter/{prior}"}
    return enc


def medication_request(
    rx_id: str, encounter_ref: str, pseudonym: str, rxnorm: str, authored_ms: int, *, per_day: int = 1, days: int = 5
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "identifier": [{"system": cv.SID_RECORD, "value": rx_id}],
        "medicationCodeableConcept": {"coding": [{"system": cv.RXNORM, "code": rxnorm}]},
        "subject": {"reference": f"Patient/{pseudonym}"},
        "encounter": {"reference": encounter_ref},
        "authoredOn": iso(authored_ms),
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            }
        ],
        "dispenseRequest": {
            "quantity": {"value": per_day * days, "unit": "tablet"},
            "expectedSupplyDuration": {
                "value": days,
                "unit": "days",
                "system": "http://unitsofmeasure.org",
                "code": "d",
            },
        },
    }


def sign_resource(key: SigningKey, resource: dict[str, Any]) -> str:
    """What the doctor's own software does: Ed25519 over RESOURCE_DOMAIN + the canonical digest, base64."""
    domain, message = cv.resource_signing_message(cv.resource_digest(resource))
    return base64.b64encode(key.sign(domain, message)).decode()


def provenance(target: str, licence: str, signature: str, at_ms: int) -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "target": [{"reference": target}],
        "recorded": iso(at_ms),
        "agent": [{"who": {"reference": f"Practitioner/{licence}"}}],
        "signature": [
            {
                "type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1"}],
                "when": iso(at_ms),
                "who": {"reference": f"Practitioner/{licence}"},
                "sigFormat": "application/octet-stream",
                "data": signature,
            }
        ],
    }


def entry(resource: dict[str, Any], full_url: str) -> dict[str, Any]:
    return {"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}


def bundle(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def prescription_bundle(
    f: FhirLedger, pseudonym: str, prior: str, *, signed: bool = True, flip: bool = False, doctor: str = "hosp/dr-li"
) -> tuple[dict[str, Any], str, str]:
    """consultation Encounter + MedicationRequest (+ the doctor's Provenance): (Bundle, consultation id, rx id)."""
    licence = f.w.licence_of.get(doctor, "DOC-0001")
    cid, rx_id = f.name("c"), f.name("rx")
    now = f.w.now
    enc = consultation(cid, pseudonym, licence, prior, now - 15 * MIN)
    mr = medication_request(
        rx_id, "urn:uuid:00000000-0000-4000-8000-00000000000b", pseudonym, drug_for("I10").rxnorm[0], now - 5 * MIN
    )
    entries = [
        entry(enc, "urn:uuid:00000000-0000-4000-8000-00000000000a"),
        entry(mr, "urn:uuid:00000000-0000-4000-8000-00000000000b"),
    ]
    mr["encounter"] = {"reference": "urn:uuid:00000000-0000-4000-8000-00000000000a"}
    if signed:
        signature = sign_resource(f.w.keys[doctor], mr)
        if flip:
            raw = bytearray(base64.b64decode(signature))
            raw[10] ^= 0x01
            signature = base64.b64encode(bytes(raw)).decode()
        entries.append(
            entry(
                provenance("urn:uuid:00000000-0000-4000-8000-00000000000b", licence, signature, now - 5 * MIN),
                "urn:uuid:00000000-0000-4000-8000-00000000000c",
            )
        )
    return bundle(*entries), cid, rx_id


def tx_id_of(resource: dict[str, Any]) -> str:
    for ext in resource["meta"]["extension"]:
        if ext["url"] == cv.EXT_TX_ID:
            return str(ext["valueString"])
    raise AssertionError(f"no tx-id extension in {resource['meta']}")


def now_text(f: FhirLedger, offset_ms: int = 0) -> str:
    return format_ms(f.w.now + offset_ms)
