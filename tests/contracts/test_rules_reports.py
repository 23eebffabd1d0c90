"""Reporting deadlines at the millisecond: clinical events, data leaks, adverse events (LATE-REPORT,
judged per transaction) and the regulator's complaint deadline (COMPLAINT-SLA, judged by the block
hook at the start of every block, so it fires even if nobody touches the complaint again)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from contracts_world import DAY, HOUR, MIN, OK, Expect, World, outcome, soft, standard

from medledger.ledger.store import AlertQuery

INSIDE_OUTSIDE = [
    pytest.param(0, OK, id="exactly-at-the-deadline-inside"),
    pytest.param(1, soft("LATE-REPORT"), id="deadline+1ms-outside-by-1ms"),
]


@pytest.mark.parametrize(("late_by", "expected"), INSIDE_OUTSIDE)
def test_consultation_reported_late(w: World, late_by: int, expected: Expect) -> None:
    """report_deadline_h (24 h) from the moment the consultation opened to its block."""
    doctor = w.doctor()
    patient, prior = w.visit(w.name("late"))
    opened = w.now
    w.authenticate(doctor, -MIN, by="hosp/admin")
    w.advance(24 * HOUR)
    receipt = w.consult(doctor, w.name("c-late"), patient, prior, started_ms=opened - late_by)
    assert outcome(receipt) == expected, receipt.reason


@pytest.mark.parametrize(("late_by", "expected"), INSIDE_OUTSIDE)
def test_authentication_reported_late(w: World, late_by: int, expected: Expect) -> None:
    receipt = w.send(
        "hosp/gw", "doctor.authenticate", {"member": "hosp/dr-li", "method": "face", "at": w.t(-24 * HOUR - late_by)}
    )
    assert outcome(receipt) == expected, receipt.reason


@pytest.mark.parametrize(("late_by", "expected"), INSIDE_OUTSIDE)
def test_data_leak_reported_late(w: World, late_by: int, expected: Expect) -> None:
    """leak_deadline_h (72 h) from detection."""
    receipt = w.send(
        "hosp/admin",
        "report.data-leak",
        {
            "incident_id": w.name("leak"),
            "detected_at": w.t(-72 * HOUR - late_by),
            "records_affected": 120,
            "category": "misdelivery",
        },
    )
    assert outcome(receipt) == expected, receipt.reason


def _adverse(w: World, by: str, occurred_ago: int, *, anonymous: bool) -> Any:
    return w.send(
        by,
        "report.adverse-event",
        {
            "report_id": w.name("ae"),
            "category": "adverse-drug-reaction",
            "seriousness": "serious",
            "org": "hosp",
            "rxnorm": "17767",
            "occurred_at": w.t(-occurred_ago),
            "anonymous": anonymous,
        },
    )


@pytest.mark.parametrize(("late_by", "expected"), INSIDE_OUTSIDE)
def test_adverse_event_reported_late(w: World, late_by: int, expected: Expect) -> None:
    """adverse_deadline_d (15 days) for an institution's own, signed report."""
    receipt = _adverse(w, "hosp/dr-li", 15 * DAY + late_by, anonymous=False)
    assert outcome(receipt) == expected, receipt.reason


@pytest.mark.parametrize(
    ("by", "anonymous"),
    [
        pytest.param("hosp/dr-li", True, id="anonymous"),
        pytest.param("regulator", False, id="by-the-regulator"),
    ],
)
def test_public_reports_have_no_deadline(w: World, by: str, anonymous: bool) -> None:
    receipt = _adverse(w, by, 90 * DAY, anonymous=anonymous)
    assert outcome(receipt) == OK, receipt.reason


def test_a_hospital_gateway_owes_the_deadline_for_a_named_report(w: World) -> None:
    """Only the regulator's desk relays the public; a hospital's own system reporting under its name is late."""
    receipt = _adverse(w, "hosp/gw", 15 * DAY + 1, anonymous=False)
    assert outcome(receipt) == soft("LATE-REPORT"), receipt.reason


# --- COMPLAINT-SLA ----------------------------------------------------------------


def _file(w: World, filed_at: str | None = None) -> tuple[str, str]:
    complaint = w.name("cmp")
    receipt = w.ok(
        "hosp/gw",
        "complaint.file",
        {"complaint_id": complaint, "about": "hosp", "category": "billing", "filed_at": filed_at or w.t()},
    )
    return complaint, receipt.tx_id


def test_complaint_deadline_raises_one_alert_from_the_block_hook(tmp_path_factory: pytest.TempPathFactory) -> None:
    w = standard(tmp_path_factory.mktemp("complaints"))
    try:
        store = w.node.store
        filed = w.now
        due = filed + 15 * DAY  # complaint_sla_d, counted from the block that records the complaint
        answered, _ = _file(w)
        late_form, _ = _file(w, w.t(-2 * HOUR))  # filled in earlier: the clock starts on the ledger
        overdue, overdue_tx = _file(w)

        w.advance_to(due)  # the last instant inside the deadline
        for complaint in (answered, late_form):
            assert (
                outcome(w.send("regulator", "complaint.answer", {"complaint_id": complaint, "resolution": "upheld"}))
                == OK
            )
        assert store.alerts(AlertQuery(rule="COMPLAINT-SLA")) == []

        w.advance(1)  # the first block past the deadline
        tick = w.patient(w.name("tick"))
        assert tick
        alerts = store.alerts(AlertQuery(rule="COMPLAINT-SLA"))
        assert len(alerts) == 1
        (alert,) = alerts
        body = json.loads(alert.body)
        assert (alert.leaf_index, alert.severity, alert.institution, alert.block_ms) == (None, "soft", "hosp", due + 1)
        assert body["subject"] == {"kind": "complaint", "id": overdue}
        assert body["evidence"] == [overdue_tx]
        assert body["rulebook"] == 0
        assert store.get_state(f"complaint/{overdue}")["overdue"] == alert.height
        assert store.get_state("complaints/open") == []

        for _ in range(3):  # more blocks, later still, and a late answer: still exactly one alert
            w.advance(DAY)
            w.patient(w.name("tick"))
        late = w.send("regulator", "complaint.answer", {"complaint_id": overdue, "resolution": "dismissed"})
        assert outcome(late) == OK
        assert len(store.alerts(AlertQuery(rule="COMPLAINT-SLA"))) == 1
    finally:
        w.close()
