"""Refusals that are not regulatory rules: a re-used id, a reference to nothing, an event dated
after its block. They are committed as REJECTED with their own code and raise no alert; and a
REJECTED record never becomes something later transactions can act on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from contracts_world import (
    MIN,
    OK,
    Expect,
    World,
    day_of,
    doc,
    drug_for,
    hard,
    midnight,
    outcome,
    pseudonym,
)

from medledger.ledger.receipt import Receipt

SKEW = 300_000  # max_clock_skew_ms of the test ledger's genesis


# --- DUPLICATE-ID -----------------------------------------------------------------


def _consultation(w: World, key: str) -> Receipt:
    patient, prior = w.visit(w.name("dupc"))
    w.authenticate("hosp/dr-li")
    return w.consult("hosp/dr-li", key, patient, prior)


def _prescription(w: World, key: str) -> Receipt:
    visit = w.follow_up(w.name("dupr"))
    w.advance(2 * MIN)
    return w.prescribe(key, visit.cid, drug_for("I10"))


def _dispense(w: World, key: str) -> Receipt:
    return w.dispense(key, w.issued(w.name("dupd"), daily=2, days=5), 5)


def _claim(w: World, key: str) -> Receipt:
    rx = w.issued(w.name("dupk"))
    dispense = w.name("d-dupk")
    assert outcome(w.dispense(dispense, rx, 5)) == OK
    return w.claim(key, dispense, 5 * drug_for("I10").unit_price_fen)


def _complaint(w: World, key: str) -> Receipt:
    payload = {"complaint_id": key, "about": "hosp", "category": "attitude", "filed_at": w.t()}
    return w.send("hosp/gw", "complaint.file", payload)


def _leak(w: World, key: str) -> Receipt:
    payload = {"incident_id": key, "detected_at": w.t(), "records_affected": 1, "category": "lost-device"}
    return w.send("hosp/admin", "report.data-leak", payload)


def _adverse(w: World, key: str) -> Receipt:
    payload = {"report_id": key, "category": "fall", "seriousness": "non-serious", "occurred_at": w.t()}
    return w.send("hosp/dr-li", "report.adverse-event", payload | {"anonymous": True})


def _encounter(w: World, key: str) -> Receipt:
    payload = {"encounter_id": w.name("e"), "patient": w.patient(w.name("dupe")), "date": day_of(w.now)}
    return w.send("clinic/dr-offline", "encounter.record", payload | {"diagnosis": "I10", "document": doc(key)})


def _institution(w: World, key: str) -> Receipt:
    licence = {"number": "LIC-DUP", "valid_from": "2020-01-01", "valid_until": "2030-12-31"}
    payload = {"org": "dup-org", "name": "duplicate", "kind": "clinic", "physical": True, "licence": licence}
    return w.send("regulator", "institution.admit", payload)


def _app(w: World, key: str) -> Receipt:
    return w.send("hosp/admin", "app.register", {"app": "dup-app", "name": "duplicate-app"})


def _staff(w: World, key: str) -> Receipt:
    if "hosp/dup-doctor" not in w.keys:
        w.register("hosp/admin", "hosp/dup-doctor", "hosp", "doctor")
    payload = {"member": "hosp/dup-doctor", "licence_no": w.new_licence("DOC"), "profession": "doctor"}
    payload |= {"qualification": "physician", "first_practice": "2010-01-01", "specialties": ["cardiology"]}
    return w.send("hosp/admin", "practitioner.register", payload)


REUSABLE: dict[str, Callable[[World, str], Receipt]] = {
    "consultation": _consultation,
    "prescription": _prescription,
    "dispense": _dispense,
    "claim": _claim,
    "complaint": _complaint,
    "data-leak": _leak,
    "adverse-event": _adverse,
    "encounter-document": _encounter,
    "institution": _institution,
    "app": _app,
    "practitioner-member": _staff,
}


@pytest.mark.parametrize("kind", sorted(REUSABLE))
def test_ids_are_never_reused(w: World, kind: str) -> None:
    make = REUSABLE[kind]
    key = w.name("same-id-")
    first = make(w, key)
    assert outcome(first) == OK, first.reason
    w.advance(MIN)
    again = make(w, key)
    assert outcome(again) == hard("DUPLICATE-ID"), again.reason


# --- UNKNOWN-REFERENCE ------------------------------------------------------------

UNKNOWN: list[tuple[str, str, dict[str, Any]]] = [
    ("hosp/gw", "consultation.close", {"consultation_id": "c-nowhere", "ended_at": "{now}"}),
    ("hosp/gw", "prescription.issue", {
        "rx_id": "rx-nowhere", "consultation_id": "c-nowhere", "rxnorm": "17767",
        "daily_units": 1, "days": 1, "quantity": 1, "issued_at": "{now}",
    }),
    ("pharm/ph-zhao", "prescription.review", {
        "rx_id": "rx-nowhere", "decision": "approved", "reason": "appropriate", "reviewed_at": "{now}",
    }),
    ("pharm/ph-zhao", "prescription.dispense", {
        "dispense_id": "d-nowhere", "rx_id": "rx-nowhere", "quantity": 1, "dispensed_at": "{now}",
    }),
    ("hosp/gw", "complaint.file", {"complaint_id": "k-nowhere", "about": "nowhere", "category": "other", "filed_at": "{now}"}),
    ("regulator", "complaint.answer", {"complaint_id": "k-nowhere", "resolution": "upheld"}),
    ("regulator", "institution.licence", {
        "org": "nowhere", "licence": {"number": "LIC-X", "valid_from": "2020-01-01", "valid_until": "2030-01-01"},
    }),
    ("regulator", "institution.internet-approval", {
        "org": "nowhere", "approval": {"valid_from": "2020-01-01", "valid_until": "2030-01-01"},
    }),
    ("regulator", "institution.suspend", {"org": "nowhere", "reason": "inspection"}),
    ("regulator", "practitioner.revoke", {"licence_no": "DOC-NOWHERE", "reason": "misconduct"}),
    ("regulator", "app.review", {"org": "hosp", "app": "nowhere", "decision": "approved"}),
    ("hosp/admin", "practitioner.site", {
        "licence_no": "DOC-NOWHERE", "filing": "primary",
        "validity": {"valid_from": "2020-01-01", "valid_until": "2030-01-01"},
    }),
    ("hosp/dr-li", "report.adverse-event", {
        "report_id": "ae-nowhere", "category": "fall", "seriousness": "serious", "org": "nowhere",
        "occurred_at": "{now}", "anonymous": True,
    }),
]  # fmt: skip


@pytest.mark.parametrize(("signer", "type_", "payload"), UNKNOWN, ids=[t for _, t, _ in UNKNOWN])
def test_references_to_unknown_records(w: World, signer: str, type_: str, payload: dict[str, Any]) -> None:
    filled = {k: w.t() if v == "{now}" else v for k, v in payload.items()}
    receipt = w.send(signer, type_, filled)
    assert outcome(receipt) == hard("UNKNOWN-REFERENCE"), receipt.reason


# --- FUTURE-EVENT -----------------------------------------------------------------


def _future_consultation(w: World, at: str) -> Receipt:
    patient, prior = w.visit(w.name("fut"))
    w.authenticate("hosp/dr-li")
    payload = {"consultation_id": w.name("c-fut"), "patient": patient, "specialty": "cardiology"}
    return w.send("hosp/dr-li", "consultation.open", payload | {"diagnosis": "I10", "prior": prior, "started_at": at})


FUTURE: dict[str, Callable[[World, str], Receipt]] = {
    "consultation.open": _future_consultation,
    "doctor.authenticate": lambda w, at: w.send(
        "hosp/gw", "doctor.authenticate", {"member": "hosp/dr-li", "method": "ca-certificate", "at": at}
    ),
    "patient.verify": lambda w, at: w.send(
        "hosp/gw",
        "patient.verify",
        {"patient": pseudonym(w.name("f")), "birth_month": "1990-01", "method": "passport", "at": at},
    ),
    "report.data-leak": lambda w, at: w.send(
        "hosp/admin",
        "report.data-leak",
        {"incident_id": w.name("fleak"), "detected_at": at, "records_affected": 0, "category": "other"},
    ),
    "complaint.file": lambda w, at: w.send(
        "regulator",
        "complaint.file",
        {"complaint_id": w.name("fk"), "about": "hosp", "category": "other", "filed_at": at},
    ),
}


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        pytest.param(SKEW, OK, id="block+skew-inside"),
        pytest.param(SKEW + 1, hard("FUTURE-EVENT"), id="block+skew+1ms-outside-by-1ms"),
    ],
)
@pytest.mark.parametrize("type_", sorted(FUTURE))
def test_events_after_the_block(w: World, type_: str, offset: int, expected: Expect) -> None:
    receipt = FUTURE[type_](w, w.t(offset))
    assert outcome(receipt) == expected, receipt.reason


@pytest.mark.parametrize(
    ("days", "expected"),
    [pytest.param(0, OK, id="dated-today"), pytest.param(1, hard("FUTURE-EVENT"), id="dated-tomorrow")],
)
def test_encounters_after_the_block(w: World, days: int, expected: Expect) -> None:
    name = w.name("fenc")
    payload = {"encounter_id": name, "patient": w.patient(name), "date": day_of(midnight(w.now, days))}
    receipt = w.send("clinic/dr-offline", "encounter.record", payload | {"diagnosis": "I10", "document": doc(name)})
    assert outcome(receipt) == expected, receipt.reason


# --- a REJECTED record is evidence, never state -----------------------------------


def test_a_rejected_prescription_is_never_reviewed_dispensed_or_claimed(w: World) -> None:
    visit = w.follow_up(w.name("dead"))
    w.advance(2 * MIN)
    refused = w.prescribe("rx-dead", visit.cid, drug_for("I10"), daily=3)  # over the daily limit
    assert outcome(refused) == hard("RX-LIMITS")
    assert w.node.store.get_state("rx/rx-dead") is None
    assert [a.rule for a in _alerts(w, refused)] == ["RX-LIMITS"]

    for attempt in (
        w.review("rx-dead"),
        w.review("rx-dead", by="hosp/dr-wang"),
        w.dispense("d-dead", "rx-dead", 1),
        w.dispense("d-dead-gw", "rx-dead", 1, by="pharm/gw"),
    ):
        assert outcome(attempt) == hard("UNKNOWN-REFERENCE"), attempt.reason
        assert _alerts(w, attempt) == []  # a structural refusal is not a rule violation: no alert
    claim = w.claim("claim-dead", "d-dead", 40)
    assert outcome(claim) == hard("CLAIM-MATCH"), claim.reason  # the dispense never existed
    assert [a.rule for a in _alerts(w, claim)] == ["CLAIM-MATCH"]


def _alerts(w: World, receipt: Receipt) -> list[Any]:
    return [a for a in w.node.store.block_alerts(receipt.height) if a.leaf_index == receipt.leaf_index]


def test_a_rejected_consultation_carries_no_prescription(w: World) -> None:
    patient, prior = w.visit(w.name("deadc"))  # no real-name authentication of the doctor
    doctor = w.doctor()
    cid = w.name("c-deadc")
    assert outcome(w.consult(doctor, cid, patient, prior)) == hard("DOC-REALNAME")
    w.advance(2 * MIN)
    assert outcome(w.prescribe(w.name("rx-deadc"), cid, drug_for("I10"), by=doctor)) == hard("RX-PRESCRIBER")
    assert outcome(w.prescribe(w.name("rx-deadc"), cid, drug_for("I10"), by="hosp/gw")) == hard("UNKNOWN-REFERENCE")
