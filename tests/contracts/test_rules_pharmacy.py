"""From prescription to claim at each rule's boundary: pharmacist review, dispensing within the
validity window and the remaining quantity, the delivery trace and the insurance claim."""

from __future__ import annotations

import pytest
from contracts_world import (
    HOUR,
    MIN,
    OK,
    Expect,
    World,
    hard,
    outcome,
    pseudonym,
    soft,
)

from medledger.contracts import formulary

LOSARTAN = next(d for d in formulary.default().drugs if d.name == "losartan")
assert (LOSARTAN.unit_price_fen, LOSARTAN.max_daily_units, LOSARTAN.indications[0]) == (100, 2, "I10")


# --- RX-EXPIRY --------------------------------------------------------------------

VALIDITY = 72 * HOUR  # rx_validity_h, default


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        pytest.param(0, OK, id="exactly-72h-after-issue-inside"),
        pytest.param(1, hard("RX-EXPIRY"), id="72h+1ms-outside-by-1ms"),
    ],
)
def test_expiry(w: World, offset: int, expected: Expect) -> None:
    rx = w.issued(w.name("exp"))
    issued = w.now
    w.advance(VALIDITY)
    receipt = w.dispense(w.name("d-exp"), rx, 5, at_ms=issued + VALIDITY + offset)
    assert outcome(receipt) == expected, receipt.reason


# --- PH-REVIEW --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reviewer", "expected"),
    [
        pytest.param("pharm/ph-zhao", OK, id="pharmacist"),
        pytest.param("hosp/dr-li", hard("PH-REVIEW"), id="the-prescribing-doctor"),
        pytest.param("hosp/dr-wang", hard("PH-REVIEW"), id="another-doctor"),
        pytest.param("suspended", hard("PH-REVIEW"), id="suspended-pharmacist"),
        pytest.param("unregistered", hard("PH-REVIEW"), id="pharmacist-key-without-licence"),
    ],
)
def test_review(w: World, reviewer: str, expected: Expect) -> None:
    rx = w.issued(w.name("rev"), review=None)
    if reviewer in ("suspended", "unregistered"):
        licence = w.new_licence("PHA")
        member = f"pharm/ph-{w.licences}"
        if reviewer == "suspended":
            w.practitioner("pharm", f"ph-{w.licences}", licence, profession="pharmacist", site=False)
            w.ok("regulator", "practitioner.suspend", {"licence_no": licence, "reason": "investigation"})
        else:
            w.register("pharm/admin", member, "pharm", "pharmacist")
        reviewer = member
    receipt = w.review(rx, by=reviewer)
    assert outcome(receipt) == expected, receipt.reason


@pytest.mark.parametrize(
    ("review", "expected"),
    [pytest.param("approved", OK, id="reviewed"), pytest.param(None, hard("PH-REVIEW"), id="never-reviewed")],
)
def test_dispense_needs_a_review(w: World, review: str | None, expected: Expect) -> None:
    rx = w.issued(w.name("norev"), review=review)
    receipt = w.dispense(w.name("d-norev"), rx, 5)
    assert outcome(receipt) == expected, receipt.reason


# --- PH-DISPENSE ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantities", "expected"),
    [
        pytest.param((10,), OK, id="all-10-of-10-inside"),
        pytest.param((11,), hard("PH-DISPENSE"), id="11-of-10-outside-by-1"),
        pytest.param((4, 6), OK, id="4-then-exactly-the-remaining-6"),
        pytest.param((4, 7), hard("PH-DISPENSE"), id="4-then-7-of-6-remaining"),
    ],
)
def test_remaining_quantity(w: World, quantities: tuple[int, ...], expected: Expect) -> None:
    rx = w.issued(w.name("qty"), daily=2, days=5)
    *before, last = quantities
    for quantity in before:
        assert outcome(w.dispense(w.name("d-qty"), rx, quantity)) == OK
    receipt = w.dispense(w.name("d-qty"), rx, last)
    assert outcome(receipt) == expected, receipt.reason


@pytest.mark.parametrize(
    ("review", "dispenser", "expected"),
    [
        pytest.param("approved", "pharm/gw", OK, id="pharmacy-gateway-approved"),
        pytest.param("rejected", "pharm/ph-zhao", hard("PH-DISPENSE"), id="after-a-rejecting-review"),
        pytest.param("approved", "hosp/gw", hard("PH-DISPENSE"), id="by-a-hospital-not-a-pharmacy"),
    ],
)
def test_dispensable(w: World, review: str, dispenser: str, expected: Expect) -> None:
    rx = w.issued(w.name("dsp"), review=review)
    receipt = w.dispense(w.name("d-dsp"), rx, 5, by=dispenser)
    assert outcome(receipt) == expected, receipt.reason


