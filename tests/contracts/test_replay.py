"""Replay: every decision on the ledger can be re-derived from the stored blocks alone.

A ledger with a mixed workload (acceptances, hard rejections, soft alerts, a structural refusal,
a rulebook publication and a complaint deadline that passes with no transaction touching it) is
replayed block by block, its stored envelopes, timestamp, proposer and ordering through
:func:`medledger.ledger.chain.build_block`, into a fresh store in another directory. The replica
is signed with the same node key (Ed25519 signatures are deterministic), so it must be the same
ledger byte for byte: world state, alerts, outcomes, Merkle nodes, tree heads and block hashes.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from contracts_world import DAY, MIN, OK, World, drug_for, hard, outcome, soft, standard

from medledger.ledger import envelope, merkle
from medledger.ledger.block import GENESIS_PREV_HASH, BlockHeader
from medledger.ledger.canonical import parse_canonical
from medledger.ledger.chain import Tip, build_block
from medledger.ledger.keys import SigningKey
from medledger.ledger.sqlite_store import DB_NAME, SqliteStore
from medledger.ledger.state import GENESIS_STATE_ROOT, CachedState
from medledger.ledger.store import AlertQuery
from medledger.ledger.timefmt import parse_ms
from medledger.ledger.verify import verify_store
from medledger.node.node import DEFAULT_REGISTRY
from medledger.node.pool import load_registry


def _workload(w: World) -> None:
    """Every kind of outcome the rulebook produces, the way a province would produce it."""
    complaint = w.ok(
        "hosp/gw",
        "complaint.file",
        {"complaint_id": "k-replay", "about": "hosp", "category": "delivery", "filed_at": w.t()},
    )
    visit = w.follow_up("replay-a")
    w.advance(2 * MIN)
    assert outcome(w.prescribe("rx-ok", visit.cid, drug_for("I10"), daily=2, days=10)) == OK
    assert outcome(w.prescribe("rx-soft", visit.cid, drug_for("J45"))) == soft("RX-INDICATION")
    assert outcome(w.prescribe("rx-hard", visit.cid, drug_for("R52", "narcotic"))) == hard(
        "RX-PROHIBITED", "RX-INDICATION"
    )
    assert outcome(w.review("rx-ok")) == OK
    assert outcome(w.dispense("d-ok", "rx-ok", 20)) == OK
    assert outcome(w.dispense("d-dead", "rx-hard", 1)) == hard("UNKNOWN-REFERENCE")
    assert outcome(w.handover("d-ok", 2, "courier")) == soft("DELIVERY-TRACE")
    assert outcome(w.claim("claim-bad", "d-ok", 1)) == hard("CLAIM-MATCH")
    assert outcome(w.claim("claim-ok", "d-ok", 20 * drug_for("I10").unit_price_fen)) == OK

    # several envelopes in one block, in submission order
    w.seq += 1
    first = envelope.build(
        w.keys["hosp/admin"],
        "report.data-leak",
        {"incident_id": "leak-1", "detected_at": w.t(-80 * 3_600_000), "records_affected": 3, "category": "insider"},
        nonce=f"batch-{w.seq}",
        created_ms=w.now,
    )
    second = envelope.build(
        w.keys["regulator"],
        "rulebook.publish",
        {"version": 1, "params": {"rx_min_s": 90}, "formulary": "ab" * 32},
        nonce=f"batch-{w.seq}",
        created_ms=w.now,
    )
    receipts = w.node.submit_sync([first.to_wire(), second.to_wire()])
    assert [(r.status, r.codes) for r in receipts] == [soft("LATE-REPORT"), OK]
    assert receipts[0].height == receipts[1].height

    later = w.follow_up("replay-b")
    w.advance(2 * MIN)
    assert outcome(w.prescribe("rx-pinned", later.cid, drug_for("I10"))) == hard("FORMULARY-MISMATCH")
    assert outcome(w.publish(2, {})) == OK

    w.advance(15 * DAY + 1)  # the complaint's deadline passes; the next block raises its alert
    w.patient("replay-tick")
    (alert,) = w.node.store.alerts(AlertQuery(rule="COMPLAINT-SLA"))
    assert alert.leaf_index is None and json.loads(alert.body)["evidence"] == [complaint.tx_id]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    w = standard(tmp_path_factory.mktemp("replay") / "ledger")
    try:
        _workload(w)
    finally:
        w.close()
    yield w.data


def _replay(source: Path, target: Path) -> list[str]:
    """Re-execute every stored block into a new store at ``target``; returns the block hashes."""
    registry = load_registry(DEFAULT_REGISTRY)
    node_key = SigningKey.from_file(source / "keys" / "node.key")
    original = SqliteStore(source, readonly=True)
    replica = SqliteStore(target)
    state = CachedState(replica)
    tip = Tip(-1, GENESIS_PREV_HASH, GENESIS_STATE_ROOT, 0)
    frontier = merkle.MerkleFrontier()
    hashes: list[str] = []
    try:
        for record, txs in original.iter_blocks():
            header = BlockHeader.from_json(parse_canonical(record.header_bytes))
            assert header.proposer == node_key.key_id
            built = build_block(
                registry,
                state,
                tip,
                frontier,
                [envelope.from_parts(tx.body, tx.signature) for tx in txs],
                None,
                block_ms=parse_ms(header.timestamp),
                proposer=header.proposer,
                node_key=node_key,
                ordering=header.ordering,
            )
            block = built.block
            assert block.header_bytes == record.header_bytes, f"block {record.height} re-derives another header"
            assert (block.block_hash, block.signature) == (record.block_hash, record.signature)
            assert [t[6] for t in block.txs] == [t.outcome for t in txs], f"outcomes differ at {record.height}"
            replica.append_block(block)
            state.apply(built.writes)
            tip, frontier = built.tip, built.frontier
            hashes.append(block.block_hash)
    finally:
        original.close()
        replica.close()
    return hashes


TABLES = {
    "state": "SELECT key, value, height FROM state ORDER BY key",
    "alerts": "SELECT * FROM alerts ORDER BY height, seq",
    "txs": "SELECT * FROM txs ORDER BY leaf_index",
    "blocks": "SELECT * FROM blocks ORDER BY height",
    "tree_heads": "SELECT * FROM tree_heads ORDER BY height",
    "tree_runs": "SELECT * FROM tree_runs ORDER BY level, start",
}


def _dump(data: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{data / DB_NAME}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_replay_rebuilds_the_same_ledger(ledger: Path, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    hashes = _replay(ledger, replica)

    for table, sql in TABLES.items():
        assert _dump(replica, sql) == _dump(ledger, sql), f"table {table} differs after replay"
    assert [h for (_, h, _, _) in _dump(ledger, TABLES["blocks"])] == hashes

    alerts = _dump(ledger, "SELECT rule, severity, leaf_index IS NULL FROM alerts ORDER BY height, seq")
    assert {a[0] for a in alerts} >= {"RX-INDICATION", "RX-PROHIBITED", "CLAIM-MATCH", "LATE-REPORT", "COMPLAINT-SLA"}
    assert ("COMPLAINT-SLA", "soft", 1) in alerts  # raised by the block hook, not by a transaction
    statuses = {json.loads(row[0])["status"] for row in _dump(ledger, "SELECT outcome FROM txs")}
    assert statuses == {"ACCEPTED", "ACCEPTED_WITH_ALERTS", "REJECTED"}

    registry = load_registry(DEFAULT_REGISTRY)
    reports = []
    for data in (ledger, replica):
        store = SqliteStore(data, readonly=True)
        try:
            reports.append(verify_store(store, registry))
        finally:
            store.close()
    assert reports[0] == reports[1]
    assert reports[0].blocks == len(hashes)


def test_cli_verify_accepts_the_original(ledger: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "medledger", "verify", "--data", str(ledger), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["ok"] is True
    assert report["blocks"] == len(_dump(ledger, TABLES["blocks"]))
