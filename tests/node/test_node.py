"""The embedded node through its library API: admission, execution, restart, determinism."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from ledger_factory import Populated, anchor, register, verify_ledger
from medledger.errors import AdmissionError, MedledgerError
from medledger.ledger import envelope
from medledger.ledger.canonical import b64d, b64e
from medledger.ledger.keys import SigningKey
from medledger.ledger.sqlite_store import SqliteStore
from medledger.ledger.timefmt import now_ms
from medledger.node.bootstrap import DEMO_ORG, init_ledger
from medledger.node.node import CORE_REGISTRY, Node, NodeConfig
from medledger.node.pool import load_registry


def _refusal(node: Node, items: list[dict[str, str]]) -> AdmissionError:
    with pytest.raises(MedledgerError) as info:
        node.submit_sync(items)
    assert isinstance(info.value, MedledgerError)
    return info.value  # type: ignore[return-value]


def test_revocation_earlier_in_the_same_block_rejects_later_signatures(populated: Populated) -> None:
    """Admission saw an active key; execution, in order, must not."""
    node = Node(NodeConfig(populated.data, workers=0, max_wait_ms=50))
    try:
        carol = SigningKey.generate()
        node.submit_sync([register(populated.keys.demo_admin, f"{DEMO_ORG}/carol", carol)])
        revoke = envelope.build(populated.keys.demo_admin, "member.revoke",
                                {"member": f"{DEMO_ORG}/carol", "reason": "key-compromise"}).to_wire()
        receipts = node.submit_sync([revoke, anchor(carol, 1)])
        assert [r.status for r in receipts] == ["ACCEPTED", "REJECTED"]
        assert receipts[1].codes == ("SIGNER-INACTIVE",)
        assert receipts[0].height == receipts[1].height
        error = _refusal(node, [anchor(carol, 2)])
        assert error.code == "revoked-signer" and error.status == 403
    finally:
        node.close()
    verify_ledger(populated.data)


def test_rotation_moves_the_signing_right(populated: Populated) -> None:
    node = Node(NodeConfig(populated.data, workers=0, max_wait_ms=1))
    try:
        assert _refusal(node, [anchor(populated.bob, 1)]).code == "revoked-signer"
        assert node.submit_sync([anchor(populated.bob_new, 1)])[0].status == "ACCEPTED"
    finally:
        node.close()


def test_gateway_refusals_write_nothing(populated: Populated) -> None:
    node = Node(NodeConfig(populated.data, workers=0, max_wait_ms=1))
    try:
        size = node.frontier.size
        stranger = SigningKey.generate()
        good = anchor(populated.bob_new, 1)
        cases = {
            "unknown-signer": [anchor(stranger, 1)],
            "wrong-role": [register(populated.bob_new, f"{DEMO_ORG}/x", SigningKey.generate())],
            "clock-skew": [envelope.build(populated.bob_new, "anchor.record", {"label": "test/x", "sha256": "00" * 32},
                                          created_ms=now_ms() - 3_600_000).to_wire()],
            "replayed-tx": [good, good],
            "invalid-payload": [envelope.build(populated.bob_new, "anchor.record", {"label": "test/x"}).to_wire()],
            "unknown-type": [envelope.build(populated.bob_new, "nope.nothing", {}).to_wire()],
            "bad-signature": [{**good, "signature": envelope.b64e(bytes(64))}],
            "empty-batch": [],
        }
        for code, items in cases.items():
            error = _refusal(node, items)
            assert error.code in (code, "batch-refused"), (code, error.code, error.message)
            assert 400 <= error.status < 500
            assert "refused" in error.message or error.message
        nonce = envelope.new_nonce()
        node.submit_sync([envelope.build(populated.bob_new, "anchor.record", {"label": "test/a", "sha256": "11" * 32},
                                         nonce=nonce).to_wire()])
        size += 1
        reuse = envelope.build(populated.bob_new, "anchor.record", {"label": "test/b", "sha256": "22" * 32}, nonce=nonce)
        assert _refusal(node, [reuse.to_wire()]).code == "nonce-reused"
        mixed = _refusal(node, [anchor(populated.bob_new, 5), anchor(stranger, 6)])
        assert mixed.detail["errors"][0]["index"] == 1
        assert node.frontier.size == size
    finally:
        node.close()
    verify_ledger(populated.data)


def test_replay_is_refused_after_restart(populated: Populated) -> None:
    item = anchor(populated.bob_new, 9)
    node = Node(NodeConfig(populated.data, workers=0, max_wait_ms=1))
    node.submit_sync([item])
    node.close()
    node = Node(NodeConfig(populated.data, workers=0, max_wait_ms=1))
    try:
        assert _refusal(node, [item]).code == "replayed-tx"
    finally:
        node.close()


def test_concurrent_submitters_with_worker_pool(tmp_path: Path) -> None:
    keys = init_ledger(tmp_path / "l")
    node = Node(NodeConfig(tmp_path / "l", workers=2, max_block_txs=300, max_wait_ms=5))
    try:
        member = SigningKey.generate()
        node.submit_sync([register(keys.demo_admin, f"{DEMO_ORG}/m", member)])
        receipts: list[object] = []
        lock = threading.Lock()

        def work() -> None:
            for _ in range(5):
                got = node.submit_sync([anchor(member, i) for i in range(60)])
                with lock:
                    receipts.extend(got)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        leaves = sorted(r.leaf_index for r in receipts)  # type: ignore[attr-defined]
        assert leaves == list(range(3, 3 + 1800))
        assert all(r.status == "ACCEPTED" for r in receipts)  # type: ignore[attr-defined]
    finally:
        node.close()
    verify_ledger(tmp_path / "l")


def test_blocks_of_every_size_store_every_row(tmp_path: Path) -> None:
    """A block's rows go to SQLite in multi-row statements of 256, 32, 4 and 1: every size around
    those boundaries must store each transaction and each state write exactly once."""
    keys = init_ledger(tmp_path / "l")
    node = Node(NodeConfig(tmp_path / "l", workers=0, max_block_txs=1000, max_wait_ms=1))
    try:
        member = SigningKey.generate()
        node.submit_sync([register(keys.demo_admin, f"{DEMO_ORG}/m", member)])
        sent: list[dict[str, str]] = []
        heights = set()
        for size in (1, 3, 4, 5, 31, 33, 256, 257, 300):
            batch = [anchor(member, n) for n in range(size)]
            receipts = node.submit_sync(batch)
            heights |= {r.height for r in receipts}
            sent += batch
        members = [SigningKey.generate() for _ in range(129)]  # 258 state rows in one block
        registered = node.submit_sync(
            [register(keys.demo_admin, f"{DEMO_ORG}/r{n}", key) for n, key in enumerate(members)]
        )
        assert len({r.height for r in registered}) == 1
        assert len(heights) == 9  # one block per batch
        for wire in sent:
            record = node.store.tx(envelope.from_wire(wire).tx_id)
            assert record is not None and record.body == envelope.from_wire(wire).body
        for n, key in enumerate(members):
            assert node.store.get_state(f"member/{DEMO_ORG}/r{n}")["key"] == key.key_id
            assert node.store.get_state("key/" + key.key_id)["member"] == f"{DEMO_ORG}/r{n}"
    finally:
        node.close()
    verify_ledger(tmp_path / "l")


def test_restart_continues_the_same_tree(populated: Populated) -> None:
    node = Node(NodeConfig(populated.data, workers=0, max_wait_ms=1))
    before = node.store.tree_head()
    receipt = node.submit_sync([anchor(populated.bob_new, 77)])[0]
    node.close()
    assert before is not None
    assert receipt.leaf_index == before.tree_size
    assert receipt.height == max(populated.heights()) + 1
    verify_ledger(populated.data)


def test_replaying_the_blocks_reproduces_every_hash(populated: Populated, tmp_path: Path) -> None:
    """Determinism: the same envelopes with the same block times give the same blocks, byte for byte."""
    from medledger.ledger import merkle
    from medledger.ledger.chain import Tip, build_block
    from medledger.ledger.envelope import from_parts
    from medledger.ledger.state import GENESIS_STATE_ROOT, MemoryState

    store = SqliteStore(populated.data, readonly=True)
    registry = load_registry(CORE_REGISTRY)
    state = MemoryState()
    tip = Tip(-1, "00" * 32, GENESIS_STATE_ROOT, 0)
    frontier = merkle.MerkleFrontier()
    for record, txs in store.iter_blocks():
        import orjson

        header = orjson.loads(record.header_bytes)
        from medledger.ledger.timefmt import parse_ms

        built = build_block(registry, state, tip, frontier, [from_parts(t.body, t.signature) for t in txs], None,
                            block_ms=parse_ms(header["timestamp"]), proposer=header["proposer"], node_key=None,
                            ordering=header["ordering"])
        assert built.block.header_bytes == record.header_bytes
        assert built.block.block_hash == record.block_hash
        state.apply(built.writes, record.height)
        tip, frontier = built.tip, built.frontier
    store.close()
    assert os.path.exists(populated.data / "ledger.sqlite")


class _WireLike(dict):  # type: ignore[type-arg]
    """A caller's own mapping type: orjson would flatten it into a plain object."""


