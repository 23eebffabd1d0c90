"""Friction 5 of issue 12: a client holding trust from another log says so BEFORE it submits anything.

Re-initialising a ledger at the same URL used to let the client commit the
envelope and only then fail, deep in a consistency-proof request, so a retry
submitted it twice. These drive the library API against real servers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest

from medledger._serving import BackgroundServer, free_port
from medledger.client import Client
from medledger.errors import NotFoundError, ProofError, TrustError
from medledger.ledger import envelope
from medledger.ledger.block import TreeHead
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.keys import SigningKey
from medledger.node.bootstrap import LedgerKeys, init_ledger
from medledger.node.node import Node, NodeConfig


def _anchor(key: SigningKey, n: int) -> SignedEnvelope:
    return envelope.build(key, "anchor.record", {"label": f"test/{n}", "sha256": os.urandom(32).hex()})


@contextmanager
def _serving(data: Path, port: int) -> Iterator[LedgerKeys]:
    """A fresh ledger in ``data`` served at ``port`` (the same URL each time)."""
    keys = init_ledger(data)
    node = Node(NodeConfig(data, workers=0, max_wait_ms=2))
    try:
        with BackgroundServer(node, port=port):
            yield LedgerKeys.load(data)
    finally:
        node.close()
    del keys


@pytest.mark.parametrize("new_ledger_grows", [False, True], ids=["smaller", "larger"])
def test_a_reinitialised_ledger_is_refused_before_anything_is_submitted(
    tmp_path: Path, new_ledger_grows: bool
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = tmp_path / "trusted-head.json"
    with _serving(tmp_path / "first", port) as keys, Client(url, state_file=state) as client:
        for n in range(3):
            client.submit(_anchor(keys.demo_admin, n))
    with _serving(tmp_path / "second", port) as keys:
        if new_ledger_grows:  # past the trusted size, so the node can answer a consistency proof (that fails)
            with Client(url) as other:
                other.submit([_anchor(keys.demo_admin, n) for n in range(10)])
        with Client(url) as reader:
            size_before = reader.tree_head().tree_size
        env = _anchor(keys.demo_admin, 99)
        with Client(url, state_file=state) as client, pytest.raises(TrustError) as info:
            client.submit(env)
        error = info.value
        assert error.committed is False and error.code == "untrusted-history"
        assert error.message.startswith("nothing was submitted")
        assert str(state) in error.message and "move" in error.message
        assert keys.node.key_id in error.message  # the new ledger's node key, named beside the trusted one
        assert error.__cause__ is None and error.__suppress_context__  # one sentence, no chained traceback
        with Client(url, token=keys.regulator_token) as reader:
            assert reader.tree_head().tree_size == size_before
            with pytest.raises(NotFoundError):
                reader.get_transaction(env.tx_id)
        state.unlink()  # what the error says to do: the same client state then trusts the new ledger
        with Client(url, state_file=state) as client:
            (receipt,) = client.submit(env)
            client.verify_receipt(receipt, env)


class _ForkingTransport(httpx.BaseTransport):
    """A node that commits honestly but answers the receipt with a head signed over another root."""

    def __init__(self, node_key: SigningKey) -> None:
        self.inner = httpx.HTTPTransport()
        self.node_key = node_key

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method != "POST":
            return response
        receipt = orjson.loads(response.read())
        head = TreeHead.from_json(receipt["tree_head"])
        forged = TreeHead(head.tree_size, "ee" * 32, head.timestamp, "").sign(self.node_key)
        receipt["tree_head"] = forged.to_json()
        return httpx.Response(response.status_code, headers={"content-type": "application/json"},
                              content=orjson.dumps(receipt))


def test_a_receipt_that_cannot_be_trusted_says_the_envelope_was_committed(tmp_path: Path) -> None:
    """When the node shows a fork only in its answer, the error names the committed transaction: no retry."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = tmp_path / "trusted-head.json"
    with _serving(tmp_path / "ledger", port) as keys:
        with Client(url, state_file=state) as client:
            client.submit(_anchor(keys.demo_admin, 1))
        env = _anchor(keys.demo_admin, 2)
        forking = Client(url, state_file=state, transport=_ForkingTransport(keys.node))
        with forking as client, pytest.raises(TrustError) as info:
            client.submit(env)
        error = info.value
        assert isinstance(error, ProofError) and error.committed is True
        assert error.detail["tx_ids"] == [env.tx_id]
        assert f"committed transaction {env.tx_id} (do not submit it again)" in error.message
        assert str(state) in error.message
        with Client(url, token=keys.regulator_token) as reader:
            assert reader.get_transaction(env.tx_id).tx_id == env.tx_id
