"""Run one node behind uvicorn, and shut both down without losing a queued envelope.

One uvicorn worker process only: the ledger has exactly one writer (the
node's committer) and the CPU-heavy part, signature checking, already runs on
every core in the node's own process pool. Several uvicorn workers would mean
several nodes fighting over one SQLite file.

Shutdown order matters for the "no acknowledged transaction lost" promise:
on SIGTERM or SIGINT uvicorn first stops accepting and lets in-flight requests
finish (their envelopes are committed and answered), then :meth:`Node.close`
commits whatever is still queued and stops the committer.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import uvicorn

from medledger._serving import listen_socket
from medledger.api.app import create_app
from medledger.api.connections import uvicorn_config
from medledger.node.node import Node, NodeConfig

#: Seconds uvicorn waits for in-flight requests after a shutdown signal before cancelling them.
GRACEFUL_SHUTDOWN_S = 30


class _Server(uvicorn.Server):
    """uvicorn, plus the one startup line operators look for."""

    def __init__(self, config: uvicorn.Config, node: Node) -> None:
        super().__init__(config)
        self._node = node

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        host, port = self.config.host, self.config.port
        for server in self.servers:
            for sock in server.sockets:
                port = sock.getsockname()[1]
                break
        shown = f"[{host}]" if ":" in host else host
        print(
            f"medledger serving http://{shown}:{port} (height {self._node.tip.height}, "
            f"tree size {self._node.frontier.size}, data {self._node.config.data_dir})",
            flush=True,
        )


@contextmanager
def _quiet_exit_signals() -> Iterator[list[int]]:
    """Absorb the SIGTERM/SIGINT uvicorn re-raises after its graceful shutdown.

    uvicorn restores the previous handlers and re-raises the signal it caught;
    under the default SIGTERM disposition that kills the process before the
    node has committed its queue. With these handlers in place the re-raised
    signal is only recorded and ``serve`` returns normally after closing the node.
    """
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def record(sig: int, frame: FrameType | None) -> None:
        caught.append(sig)

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(
    data_dir: Path,
    host: str,
    port: int,
    *,
    workers: int | None = None,
    max_block_txs: int = 2000,
    max_wait_ms: int = 20,
) -> None:
    """Serve the ledger in ``data_dir`` until SIGTERM/SIGINT; ``workers`` sizes the signature-check pool.

    The port is bound before the node opens, so a port in use is one sentence
    and touches nothing.
    """
    sock = listen_socket(host, port)
    try:
        node = Node(NodeConfig(Path(data_dir), max_block_txs=max_block_txs, max_wait_ms=max_wait_ms, workers=workers))
    except BaseException:
        sock.close()
        raise
    try:
        config = uvicorn_config(
            create_app(node),
            workers=1,
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        with _quiet_exit_signals():
            _Server(config, node).run(sockets=[sock])
    finally:
        node.close()
        sock.close()
