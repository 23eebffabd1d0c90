"""E-prescriptions at each rule's boundary: who writes them and when, what may be prescribed
online, formulary limits, indications and duplicate supply across prescriptions."""

from __future__ import annotations

import pytest
from contracts_world import (
    DAY,
    HOUR,
    MIN,
    OK,
    SEC,
    Expect,
    World,
    drug_for,
    hard,
    outcome,
    soft,
)

from medledger.contracts import formulary

TABLE = formulary.default()
AMLODIPINE = drug_for("I10")  # dihydropyridine-ccb: at most 2 a day for 84 days
NIFEDIPINE = next(d for d in TABLE.drugs if d.name == "nifedipine")  # same therapeutic group
LOSARTAN = next(d for d in TABLE.drugs if d.name == "losartan")  # another group, also for I10
assert AMLODIPINE.name == "amlodipine" and (AMLODIPINE.max_daily_units, AMLODIPINE.max_days) == (2, 84)
assert NIFEDIPINE.group == AMLODIPINE.group != LOSARTAN.group


# --- RX-PRESCRIBER ----------------------------------------------------------------

WINDOW = 24 * HOUR  # rx_window_h, default


@pytest.mark.parametrize(
    ("issued_after_start", "expected"),
    [
        pytest.param(WINDOW, OK, id="exactly-24h-after-inside"),
        pytest.param(WINDOW + 1, hard("RX-PRESCRIBER"), id="24h+1ms-outside-by-1ms"),
        # before the consultation opened it is also "instant" (RX-NO-AI, soft) beside the hard refusal
        pytest.param(-1, hard("RX-PRESCRIBER", "RX-NO-AI"), id="1ms-before-the-consultation-opened"),
    ],
)
def test_prescriber_window(w: World, issued_after_start: int, expected: Expect) -> None:
    visit = w.follow_up(w.name("win"))
    w.advance(max(issued_after_start, 0))
    receipt = w.prescribe(w.name("rx-win"), visit.cid, AMLODIPINE, issued_ms=visit.started + issued_after_start)
    assert outcome(receipt) == expected, receipt.reason


@pytest.mark.parametrize(
    ("prescriber", "expected"),
    [
        pytest.param("hosp/dr-li", OK, id="the-consulting-doctor"),
        pytest.param("hosp/dr-wang", hard("RX-PRESCRIBER"), id="another-doctor"),
    ],
)
def test_prescriber_is_the_consulting_doctor(w: World, prescriber: str, expected: Expect) -> None:
    visit = w.follow_up(w.name("who"), "hosp/dr-li")
    w.advance(2 * MIN)
    receipt = w.prescribe(w.name("rx-who"), visit.cid, AMLODIPINE, by=prescriber)
    assert outcome(receipt) == expected, receipt.reason


def test_prescription_on_no_consultation(w: World) -> None:
    receipt = w.prescribe(w.name("rx-none"), "c-never-opened", AMLODIPINE)
    assert outcome(receipt) == hard("RX-PRESCRIBER"), receipt.reason


# --- RX-NO-AI ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after_ms", "expected"),
    [
        pytest.param(60 * SEC, OK, id="exactly-rx_min_s-60s-inside"),
        pytest.param(59 * SEC, soft("RX-NO-AI"), id="59s-outside-by-1s"),
        pytest.param(60 * SEC - 1, soft("RX-NO-AI"), id="59.999s-outside-by-1ms-whole-seconds"),
    ],
)
def test_not_instant(w: World, after_ms: int, expected: Expect) -> None:
    visit = w.follow_up(w.name("fast"))
    w.advance(after_ms)
    receipt = w.prescribe(w.name("rx-fast"), visit.cid, AMLODIPINE)
    assert outcome(receipt) == expected, receipt.reason


@pytest.mark.parametrize(
    ("signer", "expected"),
    [
        pytest.param("hosp/dr-li", OK, id="doctor-key"),
        pytest.param("hosp/gw", hard("RX-NO-AI"), id="gateway-key-hard"),
    ],
)
def test_signed_by_a_doctor_key(w: World, signer: str, expected: Expect) -> None:
    visit = w.follow_up(w.name("key"))
    w.advance(2 * MIN)
    receipt = w.prescribe(w.name("rx-key"), visit.cid, AMLODIPINE, by=signer)
    assert outcome(receipt) == expected, receipt.reason


# --- RX-PROHIBITED ----------------------------------------------------------------


def _coded(klass: str) -> formulary.Drug | None:
    return next((d for d in TABLE.drugs if d.drug_class == klass and d.rxnorm), None)


CODED_CLASSES = [c for c in formulary.CLASSES if _coded(c) is not None]


def test_every_class_but_radioactive_has_a_coded_drug() -> None:
    """Radiopharmaceuticals have no RxNorm code, so no prescription can even name one."""
    assert set(formulary.CLASSES) - set(CODED_CLASSES) == {"radioactive"}


