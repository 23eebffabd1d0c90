"""A small province for the FHIR read tests, built through the native path (signed envelopes, a real node).

Everything the read projection renders is here at least once: institutions,
practitioners and their filings, verified patients, an offline encounter, an
online consultation opened and closed, a doctor-signed prescription carried
by the hospital's gateway (so a Provenance), a review, a dispense, a claim,
an adverse event, Consent and AuditEvent anchors; and what it must not show:
a REJECTED prescription and a consultation whose ledger id is not a FHIR id.

Credentials are real ones (``medledger.node.credentials``) for a member of
each kind of institution, so scoping is tested the way a hospital meets it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contracts"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contracts_world import DAY, MIN, OK, World, doc, drug_for, outcome, standard

from ledger_factory import regulator_headers
from medledger.api.fhir import conventions as cv
from medledger.ledger.canonical import b64e
from medledger.ledger.keys import RESOURCE_DOMAIN
from medledger.node.credentials import Credentials

AMLODIPINE = drug_for("I10")


@dataclass
class ReadProvince:
    """The world, the facts tests look up, and an Authorization header per kind of caller."""

    w: World
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.w.data


def _token(w: World, member: str) -> dict[str, str]:
    key_file = w.data / "keys" / (member.replace("/", "_") + ".key")
    w.keys[member].to_file(key_file)
    token = Credentials(w.data).issue(member, signing_key=key_file)
    return {"authorization": f"Bearer {token}"}


def build(tmp: Path) -> ReadProvince:
    w = standard(tmp)
    p = ReadProvince(w)
    f = p.facts
    f["registry_done"] = w.now
    w.advance(DAY)
    f["clinical_from"] = w.now

    # an online follow-up: patient verified by the hospital's gateway, offline diagnosis at the clinic
    visit = w.follow_up("alice", "hosp/dr-li", diagnosis="I10")
    f["alice"], f["cid"], f["document"] = visit.patient, visit.cid, visit.prior["document"]
    w.advance(2 * MIN)

    # the gateway carries dr-li's own signature over the MedicationRequest document
    rx_id = "rx-alice"
    document = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": cv.RXNORM, "code": AMLODIPINE.rxnorm[0]}]},
        "subject": {"reference": f"Patient/{visit.patient}"},
        "identifier": [{"system": cv.SID_RECORD, "value": rx_id}],
    }
    digest = cv.resource_digest(document)
    domain, message = cv.resource_signing_message(digest)
    assert domain == RESOURCE_DOMAIN
    signature = w.keys["hosp/dr-li"].sign(domain, message)
    payload = {
        "rx_id": rx_id,
        "consultation_id": visit.cid,
        "rxnorm": AMLODIPINE.rxnorm[0],
        "daily_units": 1,
        "days": 5,
        "quantity": 5,
        "issued_at": w.t(),
        "prescriber": {
            "member": "hosp/dr-li",
            "key": w.keys["hosp/dr-li"].key_id,
            "resource_sha256": digest.hex(),
            "signature": b64e(signature),
        },
    }
    receipt = w.send("hosp/gw", "prescription.issue", payload)
    assert outcome(receipt) == OK, (receipt.codes, receipt.reason)
    f["rx_id"], f["rx_tx"], f["rx_digest"] = rx_id, receipt.tx_id, digest.hex()

    # the same gateway writing a prescription by itself: REJECTED (RX-NO-AI), evidence, never a resource
    rejected = w.send("hosp/gw", "prescription.issue", {**payload, "rx_id": "rx-by-gateway", "prescriber": None})
    assert rejected.status == "REJECTED", rejected
    w.advance(3 * MIN)
    w.ok("hosp/dr-li", "consultation.close", {"consultation_id": visit.cid, "ended_at": w.t()})
    f["close_ms"] = w.now

    w.advance(10 * MIN)
    assert outcome(w.review(rx_id)) == OK
    assert outcome(w.dispense("d-alice", rx_id, 5)) == OK
    assert outcome(w.claim("k-alice", "d-alice", AMLODIPINE.unit_price_fen * 5)) == OK

    w.ok(
        "hosp/admin",
        "report.adverse-event",
        {
            "report_id": "ae-1",
            "category": "adverse-drug-reaction",
            "seriousness": "serious",
            "org": "hosp",
            "rxnorm": AMLODIPINE.rxnorm[0],
            "occurred_at": w.t(-MIN),
            "anonymous": False,
        },
    )
    w.ok("hosp/gw", "anchor.record", {"label": "fhir/consent/consent-a", "sha256": "ab" * 32})
    w.ok("hosp/gw", "anchor.record", {"label": "fhir/audit-event/audit-a", "sha256": "cd" * 32})
    w.ok("hosp/gw", "anchor.record", {"label": "export/monthly", "sha256": "ef" * 32})

    # a patient only the clinic verified, seen offline there
    bob = w.patient("bob", by="clinic/dr-offline")
    w.encounter(bob, "bob", diagnosis="E11")
    f["bob"], f["bob_document"] = bob, doc("bob")

    # a consultation whose ledger id is not a FHIR id (':' is fine on the ledger, not in FHIR)
    odd, prior = w.visit("odd")
    w.authenticate("hosp/dr-wang", by="hosp/admin")
    assert outcome(w.consult("hosp/dr-wang", "c:odd", odd, prior)) == OK
    f["odd"] = odd
    f["last_ms"] = w.now

    p.headers["regulator"] = regulator_headers(w.data)
    for name, member in (("hosp", "hosp/gw"), ("clinic", "clinic/admin"), ("pharm", "pharm/gw"), ("ins", "ins/claims")):
        p.headers[name] = _token(w, member)
    return p
