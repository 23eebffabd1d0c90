"""The load generator behind ``medledger load``, and the crash tests' witness.

It plays an Internet hospital's gateway under load: a fresh member registered
by the hospital admin signs ``anchor.record`` envelopes (~300 bytes each) and
``concurrency`` threads post them over kept-alive HTTP connections.

Its second job matters more: it is the witness in crash tests. Every receipt
the node acknowledges is appended to the receipts file, with the envelope's
wire form beside it, and fsynced *before* the worker sends anything else. So
after the node is killed at any instant, each line in that file is a
transaction the node promised was durable, and the line alone (plus a proof
fetched from the restarted node) is enough to check that promise with
:func:`medledger.client.verify_receipt_offline`. A request that fails in any
way (4xx, 5xx, connection refused or reset, timeout) is counted as refused,
never retried and never written: its fate is unknown, so it proves nothing
either way. Because connection errors come back at once and every request has
a timeout, a run against a dead server finishes promptly instead of hanging.

Envelopes are stamped with the node's clock (``GET /healthz``), not this
machine's: the demo's node runs on its province's time, a day a minute, and
a node on the wall clock publishes that anyway. ``wait`` gives a node that is
still starting (``medledger serve ... &`` just before) that many seconds to
answer.
"""

from __future__ import annotations

import os
import secrets
import string
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import orjson

from medledger.client import Client, Receipt
from medledger.errors import EncodingError, MedledgerError
from medledger.ledger import envelope
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.keys import SigningKey
from medledger.ledger.syntax import counter
from medledger.ledger.timefmt import now_ms

__all__ = ["LoadResult", "run_load"]

MEMBER_ROLE = "member"
ANCHOR_TYPE = "anchor.record"


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What a run did. ``submitted == acknowledged + refused`` always holds."""

    submitted: int
    acknowledged: int
    refused: int
    elapsed: float
    """Seconds from the first anchor request to the last answer (registration excluded)."""
    member: str = ""
    refusals: dict[str, int] = field(default_factory=dict)
    """Refused envelopes by reason (the server's problem code, or the connection error's kind)."""

    @property
    def tx_per_s(self) -> float:
        """Acknowledged (durably committed) transactions per second."""
        return self.acknowledged / self.elapsed if self.elapsed > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "acknowledged": self.acknowledged,
            "refused": self.refused,
            "elapsed_s": round(self.elapsed, 3),
            "tx_per_s": round(self.tx_per_s, 1),
            "member": self.member,
            "refusals": dict(self.refusals),
        }


class _Run:
    """State shared by the workers: the next index to send, tallies, the receipts file."""

    def __init__(
        self,
        count: int,
        batch: int,
        receipts: IO[bytes] | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.count = count
        self.batch = batch
        self.receipts = receipts
        self.progress = progress
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.next_index = 0
        self.acknowledged = 0
        self.refused = 0
        self.refusals: Counter[str] = Counter()
        self.stop = threading.Event()
        self.failure: BaseException | None = None

    def take(self) -> range:
        """Claim the next ``batch`` indices; an empty range means the count is reached."""
        with self.lock:
            if self.stop.is_set():
                return range(0)
            lo = self.next_index
            hi = min(lo + self.batch, self.count)
            self.next_index = hi
            return range(lo, hi)

    def refuse(self, n: int, reason: str) -> None:
        with self.lock:
            self.refused += n
            self.refusals[reason] += n
        if self.progress is not None:
            self.progress(n)

    def acknowledge(self, receipts: list[dict[str, Any]], envs: list[SignedEnvelope]) -> None:
        """Record receipts durably, then count them: a counted receipt is always on disk."""
        if self.receipts is not None:
            data = b"".join(
                orjson.dumps({"receipt": r, "wire": e.to_wire()}) + b"\n" for r, e in zip(receipts, envs, strict=True)
            )
            # Whole lines under the lock; the fsync outside it, so workers' fsyncs overlap and
            # the kernel commits them together. Each worker still waits for an fsync issued after
            # its own write before it counts the receipts or sends anything else.
            with self.write_lock:
                self.receipts.write(data)
                self.receipts.flush()
            os.fsync(self.receipts.fileno())
        with self.lock:
            self.acknowledged += len(receipts)
        if self.progress is not None:
            self.progress(len(receipts))


def _anchor(key: SigningKey, n: int, created_ms: int) -> SignedEnvelope:
    return envelope.build(
        key, ANCHOR_TYPE, {"label": f"load/{counter(n)}", "sha256": os.urandom(32).hex()}, created_ms=created_ms
    )


def _node_clock(client: Client) -> Callable[[], int]:
    """The node's time via ``client``; the local clock while the node cannot say (its requests then fail too)."""

    def clock() -> int:
        try:
            return client.clock()
        except MedledgerError:
            return now_ms()

    return clock


