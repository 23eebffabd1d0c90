"""Stateless envelope checks on every core.

Signature verification is the ceiling of the whole ingest pipeline, so it
runs in worker processes (one per core) together with the byte-level checks
that need no world state: base64 and canonical form, field syntax, a known
type, and ``tx_id``. Payload schemas are validated once, at admission, because
execution needs the validated payload in the committing process anyway.

The node process shares one interpreter lock between admission and the
committer, so what the pool costs *there* is what matters. Three measured
choices follow:

* Work crosses the process boundary as bytes (orjson in, packed rows out),
  never as pickled objects: pickling was a quarter of the node's interpreter
  time at ingest rates.
* No ``ProcessPoolExecutor``: its manager and feeder threads woke for every
  chunk (selectors, wake-up pipes, futures) and took another quarter.
* Each worker is kept fed: it holds the chunk it works on and the next one,
  already in its pipe, so it never waits for a node thread to win the
  interpreter lock back before it can start again (see :class:`_Slot`).

Workers build the transaction-type registry from an import path
(``module:function``) so that the contracts layer's types are checked there
too without the ledger layer importing them.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import importlib
import multiprocessing
import os
import queue
import signal
import struct
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import nacl.bindings
import nacl.exceptions
import orjson

from medledger.errors import MedledgerError, StoreError
from medledger.ledger import keys
from medledger.ledger.envelope import SignedEnvelope, from_wire
from medledger.ledger.speedups import envelopes as _c_envelopes
from medledger.ledger.txtypes import Registry


class Refusal(NamedTuple):
    """Why one wire item failed the stateless checks."""

    code: str
    detail: str
    status: int


_registry: Registry | None = None
#: objects orjson would turn into JSON objects (dataclasses, dict subclasses...) are refused, so the
#: workers see exactly the dicts, lists and strings the caller passed or the item fails inline
_PLAIN_JSON = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def load_registry(path: str) -> Registry:
    module, _, func = path.partition(":")
    factory: Callable[[], Registry] = getattr(importlib.import_module(module), func)
    return factory()


def _init_worker(registry_path: str) -> None:
    # Ctrl-C is for the node process, which shuts workers down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _registry
    _registry = load_registry(registry_path)


def check_one(item: Any, registry: Registry) -> SignedEnvelope | Refusal:
    """Every stateless check of one wire item."""
    try:
        env = from_wire(item, check_signature=False)
        registry.get(env.type)
        try:
            nacl.bindings.crypto_sign_open(
                env.signature + keys.ENVELOPE_DOMAIN + env.body, keys.public_key_bytes(env.signer)
            )
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            return Refusal("bad-signature", "signature does not verify under the signer's key", 401)
    except MedledgerError as exc:
        return Refusal(exc.code, exc.message, exc.status)
    return env


def check_chunk(data: bytes) -> tuple[bytes, bytes, bytes]:
    """Worker side: a chunk arrives as JSON and leaves as three byte strings.

    Pickling the wire dicts in and the checked envelopes (payload dicts and
    all) out was a quarter of the node process's interpreter time at ingest
    rates; bytes cross the pipe as a plain copy, and orjson re-reads them in C.
    """
    assert _registry is not None
    return _pack([check_one(item, _registry) for item in orjson.loads(data)])


def _signatures_ok(triples: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """(public key, canonical body, signature) -> valid?, for bytes already decoded elsewhere."""
    out = []
    for public_key, body, signature in triples:
        try:
            nacl.bindings.crypto_sign_open(signature + keys.ENVELOPE_DOMAIN + body, public_key)
            out.append(True)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            out.append(False)
    return out


def _pack(results: list[SignedEnvelope | Refusal]) -> tuple[bytes, bytes, bytes]:
    """``(rows, bodies, signatures)``: a row per item, either ``[created_ms, tx_id, start, end]``
    (the body is ``bodies[start:end]``; ``bodies`` is a JSON array of them all) or
    ``[code, detail, status]``; the 64-byte signatures of accepted items back to back."""
    rows: list[list[Any]] = []
    bodies: list[bytes] = []
    signatures: list[bytes] = []
    offset = 1
    for result in results:
        if type(result) is Refusal:
            rows.append(list(result))
            continue
        env: SignedEnvelope = result  # type: ignore[assignment]
        end = offset + len(env.body)
        rows.append([env.created_ms, env.tx_id, offset, end])
        offset = end + 1
        bodies.append(env.body)
        signatures.append(env.signature)
    return orjson.dumps(rows), b"[" + b",".join(bodies) + b"]", b"".join(signatures)


def _unpack(packed: tuple[bytes, bytes, bytes]) -> list[SignedEnvelope | Refusal]:
    rows_data, bodies, signatures = packed
    rows = orjson.loads(rows_data)
    values = orjson.loads(bodies)  # the same canonical bytes the worker checked: same values
    if _c_envelopes is not None:
        # the node's interpreter is the pipeline's bottleneck: 4.5 -> ~1 us per envelope in C
        fast = _c_envelopes(rows, bodies, values, signatures, SignedEnvelope)
        if fast is not None:  # None: some row is a refusal, or not what _pack writes
            return fast  # type: ignore[return-value]  # list is invariant; these are all envelopes
    return _unpack_rows(rows, bodies, values, signatures)


def _unpack_rows(
    rows: list[Any], bodies: bytes, values: list[Any], signatures: bytes
) -> list[SignedEnvelope | Refusal]:
    """The reference unpacker, for answers with refusals (and without the C module)."""
    out: list[SignedEnvelope | Refusal] = []
    accepted = iter(values)
    n = 0
    for row in rows:
        if type(row[0]) is str:
            out.append(Refusal(*row))
            continue
        v = next(accepted)
        out.append(
            SignedEnvelope(
                bodies[row[2] : row[3]],
                signatures[n : n + 64],
                v["type"],
                v["payload"],
                v["signer"],
                v["nonce"],
                v["created_at"],
                row[0],
                row[1],
            )
        )
        n += 64
    return out


_CHECK, _SIGNATURES, _READY = b"C", b"S", b"R"
_OK, _FAILED = b"K", b"E"
_LENGTHS = struct.Struct("<II")
_TRIPLE_HEAD = struct.Struct("<32s64sI")
#: requests a worker holds at once: the one it works on and the next, already in its pipe
_DEPTH = 2
#: items per request: small enough that a batch spreads over every worker and several
#: callers' chunks interleave, large enough that the per-request cost stays under 1%
_CHUNK = 128
#: a whole request or answer fits in the pipe, so neither side waits for the other to read
_PIPE_BYTES = 1 << 20


def _worker_main(requests: Connection, replies: Connection, registry_path: str) -> None:
    """A worker: answer requests in order until the node closes its end."""
    _init_worker(registry_path)
    try:
        replies.send_bytes(_READY)
        while True:
            request = requests.recv_bytes()
            kind, data = request[:1], request[1:]
            try:
                if kind == _CHECK:
                    rows, bodies, signatures = check_chunk(data)
                    reply = _OK + _LENGTHS.pack(len(rows), len(bodies)) + rows + bodies + signatures
                else:
                    reply = _OK + bytes(_signatures_ok(_unpack_triples(data)))
            except Exception as exc:  # noqa: BLE001 - a bug, not bad input (check_one answers that): report, stay alive
                reply = _FAILED + f"{type(exc).__name__}: {exc}".encode()
            replies.send_bytes(reply)
    except (EOFError, OSError):
        return


def _pack_triples(triples: Sequence[tuple[bytes, bytes, bytes]]) -> bytes:
    return b"".join(_TRIPLE_HEAD.pack(pk, sig, len(body)) + body for pk, body, sig in triples)


def _unpack_triples(data: bytes) -> list[tuple[bytes, bytes, bytes]]:
    out = []
    at = 0
    while at < len(data):
        pk, sig, size = _TRIPLE_HEAD.unpack_from(data, at)
        at += _TRIPLE_HEAD.size
        out.append((pk, data[at : at + size], sig))
        at += size
    return out


def _split_reply(reply: bytes) -> tuple[bytes, bytes, bytes]:
    rows_len, bodies_len = _LENGTHS.unpack_from(reply)
    at = _LENGTHS.size
    return (
        reply[at : at + rows_len],
        reply[at + rows_len : at + rows_len + bodies_len],
        reply[at + rows_len + bodies_len :],
    )


def _widen(conn: Connection) -> None:
    # not Linux, or over the system's pipe-max-size: the pipe still works, with more waiting
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


class _Worker:
    """One worker process and the node's ends of its two pipes (requests in, answers out)."""

    def __init__(self, context: Any, registry_path: str) -> None:
        their_requests, self.requests = context.Pipe(duplex=False)
        self.replies, their_replies = context.Pipe(duplex=False)
        _widen(self.requests)
        _widen(self.replies)
        self.process = context.Process(
            target=_worker_main,
            args=(their_requests, their_replies, registry_path),
            name="medledger-verify",
            daemon=True,
        )
        self.process.start()
        their_requests.close()
        their_replies.close()

    def ready(self) -> None:
        try:
            started = self.replies.recv_bytes() == _READY
        except (EOFError, OSError):
            started = False
        if not started:
            self.process.join(1)
            self.kill()
            raise _unavailable(f"a signature-checking worker did not start (exit code {self.process.exitcode})")

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.replies.close()


