"""The light client: offline proof checks, trust bookkeeping, and a real node over HTTP.

Three layers of test, cheapest first:

* the ``*_offline`` functions against proofs computed by
  :mod:`medledger.ledger.merkle` and tree heads signed here;
* the :class:`Client` trust rules (first use, advance, rollback, fork,
  persistence) against an in-memory log served through ``httpx.MockTransport``,
  where a misbehaving node is easy to play;
* the same client against a real node behind uvicorn (skipped until
  ``medledger.api.app`` exists).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from ledger_factory import LiveNode
from medledger.client import (
    Client,
    ConsistencyProof,
    InclusionProof,
    Receipt,
    verify_consistency_offline,
    verify_inclusion_offline,
    verify_receipt_offline,
)
from medledger.errors import EncodingError, MedledgerError, NotFoundError, ProofError, SignatureError
from medledger.ledger import envelope, merkle
from medledger.ledger.block import TreeHead
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.keys import SigningKey
from medledger.ledger.timefmt import format_ms, now_ms

# --------------------------------------------------------------------------
# An in-memory log that speaks the node's proof API.
# --------------------------------------------------------------------------


def _anchor(key: SigningKey, n: int) -> SignedEnvelope:
    return envelope.build(key, "anchor.record", {"label": f"test/{n}", "sha256": os.urandom(32).hex()})


def _flip(hex_hash: str) -> str:
    raw = bytearray(bytes.fromhex(hex_hash))
    raw[0] ^= 1
    return raw.hex()


class FakeLog:
    """A log with the node's HTTP shapes; tests reach in to make it lie."""

    def __init__(self, key: SigningKey, size: int = 0) -> None:
        self.key = key
        self.author = SigningKey.generate()
        self.envs: list[SignedEnvelope] = []
        self.leaves: list[bytes] = []
        self.served_head: TreeHead | None = None  # set to serve something other than the truth
        self.requests: list[str] = []
        self.append([_anchor(self.author, n) for n in range(size)])

    def append(self, envs: list[SignedEnvelope]) -> list[dict[str, Any]]:
        receipts = []
        first = len(self.envs)
        self.envs.extend(envs)
        self.leaves.extend(merkle.leaf_hash(e.leaf_data()) for e in envs)
        head = self.head()
        for i, env in enumerate(envs):
            receipts.append(
                {
                    "tx_id": env.tx_id,
                    "status": "ACCEPTED",
                    "height": len(self.envs),
                    "leaf_index": first + i,
                    "block_hash": "ab" * 32,
                    "tree_head": head.to_json(),
                }
            )
        return receipts

    def head(self, size: int | None = None) -> TreeHead:
        size = len(self.leaves) if size is None else size
        root = merkle.root(self.leaves[:size]).hex()
        return TreeHead(size, root, format_ms(now_ms()), self.key.key_id).sign(self.key)

    def inclusion_json(self, tx_id: str, tree_size: int) -> dict[str, Any]:
        index = next(i for i, e in enumerate(self.envs) if e.tx_id == tx_id)
        leaves = self.leaves[:tree_size]
        return {
            "tx_id": tx_id,
            "leaf_index": index,
            "tree_size": tree_size,
            "leaf_hash": self.leaves[index].hex(),
            "proof": [p.hex() for p in merkle.inclusion_proof(leaves, index)],
            "tree_head": None,
            "root_hash": merkle.root(leaves).hex(),
        }

    def consistency_json(self, first: int, second: int) -> dict[str, Any]:
        leaves = self.leaves[:second]
        return {
            "first": first,
            "second": second,
            "first_root": merkle.root(self.leaves[:first]).hex(),
            "second_root": merkle.root(leaves).hex(),
            "proof": [p.hex() for p in merkle.consistency_proof(leaves, first)],
        }

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        self.requests.append(path)
        if request.method == "GET" and path == "/v1/tree-head":
            head = self.served_head or self.head()
            return httpx.Response(200, json=head.to_json())
        if request.method == "GET" and path == "/v1/proofs/consistency":
            return httpx.Response(200, json=self.consistency_json(int(query["first"]), int(query["second"])))
        if request.method == "GET" and path.startswith("/v1/proofs/inclusion/"):
            return httpx.Response(200, json=self.inclusion_json(path.rsplit("/", 1)[1], int(query["tree_size"])))
        if request.method == "POST" and path == "/v1/transactions":
            body = json.loads(request.content)
            items = body if isinstance(body, list) else [body]
            receipts = self.append([envelope.from_wire(item) for item in items])
            return httpx.Response(200, json=receipts[0] if not isinstance(body, list) else {"receipts": receipts})
        problem = {"code": "not-found", "status": 404, "detail": f"no route {path}", "title": "not found"}
        return httpx.Response(404, json=problem, headers={"content-type": "application/problem+json"})

    def client(self, **kwargs: Any) -> Client:
        return Client("http://fake-node", transport=httpx.MockTransport(self.handler), **kwargs)


