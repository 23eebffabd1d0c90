"""A hospital's gateway acting for its doctors: who counts as the author of a consultation or prescription.

The FHIR facade signs with the hospital's gateway key, so the contracts must
tell a gateway *carrying* a doctor's own signature (hash-then-sign over the
prescription document, re-checked here from the ledger alone) from a gateway
writing prescriptions by itself (RX-NO-AI, hard). A gateway may name the
doctor of a consultation, but only an active doctor of its own institution.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from contracts_world import MIN, OK, Expect, World, hard, outcome, pseudonym

from medledger.contracts import formulary
from medledger.ledger.canonical import b64e
from medledger.ledger.keys import RESOURCE_DOMAIN, SigningKey
from medledger.ledger.timefmt import format_ms

AMLODIPINE = next(d for d in formulary.default().drugs if d.drug_class == "ordinary" and "I10" in d.indications)


def _prescriber(
    key: SigningKey, member: str, digest: str | None = None, *, sign_digest: str | None = None
) -> dict[str, str]:
    # every prescription document is new: one signed document may back one prescription only
    digest = digest or os.urandom(32).hex()
    signed = bytes.fromhex(sign_digest or digest)
    return {
        "member": member,
        "key": key.key_id,
        "resource_sha256": digest,
        "signature": b64e(key.sign(RESOURCE_DOMAIN, signed)),
    }


def _gateway_rx(w: World, cid: str, prescriber: dict[str, str] | None, *, by: str = "hosp/gw") -> Any:
    payload: dict[str, Any] = {
        "rx_id": w.name("rx-gw"),
        "consultation_id": cid,
        "rxnorm": AMLODIPINE.rxnorm[0],
        "daily_units": 1,
        "days": 5,
        "quantity": 5,
        "issued_at": w.t(),
    }
    if prescriber is not None:
        payload["prescriber"] = prescriber
    return w.send(by, "prescription.issue", payload), payload["rx_id"]


def _visit(w: World) -> str:
    visit = w.follow_up(w.name("gw"), "hosp/dr-li", diagnosis="I10")
    w.advance(2 * MIN)
    return visit.cid


def test_a_gateway_carrying_the_doctors_signature_writes_for_that_doctor(w: World) -> None:
    cid = _visit(w)
    receipt, rx_id = _gateway_rx(w, cid, _prescriber(w.keys["hosp/dr-li"], "hosp/dr-li"))
    assert outcome(receipt) == OK, receipt.reason
    rx = w.node.store.get_state("rx/" + rx_id)
    assert rx["member"] == "hosp/dr-li" and rx["licence"] == "DOC-0001"


@pytest.mark.parametrize(
    ("make", "why"),
    [
        pytest.param(
            lambda w: _prescriber(w.keys["hosp/dr-li"], "hosp/dr-li", sign_digest=hashlib.sha256(b"x").hexdigest()),
            "does not verify",
            id="signature-over-another-document",
        ),
        pytest.param(
            lambda w: _prescriber(w.keys["hosp/dr-wang"], "hosp/dr-li"), "is not a key of", id="another-doctors-key"
        ),
        pytest.param(
            lambda w: _prescriber(w.keys["clinic/dr-offline"], "clinic/dr-offline"),
            "is not a doctor of hosp",
            id="a-doctor-of-another-institution",
        ),
        pytest.param(
            lambda w: _prescriber(w.keys["hosp/gw"], "hosp/gw"), "is not a doctor of hosp", id="the-gateway-itself"
        ),
        pytest.param(
            lambda w: _prescriber(SigningKey.generate(), "hosp/dr-li"), "is not a key of", id="an-unregistered-key"
        ),
    ],
)
def test_a_prescriber_signature_that_does_not_hold_is_the_gateways_own_prescription(
    w: World, make: Any, why: str
) -> None:
    cid = _visit(w)
    receipt, rx_id = _gateway_rx(w, cid, make(w))
    assert outcome(receipt) == hard("RX-NO-AI"), receipt.reason
    assert why in (receipt.reason or "")
    assert w.node.store.get_state("rx/" + rx_id) is None


def test_one_flipped_bit_in_the_signature_is_refused(w: World) -> None:
    cid = _visit(w)
    claim = _prescriber(w.keys["hosp/dr-li"], "hosp/dr-li")
    sig = bytearray(w.keys["hosp/dr-li"].sign(RESOURCE_DOMAIN, bytes.fromhex(claim["resource_sha256"])))
    sig[0] ^= 1
    claim["signature"] = b64e(bytes(sig))
    receipt, _ = _gateway_rx(w, cid, claim)
    assert outcome(receipt) == hard("RX-NO-AI") and "does not verify" in (receipt.reason or "")


def test_a_doctor_may_not_sign_as_another_doctor(w: World) -> None:
    claim = _prescriber(w.keys["hosp/dr-wang"], "hosp/dr-wang")
    receipt, _ = _gateway_rx(w, _visit(w), claim, by="hosp/dr-li")
    assert outcome(receipt) == hard("NOT-AUTHORISED"), receipt.reason


# --- consultations recorded by a gateway ----------------------------------------------


def _gateway_consult(w: World, doctor: str | None) -> Any:
    name = w.name("gwc")
    patient, prior = w.visit(name)
    w.authenticate("hosp/dr-li", by="hosp/admin")
    payload: dict[str, Any] = {
        "consultation_id": f"c-{name}",
        "patient": patient,
        "specialty": "cardiology",
        "diagnosis": prior["diagnosis"],
        "prior": prior,
        "started_at": format_ms(w.now),
    }
    if doctor is not None:
        payload["doctor"] = doctor
    return w.send("hosp/gw", "consultation.open", payload), payload["consultation_id"]


@pytest.mark.parametrize(
    ("doctor", "expected"),
    [
        pytest.param("hosp/dr-li", OK, id="names-its-own-doctor"),
        pytest.param(None, hard("NOT-AUTHORISED"), id="names-nobody"),
        pytest.param("clinic/dr-offline", hard("NOT-AUTHORISED"), id="names-another-institutions-doctor"),
        pytest.param("hosp/gw", hard("NOT-AUTHORISED"), id="names-a-non-doctor"),
        pytest.param("hosp/nobody", hard("NOT-AUTHORISED"), id="names-an-unknown-member"),
    ],
)
def test_a_gateway_records_a_consultation_naming_the_doctor(w: World, doctor: str | None, expected: Expect) -> None:
    receipt, cid = _gateway_consult(w, doctor)
    assert outcome(receipt) == expected, receipt.reason
    consult = w.node.store.get_state("consult/" + cid)
    if expected == OK:
        assert consult["member"] == doctor and consult["licence"] == "DOC-0001"
    else:
        assert consult is None


def test_the_named_doctor_is_judged_as_if_they_signed(w: World) -> None:
    """A gateway cannot launder an unauthenticated doctor: DOC-REALNAME judges the named doctor."""
    name = w.name("gwr")
    patient, prior = w.visit(name)
    receipt = w.send(
        "hosp/gw",
        "consultation.open",
        {
            "consultation_id": f"c-{name}",
            "doctor": "hosp/dr-wang",
            "patient": patient,
            "specialty": "cardiology",
            "diagnosis": prior["diagnosis"],
            "prior": prior,
            # dr-wang has not authenticated on this fresh day
            "started_at": format_ms(w.now),
        },
    )
    assert "DOC-REALNAME" in receipt.codes, (receipt.codes, receipt.reason)
    assert pseudonym(name) == patient


def test_a_doctors_signature_backs_one_prescription_only(w: World) -> None:
    """The gateway keeps the signature it relayed; it must not attach it to a prescription the doctor never saw."""
    claim = _prescriber(w.keys["hosp/dr-li"], "hosp/dr-li", hashlib.sha256(w.name("doc").encode()).hexdigest())
    first, _ = _gateway_rx(w, _visit(w), claim)
    assert outcome(first) == OK, first.reason
    again, rx_id = _gateway_rx(w, _visit(w), claim)
    assert outcome(again) == hard("DUPLICATE-ID") and "rxdoc" in (again.reason or "")
    assert w.node.store.get_state("rx/" + rx_id) is None