class _Job:
    """One request on its way through a worker; ``retried`` once it was resent after a worker died."""

    __slots__ = ("future", "request", "retried", "size")

    def __init__(self, request: bytes, size: int) -> None:
        self.request = request
        self.size = size
        self.future: Future[bytes] = Future()
        self.retried = False


class _Slot:
    """A worker process with a node thread that feeds it and one that drains it.

    Before this, the thread that needed a check sent it and waited for the
    answer; between two requests a worker sat idle until some thread got the
    interpreter lock back, and a batch split over both workers waited for the
    slower one. The workers were busy 60% of the run with the node at 50% of
    a core. Now each worker holds up to ``_DEPTH`` requests in a pipe wide
    enough for them, so it starts the next chunk the moment it answers one.
    """

    def __init__(self, pool: VerifyPool, worker: _Worker) -> None:
        self.pool = pool
        self.worker = worker
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.inflight: collections.deque[_Job] = collections.deque()
        self.free = threading.Semaphore(_DEPTH)
        self.lock = threading.Lock()
        #: items queued here or in flight; guarded by the pool's lock
        self.load = 0
        #: why this slot stopped for good (its worker could not be restarted)
        self.broken: MedledgerError | None = None
        self.stopping = False
        self.sender = threading.Thread(target=self._send_loop, name="medledger-verify-send", daemon=True)
        self.receiver = threading.Thread(target=self._receive_loop, name="medledger-verify-receive", daemon=True)
        self.sender.start()
        self.receiver.start()

    def _send_loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            self.free.acquire()
            with self.lock:
                if self.broken is not None or self.stopping:
                    self.free.release()
                    self.pool._finish(self, job, error=self.broken or _shutting_down())
                    continue
                self.inflight.append(job)
                conn = self.worker.requests
            with contextlib.suppress(OSError):  # the worker died: its receiver resends what it held
                conn.send_bytes(job.request)

    def _receive_loop(self) -> None:
        while True:
            worker = self.worker
            try:
                reply = worker.replies.recv_bytes()
            except (EOFError, OSError):
                if not self._revive(worker):
                    return
                continue
            with self.lock:
                job = self.inflight.popleft()
            self.free.release()
            self.pool._finish(self, job, reply)

    def _revive(self, dead: _Worker) -> bool:
        """The worker is gone: start another and send it, once, what the dead one held."""
        dead.kill()
        fresh: _Worker | None = None
        failure: MedledgerError | None = None
        if not self.stopping:
            try:
                fresh = _Worker(self.pool._context, self.pool.registry_path)
                fresh.ready()
            except MedledgerError as exc:
                fresh, failure = None, exc
        with self.lock:
            # taken with the swap, so a job is either in here or sent to the fresh worker
            lost = list(self.inflight)
            self.inflight.clear()
            if fresh is not None and self.stopping:  # the pool closed while this one started
                fresh.kill()
                fresh = None
            if fresh is not None:
                self.worker = fresh
            elif failure is not None:
                self.broken = failure
        for job in lost:
            self.free.release()
            if fresh is None:
                self.pool._finish(self, job, error=failure or _shutting_down())
            elif job.retried:
                twice = _unavailable("a signature-checking worker stopped twice on this request; retry later")
                self.pool._finish(self, job, error=twice)
            else:
                job.retried = True
                self.jobs.put(job)
        return fresh is not None

    def stop(self) -> None:
        self.stopping = True
        self.jobs.put(None)
        self.sender.join(5)
        with self.lock:
            worker = self.worker
        if not self.sender.is_alive():  # never close a pipe a send may still be using
            worker.requests.close()  # the worker reads EOF and exits; the receiver then sees EOF too
            worker.process.join(5)
        if worker.process.is_alive():
            worker.process.kill()  # stuck: its receiver fails what it held, which frees the sender
        self.receiver.join(5)
        self.sender.join(5)