@pytest.fixture
def node_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def log(node_key: SigningKey) -> FakeLog:
    return FakeLog(node_key, size=13)


# --------------------------------------------------------------------------
# Offline verification.
# --------------------------------------------------------------------------


def test_inclusion_offline_accepts_every_leaf(log: FakeLog, node_key: SigningKey) -> None:
    head = log.head().to_json()
    for env in log.envs:
        proof = log.inclusion_json(env.tx_id, 13)
        verify_inclusion_offline(proof, head, env.to_wire(), trusted_keys=[node_key.key_id])
        verify_inclusion_offline(proof, head)


@pytest.mark.parametrize(
    ("tamper", "error"),
    [
        (lambda p, h: p.update(leaf_index=p["leaf_index"] + 1), ProofError),
        (lambda p, h: p.update(proof=[*p["proof"][:-1], _flip(p["proof"][-1])]), ProofError),
        (lambda p, h: p.update(proof=p["proof"][:-1]), ProofError),
        (lambda p, h: p.update(tree_size=12), ProofError),
        (lambda p, h: p.update(root_hash=_flip(p["root_hash"])), ProofError),
        (lambda p, h: p.update(leaf_hash=_flip(p["leaf_hash"])), ProofError),
        (lambda p, h: h.update(root_hash=_flip(h["root_hash"])), SignatureError),
        (lambda p, h: h.update(tree_size=14), SignatureError),
        (lambda p, h: p.update(proof="nope"), EncodingError),
        (lambda p, h: p.pop("leaf_hash"), EncodingError),
    ],
)
def test_inclusion_offline_refuses_tampering(log: FakeLog, tamper: Any, error: type[Exception]) -> None:
    env = log.envs[5]
    proof = log.inclusion_json(env.tx_id, 13)
    head = log.head().to_json()
    tamper(proof, head)
    with pytest.raises(error):
        verify_inclusion_offline(proof, head, env.to_wire())


def test_inclusion_offline_ties_the_envelope(log: FakeLog) -> None:
    proof = log.inclusion_json(log.envs[5].tx_id, 13)
    with pytest.raises(ProofError) as info:
        verify_inclusion_offline(proof, log.head().to_json(), log.envs[6].to_wire())
    assert info.value.code == "receipt-mismatch"


def test_inclusion_offline_refuses_untrusted_signer(log: FakeLog) -> None:
    env = log.envs[0]
    with pytest.raises(SignatureError) as info:
        verify_inclusion_offline(
            log.inclusion_json(env.tx_id, 13), log.head().to_json(), env.to_wire(), trusted_keys=["x" * 43]
        )
    assert info.value.code == "untrusted-signer"


def test_inclusion_offline_refuses_forged_envelope_signature(log: FakeLog) -> None:
    env = log.envs[2]
    wire = env.to_wire()
    other = log.envs[3].to_wire()
    with pytest.raises(SignatureError):
        verify_inclusion_offline(
            log.inclusion_json(env.tx_id, 13),
            log.head().to_json(),
            {"envelope": wire["envelope"], "signature": other["signature"]},
        )


def test_consistency_offline(log: FakeLog, node_key: SigningKey) -> None:
    for first in range(1, 14):
        proof = log.consistency_json(first, 13)
        verify_consistency_offline(proof, log.head(first).to_json(), log.head().to_json(), [node_key.key_id])
    # Same size, same root: consistent with an empty proof.
    verify_consistency_offline(log.consistency_json(13, 13), log.head().to_json(), log.head().to_json())


def test_consistency_offline_refuses(log: FakeLog, node_key: SigningKey) -> None:
    old, new = log.head(5).to_json(), log.head().to_json()
    bad = log.consistency_json(5, 13)
    bad["proof"][0] = _flip(bad["proof"][0])
    with pytest.raises(ProofError):
        verify_consistency_offline(bad, old, new)
    with pytest.raises(ProofError):  # proof for other sizes than the heads
        verify_consistency_offline(log.consistency_json(6, 13), old, new)
    with pytest.raises(ProofError):  # a newer head that is not an extension
        forged = TreeHead(13, "cd" * 32, new["timestamp"], node_key.key_id).sign(node_key).to_json()
        verify_consistency_offline(log.consistency_json(5, 13), old, forged)
    fork = TreeHead(13, "cd" * 32, new["timestamp"], node_key.key_id).sign(node_key).to_json()
    with pytest.raises(ProofError) as info:
        verify_consistency_offline(log.consistency_json(13, 13), new, fork)
    assert info.value.code == "fork"
    assert info.value.detail["seen"] == fork


