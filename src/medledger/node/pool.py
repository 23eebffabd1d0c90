"""Stateless envelope checks on every core.

Signature verification is the ceiling of the whole ingest pipeline, so it
runs in worker processes (one per core) together with the byte-level checks
that need no world state: base64 and canonical form, field syntax, a known
type, and ``tx_id``. Payload schemas are validated once, at admission, because
execution needs the validated payload in the committing process anyway. Work crosses the process boundary in chunks and
comes back as plain tuples, which pickle far faster than objects.

Workers build the transaction-type registry from an import path
(``module:function``) so that the contracts layer's types are checked there
too without the ledger layer importing them.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, NamedTuple

import nacl.bindings
import nacl.exceptions
import orjson

from medledger.errors import MedledgerError
from medledger.ledger import keys
from medledger.ledger.envelope import SignedEnvelope, from_wire
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
    values = iter(orjson.loads(bodies))  # the same canonical bytes the worker checked: same values
    out: list[SignedEnvelope | Refusal] = []
    n = 0
    for row in rows:
        if type(row[0]) is str:
            out.append(Refusal(*row))
            continue
        v = next(values)
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


class VerifyPool:
    """Runs :func:`check_one` over batches, in worker processes when ``workers > 0``."""

    def __init__(self, registry_path: str, workers: int | None = None) -> None:
        self.registry_path = registry_path
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.registry = load_registry(registry_path)
        self._executor: ProcessPoolExecutor | None = None
        if self.workers > 0:
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(registry_path,),
            )
            # Start the workers now, not on the first request.
            for f in [self._executor.submit(check_chunk, b"[]") for _ in range(self.workers)]:
                f.result()

    def check_sync(self, items: Sequence[Any]) -> list[SignedEnvelope | Refusal]:
        """Every stateless check of every item, on the workers; one result per item, in order."""
        if self._executor is None or len(items) < 8:
            return [check_one(item, self.registry) for item in items]
        chunks = min(self.workers * 2, max(1, len(items) // 64))
        size = -(-len(items) // chunks)
        try:
            sent = [orjson.dumps(list(items[i : i + size]), option=_PLAIN_JSON) for i in range(0, len(items), size)]
        except (TypeError, orjson.JSONEncodeError):
            # not plain JSON (a library caller's own objects): each item fails its own checks here
            return [check_one(item, self.registry) for item in items]
        futures = [self._executor.submit(check_chunk, data) for data in sent]
        out: list[SignedEnvelope | Refusal] = []
        for future in futures:
            out += _unpack(future.result())
        return out

    def signatures_ok(self, envelopes: Sequence[SignedEnvelope]) -> Callable[[], list[bool]]:
        """Start checking envelope signatures only, on every core; call the result to collect.

        ``verify`` has decoded the envelopes already and submits the next blocks'
        checks before replaying the current one, so the workers never wait on it.
        """
        triples = [(keys.public_key_bytes(e.signer), e.body, e.signature) for e in envelopes]
        if self._executor is None or len(triples) < 8:
            done = _signatures_ok(triples)
            return lambda: done
        size = -(-len(triples) // (self.workers * 2))
        futures = [self._executor.submit(_signatures_ok, triples[i : i + size]) for i in range(0, len(triples), size)]
        return lambda: [ok for future in futures for ok in future.result()]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None
