"""How long a client may take to say what it wants, and how uvicorn is configured to enforce it.

uvicorn closes a keep-alive connection that stays idle after a response, but
it has no deadline for *receiving* a request: a connection that is opened and
never written to, or that sends its request head a byte at a time (slowloris),
or trickles its body, holds a socket and a file descriptor for as long as the
client likes (seventy such connections stayed open for a minute in a test).
:class:`GuardedH11Protocol` adds the missing deadlines to uvicorn's h11
protocol, per connection:

* the complete request head must arrive within ``head_s`` of the connection
  opening or of the previous response ending;
* the complete body must arrive within ``body_s`` of the head;
* an idle keep-alive connection is closed after ``idle_s`` (uvicorn's own
  ``timeout_keep_alive``).

A connection past its deadline is closed; nothing of its request has been
acted on (the routes only act on a complete body). Time spent *answering*
(waiting for a block to commit) is the server's and is not limited here.
``docs/api.md`` states these figures.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class Timeouts:
    """Per-connection deadlines, in seconds (see the module docstring)."""

    head_s: float = 10.0
    body_s: float = 60.0
    idle_s: int = 5


#: the largest request head (request line plus headers) accepted; h11 refuses a larger one with a 400
MAX_HEAD_BYTES = 16 * 1024


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for receiving each request's head and body."""

    timeouts: ClassVar[Timeouts] = Timeouts()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: str | None = None

    @classmethod
    def with_timeouts(cls, timeouts: Timeouts) -> type[GuardedH11Protocol]:
        """A subclass enforcing ``timeouts`` (uvicorn instantiates the class itself, one per connection)."""
        return type(cls.__name__, (cls,), {"timeouts": timeouts})

    # -- uvicorn's hooks: after each, see how far the client's request has got -----------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._track()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    # -- the deadlines ------------------------------------------------------------------------------------------

    def _track(self) -> None:
        """Arm the deadline of the phase the client's side is in; a phase keeps its deadline until it ends,
        however the bytes trickle in."""
        state = self.conn.their_state
        phase = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if phase == self._phase:
            return
        self._cancel()
        self._phase = phase
        if phase is not None and not self.transport.is_closing():
            limit = self.timeouts.head_s if phase == "head" else self.timeouts.body_s
            self._deadline = self.loop.call_later(limit, self._expire)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(app: Any, *, timeouts: Timeouts | None = None, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration every medledger server uses: the guarded protocol and its timeouts."""
    timeouts = timeouts or Timeouts()
    return uvicorn.Config(
        app,
        http=GuardedH11Protocol.with_timeouts(timeouts),
        timeout_keep_alive=timeouts.idle_s,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        **options,
    )