def test_worker_pool_checks_exactly_like_the_inline_path() -> None:
    """Chunks cross to the workers as JSON and come back as packed bytes; nothing about an
    item may change on the way, including items that are not plain JSON at all."""
    from medledger.node.pool import Refusal, VerifyPool

    key = SigningKey.generate()
    good = [anchor(key, n) for n in range(10)]
    forged = dict(good[1], signature=good[2]["signature"])
    spaced = envelope.build(key, "anchor.record", {"label": "test/x", "sha256": "00" * 32}).to_wire()
    spaced["envelope"] = b64e(b64d(spaced["envelope"]).replace(b":", b": ", 1))
    unknown = envelope.build(key, "no.such-type", {}).to_wire()
    items: list[object] = [*good, forged, spaced, unknown, {"envelope": 1.5, "signature": "x"}, "not an object"]
    odd: list[object] = [*good, _WireLike(good[0]), {"envelope": good[0]["envelope"], "signature": 2**70}]

    inline, pooled = VerifyPool(CORE_REGISTRY, workers=0), VerifyPool(CORE_REGISTRY, workers=1)
    try:
        for batch in (items, odd):
            expected, got = inline.check_sync(batch), pooled.check_sync(batch)
            assert got == expected
        assert [type(r).__name__ for r in pooled.check_sync(items)[10:]] == ["Refusal"] * 5
        codes = [r.code for r in pooled.check_sync(items)[10:] if isinstance(r, Refusal)]
        assert codes == ["bad-signature", "non-canonical", "unknown-type", "malformed", "malformed"]
        first = pooled.check_sync(items)[0]
        assert isinstance(first, envelope.SignedEnvelope)
        assert first.to_wire() == good[0] and first.tx_id == envelope.tx_id_of(first.body)
    finally:
        inline.close()
        pooled.close()