def test_receipt_offline(log: FakeLog, node_key: SigningKey) -> None:
    envs = [_anchor(log.author, 100 + n) for n in range(3)]
    receipts = log.append(envs)
    log.append([_anchor(log.author, 200)])  # the log moves on; proofs are asked at the receipt's size
    for receipt, env in zip(receipts, envs, strict=True):
        proof = log.inclusion_json(env.tx_id, receipt["tree_head"]["tree_size"])
        verify_receipt_offline(receipt, proof, env.to_wire(), trusted_keys=[node_key.key_id])


def test_receipt_offline_refuses(log: FakeLog) -> None:
    envs = [_anchor(log.author, 100 + n) for n in range(2)]
    receipt, other = log.append(envs)
    proof = log.inclusion_json(envs[0].tx_id, 15)
    with pytest.raises(ProofError):  # wrong leaf index
        verify_receipt_offline({**receipt, "leaf_index": receipt["leaf_index"] + 1}, proof, envs[0].to_wire())
    with pytest.raises(ProofError):  # another transaction's receipt
        verify_receipt_offline(other, proof, envs[0].to_wire())
    with pytest.raises(SignatureError):  # flipped root byte in the signed head
        head = {**receipt["tree_head"], "root_hash": _flip(receipt["tree_head"]["root_hash"])}
        verify_receipt_offline({**receipt, "tree_head": head}, proof, envs[0].to_wire())
    with pytest.raises(ProofError):  # proof at another size than the receipt's head
        verify_receipt_offline(receipt, log.inclusion_json(envs[0].tx_id, 14), envs[0].to_wire())


def test_receipt_offline_refuses_head_by_untrusted_key(log: FakeLog, node_key: SigningKey) -> None:
    env = _anchor(log.author, 300)
    (receipt,) = log.append([env])
    stranger = SigningKey.generate()
    head = TreeHead.from_json(receipt["tree_head"])
    receipt["tree_head"] = TreeHead(head.tree_size, head.root_hash, head.timestamp, "").sign(stranger).to_json()
    proof = log.inclusion_json(env.tx_id, head.tree_size)
    verify_receipt_offline(receipt, proof, env.to_wire())  # valid, if you trust anyone
    with pytest.raises(SignatureError) as info:
        verify_receipt_offline(receipt, proof, env.to_wire(), trusted_keys=[node_key.key_id])
    assert info.value.code == "untrusted-signer"


def test_json_round_trip(log: FakeLog) -> None:
    (receipt,) = log.append([_anchor(log.author, 1)])
    assert Receipt.from_json(receipt).to_json() == receipt
    proof = log.inclusion_json(log.envs[3].tx_id, 10)
    assert InclusionProof.from_json(proof).to_json() == proof
    cons = log.consistency_json(3, 10)
    assert ConsistencyProof.from_json(cons).to_json() == cons


# --------------------------------------------------------------------------
# Client trust rules against the in-memory log.
# --------------------------------------------------------------------------


def test_client_trusts_on_first_use_then_advances_by_consistency(log: FakeLog) -> None:
    with log.client() as client:
        assert client.trusted_head is None
        first = client.tree_head()
        assert client.trusted_head == first
        assert "/v1/proofs/consistency" not in log.requests
        log.append([_anchor(log.author, n) for n in range(5)])
        second = client.tree_head()
        assert second.tree_size == 18
        assert client.trusted_head == second
        assert log.requests.count("/v1/proofs/consistency") == 1


def test_client_submit_and_verify_receipt(log: FakeLog, node_key: SigningKey) -> None:
    with log.client(trusted_node_keys=[node_key.key_id]) as client:
        client.tree_head()
        envs = [_anchor(log.author, n) for n in range(4)]
        receipts = client.submit(envs)
        assert [r.tx_id for r in receipts] == [e.tx_id for e in envs]
        assert client.trusted_head is not None and client.trusted_head.tree_size == 17
        (single,) = client.submit(_anchor(log.author, 9))
        for receipt, env in zip(receipts, envs, strict=True):
            client.verify_receipt(receipt, env)
        assert client.trusted_head is not None and client.trusted_head.tree_size == single.tree_head.tree_size
        with pytest.raises(ProofError):
            client.verify_receipt(replace(receipts[0], leaf_index=receipts[0].leaf_index + 1), envs[0])
        with pytest.raises(ProofError):
            client.verify_receipt(receipts[0], envs[1])


