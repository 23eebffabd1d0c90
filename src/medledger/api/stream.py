"""``GET /v1/stream``: server-sent events for every committed block and every alert.

The committer thread only *signals* that a block landed; each stream then reads
what it has not sent yet from the store, the committed truth, and never from
memory that could disagree with it. A slow client therefore costs nothing but
its own catch-up, and signals coalesce. Every block's alerts are sent first
(``event: alert``, no id), then the block itself (``event: block``, ``id:`` its
height), so ``Last-Event-ID`` only advances past a block once everything in it
was delivered: a client that reconnects with it resumes exactly where it broke
off, without gaps or repeats.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import Depends, FastAPI, Query, Request
from starlette.responses import StreamingResponse

from medledger.api.access import Caller, requires
from medledger.errors import EncodingError
from medledger.node.node import Node

HEARTBEAT_S = 15.0
#: blocks read from the store per catch-up step: bounded memory per stream
CATCH_UP = 64


def _block_events(node: Node, first: int, last: int) -> list[bytes]:
    """SSE frames for blocks ``first..last`` (inclusive), read from the store."""
    store = node.store
    frames: list[bytes] = []
    for height in range(first, last + 1):
        record = store.block(height)
        if record is None:
            break
        for alert in store.block_alerts(height):
            body = {**orjson.loads(alert.body), "id": alert.alert_id, "height": height}
            frames.append(b"event: alert\ndata: " + orjson.dumps(body) + b"\n\n")
        header = orjson.loads(record.header_bytes)
        block = {
            "height": height,
            "block_hash": record.block_hash,
            "timestamp": header["timestamp"],
            "tx_count": header["tx_count"],
            "tree_size": record.tree_head.tree_size,
            "root_hash": record.tree_head.root_hash,
        }
        frames.append(b"id: %d\nevent: block\ndata: " % height + orjson.dumps(block) + b"\n\n")
    return frames


def _start(last_event_id: str | None, since: int | None, tip: int) -> int:
    """The first height to send: after Last-Event-ID, else ``since``, else only new blocks."""
    if last_event_id is not None:
        if not last_event_id.isdigit() or len(last_event_id) > 18:
            raise EncodingError(
                f"Last-Event-ID {last_event_id[:40]!r} is not a block height this stream sent", code="malformed"
            )
        return int(last_event_id) + 1
    if since is not None:
        return since
    return tip + 1


def install_stream(app: FastAPI, node: Node) -> None:
    """Add ``GET /v1/stream`` (supervisors only: access.POLICY ``stream.read``)."""
    @app.get(
        "/v1/stream",
        summary="Server-sent events: every committed block and its alerts (resumable with Last-Event-ID)",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream(
        request: Request,
        _: Annotated[Caller, Depends(requires("stream.read"))],
        since: int | None = Query(None, ge=0, le=2**62, description="first block height to send"),
    ) -> StreamingResponse:
        first = _start(request.headers.get("last-event-id"), since, node.tip.height)
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def landed(*_: Any) -> None:
            loop.call_soon_threadsafe(wake.set)

        async def events() -> AsyncIterator[bytes]:
            next_height = first
            node.add_listener(landed)
            try:
                yield b"retry: 2000\n\n"
                while not await request.is_disconnected():
                    tip = node.tip.height
                    if next_height <= tip:
                        last = min(tip, next_height + CATCH_UP - 1)
                        frames = await anyio.to_thread.run_sync(_block_events, node, next_height, last)
                        for frame in frames:
                            yield frame
                        next_height = last + 1
                        continue
                    wake.clear()
                    if node.tip.height >= next_height:
                        continue
                    try:
                        await asyncio.wait_for(wake.wait(), HEARTBEAT_S)
                    except TimeoutError:
                        yield b": heartbeat\n\n"
            finally:
                node.remove_listener(landed)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"cache-control": "no-store", "x-accel-buffering": "no"}
        )
