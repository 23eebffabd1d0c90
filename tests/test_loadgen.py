"""The load generator: counts, the receipts file as crash-test witness, and a dying server.

The property that matters: every line in the receipts file is a transaction the
node acknowledged, and the line alone (plus a proof fetched afterwards) proves
it with :func:`verify_receipt_offline`. So the tests count lines against
``acknowledged`` and verify every one, including when the server goes away in
the middle of a run.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ledger_factory import LiveNode
from medledger import loadgen
from medledger.client import Client, verify_receipt_offline
from medledger.errors import MedledgerError
from medledger.ledger import envelope, merkle, proofs
from medledger.ledger.keys import SigningKey
from medledger.ledger.sqlite_store import SqliteStore
from medledger.loadgen import LoadResult, run_load


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_lines(lines: list[dict[str, Any]], proof_of: Any, node_key: SigningKey) -> None:
    """Every line verifies on its own against a proof at its receipt's tree size."""
    for line in lines:
        receipt, wire = line["receipt"], line["wire"]
        proof = proof_of(receipt["tx_id"], receipt["tree_head"]["tree_size"])
        verify_receipt_offline(receipt, proof, wire, trusted_keys=[node_key.key_id])


def test_load_writes_exactly_acknowledged_lines(live: LiveNode, tmp_path: Path) -> None:
    receipts = tmp_path / "out" / "receipts.jsonl"
    done: list[int] = []
    result = run_load(
        live.url, live.admin_key, count=120, concurrency=4, batch=3, receipts=receipts, progress=done.append
    )
    assert (result.submitted, result.acknowledged, result.refused) == (120, 120, 0)
    assert sum(done) == 120
    assert result.elapsed > 0 and result.tx_per_s > 0
    assert result.member.startswith("demo-hospital/load-")
    # letters only: a random hex suffix sometimes held 7 digits together, which member ids refuse (issue 12)
    assert result.member.removeprefix("demo-hospital/load-").isalpha(), result.member
    lines = _lines(receipts)
    assert len(lines) == result.acknowledged
    assert len({line["receipt"]["tx_id"] for line in lines}) == 120
    labels = set()
    for line in lines:
        env = envelope.from_wire(line["wire"])
        assert env.type == "anchor.record"
        assert 200 <= len(env.body) <= 400
        labels.add(env.payload["label"])
    assert labels == {f"load/{n}" for n in range(120)}
    with Client(live.url, trusted_node_keys=[live.node_key.key_id]) as client:
        _check_lines(lines, lambda tx, size: client.inclusion_proof(tx, size).to_json(), live.node_key)


def test_load_appends_with_batch_of_one(live: LiveNode, tmp_path: Path) -> None:
    receipts = tmp_path / "receipts.jsonl"
    receipts.write_text('{"earlier": "run"}\n')
    result = run_load(live.url, live.admin_key, count=25, concurrency=2, receipts=receipts)
    assert (result.acknowledged, result.refused) == (25, 0)
    assert len(_lines(receipts)) == 26  # appended, never truncated: an earlier run's witness survives
    assert json.loads(json.dumps(result.to_json()))["acknowledged"] == 25


def _proofs_from_store(data_dir: Path) -> Any:
    """Proofs straight from the closed ledger, in the API's shape, for after the server is gone."""
    store = SqliteStore(data_dir, readonly=True)
    tip = store.tip()
    assert tip is not None

    def proof_of(tx_id: str, tree_size: int) -> dict[str, Any]:
        record = store.tx(tx_id)
        assert record is not None, f"acknowledged transaction {tx_id} is not in the ledger"
        path = proofs.inclusion_proof(store, record.leaf_index, tree_size, tip.tree_size)
        env = envelope.from_parts(record.body, record.signature, check_signature=False)
        return {
            "tx_id": tx_id,
            "leaf_index": record.leaf_index,
            "tree_size": tree_size,
            "leaf_hash": merkle.leaf_hash(env.leaf_data()).hex(),
            "proof": [p.hex() for p in path],
            "tree_head": None,
            "root_hash": proofs.root_at(store, tree_size).hex(),
        }

    return store, proof_of


def test_load_keeps_going_when_the_server_dies(live: LiveNode, tmp_path: Path) -> None:
    receipts = tmp_path / "receipts.jsonl"
    finished = [0]
    lock = threading.Lock()
    killer: list[threading.Thread] = []

    def progress(n: int) -> None:
        with lock:
            finished[0] += n
            if finished[0] >= 60 and not killer:
                killer.append(threading.Thread(target=live.stop))
                killer[0].start()

    count = 600
    started = time.monotonic()
    result = run_load(
        live.url,
        live.admin_key,
        count=count,
        concurrency=4,
        batch=2,
        receipts=receipts,
        progress=progress,
        timeout=10,
    )
    wall = time.monotonic() - started
    killer[0].join(20)
    assert result.submitted == result.acknowledged + result.refused == count
    assert result.acknowledged >= 60
    assert result.refused > 0
    assert "ConnectError" in result.refusals  # the dead server, counted, not retried
    assert wall < 30
    lines = _lines(receipts)
    assert len(lines) == result.acknowledged
    store, proof_of = _proofs_from_store(live.data_dir)
    try:
        _check_lines(lines, proof_of, live.node_key)
    finally:
        store.close()


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_dead_server_refusals_are_counted_quickly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loadgen, "register_member", lambda *a, **k: ("demo-hospital/load-x", SigningKey.generate()))
    receipts = tmp_path / "receipts.jsonl"
    started = time.monotonic()
    result = run_load(_dead_url(), SigningKey.generate(), count=200, concurrency=4, receipts=receipts, timeout=5)
    assert time.monotonic() - started < 20
    assert result == LoadResult(200, 0, 200, result.elapsed, "demo-hospital/load-x", {"ConnectError": 200})
    assert receipts.read_text() == ""


def test_registration_needs_a_server() -> None:
    with pytest.raises(MedledgerError) as info:
        run_load(_dead_url(), SigningKey.generate(), count=1, concurrency=1, receipts=None, timeout=2)
    assert info.value.code == "unreachable"


def test_bad_arguments() -> None:
    with pytest.raises(MedledgerError):
        run_load("http://127.0.0.1:1", SigningKey.generate(), count=1, concurrency=0, receipts=None)