def test_client_refuses_untrusted_signer(log: FakeLog) -> None:
    with log.client(trusted_node_keys=[SigningKey.generate().key_id]) as client:
        with pytest.raises(SignatureError) as info:
            client.tree_head()
        assert info.value.code == "untrusted-signer"
        assert client.trusted_head is None


def test_client_detects_rollback_and_fork(log: FakeLog, node_key: SigningKey) -> None:
    with log.client() as client:
        trusted = client.tree_head()
        log.served_head = log.head(7)
        with pytest.raises(ProofError) as info:
            client.tree_head()
        assert info.value.code == "tree-head-rollback"
        client.observe(log.head(7))  # an older head met elsewhere is fine if it is a prefix
        with pytest.raises(ProofError) as info:  # ...but the node itself still may not go back to it
            client.tree_head()
        assert info.value.code == "tree-head-rollback"
        fork = TreeHead(trusted.tree_size, "ee" * 32, trusted.timestamp, node_key.key_id).sign(node_key)
        log.served_head = fork
        with pytest.raises(ProofError) as info:
            client.tree_head()
        assert info.value.code == "fork"
        assert info.value.detail["trusted"] == trusted.to_json()
        older_fork = TreeHead(7, "ee" * 32, trusted.timestamp, node_key.key_id).sign(node_key)
        with pytest.raises(ProofError) as info:
            client.observe(older_fork)
        assert info.value.code == "fork"
        newer_fork = TreeHead(20, "ee" * 32, trusted.timestamp, node_key.key_id).sign(node_key)
        log.append([_anchor(log.author, n) for n in range(7)])
        with pytest.raises(ProofError):
            client.observe(newer_fork)
        assert client.trusted_head == trusted


def test_client_state_file_persists_trust(log: FakeLog, node_key: SigningKey, tmp_path: Path) -> None:
    state = tmp_path / "state" / "client.json"
    with log.client(state_file=state) as client:
        head = client.tree_head()
    saved = json.loads(state.read_text())
    assert saved["tree_head"] == head.to_json()
    assert not [p for p in state.parent.iterdir() if p.name != "client.json"]  # no temp file left
    with log.client(state_file=state) as client:
        assert client.trusted_head == head
        fork = TreeHead(head.tree_size, "ee" * 32, head.timestamp, node_key.key_id).sign(node_key)
        log.served_head = fork
        with pytest.raises(ProofError) as info:
            client.tree_head()
        assert info.value.code == "fork"
    with pytest.raises(SignatureError):  # the saved head is held to the trusted keys too
        log.client(state_file=state, trusted_node_keys=[SigningKey.generate().key_id])
    state.write_text(json.dumps({**saved, "tree_head": {**saved["tree_head"], "tree_size": 99}}))
    with pytest.raises(SignatureError):
        log.client(state_file=state)


def test_client_maps_problems(log: FakeLog) -> None:
    with log.client() as client:
        with pytest.raises(NotFoundError) as info:
            client.get_transaction("00" * 32)
        assert (info.value.code, info.value.status) == ("not-found", 404)


def test_client_refuses_odd_tx_ids(log: FakeLog) -> None:
    with log.client() as client:
        for bad in ["../tree-head", "AB" * 32, "00" * 31]:
            with pytest.raises(EncodingError):
                client.get_transaction(bad)
            with pytest.raises(EncodingError):
                client.inclusion_proof(bad, 3)
    assert not log.requests


def test_client_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", timeout=2) as client, pytest.raises(MedledgerError) as info:
        client.tree_head()
    assert info.value.code == "unreachable"


# --------------------------------------------------------------------------
# Against a real node over HTTP.
# --------------------------------------------------------------------------


def _token(live: LiveNode) -> str:
    """The regulator's bearer credential, which ``init`` issued (member-only read routes need one)."""
    from medledger.node.bootstrap import LedgerKeys

    return LedgerKeys.load(live.data_dir).regulator_token


