"""Admission and commit agree under any interleaving, and a store fault is told exactly as it happened.

The interleavings are forced, not hoped for: the node's real store look-up is
wrapped so that one request stops right after it (where the old code let a
replay through), and a block listener (the node's public hook, called on the
committer thread after each durable block) holds the committer between blocks.
Store faults are real SQLite failures: a trigger installed in the ledger file
aborts the insert of one block.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ledger_factory import Populated, anchor, verify_ledger
from medledger.errors import MedledgerError
from medledger.ledger import envelope
from medledger.ledger.receipt import Receipt
from medledger.node.node import Node, NodeConfig

WAIT = 30


@pytest.fixture
def node(populated: Populated) -> Iterator[Node]:
    """Two envelopes a block, cut at once: a request of six spans three blocks."""
    node = Node(NodeConfig(populated.data, workers=0, max_wait_ms=0, max_block_txs=2))
    try:
        yield node
    finally:
        node.close()


def _tx_ids(node: Node, items: Sequence[dict[str, str]]) -> list[str]:
    return [env.tx_id for env in node.check(items)]


class _PausedLookup:
    """Stops the first admission whose look-up covers ``size`` envelopes right after that look-up."""

    def __init__(self, node: Node, size: int) -> None:
        self.looked = threading.Event()
        self.go = threading.Event()
        self._size = size
        self._real: Callable[[Sequence[tuple[str, str]]], dict[tuple[str, str], str]] = node.store.find_nonces
        node.store.find_nonces = self  # type: ignore[method-assign]

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        found = self._real(pairs)
        if len(pairs) == self._size and not self.looked.is_set():
            self.looked.set()
            assert self.go.wait(WAIT)
        return found


def _in_thread(call: Callable[[], list[Receipt]]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["receipts"] = call()
        except MedledgerError as exc:
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


@pytest.mark.parametrize("recent_max", [100_000, 1], ids=["recent-kept", "recent-dropped"])
def test_a_replay_committed_during_the_lookup_refuses_the_whole_request(
    node: Node, populated: Populated, recent_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch B = five fresh envelopes + X; X alone commits while B is between look-up and lock.

    With ``recent_max`` 1 the node drops what B needs from its bounded memory of recent commits,
    and B's decision must fall back to looking the store up again under the lock.
    """
    monkeypatch.setattr("medledger.node.node.RECENT_MAX", recent_max)
    key = populated.bob_new
    x = anchor(key, 0)
    fresh = [anchor(key, i) for i in range(1, 6)]
    batch_b = [*fresh, x]
    size = node.frontier.size
    pause = _PausedLookup(node, len(batch_b))
    thread, out = _in_thread(lambda: node.submit_sync(batch_b))
    assert pause.looked.wait(WAIT)
    [receipt_x] = node.submit_sync([x])  # committed while B waits after its look-up
    assert receipt_x.status == "ACCEPTED"
    other = node.submit_sync([anchor(populated.keys.demo_admin, 7)])  # another client, also meanwhile
    pause.go.set()
    thread.join(WAIT)
    error = out.get("error")
    assert isinstance(error, MedledgerError), out
    assert (error.status, error.code) == (409, "replayed-tx"), error.message
    assert [e["index"] for e in error.detail["errors"]] == [5]
    assert "nothing was written" in error.message
    assert node.frontier.size == size + 2  # X and the other client's envelope, nothing of B
    assert all(node.store.tx(tx_id) is None for tx_id in _tx_ids(node, fresh))
    assert other[0].status == "ACCEPTED"
    # B without X goes through whole afterwards: no pair of it was left behind as pending
    assert [r.status for r in node.submit_sync(fresh)] == ["ACCEPTED"] * 5
    node.close()
    verify_ledger(populated.data)


def test_a_nonce_reused_during_the_lookup_is_refused(node: Node, populated: Populated) -> None:
    """Same race with another envelope under X's nonce: B is refused nonce-reused, not half-committed."""
    key = populated.bob_new
    x = anchor(key, 0)
    x_env = node.check([x])[0]
    rival = envelope.build(key, "anchor.record", {"label": "test/rival", "sha256": "ab" * 32},
                           nonce=x_env.nonce).to_wire()
    batch_b = [anchor(key, 1), anchor(key, 2), anchor(key, 3), rival]
    size = node.frontier.size
    pause = _PausedLookup(node, len(batch_b))
    thread, out = _in_thread(lambda: node.submit_sync(batch_b))
    assert pause.looked.wait(WAIT)
    node.submit_sync([x])
    pause.go.set()
    thread.join(WAIT)
    error = out.get("error")
    assert isinstance(error, MedledgerError), out
    assert (error.status, error.code) == (409, "nonce-reused"), error.message
    assert node.frontier.size == size + 1
    node.close()
    verify_ledger(populated.data)


def _fail_block(data: Path, height: int) -> None:
    """A real store fault: SQLite aborts the insert of block ``height`` (as a full disk would any block)."""
    conn = sqlite3.connect(data / "ledger.sqlite")
    with conn:
        conn.execute(
            f"CREATE TRIGGER fault BEFORE INSERT ON blocks WHEN NEW.height = {int(height)} "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    conn.close()


def _heal(data: Path) -> None:
    conn = sqlite3.connect(data / "ledger.sqlite")
    with conn:
        conn.execute("DROP TRIGGER fault")
    conn.close()


def test_a_store_fault_mid_request_says_exactly_what_was_committed(node: Node, populated: Populated) -> None:
    """Request A spans blocks h and h+1; h+1 fails in SQLite. Request C, cut into h+1 too, hears about its own."""
    first = node.tip.height + 1
    _fail_block(populated.data, first + 1)
    held = threading.Event()
    release = threading.Event()

    def hold(height: int, *_: Any) -> None:  # keep the committer after block `first` until C is queued
        if height == first:
            held.set()
            assert release.wait(WAIT)

    node.add_listener(hold)
    request_a = [anchor(populated.bob_new, i) for i in range(3)]
    request_c = [anchor(populated.keys.demo_admin, 9)]
    future_a = node.submit(request_a)
    assert held.wait(WAIT)
    future_c = node.submit(request_c)
    release.set()
    error_a = future_a.exception(WAIT)
    error_c = future_c.exception(WAIT)
    assert isinstance(error_a, MedledgerError) and isinstance(error_c, MedledgerError)
    assert (error_a.status, error_a.code) == (503, "store-error")
    committed = error_a.detail["committed"]
    assert [r["tx_id"] for r in committed] == _tx_ids(node, request_a[:2])
    assert {r["height"] for r in committed} == {first}
    assert error_a.detail["uncommitted"] == [2]
    assert "2 of this request's 3 envelopes were committed" in error_a.message
    assert (error_c.status, error_c.code) == (503, "store-error")
    assert error_c.detail == {"committed": [], "uncommitted": [0]}
    assert "none of this request's envelopes was written" in error_c.message
    assert "/" not in error_a.message + error_c.message  # no server path, no SQL
    for tx_id in _tx_ids(node, request_a[:2]):
        assert node.store.tx(tx_id) is not None
    for tx_id in _tx_ids(node, request_a[2:] + request_c):
        assert node.store.tx(tx_id) is None
    # once the operator clears the fault, exactly the uncommitted envelopes are resubmitted and commit
    _heal(populated.data)
    resent = node.submit_sync([request_a[i] for i in error_a.detail["uncommitted"]] + request_c)
    assert [r.height for r in resent] == [first + 1, first + 1]
    node.close()
    verify_ledger(populated.data)