def test_a_killed_worker_is_replaced_and_its_request_answered() -> None:
    """An operator's kill -9 (or the OOM killer) takes one worker: the request it was sent
    is answered by a fresh one, and the pool keeps all its workers."""
    import multiprocessing
    import signal

    from medledger.node.pool import VerifyPool

    key = SigningKey.generate()
    items = [anchor(key, n) for n in range(200)]
    pool = VerifyPool(CORE_REGISTRY, workers=2)
    try:
        for victim in [p for p in multiprocessing.active_children() if p.name == "medledger-verify"]:
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            victim.join(5)
            results = pool.check_sync(items)
            assert [r.to_wire() for r in results] == items  # type: ignore[union-attr]
        alive = [p for p in multiprocessing.active_children() if p.name == "medledger-verify"]
        assert len(alive) == 2
        assert pool.signatures_ok([envelope.from_wire(i) for i in items])() == [True] * 200
    finally:
        pool.close()
    assert not [p for p in multiprocessing.active_children() if p.name == "medledger-verify"]


def test_a_worker_killed_with_requests_in_flight_loses_none() -> None:
    """The worker dies holding chunks (one it works on, one in its pipe) while more wait in
    its queue: the fresh worker gets every one of them once, and the caller's answers are whole."""
    import multiprocessing
    import signal

    from medledger.node.pool import VerifyPool

    key = SigningKey.generate()
    items = [anchor(key, n) for n in range(3000)]
    pool = VerifyPool(CORE_REGISTRY, workers=1)
    got: list[object] = []
    try:
        caller = threading.Thread(target=lambda: got.extend(pool.check_sync(items)))
        caller.start()
        time.sleep(0.05)  # the first chunks are in the worker's pipe by now; 3,000 signatures take ~0.3 s
        (victim,) = [p for p in multiprocessing.active_children() if p.name == "medledger-verify"]
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        caller.join(60)
        assert [r.to_wire() for r in got] == items  # type: ignore[attr-defined]
        (fresh,) = [p for p in multiprocessing.active_children() if p.name == "medledger-verify"]
        assert fresh.pid != victim.pid
    finally:
        pool.close()
    assert not [p for p in multiprocessing.active_children() if p.name == "medledger-verify"]