def test_live_submit_and_verify_receipt(live: LiveNode) -> None:
    admin = live.admin_key
    with Client(live.url, trusted_node_keys=[live.node_key.key_id], token=_token(live)) as client:
        start = client.tree_head()
        envs = [_anchor(admin, n) for n in range(5)]
        receipts = client.submit(envs)
        assert [r.status for r in receipts] == ["ACCEPTED"] * 5
        single_env = _anchor(admin, 99)
        (single,) = client.submit(single_env)
        for receipt, env in zip([*receipts, single], [*envs, single_env], strict=True):
            client.verify_receipt(receipt, env)
        head = client.tree_head()
        assert head.tree_size == start.tree_size + 6
        tx = client.get_transaction(envs[0].tx_id)
        assert tx.envelope == envs[0] and tx.leaf_index == receipts[0].leaf_index
        proof = client.inclusion_proof(envs[0].tx_id, head.tree_size)
        verify_inclusion_offline(proof.to_json(), head.to_json(), envs[0].to_wire(), [live.node_key.key_id])
        cons = client.consistency_proof(start.tree_size, head.tree_size)
        verify_consistency_offline(cons.to_json(), start.to_json(), head.to_json(), [live.node_key.key_id])


def test_live_tampered_receipts_refused(live: LiveNode) -> None:
    env = _anchor(live.admin_key, 1)
    with Client(live.url, trusted_node_keys=[live.node_key.key_id]) as client:
        (receipt,) = client.submit(env)
        client.submit([_anchor(live.admin_key, n) for n in range(2, 5)])  # the log moves on
        head = receipt.tree_head
        with pytest.raises(ProofError):
            client.verify_receipt(replace(receipt, leaf_index=receipt.leaf_index - 1), env)
        with pytest.raises(SignatureError):
            client.verify_receipt(replace(receipt, tree_head=replace(head, root_hash=_flip(head.root_hash))), env)
        resigned = TreeHead(head.tree_size, _flip(head.root_hash), head.timestamp, "").sign(live.node_key)
        with pytest.raises(ProofError):
            client.verify_receipt(replace(receipt, tree_head=resigned), env)
        stranger = TreeHead(head.tree_size, head.root_hash, head.timestamp, "").sign(SigningKey.generate())
        with pytest.raises(SignatureError) as info:
            client.verify_receipt(replace(receipt, tree_head=stranger), env)
        assert info.value.code == "untrusted-signer"
        with pytest.raises(ProofError):
            client.verify_receipt(receipt, _anchor(live.admin_key, 7))
        client.verify_receipt(receipt, env)


def test_live_fork_detected(live: LiveNode) -> None:
    from medledger.node.bootstrap import LedgerKeys

    node_key = LedgerKeys.load(live.data_dir).node
    with Client(live.url, trusted_node_keys=[node_key.key_id]) as client:
        client.submit([_anchor(live.admin_key, n) for n in range(3)])
        trusted = client.tree_head()
        forged = TreeHead(trusted.tree_size, _flip(trusted.root_hash), format_ms(now_ms()), "").sign(node_key)
        with pytest.raises(ProofError) as info:
            client.observe(forged)
        assert info.value.code == "fork"
        assert info.value.detail["seen"] == forged.to_json()
        assert client.trusted_head == trusted


def test_live_trust_persists_across_clients(live: LiveNode, tmp_path: Path) -> None:
    state = tmp_path / "trust.json"
    trusted_keys = [live.node_key.key_id]
    with Client(live.url, trusted_node_keys=trusted_keys, state_file=state) as client:
        client.submit(_anchor(live.admin_key, 1))
        first = client.tree_head()
    with Client(live.url, trusted_node_keys=trusted_keys, state_file=state) as client:
        assert client.trusted_head == first
        client.submit(_anchor(live.admin_key, 2))
        second = client.tree_head()
        assert second.tree_size == first.tree_size + 1
    assert json.loads(state.read_text())["tree_head"] == second.to_json()
    forged = TreeHead(second.tree_size, _flip(second.root_hash), second.timestamp, "").sign(live.node_key)
    with Client(live.url, trusted_node_keys=trusted_keys, state_file=state) as client:
        with pytest.raises(ProofError) as info:
            client.observe(forged)
        assert info.value.code == "fork"


def test_live_server_problems_become_errors(live: LiveNode) -> None:
    env = _anchor(live.admin_key, 1)
    with Client(live.url, token=_token(live)) as client:
        client.submit(env)
        with pytest.raises(MedledgerError) as info:
            client.submit(env)
        assert (info.value.code, info.value.status) == ("replayed-tx", 409)
        assert info.value.message
        with pytest.raises(NotFoundError) as nf:
            client.get_transaction("00" * 32)
        assert nf.value.status == 404
        with pytest.raises(MedledgerError) as unknown:
            client.submit(_anchor(SigningKey.generate(), 1))
        assert (unknown.value.code, unknown.value.status) == ("unknown-signer", 401)
