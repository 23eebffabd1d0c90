"""Idle and slow connections are closed on deadlines, with real sockets against a real server.

The server runs with short deadlines (the defaults, documented in docs/api.md,
are the same mechanism with larger numbers). Each test measures when the
server closes the connection: never earlier than the deadline allows a client
acting in good faith, never much later.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from medledger._serving import BackgroundServer
from medledger.api.connections import Timeouts
from medledger.node.bootstrap import init_ledger
from medledger.node.node import Node, NodeConfig

TIMEOUTS = Timeouts(head_s=1.0, body_s=1.5, idle_s=1)
#: how late a close may come: scheduling on a loaded 2-core machine, not the mechanism
SLACK_S = 1.5
STEP_S = 0.1


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BackgroundServer, Node]]:
    data = tmp_path_factory.mktemp("ledger")
    init_ledger(data)
    node = Node(NodeConfig(data, workers=0, max_wait_ms=2))
    try:
        with BackgroundServer(node, timeouts=TIMEOUTS) as server:
            yield server, node
    finally:
        node.close()


def _connect(server: BackgroundServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=5)
    sock.settimeout(STEP_S)
    return sock


def _closed(sock: socket.socket) -> tuple[bool, bytes]:
    """(whether the server has closed the connection, what it sent meanwhile)."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return False, received
        except ConnectionResetError:
            return True, received
        if not chunk:
            return True, received
        received += chunk


def _seconds_until_closed(sock: socket.socket, trickle: bytes = b"", limit: float = 10.0) -> tuple[float, bytes]:
    """Send ``trickle`` a byte per step (a slowloris client) until the server closes; (seconds, bytes received)."""
    started = time.monotonic()
    received = b""
    for i in range(int(limit / STEP_S)):
        if i < len(trickle):
            try:
                sock.sendall(trickle[i : i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started, received
        closed, got = _closed(sock)
        received += got
        if closed:
            return time.monotonic() - started, received
    raise AssertionError(f"the connection was still open after {limit} s")


def test_a_connection_that_never_sends_is_closed(served: tuple[BackgroundServer, Node]) -> None:
    with _connect(served[0]) as sock:
        elapsed, received = _seconds_until_closed(sock)
    assert TIMEOUTS.head_s - STEP_S <= elapsed <= TIMEOUTS.head_s + SLACK_S and received == b""


def test_a_request_head_sent_a_byte_at_a_time_is_closed(served: tuple[BackgroundServer, Node]) -> None:
    """Slowloris: every byte arrives well within any per-read timeout, but the head never completes."""
    head = b"GET /healthz HTTP/1.1\r\nHost: node\r\nX-Slow: " + b"a" * 500
    with _connect(served[0]) as sock:
        elapsed, received = _seconds_until_closed(sock, head)
    assert TIMEOUTS.head_s - STEP_S <= elapsed <= TIMEOUTS.head_s + SLACK_S and received == b""


def test_a_trickled_body_is_closed_and_writes_nothing(
    served: tuple[BackgroundServer, Node], caplog: pytest.LogCaptureFixture
) -> None:
    server, node = served
    size = node.frontier.size
    form = json.dumps({"about": "demo-hospital", "category": "billing"}).encode()
    head = (
        b"POST /v1/public/complaints HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(form)).encode() + b"\r\n\r\n"
    )
    with caplog.at_level(logging.WARNING), _connect(server) as sock:
        sock.sendall(head)
        elapsed, received = _seconds_until_closed(sock, form[:-1])  # the last byte never comes
    assert TIMEOUTS.body_s - STEP_S <= elapsed <= TIMEOUTS.body_s + SLACK_S and received == b""
    assert node.frontier.size == size, "a request whose body never completed wrote to the ledger"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == [], "a client's slowness is not our error"


def test_an_idle_keep_alive_connection_is_closed(served: tuple[BackgroundServer, Node]) -> None:
    with _connect(served[0]) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
        elapsed, received = _seconds_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 200 "), received[:80]
    assert elapsed <= TIMEOUTS.idle_s + SLACK_S


def test_a_complete_request_in_good_time_is_answered_and_kept_alive(served: tuple[BackgroundServer, Node]) -> None:
    """The deadlines are per request: a keep-alive client sending requests in good time is never cut off."""
    server, _ = served
    with httpx.Client(base_url=server.url, timeout=5) as http:
        for _ in range(4):
            assert http.get("/healthz").status_code == 200
            time.sleep(TIMEOUTS.head_s * 0.6)  # longer in total than any one deadline


def test_others_are_answered_while_seventy_slow_clients_hang(served: tuple[BackgroundServer, Node]) -> None:
    server, _ = served
    slow = [_connect(server) for _ in range(70)]
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: node\r\n")
        with httpx.Client(base_url=server.url, timeout=5) as http:
            for _ in range(5):
                started = time.monotonic()
                assert http.get("/healthz").status_code == 200
                assert time.monotonic() - started < 1.0
        deadline = time.monotonic() + TIMEOUTS.head_s + SLACK_S + 1
        still_open = list(slow)
        while still_open and time.monotonic() < deadline:
            still_open = [sock for sock in still_open if not _closed(sock)[0]]
        assert still_open == [], f"{len(still_open)} of 70 slow connections still open"
    finally:
        for sock in slow:
            sock.close()