@pytest.mark.parametrize("klass", CODED_CLASSES)
def test_prohibited_classes(w: World, klass: str) -> None:
    drug = _coded(klass)
    assert drug is not None
    visit = w.follow_up(w.name("cls"), diagnosis=drug.indications[0])  # indicated: nothing else fires
    w.advance(2 * MIN)
    receipt = w.prescribe(w.name("rx-cls"), visit.cid, drug, daily=1, days=1)
    expected = OK if klass == "ordinary" else hard("RX-PROHIBITED")
    assert outcome(receipt) == expected, receipt.reason


def test_a_code_outside_the_formulary(w: World) -> None:
    visit = w.follow_up(w.name("nf"))
    w.advance(2 * MIN)
    unknown = formulary.Drug(("999999999",), "unknown", "A00AA00", "ordinary", "x", "x", "x", 1, 1, ("I10",), 1, ())
    receipt = w.prescribe(w.name("rx-nf"), visit.cid, unknown)
    assert outcome(receipt) == hard("NOT-IN-FORMULARY"), receipt.reason


# --- RX-LIMITS --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("daily", "days", "quantity", "expected"),
    [
        pytest.param(2, 84, 168, OK, id="max_daily-max_days-quantity=daily*days-inside"),
        pytest.param(3, 84, 252, hard("RX-LIMITS"), id="max_daily+1"),
        pytest.param(2, 85, 170, hard("RX-LIMITS"), id="max_days+1"),
        pytest.param(2, 84, 169, hard("RX-LIMITS"), id="quantity=daily*days+1"),
        pytest.param(1, 10, 5, OK, id="quantity-below-daily*days"),
    ],
)
def test_limits(w: World, daily: int, days: int, quantity: int, expected: Expect) -> None:
    visit = w.follow_up(w.name("lim"))
    w.advance(2 * MIN)
    receipt = w.prescribe(w.name("rx-lim"), visit.cid, AMLODIPINE, daily=daily, days=days, quantity=quantity)
    assert outcome(receipt) == expected, receipt.reason


# --- RX-INDICATION ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("diagnosis", "drug", "expected"),
    [
        pytest.param("I10", AMLODIPINE, OK, id="amlodipine-for-I10"),
        pytest.param("E11.65", drug_for("E11"), OK, id="metformin-for-E11.65-same-category"),
        pytest.param("I10", drug_for("J45"), soft("RX-INDICATION"), id="salbutamol-for-I10"),
    ],
)
def test_indication(w: World, diagnosis: str, drug: formulary.Drug, expected: Expect) -> None:
    visit = w.follow_up(w.name("ind"), diagnosis=diagnosis)
    w.advance(2 * MIN)
    receipt = w.prescribe(w.name("rx-ind"), visit.cid, drug)
    assert outcome(receipt) == expected, receipt.reason


# --- RX-DUPLICATE -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("drug", "start", "elsewhere", "expected"),
    [
        # supply is the half-open interval [issued, issued + days): back to back is no overlap
        pytest.param(AMLODIPINE, 0, False, OK, id="starts-exactly-when-the-first-ends-inside"),
        pytest.param(AMLODIPINE, -1, False, soft("RX-DUPLICATE"), id="1ms-overlap-outside-by-1ms"),
        pytest.param(NIFEDIPINE, -12 * HOUR, False, soft("RX-DUPLICATE"), id="same-group-other-drug"),
        pytest.param(NIFEDIPINE, -12 * HOUR, True, soft("RX-DUPLICATE"), id="same-group-another-institution"),
        pytest.param(LOSARTAN, -12 * HOUR, False, OK, id="other-group-overlapping"),
    ],
)
def test_duplicate_supply(w: World, drug: formulary.Drug, start: int, elsewhere: bool, expected: Expect) -> None:
    doctor = "hosp/dr-li"
    if elsewhere:
        org = w.name("other")
        w.institution(org)
        doctor = w.doctor(org)
    visit = w.follow_up(w.name("dup"))
    w.advance(2 * MIN)
    first_issued = w.now
    assert outcome(w.prescribe(w.name("rx-dup"), visit.cid, AMLODIPINE, days=1)) == OK
    second_at = first_issued + DAY + start  # the first supply ends at first_issued + 1 day
    w.advance_to(second_at - 10 * MIN)
    w.authenticate(doctor, 0, by=doctor.split("/", maxsplit=1)[0] + "/admin")
    cid = w.name("c-dup")
    assert outcome(w.consult(doctor, cid, visit.patient, visit.prior)) == OK
    w.advance_to(second_at)
    receipt = w.prescribe(w.name("rx-dup"), cid, drug, by=doctor, days=1)
    assert outcome(receipt) == expected, receipt.reason
