"""Stateless envelope checks on every core.

Signature verification is the ceiling of the whole ingest pipeline, so it
runs in worker processes (one per core) together with the byte-level checks
that need no world state: base64 and canonical form, field syntax, a known
type, and ``tx_id``. Payload schemas are validated once, at admission, because
execution needs the validated payload in the committing process anyway.

The node process shares one interpreter lock between admission and the
committer, so what the pool costs *there* is what matters. Two measured
choices follow:

* Work crosses the process boundary as bytes (orjson in, packed rows out),
  never as pickled objects: pickling was a quarter of the node's interpreter
  time at ingest rates.
* No ``ProcessPoolExecutor``: its manager and feeder threads woke for every
  chunk (selectors, wake-up pipes, futures) and took another quarter. Here
  the thread that needs a check writes to an idle worker's pipe and blocks
  on the answer with the lock released; nothing else runs in between.

Workers build the transaction-type registry from an import path
(``module:function``) so that the contracts layer's types are checked there
too without the ledger layer importing them.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import queue
import signal
import struct
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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


def _worker_main(conn: Connection, registry_path: str) -> None:
    """A worker: answer requests on its pipe until the node closes it."""
    _init_worker(registry_path)
    conn.send_bytes(_READY)
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            return
        kind, data = request[:1], request[1:]
        try:
            if kind == _CHECK:
                rows, bodies, signatures = check_chunk(data)
                reply = _OK + _LENGTHS.pack(len(rows), len(bodies)) + rows + bodies + signatures
            else:
                reply = _OK + bytes(_signatures_ok(_unpack_triples(data)))
        except Exception as exc:  # noqa: BLE001 - a bug, not bad input (check_one answers that): report, stay alive
            reply = _FAILED + f"{type(exc).__name__}: {exc}".encode()
        conn.send_bytes(reply)


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


class _Worker:
    """One worker process and the node's end of its pipe."""

    def __init__(self, context: Any, registry_path: str) -> None:
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(
            target=_worker_main, args=(child, registry_path), name="medledger-verify", daemon=True
        )
        self.process.start()
        child.close()

    def ready(self) -> None:
        try:
            started = self.conn.recv_bytes() == _READY
        except (EOFError, OSError):
            started = False
        if not started:
            self.process.join(1)
            raise _unavailable(f"a signature-checking worker did not start (exit code {self.process.exitcode})")

    def stop(self) -> None:
        self.conn.close()  # the worker reads EOF and exits
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _splice(arrays: list[bytes]) -> bytes:
    """Non-empty JSON arrays as one array: ``[a,b]`` and ``[c]`` give ``[a,b,c]``."""
    return arrays[0] if len(arrays) == 1 else b"[" + b",".join(a[1:-1] for a in arrays) + b"]"


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


