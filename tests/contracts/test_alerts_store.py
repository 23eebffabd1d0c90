"""Alerts are derived data: queryable by rule, institution, practitioner and time, and
re-derived by ``verify``, so an insider editing, deleting or planting an alert row is found."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from contracts_world import MIN, drug_for, standard

from medledger.errors import VerificationError
from medledger.ledger.sqlite_store import SqliteStore
from medledger.ledger.store import AlertQuery
from medledger.ledger.verify import verify_store
from medledger.node.node import DEFAULT_REGISTRY
from medledger.node.pool import load_registry


@pytest.fixture(scope="module")
def alerted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, int]]]:
    """A ledger with a hard rejection and soft alerts at known heights."""
    w = standard(tmp_path_factory.mktemp("alerts"))
    heights: dict[str, int] = {}
    try:
        p = w.patient("alert-a")
        prior = w.encounter(p, "alert-a")
        w.authenticate("hosp/dr-li")
        opened = w.ok(
            "hosp/dr-li",
            "consultation.open",
            {
                "consultation_id": "c-alert",
                "patient": p,
                "specialty": "cardiology",
                "diagnosis": "I10",
                "prior": prior,
                "started_at": w.t(),
            },
        )
        w.advance(10 * MIN)
        drug = drug_for("J45")  # not indicated for I10: a soft RX-INDICATION alert
        soft = w.send(
            "hosp/dr-li",
            "prescription.issue",
            {
                "rx_id": "rx-soft",
                "consultation_id": "c-alert",
                "rxnorm": drug.rxnorm[0],
                "daily_units": 1,
                "days": 5,
                "quantity": 5,
                "issued_at": w.t(),
            },
        )
        assert soft.status == "ACCEPTED_WITH_ALERTS" and soft.codes == ("RX-INDICATION",)
        heights["soft"] = soft.height
        banned = drug_for("I10", "narcotic")  # not indicated either: RX-INDICATION fires beside it
        hard = w.send(
            "hosp/dr-li",
            "prescription.issue",
            {
                "rx_id": "rx-hard",
                "consultation_id": "c-alert",
                "rxnorm": banned.rxnorm[0],
                "daily_units": 1,
                "days": 3,
                "quantity": 3,
                "issued_at": w.t(),
            },
        )
        assert hard.status == "REJECTED" and "RX-PROHIBITED" in hard.codes
        heights["hard"] = hard.height
        heights["opened"] = opened.height
    finally:
        w.close()
    yield w.data, heights


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    con = sqlite3.connect(src / "ledger.sqlite")
    out = sqlite3.connect(dst / "ledger.sqlite")
    con.backup(out)
    con.close()
    out.close()
    return dst


def _verify(data: Path) -> VerificationError:
    store = SqliteStore(data, readonly=True)
    try:
        with pytest.raises(VerificationError) as info:
            verify_store(store, load_registry(DEFAULT_REGISTRY))
    finally:
        store.close()
    return info.value


def test_alerts_are_queryable_and_verify(alerted: tuple[Path, dict[str, int]]) -> None:
    data, heights = alerted
    store = SqliteStore(data, readonly=True)
    try:
        report = verify_store(store, load_registry(DEFAULT_REGISTRY))
        assert report.blocks > 10
        by_rule = store.alerts(AlertQuery(rule="RX-PROHIBITED"))
        assert [(a.height, a.severity) for a in by_rule] == [(heights["hard"], "hard")]
        everything = store.alerts(AlertQuery(institution="hosp"))
        assert {a.rule for a in everything} == {"RX-INDICATION", "RX-PROHIBITED"}
        assert len(everything) == 3
        assert store.alerts(AlertQuery(practitioner="DOC-0001")) == everything
        assert store.alerts(AlertQuery(institution="pharm")) == []
        newest = everything[0]
        assert store.alerts(AlertQuery(since_ms=newest.block_ms + 1)) == []
        assert store.alerts(AlertQuery(before=(newest.height, newest.seq))) == everything[1:]
    finally:
        store.close()


EDITS = {
    "body": (
        "UPDATE alerts SET body=CAST(REPLACE(CAST(body AS TEXT), 'RX-INDICATION', 'RX-INDICATIOM') AS BLOB) "
        "WHERE rule='RX-INDICATION' AND height=(SELECT MIN(height) FROM alerts)",
        "soft",
    ),
    "rule": ("UPDATE alerts SET rule='RX-LIMITS' WHERE rule='RX-PROHIBITED'", "hard"),
    "institution": ("UPDATE alerts SET institution='clinic' WHERE severity='soft' AND height=%s", "soft"),
    "severity": ("UPDATE alerts SET severity='soft' WHERE rule='RX-PROHIBITED'", "hard"),
    "deleted": ("DELETE FROM alerts WHERE height=%s", "soft"),
    "planted": (
        "INSERT INTO alerts SELECT height, 7, leaf_index, 'VOLUME', 'soft', institution, practitioner, "
        "block_ms, body FROM alerts WHERE height=%s",
        "soft",
    ),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_alert_edits_are_found_at_their_height(alerted: tuple[Path, dict[str, int]], tmp_path: Path, name: str) -> None:
    data, heights = alerted
    copy = _copy(data, tmp_path / "copy")
    sql, which = EDITS[name]
    sql = sql.replace("%s", str(heights[which]))
    con = sqlite3.connect(copy / "ledger.sqlite")
    with con:
        assert con.execute(sql).rowcount == 1
    con.close()
    error = _verify(copy)
    assert error.height == heights[which], error.message
