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
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import nacl.bindings
import nacl.exceptions

from medledger.errors import MedledgerError
from medledger.ledger import keys
from medledger.ledger.envelope import SignedEnvelope, from_wire
from medledger.ledger.txtypes import Registry

#: ("ok", SignedEnvelope fields...) or ("err", code, message, status)
CheckResult = tuple[Any, ...]

_registry: Registry | None = None


def load_registry(path: str) -> Registry:
    module, _, func = path.partition(":")
    factory: Callable[[], Registry] = getattr(importlib.import_module(module), func)
    return factory()


def _init_worker(registry_path: str) -> None:
    # Ctrl-C is for the node process, which shuts workers down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _registry
    _registry = load_registry(registry_path)


def check_one(item: Any, registry: Registry) -> CheckResult:
    """Every stateless check of one wire item."""
    try:
        env = from_wire(item, check_signature=False)
        registry.get(env.type)
        try:
            nacl.bindings.crypto_sign_open(
                env.signature + keys.ENVELOPE_DOMAIN + env.body, keys.public_key_bytes(env.signer)
            )
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            return ("err", "bad-signature", "signature does not verify under the signer's key", 401)
    except MedledgerError as exc:
        return ("err", exc.code, exc.message, exc.status)
    return (
        "ok",
        env.body,
        env.signature,
        env.type,
        env.payload,
        env.signer,
        env.nonce,
        env.created_at,
        env.created_ms,
        env.tx_id,
    )


def check_chunk(items: Sequence[Any]) -> list[CheckResult]:
    assert _registry is not None
    return [check_one(item, _registry) for item in items]


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


def to_envelope(result: CheckResult) -> SignedEnvelope:
    return SignedEnvelope(*result[1:])


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
            for f in [self._executor.submit(check_chunk, []) for _ in range(self.workers)]:
                f.result()

    def check(self, items: Sequence[Any]) -> list[Future[list[CheckResult]]]:
        """Futures of checked chunks, in order."""
        if self._executor is None or len(items) < 8:
            done: Future[list[CheckResult]] = Future()
            done.set_result([check_one(item, self.registry) for item in items])
            return [done]
        chunks = min(self.workers * 2, max(1, len(items) // 64))
        size = -(-len(items) // chunks)
        return [self._executor.submit(check_chunk, items[i : i + size]) for i in range(0, len(items), size)]

    def check_sync(self, items: Sequence[Any]) -> list[CheckResult]:
        out: list[CheckResult] = []
        for future in self.check(items):
            out.extend(future.result())
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
