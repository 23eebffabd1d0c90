"""Running the API in a background thread of this process.

Used by ``medledger demo`` and the benchmarks, which need a real HTTP server
beside code that talks to it, and want it stopped cleanly afterwards.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from medledger.errors import StoreError
from medledger.node.node import Node


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class BackgroundServer:
    """uvicorn serving ``create_app(node)`` on a thread until closed."""

    def __init__(self, node: Node, host: str = "127.0.0.1", port: int | None = None) -> None:
        from medledger.api.app import create_app

        self.node = node
        self.host = host
        self.port = port if port is not None else free_port(host)
        config = uvicorn.Config(
            create_app(node), host=host, port=self.port, log_level="warning", access_log=False, lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="medledger-http", daemon=True)

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

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
