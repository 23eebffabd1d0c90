"""Running the API in a background thread of this process.

Used by ``medledger demo`` and the benchmarks, which need a real HTTP server
beside code that talks to it, and want it stopped cleanly afterwards.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

import uvicorn

from medledger.errors import StoreError
from medledger.node.node import Node

if TYPE_CHECKING:
    from medledger.api.connections import Timeouts


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn, or a sentence saying why there is none.

    ``IPPROTO_TCP`` is spelled out because asyncio turns on TCP_NODELAY only for
    sockets that say they are TCP; without it every keep-alive response waits
    ~40 ms on Nagle and delayed ACKs.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        why = _why_not_bound(exc, host, port)
        raise StoreError(f"cannot listen on {host}:{port}: {why}", code="server-start") from exc
    return sock


def _why_not_bound(exc: OSError | OverflowError, host: str, port: int) -> str:
    """What exactly failed, in the words of the one thing the operator must change."""
    if isinstance(exc, OverflowError):
        return "a TCP port is a number from 0 to 65535"
    if isinstance(exc, socket.gaierror):
        return f"{host!r} is not an IP address or a name this machine can resolve"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine (use one of its own addresses, or 0.0.0.0 for all)"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} is already in use (is another server running there?)"
    if exc.errno == errno.EACCES:
        return f"port {port} is privileged (below 1024 needs root or CAP_NET_BIND_SERVICE); choose a port from 1024"
    return str(exc.strerror or exc)


class BackgroundServer:
    """uvicorn serving ``create_app(node)`` on a thread until closed."""

    def __init__(
        self, node: Node, host: str = "127.0.0.1", port: int | None = None, *, timeouts: Timeouts | None = None
    ) -> None:
        from medledger.api.app import create_app
        from medledger.api.connections import uvicorn_config

        self.node = node
        self.host = host
        self._sock = listen_socket(host, port or 0)
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn_config(
            create_app(node), timeouts=timeouts, log_level="warning", access_log=False, lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="medledger-http", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise StoreError(
                    f"the API server did not start on {self.url} (is the port in use?)", code="server-start"
                )
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving (safe from any thread, and more than once); the node stays open."""
        self._server.should_exit = True
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)
        self._sock.close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