class VerifyPool:
    """Runs :func:`check_one` over batches, in worker processes when ``workers > 0``.

    Safe to call from many threads. A caller takes one idle worker (waiting
    for one if need be) and any others idle at that moment, and never waits
    for more while it holds some, so callers cannot deadlock on each other.
    A worker that dies is replaced and its request sent once more.
    """

    def __init__(self, registry_path: str, workers: int | None = None) -> None:
        self.registry_path = registry_path
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.registry = load_registry(registry_path)
        self._context = multiprocessing.get_context("spawn")
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._closed = False
        self._background: ThreadPoolExecutor | None = None
        self._background_lock = threading.Lock()
        #: workers taken by callers and not yet given back, so close() can wait for them
        self._out = 0
        self._returned = threading.Condition()
        started = [_Worker(self._context, registry_path) for _ in range(self.workers)]
        for worker in started:  # they spawn in parallel; the first request finds them ready
            worker.ready()
            self._idle.put(worker)

    # -- talking to workers -------------------------------------------------------

    def _fresh(self) -> _Worker:
        worker = _Worker(self._context, self.registry_path)
        worker.ready()
        return worker

    def _take(self, wanted: int) -> list[_Worker]:
        if self._closed:
            raise _unavailable("the node is shutting down; submit again once it is back")
        while True:
            try:
                taken = [self._idle.get(timeout=0.5)]
                break
            except queue.Empty:
                if self._closed:
                    raise _unavailable("the node is shutting down; submit again once it is back") from None
        while len(taken) < wanted:
            try:
                taken.append(self._idle.get_nowait())
            except queue.Empty:
                break
        with self._returned:
            self._out += len(taken)
        return taken

    def _run(self, wanted: int, requests_for: Callable[[int], list[bytes]]) -> list[bytes]:
        """Take up to ``wanted`` workers, send each one request built for that many, collect in order."""
        workers = self._take(wanted)
        answers: list[bytes] = []
        try:
            requests = requests_for(len(workers))
            while len(workers) > len(requests):  # a short batch needs fewer workers than it took
                self._give_back(workers.pop())
            sent = []
            for worker, request in zip(workers, requests, strict=True):
                try:
                    worker.conn.send_bytes(request)
                    sent.append(True)
                except OSError:
                    sent.append(False)
            for i, request in enumerate(requests):
                try:
                    if not sent[i]:
                        raise EOFError
                    answers.append(workers[i].conn.recv_bytes())
                except (EOFError, OSError):
                    workers[i] = self._replace(workers[i])
                    try:
                        workers[i].conn.send_bytes(request)
                        answers.append(workers[i].conn.recv_bytes())
                    except (EOFError, OSError):
                        workers[i] = self._replace(workers[i])
                        raise _unavailable(
                            "a signature-checking worker stopped twice on this request; retry later"
                        ) from None
        except BaseException:
            # a worker whose answer was not read may hold half of it in its pipe: never reuse it
            for i in range(len(answers), len(workers)):
                workers[i] = self._replace(workers[i])
            raise
        finally:
            for worker in workers:
                self._give_back(worker)
        return [_answer(reply) for reply in answers]  # every reply read whole: the workers are fine

    def _give_back(self, worker: _Worker) -> None:
        self._idle.put(worker)
        with self._returned:
            self._out -= 1
            self._returned.notify_all()

    def _replace(self, worker: _Worker) -> _Worker:
        worker.stop()
        return worker if self._closed else self._fresh()

    # -- the checks ---------------------------------------------------------------

    def check_sync(self, items: Sequence[Any]) -> list[SignedEnvelope | Refusal]:
        """Every stateless check of every item, on the workers; one result per item, in order."""
        if self.workers == 0 or len(items) < 8:
            return [check_one(item, self.registry) for item in items]
        # One JSON array per worker we would like; if fewer are idle, neighbouring arrays are
        # spliced together (their bytes, not their items), so no item is encoded twice.
        wanted = min(self.workers, len(items) // 64 or 1)
        size = -(-len(items) // wanted)
        try:
            parts = [orjson.dumps(list(items[i : i + size]), option=_PLAIN_JSON) for i in range(0, len(items), size)]
        except (TypeError, orjson.JSONEncodeError):
            # not plain JSON (a library caller's own objects): each item fails its own checks here
            return [check_one(item, self.registry) for item in items]

        def requests(n: int) -> list[bytes]:
            per = -(-len(parts) // n)
            return [_CHECK + _splice(parts[i : i + per]) for i in range(0, len(parts), per)]

        out: list[SignedEnvelope | Refusal] = []
        for answer in self._run(len(parts), requests):
            out += _unpack(_split_reply(answer))
        return out

    def _signatures_sync(self, triples: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
        def requests(n: int) -> list[bytes]:
            size = -(-len(triples) // n)
            return [_SIGNATURES + _pack_triples(triples[i : i + size]) for i in range(0, len(triples), size)]

        return [bool(ok) for answer in self._run(self.workers, requests) for ok in answer]

    def signatures_ok(self, envelopes: Sequence[SignedEnvelope]) -> Callable[[], list[bool]]:
        """Start checking envelope signatures only, on every core; call the result to collect.

        ``verify`` has decoded the envelopes already and submits the next blocks'
        checks before replaying the current one, so the workers never wait on it.
        The request waits on a helper thread, not on ``verify``'s.
        """
        triples = [(keys.public_key_bytes(e.signer), e.body, e.signature) for e in envelopes]
        if self.workers == 0 or len(triples) < 8:
            done = _signatures_ok(triples)
            return lambda: done
        with self._background_lock:
            if self._background is None:
                self._background = ThreadPoolExecutor(self.workers, thread_name_prefix="medledger-verify")
            future: Future[list[bool]] = self._background.submit(self._signatures_sync, triples)
        return future.result

    def close(self) -> None:
        """Stop the workers once the requests in flight are answered."""
        if self._closed:
            return
        if self._background is not None:
            self._background.shutdown(wait=True, cancel_futures=True)
        self._closed = True
        with self._returned:
            self._returned.wait_for(lambda: self._out == 0, timeout=30)
        while True:
            try:
                self._idle.get_nowait().stop()
            except queue.Empty:
                break