def _answer(reply: bytes) -> bytes:
    if reply[:1] != _OK:
        raise MedledgerError(
            f"checking failed inside a signature worker: {reply[1:].decode(errors='replace')}",
            code="internal-error",
            status=500,
        )
    return reply[1:]


def _unavailable(why: str) -> StoreError:
    return StoreError(why, code="unavailable", status=503)


def _shutting_down() -> StoreError:
    return _unavailable("the node is shutting down; submit again once it is back")


def _chunks(items: Sequence[Any], workers: int) -> list[Sequence[Any]]:
    """The requests ``items`` go out in: at most ``_CHUNK`` each, and every worker gets some."""
    step = max(8, min(_CHUNK, -(-len(items) // workers)))
    return [items[start : start + step] for start in range(0, len(items), step)]


class VerifyPool:
    """Runs :func:`check_one` over batches, in worker processes when ``workers > 0``.

    Safe to call from many threads. Each batch goes out as chunks, each to the
    worker with the least work queued; a caller waits only for its own. A worker
    that dies is replaced and what it held sent once more.
    """

    def __init__(self, registry_path: str, workers: int | None = None) -> None:
        self.registry_path = registry_path
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.registry = load_registry(registry_path)
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._closed = False
        started = [_Worker(self._context, registry_path) for _ in range(self.workers)]
        try:
            for worker in started:  # they spawn in parallel; the first request finds them ready
                worker.ready()
        except MedledgerError:
            for worker in started:
                worker.kill()
            raise
        self._slots = [_Slot(self, worker) for worker in started]

    # -- talking to workers -------------------------------------------------------

    def _submit(self, requests: Sequence[tuple[bytes, int]]) -> list[Future[bytes]]:
        """Queue ``(request, item count)`` pairs; a future per request resolves to its raw answer."""
        placed: list[tuple[_Slot, _Job]] = []
        with self._lock:
            if self._closed:
                raise _shutting_down()
            slots = [slot for slot in self._slots if slot.broken is None]
            if not slots:
                raise self._slots[0].broken or _unavailable("no signature-checking worker is running")
            for request, size in requests:
                slot = min(slots, key=_load)
                slot.load += size
                placed.append((slot, _Job(request, size)))
        for slot, job in placed:
            slot.jobs.put(job)
        return [job.future for _, job in placed]

    def _finish(self, slot: _Slot, job: _Job, reply: bytes = b"", error: BaseException | None = None) -> None:
        with self._lock:
            slot.load -= job.size
            if slot.load == 0:
                self._settled.notify_all()
        if error is None:
            job.future.set_result(reply)
        else:
            job.future.set_exception(error)

    def _ask(self, requests: Sequence[tuple[bytes, int]]) -> list[bytes]:
        """Send requests and wait for every answer, in order; a failed check raises."""
        return [_answer(future.result()) for future in self._submit(requests)]

    # -- the checks ---------------------------------------------------------------

    def check_sync(self, items: Sequence[Any]) -> list[SignedEnvelope | Refusal]:
        """Every stateless check of every item, on the workers; one result per item, in order."""
        if self.workers == 0 or len(items) < 8:
            return [check_one(item, self.registry) for item in items]
        try:
            requests = [
                (_CHECK + orjson.dumps(list(chunk), option=_PLAIN_JSON), len(chunk))
                for chunk in _chunks(items, self.workers)
            ]
        except (TypeError, orjson.JSONEncodeError):
            # not plain JSON (a library caller's own objects): each item fails its own checks here
            return [check_one(item, self.registry) for item in items]
        out: list[SignedEnvelope | Refusal] = []
        for answer in self._ask(requests):
            out += _unpack(_split_reply(answer))
        return out

    def signatures_ok(self, envelopes: Sequence[SignedEnvelope]) -> Callable[[], list[bool]]:
        """Start checking envelope signatures only, on every core; call the result to collect.

        ``verify`` has decoded the envelopes already and submits the next blocks'
        checks before replaying the current one, so the workers never wait on it.
        """
        triples = [(keys.public_key_bytes(e.signer), e.body, e.signature) for e in envelopes]
        if self.workers == 0 or len(triples) < 8:
            done = _signatures_ok(triples)
            return lambda: done
        futures = self._submit(
            [(_SIGNATURES + _pack_triples(chunk), len(chunk)) for chunk in _chunks(triples, self.workers)]
        )
        return lambda: [bool(ok) for future in futures for ok in _answer(future.result())]

    def close(self) -> None:
        """Stop the workers once the requests in flight are answered."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._settled.wait_for(lambda: all(slot.load == 0 for slot in self._slots), timeout=30)
        for slot in self._slots:
            slot.stop()


def _load(slot: _Slot) -> int:
    return slot.load
