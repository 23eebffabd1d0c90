"""FHIR facade benchmark (issue 4, acceptance 5): prints JSON, then a one-line summary.

Throughput of transaction Bundles (a consultation Encounter of class VR, a
MedicationRequest and the doctor's Provenance signature; Patient already
verified, offline diagnosis already on the ledger) posted by a hospital
gateway to POST /fhir of a live uvicorn server, against the same two ledger
transactions (consultation.open + prescription.issue carrying the same
prescriber signature) posted natively to POST /v1/transactions, in the same
run, on the same node, with the same client concurrency. Every rule runs on
both paths; the FHIR path adds JSON parsing, R4 model validation, mapping,
signature verification of the Provenance and envelope signing on the server.
Usage: python bench/fhir_facade.py [CHAINS] [CONCURRENCY]
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson

from medledger.api.fhir import conventions as cv
from medledger.benchmarks import _drain, machine, served, throughput
from medledger.contracts import formulary
from medledger.ledger import envelope
from medledger.ledger.keys import SigningKey
from medledger.ledger.timefmt import format_ms, now_ms
from medledger.node.bootstrap import init_ledger
from medledger.node.credentials import Credentials
from medledger.node.node import Node, NodeConfig

MIN = 60_000
DOCTORS = 20
CST = timezone(timedelta(hours=8))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(CST).isoformat(timespec="milliseconds")


def _key(name: str) -> SigningKey:
    return SigningKey(hashlib.sha256(b"bench-fhir:" + name.encode()).digest())


def _letters(n: int) -> str:
    out = ""
    n += 26**3
    while n:
        n, r = divmod(n, 26)
        out = chr(97 + r) + out
    return out


class Province:
    """An Internet hospital with a gateway and doctors, a clinic, verified patients with offline diagnoses."""

    def __init__(self, data: Path, node: Node, regulator: SigningKey) -> None:
        self.data, self.node, self.regulator = data, node, regulator
        self.drug = next(d for d in formulary.default().drugs if d.drug_class == "ordinary" and "I10" in d.indications)
        self.licences: list[str] = []
        self.doctor_keys: list[SigningKey] = []

    def send(self, key: SigningKey, items: list[tuple[str, dict[str, Any]]]) -> None:
        wires = [envelope.build(key, t, p).to_wire() for t, p in items]
        for start in range(0, len(wires), 1000):
            for receipt in self.node.submit_sync(wires[start : start + 1000]):
                assert receipt.status == "ACCEPTED", (receipt.codes, receipt.reason)

    def build(self, patients: int) -> str:
        """Set everything up natively; returns the gateway's FHIR token."""
        reg = self.regulator
        admin, gw, clinic_admin, clinic_dr = (
            _key("hosp/admin"),
            _key("hosp/gw"),
            _key("clinic/admin"),
            _key("clinic/dr"),
        )
        licence = {"valid_from": "2020-01-01", "valid_until": "2030-12-31"}
        self.send(
            reg,
            [
                (
                    "institution.admit",
                    {
                        "org": "hosp",
                        "name": "Bench Internet Hospital",
                        "kind": "internet-hospital",
                        "physical": True,
                        "licence": {"number": "LIC-HOSP", **licence},
                    },
                ),
                ("institution.internet-approval", {"org": "hosp", "approval": licence}),
                (
                    "institution.admit",
                    {
                        "org": "clinic",
                        "name": "Bench Clinic",
                        "kind": "clinic",
                        "physical": True,
                        "licence": {"number": "LIC-CLINIC", **licence},
                    },
                ),
                ("member.register", {"member": "hosp/admin", "org": "hosp", "role": "admin", "key": admin.key_id}),
                (
                    "member.register",
                    {"member": "clinic/admin", "org": "clinic", "role": "admin", "key": clinic_admin.key_id},
                ),
            ],
        )
        members = [("member.register", {"member": "hosp/gw", "org": "hosp", "role": "gateway", "key": gw.key_id})]
        pracs: list[tuple[str, dict[str, Any]]] = []
        for i in range(DOCTORS):
            key, member, lic = _key(f"hosp/dr-{i}"), f"hosp/dr-{i}", f"DOC-B{i:04d}"
            self.licences.append(lic)
            self.doctor_keys.append(key)
            members.append(("member.register", {"member": member, "org": "hosp", "role": "doctor", "key": key.key_id}))
            pracs += [
                (
                    "practitioner.register",
                    {
                        "member": member,
                        "licence_no": lic,
                        "profession": "doctor",
                        "qualification": "physician",
                        "first_practice": "2010-01-01",
                        "specialties": ["cardiology"],
                    },
                ),
                ("practitioner.site", {"licence_no": lic, "filing": "primary", "validity": licence}),
            ]
        self.send(admin, members)
        self.send(admin, pracs)
        self.send(
            clinic_admin,
            [("member.register", {"member": "clinic/dr", "org": "clinic", "role": "doctor", "key": clinic_dr.key_id})],
        )
        self.send(
            clinic_admin,
            [
                (
                    "practitioner.register",
                    {
                        "member": "clinic/dr",
                        "licence_no": "DOC-C0001",
                        "profession": "doctor",
                        "qualification": "physician",
                        "first_practice": "2010-01-01",
                        "specialties": ["general-practice"],
                    },
                )
            ],
        )
        now = now_ms()
        self.send(
            gw,
            [
                ("doctor.authenticate", {"member": f"hosp/dr-{i}", "method": "face", "at": format_ms(now - 15 * MIN)})
                for i in range(DOCTORS)
            ],
        )
        self.patients: list[tuple[str, str]] = []
        verify, offline = [], []
        for n in range(patients):
            p = hashlib.sha256(b"bench-patient:%d" % n).hexdigest()
            document = hashlib.sha256(b"bench-document:%d" % n).hexdigest()
            self.patients.append((p, document))
            verify.append(
                (
                    "patient.verify",
                    {"patient": p, "birth_month": "1970-01", "method": "resident-id", "at": format_ms(now)},
                )
            )
            offline.append(
                (
                    "encounter.record",
                    {
                        "encounter_id": f"enc-{_letters(n)}",
                        "patient": p,
                        "date": "2026-01-10",
                        "diagnosis": "I10",
                        "document": document,
                    },
                )
            )
        self.send(gw, verify)
        self.send(clinic_dr, offline)
        key_file = self.data / "keys" / "bench-gw.key"
        gw.to_file(key_file)
        self.gw = gw
        return Credentials(self.data).issue("hosp/gw", signing_key=key_file, label="bench")

    def chain(self, n: int, tag: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(FHIR Bundle, consultation.open payload, prescription.issue payload) of chain ``n``."""
        now = now_ms()
        doctor = n % DOCTORS
        pseudonym, prior = self.patients[n]
        cid, rx_id = f"c-{tag}-{_letters(n)}", f"rx-{tag}-{_letters(n)}"
        started, authored = now - 10 * MIN, now - 2 * MIN
        enc = {
            "resourceType": "Encounter",
            "status": "in-progress",
            "identifier": [{"system": cv.SID_RECORD, "value": cid}],
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR"},
            "serviceType": {"coding": [{"system": cv.CS_SPECIALTY, "code": "cardiology"}]},
            "subject": {"reference": f"Patient/{pseudonym}"},
            "participant": [{"individual": {"reference": f"Practitioner/{self.licences[doctor]}"}}],
            "period": {"start": _iso(started)},
            "reasonCode": [{"coding": [{"system": cv.ICD10, "code": "I10"}]}],
            "partOf": {"reference": f"Encounter/{prior}"},
        }
        mr = {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "identifier": [{"system": cv.SID_RECORD, "value": rx_id}],
            "medicationCodeableConcept": {"coding": [{"system": cv.RXNORM, "code": self.drug.rxnorm[0]}]},
            "subject": {"reference": f"Patient/{pseudonym}"},
            "encounter": {"reference": "urn:uuid:00000000-0000-4000-8000-00000000000a"},
            "authoredOn": _iso(authored),
            "dosageInstruction": [
                {
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                    "doseAndRate": [{"doseQuantity": {"value": 1}}],
                }
            ],
            "dispenseRequest": {
                "quantity": {"value": 5},
                "expectedSupplyDuration": {"value": 5, "system": "http://unitsofmeasure.org", "code": "d"},
            },
        }
        digest = cv.resource_digest(mr)
        domain, message = cv.resource_signing_message(digest)
        signature = self.doctor_keys[doctor].sign(domain, message)
        prov = {
            "resourceType": "Provenance",
            "target": [{"reference": "urn:uuid:00000000-0000-4000-8000-00000000000b"}],
            "recorded": _iso(authored),
            "agent": [{"who": {"reference": f"Practitioner/{self.licences[doctor]}"}}],
            "signature": [
                {
                    "type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1"}],
                    "when": _iso(authored),
                    "who": {"reference": f"Practitioner/{self.licences[doctor]}"},
                    "data": base64.b64encode(signature).decode(),
                }
            ],
        }
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:00000000-0000-4000-8000-00000000000{c}",
                    "resource": r,
                    "request": {"method": "POST", "url": r["resourceType"]},
                }
                for c, r in (("a", enc), ("b", mr), ("c", prov))
            ],
        }
        open_payload = {
            "consultation_id": cid,
            "doctor": f"hosp/dr-{doctor}",
            "patient": pseudonym,
            "specialty": "cardiology",
            "diagnosis": "I10",
            "prior": {"document": prior, "org": "clinic", "date": "2026-01-10", "diagnosis": "I10"},
            "started_at": format_ms(started),
        }
        issue = {
            "rx_id": rx_id,
            "consultation_id": cid,
            "rxnorm": self.drug.rxnorm[0],
            "daily_units": 1,
            "days": 5,
            "quantity": 5,
            "issued_at": format_ms(authored),
            "prescriber": {
                "member": f"hosp/dr-{doctor}",
                "key": self.doctor_keys[doctor].key_id,
                "resource_sha256": digest.hex(),
                "signature": base64.urlsafe_b64encode(signature).rstrip(b"=").decode(),
            },
        }
        return bundle, open_payload, issue


def fhir_bench(chains: int = 1000, concurrency: int = 8, log: Any = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="medledger-bench-fhir-") as tmp:
        data = Path(tmp) / "ledger"
        keys = init_ledger(data)
        node = Node(NodeConfig(data, max_wait_ms=5))
        try:
            province = Province(data, node, keys.regulator)
            token = province.build(2 * chains)
            if log:
                log(f"province ready: {DOCTORS} doctors, {2 * chains} patients with offline diagnoses")
            fhir_work, native_work = [], []
            for n in range(chains):
                bundle, _, _ = province.chain(n, "f")
                fhir_work.append(orjson.dumps(bundle))
                _, opened, issued = province.chain(chains + n, "n")
                at = now_ms()
                native_work.append(
                    orjson.dumps(
                        [
                            envelope.build(province.gw, "consultation.open", opened, created_ms=at).to_wire(),
                            envelope.build(province.gw, "prescription.issue", issued, created_ms=at).to_wire(),
                        ]
                    )
                )
        finally:
            node.close()
        auth = {"authorization": f"Bearer {token}"}
        # `medledger serve` in its own process, as in production: the client threads here must not
        # share the server's GIL (in one process they halved both paths and hid the facade's own cost)
        with served(data) as url:

            def fhir_sender() -> Any:
                client = httpx.Client(
                    base_url=url, timeout=120, headers={**auth, "content-type": "application/fhir+json"}
                )

                def send(body: bytes) -> list[str]:
                    r = client.post("/fhir", content=body)
                    if r.status_code != 200:
                        raise RuntimeError(f"FHIR {r.status_code}: {r.text[:300]}")
                    return [e["response"]["status"] for e in r.json()["entry"]]

                return send

            def native_sender() -> Any:
                client = httpx.Client(base_url=url, timeout=120, headers={"content-type": "application/json"})

                def send(body: bytes) -> list[str]:
                    r = client.post("/v1/transactions", content=body)
                    if r.status_code != 200:
                        raise RuntimeError(f"native {r.status_code}: {r.text[:300]}")
                    return [x["status"] for x in r.json()["receipts"]]

                return send

            native_statuses, native_s = _drain(native_work, concurrency, native_sender)
            if log:
                log(f"native: {chains} chains in {native_s:.2f}s {dict(native_statuses)}")
            fhir_statuses, fhir_s = _drain(fhir_work, concurrency, fhir_sender)
            if log:
                log(f"fhir: {chains} bundles in {fhir_s:.2f}s {dict(fhir_statuses)}")
    fhir_rate, native_rate = chains / fhir_s, chains / native_s
    result = {
        "benchmark": "fhir",
        "machine": machine(),
        "fhir": {
            **throughput(chains, fhir_s, concurrency=concurrency, unit="transaction Bundles", envelopes_per_bundle=2),
            "statuses": dict(fhir_statuses),
        },
        "native": {
            **throughput(chains, native_s, concurrency=concurrency, unit="2-envelope lists", envelopes_per_request=2),
            "statuses": dict(native_statuses),
        },
        "ratio_fhir_over_native": round(fhir_rate / native_rate, 3),
    }
    result["summary"] = (
        f"FHIR facade: {fhir_rate:.0f} transaction Bundles/s (consultation + prescription + Provenance) vs native "
        f"{native_rate:.0f} chains/s through POST /v1/transactions = {fhir_rate / native_rate:.2f}x, "
        f"{chains} each, {concurrency} clients"
    )
    return result


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    started = time.perf_counter()
    out = fhir_bench(count, clients, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(out, indent=2))
    print(out["summary"])
