"""Fixtures: a fresh ledger served in-process (TestClient) or over real HTTP (uvicorn on loopback).

Ledgers are module-scoped: ``init_ledger`` plus a node is cheap but not free,
and every bad-input test compares the ledger before and after itself rather
than assuming it starts empty.
"""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from medledger.api import create_app
from medledger.node.bootstrap import init_ledger
from medledger.node.node import Node, NodeConfig

with warnings.catch_warnings():
    # starlette nudges towards httpx2; the TestClient works the same either way.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api_support import ApiLedger


def open_node(data_dir: Path) -> Node:
    return Node(NodeConfig(data_dir, workers=0, max_wait_ms=2))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiLedger]:
    """A ledger behind the app, driven in-process through Starlette's TestClient."""
    data_dir = tmp_path_factory.mktemp("ledger")
    keys = init_ledger(data_dir)
    node = open_node(data_dir)
    try:
        with TestClient(create_app(node), headers={"authorization": f"Bearer {keys.regulator_token}"}) as client:
            yield ApiLedger(data_dir, keys, node, client)
    finally:
        node.close()


class LiveServer:
    """uvicorn on a background thread, on a socket we bound so the port is known before it starts."""

    def __init__(self, node: Node, **app_kw: int) -> None:
        # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the listening
        # socket says TCP, and without it every reused keep-alive connection waits 40 ms on delayed ACKs.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(node, **app_kw), log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiLedger]:
    """A ledger behind uvicorn on a free loopback port, driven by a plain httpx client."""
    data_dir = tmp_path_factory.mktemp("live")
    keys = init_ledger(data_dir)
    node = open_node(data_dir)
    try:
        with (
            LiveServer(node, max_body_bytes=256 * 1024) as server,
            httpx.Client(
                base_url=server.url, timeout=30, headers={"authorization": f"Bearer {keys.regulator_token}"}
            ) as client,
        ):
            yield ApiLedger(data_dir, keys, node, client)
    finally:
        node.close()