def test_signature_checks_split_over_more_workers_than_the_batch_needs() -> None:
    """verify's signature-only path: nine envelopes over four workers, one forged, answered in order
    (and eight, submitted before the first is collected); the pool still answers checks after."""
    from medledger.node.pool import VerifyPool

    key, other = SigningKey.generate(), SigningKey.generate()
    envelopes = [envelope.from_wire(anchor(key, n)) for n in range(9)]
    forged = envelope.from_wire(anchor(other, 9))
    envelopes[4] = envelope.SignedEnvelope(
        forged.body, envelopes[3].signature, forged.type, forged.payload, forged.signer, forged.nonce,
        forged.created_at, forged.created_ms, forged.tx_id,
    )
    pool = VerifyPool(CORE_REGISTRY, workers=4)
    try:
        first, second = pool.signatures_ok(envelopes), pool.signatures_ok(envelopes[:8])
        assert first() == [True] * 4 + [False] + [True] * 4
        assert second() == [True] * 4 + [False] + [True] * 3
        assert [type(r).__name__ for r in pool.check_sync([anchor(key, n) for n in range(300)])] == [
            "SignedEnvelope"
        ] * 300
    finally:
        pool.close()


def test_a_worker_reports_its_own_failure_and_stays_alive() -> None:
    """Bad input is answered item by item; an exception inside a worker (a bug) comes back as one
    clear error instead of killing the worker, so nothing can crash-loop the pool."""
    import multiprocessing

    from medledger.node.pool import VerifyPool

    key = SigningKey.generate()
    pool = VerifyPool(CORE_REGISTRY, workers=1)
    try:
        before = [p.pid for p in multiprocessing.active_children() if p.name == "medledger-verify"]
        with pytest.raises(MedledgerError) as info:
            pool._ask([(b"C" + b"not the JSON the node sends", 1)])  # the only way to send what the node never sends
        assert info.value.code == "internal-error" and "JSONDecodeError" in info.value.message
        assert len(pool.check_sync([anchor(key, n) for n in range(20)])) == 20
        assert [p.pid for p in multiprocessing.active_children() if p.name == "medledger-verify"] == before
    finally:
        pool.close()


def test_concurrent_callers_get_their_own_answers_in_order() -> None:
    """Many callers' chunks share each worker's pipe, two requests deep: every caller must get
    exactly the inline answers for its own batch, item for item, whatever the interleaving."""
    from medledger.node.pool import VerifyPool

    key = SigningKey.generate()
    batches = []
    for b in range(12):
        batch = [anchor(key, 1000 * b + n) for n in range(37 * (b + 1))]
        batch[b] = dict(batch[b], signature=batch[b + 1]["signature"])  # one forgery, at a different place in each
        batches.append(batch)
    inline, pooled = VerifyPool(CORE_REGISTRY, workers=0), VerifyPool(CORE_REGISTRY, workers=2)
    got: dict[int, list[object]] = {}
    try:
        expected = {b: inline.check_sync(batch) for b, batch in enumerate(batches)}

        def call(b: int) -> None:
            got[b] = list(pooled.check_sync(batches[b]))

        threads = [threading.Thread(target=call, args=(b,)) for b in range(len(batches))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert got == expected
    finally:
        inline.close()
        pooled.close()