# --- DELIVERY-TRACE ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(((1, "courier"), (2, "pickup-point"), (3, "patient")), OK, id="in-order-to-the-patient"),
        pytest.param(((1, "courier"), (3, "patient")), soft("DELIVERY-TRACE"), id="seq-2-skipped"),
        pytest.param(((2, "courier"),), soft("DELIVERY-TRACE"), id="starts-at-seq-2"),
        pytest.param(((1, "courier"), (1, "courier")), soft("DELIVERY-TRACE"), id="seq-repeated"),
        pytest.param(((1, "stranger"),), soft("DELIVERY-TRACE"), id="handed-to-another-person"),
        pytest.param(((1, "patient"), (2, "courier")), soft("DELIVERY-TRACE"), id="after-delivery"),
    ],
)
def test_delivery_trace(w: World, steps: tuple[tuple[int, str], ...], expected: Expect) -> None:
    name = w.name("dlv")
    rx = w.issued(name)
    dispense = w.name("d-dlv")
    assert outcome(w.dispense(dispense, rx, 5)) == OK
    patient = pseudonym(name)
    *before, (seq, to) = steps
    for earlier_seq, earlier_to in before:
        recipient = patient if earlier_to == "patient" else None
        assert outcome(w.handover(dispense, earlier_seq, earlier_to, recipient)) == OK
    if to == "stranger":
        receipt = w.handover(dispense, seq, "patient", pseudonym(name + "-stranger"))
    else:
        receipt = w.handover(dispense, seq, to, patient if to == "patient" else None)
    assert outcome(receipt) == expected, receipt.reason


def test_handover_of_an_unknown_dispense(w: World) -> None:
    receipt = w.handover("d-never-dispensed", 1, "courier")
    assert outcome(receipt) == soft("DELIVERY-TRACE"), receipt.reason


# --- CLAIM-MATCH ------------------------------------------------------------------

# 25 losartan at 100 fen = 2500 fen; claim_tolerance_bp 100 (1 %) allows 25 fen either way
EXPECTED_FEN = 25 * 100


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        pytest.param(EXPECTED_FEN, OK, id="exact"),
        pytest.param(EXPECTED_FEN + 25, OK, id="+1%-tolerance-edge-inside"),
        pytest.param(EXPECTED_FEN + 26, hard("CLAIM-MATCH"), id="+1%+1fen-outside"),
        pytest.param(EXPECTED_FEN - 25, OK, id="-1%-tolerance-edge-inside"),
        pytest.param(EXPECTED_FEN - 26, hard("CLAIM-MATCH"), id="-1%-1fen-outside"),
    ],
)
def test_claim_amount(w: World, amount: int, expected: Expect) -> None:
    rx = w.issued(w.name("clm"), LOSARTAN, daily=2, days=50)
    dispense = w.name("d-clm")
    assert outcome(w.dispense(dispense, rx, 25)) == OK
    receipt = w.claim(w.name("claim"), dispense, amount)
    assert outcome(receipt) == expected, receipt.reason


def test_one_claim_per_dispense(w: World) -> None:
    rx = w.issued(w.name("clm2"), LOSARTAN, daily=2, days=50)
    dispense = w.name("d-clm2")
    assert outcome(w.dispense(dispense, rx, 25)) == OK
    refused = w.claim(w.name("claim"), dispense, EXPECTED_FEN * 2)
    assert outcome(refused) == hard("CLAIM-MATCH"), refused.reason
    assert outcome(w.claim(w.name("claim"), dispense, EXPECTED_FEN)) == OK  # a refused claim claims nothing
    second = w.claim(w.name("claim"), dispense, EXPECTED_FEN)
    assert outcome(second) == hard("CLAIM-MATCH"), second.reason


def test_claim_of_an_unknown_dispense(w: World) -> None:
    receipt = w.claim(w.name("claim"), "d-never-dispensed", 100)
    assert outcome(receipt) == hard("CLAIM-MATCH"), receipt.reason


def test_a_dispense_dated_before_the_prescription_existed(w: World) -> None:
    """The validity window is [issued, issued + rx_validity_h]: a dispense an hour before the issue
    (beyond any clock skew) is back-dated, not within it."""
    rx = w.issued(w.name("pre"))
    issued = w.now
    w.advance(MIN)
    receipt = w.dispense(w.name("d-pre"), rx, 5, at_ms=issued - HOUR)
    assert receipt.status == "REJECTED" and receipt.codes == ("TIME-ORDER",), receipt.codes


def test_back_dating_a_dispense_into_its_window_does_not_help(w: World) -> None:
    """Reported 10 min after the window closed, stating a time 1 h inside it (not late enough for
    LATE-REPORT): the window is judged at no earlier than block time minus the 5-minute clock skew."""
    rx = w.issued(w.name("backdate"))
    issued = w.now
    w.advance(VALIDITY + 10 * MIN)
    receipt = w.dispense(w.name("d-backdate"), rx, 5, at_ms=issued + VALIDITY - HOUR)
    assert outcome(receipt) == hard("RX-EXPIRY"), receipt.reason


def test_a_pharmacy_with_a_lapsed_licence_cannot_dispense(w: World) -> None:
    if "pharm-old/gw" not in w.keys:
        w.institution("pharm-old", "pharmacy", internet=False, valid_until="2026-01-31")
        w.register("pharm-old/admin", "pharm-old/gw", "pharm-old", "gateway")
    rx = w.issued(w.name("lapsed"))
    receipt = w.dispense(w.name("d-lapsed"), rx, 5, by="pharm-old/gw")
    assert outcome(receipt) == hard("PH-DISPENSE"), receipt.reason