def _reason(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        problem = None
    code = problem.get("code") if isinstance(problem, dict) else None
    return code if isinstance(code, str) else f"http-{response.status_code}"


def _receipts_of(response: httpx.Response, envs: list[SignedEnvelope]) -> list[dict[str, Any]] | None:
    """The receipts of a 200 answer, if they are well formed and match what was sent in order."""
    try:
        body = response.json()
    except ValueError:
        return None
    items = body.get("receipts") if isinstance(body, dict) else None
    if not isinstance(items, list) or len(items) != len(envs):
        return None
    for item, env in zip(items, envs, strict=True):
        try:
            receipt = Receipt.from_json(item)
        except MedledgerError:
            return None
        if receipt.tx_id != env.tx_id:
            return None
    return items


def _worker(run: _Run, url: str, key: SigningKey, timeout: float, clock: Callable[[], int]) -> None:
    # One connection per worker, kept alive: the load is the node's, not TCP handshakes'.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    http_timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
    headers = {"content-type": "application/json", "accept": "application/json"}
    try:
        with httpx.Client(base_url=url, timeout=http_timeout, limits=limits, headers=headers, trust_env=False) as http:
            while True:
                indices = run.take()
                if not indices:
                    return
                created = clock()
                envs = [_anchor(key, n, created) for n in indices]
                body = orjson.dumps([e.to_wire() for e in envs])
                try:
                    response = http.post("/v1/transactions", content=body)
                except httpx.HTTPError as exc:
                    run.refuse(len(envs), type(exc).__name__)
                    continue
                if response.status_code != 200:
                    run.refuse(len(envs), _reason(response))
                    continue
                receipts = _receipts_of(response, envs)
                if receipts is None:
                    run.refuse(len(envs), "bad-response")
                    continue
                run.acknowledge(receipts, envs)
    except BaseException as exc:  # noqa: BLE001 - e.g. the receipts disk failing: stop everyone, report it
        with run.lock:
            if run.failure is None:
                run.failure = exc
        run.stop.set()


def register_member(url: str, admin_key: SigningKey, org: str, *, timeout: float = 60) -> tuple[str, SigningKey]:
    """Register a fresh member of ``org`` (signed by its admin, at the node's time) and wait until it is committed.

    Admission checks a signer against *committed* state, so the anchors can
    only be sent once this receipt is back.
    """
    key = SigningKey.generate()
    # letters only: member ids hold at most 6 digits together, and random hex would sometimes hold more
    member = f"{org}/load-{''.join(secrets.choice(string.ascii_lowercase) for _ in range(10))}"
    with Client(url, timeout=timeout) as client:
        env = envelope.build(
            admin_key,
            "member.register",
            {"member": member, "org": org, "role": MEMBER_ROLE, "key": key.key_id},
            created_ms=client.clock(),
        )
        (receipt,) = client.submit(env)
    if receipt.status != "ACCEPTED":
        raise MedledgerError(
            f"registering load member {member} was {receipt.status}: {receipt.reason or ', '.join(receipt.codes)}",
            code="load-setup-failed",
            status=409,
        )
    return member, key


def run_load(
    url: str,
    admin_key: SigningKey,
    *,
    org: str = "demo-hospital",
    count: int,
    concurrency: int,
    batch: int = 1,
    receipts: Path | None,
    progress: Callable[[int], None] | None = None,
    timeout: float = 30.0,
    stop: threading.Event | None = None,
    wait: float = 0.0,
) -> LoadResult:
    """Register a load member, then send ``count`` anchors from ``concurrency`` threads.

    ``progress`` is called (from worker threads) with the number of envelopes
    just finished, acknowledged or refused, so a progress bar can advance by it.
    ``timeout`` bounds every request; a receipt only comes back after the block
    is fsynced, so it must cover a commit under load, not just a round trip.
    Setting ``stop`` ends the run early (requests in flight still finish).
    ``wait`` > 0 first waits up to that many seconds for the node to accept
    connections. Raises only if the node does not answer within ``wait``, the
    member cannot be registered or the receipts file cannot be written;
    refusals of anchors are counted in the result.
    """
    if count < 0:
        raise EncodingError(f"count must be >= 0, got {count}", code="bad-argument")
    if concurrency < 1 or batch < 1:
        raise EncodingError(f"concurrency and batch must be >= 1, got {concurrency} and {batch}", code="bad-argument")
    url = url.rstrip("/")
    probe = Client(url, timeout=timeout)  # the node's clock, for the whole run
    handle: IO[bytes] | None = None
    try:
        if wait > 0:
            probe.wait_ready(wait)
        member, key = register_member(url, admin_key, org, timeout=timeout)
        if receipts is not None:
            receipts.parent.mkdir(parents=True, exist_ok=True)
            handle = open(receipts, "ab")  # noqa: SIM115 - closed in the finally below
    except BaseException:
        probe.close()
        raise
    clock = _node_clock(probe)
    run = _Run(count, batch, handle, progress)
    if stop is not None:
        run.stop = stop
    threads = [
        threading.Thread(target=_worker, args=(run, url, key, timeout, clock), name=f"medledger-load-{i}", daemon=True)
        for i in range(min(concurrency, max(1, -(-count // batch))))
    ]
    started = time.perf_counter()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            # Join in slices so Ctrl-C reaches this thread promptly.
            while thread.is_alive():
                thread.join(0.2)
    except BaseException:
        run.stop.set()
        for thread in threads:
            thread.join()
        raise
    finally:
        elapsed = time.perf_counter() - started
        probe.close()
        if handle is not None:
            handle.close()
    if run.failure is not None:
        raise run.failure
    return LoadResult(
        submitted=run.acknowledged + run.refused,
        acknowledged=run.acknowledged,
        refused=run.refused,
        elapsed=elapsed,
        member=member,
        refusals=dict(run.refusals),
    )
