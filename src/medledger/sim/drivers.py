"""Where simulated transactions go: an in-process node on simulated time, or a node over HTTP.

A driver owns the clock the simulation runs on. The embedded driver creates a
fresh ledger and a :class:`~medledger.node.node.Node` whose clock *is* the
simulated clock, so blocks carry simulated timestamps and two simulated days
commit in seconds. The HTTP driver talks to a running node, whose clock is
the wall clock: simulated time then runs in real time (one simulated second
per second), so rules with windows of minutes, hours or days (a stale
real-name check, an expired prescription, an unanswered complaint) only get
injected in runs long enough to reach their deadline.

Both submit whole windows of envelopes at once. Admission is all-or-nothing
per request, so the simulator never produces envelope-level faults (a bad
signature, an unknown signer, a replay): any refusal here is a simulator bug
and stops the run with the node's sentence.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson

from medledger.client import Client, problem_error
from medledger.errors import MedledgerError
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.keys import SigningKey
from medledger.ledger.receipt import Receipt
from medledger.ledger.sqlite_store import DB_NAME, SqliteStore
from medledger.ledger.store import AlertQuery
from medledger.ledger.syntax import counter
from medledger.ledger.timefmt import now_ms
from medledger.node.bootstrap import REGULATOR_TOKEN, init_ledger
from medledger.node.node import Node, NodeConfig

#: the embedded driver cuts one block per simulated minute: well inside the ledger's 5-minute clock skew
EMBEDDED_WINDOW_MS = 60_000
#: over HTTP the window is short, so events reach the node close to when they happen
HTTP_WINDOW_MS = 1_000
_ALERT_PAGE = 1000


class SimulationError(MedledgerError):
    """The simulation could not run as asked (a refused envelope, an unreachable node, bad arguments)."""

    code = "simulation-failed"
    status = 400


class Driver(Protocol):
    """What the simulation loop needs from the ledger it drives."""

    #: "embedded" or "http", for the report
    mode: str
    #: True when the driver sets the node's clock (simulated time); False when time is the wall clock
    simulated: bool
    #: the regulator's key, which admits institutions and publishes the rulebook
    regulator: SigningKey
    #: names this run's keys and ids apart from earlier runs on the same ledger ("" on a fresh ledger)
    tag: str
    #: events reach the node in windows of this many milliseconds
    window_ms: int

    def now(self) -> int:
        """The current time of the ledger's clock, epoch milliseconds."""
        ...

    def advance_to(self, ms: int, stop: threading.Event | None) -> bool:
        """Move the clock to ``ms`` (simulated) or wait until the wall clock reaches it; False if stopped."""
        ...

    def submit(self, envelopes: Sequence[SignedEnvelope]) -> list[Receipt]:
        """Submit envelopes in order; return once all are committed, receipts in the same order."""
        ...

    def rulebook_version(self) -> int:
        """The rulebook version in force, so the simulator publishes the next one."""
        ...

    def alerts(self, rule: str) -> list[dict[str, Any]]:
        """Every committed alert of ``rule``, as ``GET /v1/alerts`` shapes it (block-level ones included)."""
        ...

    def close(self) -> None: ...


def _alert_json(body: bytes, alert_id: str, height: int) -> dict[str, Any]:
    """A stored alert in the shape ``GET /v1/alerts`` answers (without ``block_time``, which scoring does not use)."""
    value: dict[str, Any] = orjson.loads(body)
    return {**value, "id": alert_id, "height": height}


class EmbeddedDriver:
    """An in-process node on a fresh ledger, its clock the simulated clock."""

    mode = "embedded"
    simulated = True
    tag = ""
    window_ms = EMBEDDED_WINDOW_MS

    def __init__(
        self, data_dir: Path, start_ms: int, *, workers: int | None = 0, clock_rate: float = 1.0
    ) -> None:
        """Create the ledger in ``data_dir`` (which must not hold one) with genesis an hour before ``start_ms``.

        ``workers=0`` checks signatures inline (the simulator submits one window at a time); the demo,
        which also serves this node over HTTP, passes None for a worker pool, and as ``clock_rate`` the
        pace its simulated clock keeps, which the node publishes so clients can stamp in province time."""
        self.data_dir = Path(data_dir)
        if (self.data_dir / DB_NAME).exists():
            raise SimulationError(
                f"{self.data_dir} already holds a ledger; the simulator builds a fresh one, so choose an empty "
                "directory",
                code="already-initialised",
                status=409,
            )
        self._now = start_ms - 3_600_000
        keys = init_ledger(self.data_dir, clock=self.now)
        self.regulator = keys.regulator
        self.node = Node(
            NodeConfig(self.data_dir, workers=workers, max_wait_ms=0, clock=self.now, clock_rate=clock_rate),
            key=keys.node,
        )

    def now(self) -> int:
        return self._now

    def advance_to(self, ms: int, stop: threading.Event | None) -> bool:
        self._now = max(self._now, ms)
        return stop is None or not stop.is_set()

    def submit(self, envelopes: Sequence[SignedEnvelope]) -> list[Receipt]:
        try:
            return self.node.submit_sync([e.to_wire() for e in envelopes], timeout=600)
        except MedledgerError as exc:
            raise SimulationError(f"the node refused a simulated batch: {exc.message}", code=exc.code) from exc

    def rulebook_version(self) -> int:
        record = self.node.store.get_state("rulebook")
        return 0 if record is None else int(record["version"])

    def alerts(self, rule: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        before: tuple[int, int] | None = None
        while True:
            page = self.node.store.alerts(AlertQuery(rule=rule, before=before, limit=_ALERT_PAGE))
            found += [_alert_json(r.body, r.alert_id, r.height) for r in page]
            if len(page) < _ALERT_PAGE:
                return found
            before = (page[-1].height, page[-1].seq)

    def close(self) -> None:
        self.node.close()


class HttpDriver:
    """A running node over its HTTP API; the clock is the wall clock.

    The keys come from the node's ledger directory (``keys/regulator.key``),
    and so does the rulebook version in force (read-only). Receipts are
    checked by the light client: every tree head must extend the last one.
    """

    mode = "http"
    simulated = False
    window_ms = HTTP_WINDOW_MS

    def __init__(self, url: str, data_dir: Path, *, timeout: float = 120) -> None:
        self.url = url.rstrip("/")
        self.data_dir = Path(data_dir)
        key_file = self.data_dir / "keys" / "regulator.key"
        if not key_file.exists():
            raise SimulationError(
                f"no regulator key at {key_file}; --data must be the ledger directory of the node at {self.url}",
                code="bad-argument",
            )
        self.regulator = SigningKey.from_file(key_file)
        self.client = Client(self.url, timeout=timeout)
        # alerts are read back as the regulator, with the credential `init` issued beside its key
        token_file = self.data_dir / REGULATOR_TOKEN
        headers = {"accept": "application/json"}
        if token_file.exists():
            headers["authorization"] = "Bearer " + token_file.read_text().strip()
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)
        try:
            head = self.client.tree_head()
        except MedledgerError as exc:
            self.close()
            raise SimulationError(f"cannot use the node at {self.url}: {exc.message}", code=exc.code) from exc
        # a run on an already used ledger needs ids and keys of its own (digits grouped: ids hold at most 6 together)
        self.tag = f"r{counter(head.tree_size)}"

    def now(self) -> int:
        return now_ms()

    def advance_to(self, ms: int, stop: threading.Event | None) -> bool:
        while True:
            wait = (ms - now_ms()) / 1000
            if wait <= 0:
                return stop is None or not stop.is_set()
            if stop is not None:
                if stop.wait(min(wait, 0.5)):
                    return False
            else:
                time.sleep(min(wait, 0.5))

    def submit(self, envelopes: Sequence[SignedEnvelope]) -> list[Receipt]:
        try:
            return self.client.submit(list(envelopes))
        except MedledgerError as exc:
            raise SimulationError(f"the node at {self.url} refused a simulated batch: {exc.message}") from exc

    def rulebook_version(self) -> int:
        store = SqliteStore(self.data_dir, readonly=True)
        try:
            record = store.get_state("rulebook")
        finally:
            store.close()
        return 0 if record is None else int(record["version"])

    def alerts(self, rule: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"rule": rule, "limit": _ALERT_PAGE}
        while True:
            try:
                response = self._http.get("/v1/alerts", params=params)
            except httpx.HTTPError as exc:
                raise SimulationError(f"cannot read alerts from {self.url}: {exc}", code="unreachable") from exc
            if response.status_code != 200:
                raise problem_error(response)
            page = response.json()
            found += page["alerts"]
            if not page.get("next"):
                return found
            params["before"] = page["next"]

    def close(self) -> None:
        self.client.close()
        self._http.close()
