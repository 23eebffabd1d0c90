"""The embedded node: admission, ordering into blocks, execution, durable commit.

Life of a submission::

    wire items --(pool: decode, canonical form, field syntax, signature)--> envelopes
      --(admission, under one lock: payload schema, replay, signer active, role, clock skew)-->
      queue --(committer thread: cut block, execute, Merkle, sign, fsync)--> receipts

Admission is all-or-nothing per request: if any envelope is refused, none is
queued, so a bad request writes nothing. A receipt is returned only after the
block holding its envelope is durably committed; "acknowledged" therefore
always means "on disk".

Replay checks read committed nonces from the store *outside* the node's lock
(the look-up is the slow part of admission), so a block can commit between a
request's look-up and its decision. The committer therefore moves each
block's ``(signer, nonce)`` pairs from ``_pending`` to ``_recent`` under the
lock and counts a commit generation; an admission notes the generation before
its look-up and, under the lock, also consults what committed since. Pairs
leave ``_recent`` once no admission in flight can still need them.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medledger.errors import AdmissionError, EncodingError, MedledgerError, StoreError
from medledger.ledger import merkle
from medledger.ledger.block import GENESIS_PREV_HASH, TreeHead
from medledger.ledger.chain import Tip, build_block, max_skew_ms
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.identity import signer_of
from medledger.ledger.keys import SigningKey
from medledger.ledger.receipt import Receipt
from medledger.ledger.sqlite_store import SqliteStore
from medledger.ledger.state import GENESIS_STATE_ROOT, CachedState
from medledger.ledger.timefmt import format_ms, now_ms
from medledger.ledger.txtypes import Outcome, Signer
from medledger.node.pool import Refusal, VerifyPool

log = logging.getLogger(__name__)

CORE_REGISTRY = "medledger.ledger.identity:core_registry"
#: what every medledger ledger runs: the generic types and the regulatory rulebook
DEFAULT_REGISTRY = "medledger.contracts.types:registry"
MAX_BATCH = 10_000
#: pairs kept for admissions in flight at most; past it an admission whose look-up is older than what was
#: dropped repeats its look-up under the lock (correct, only slower), so memory stays bounded
RECENT_MAX = 100_000


@dataclass(frozen=True)
class NodeConfig:
    data_dir: Path
    registry_path: str = DEFAULT_REGISTRY
    max_block_txs: int = 2000
    max_wait_ms: int = 20
    workers: int | None = None
    clock: Callable[[], int] = now_ms
    #: milliseconds of ``clock`` per wall-clock millisecond, published with the node's time in ``GET /healthz``
    #: so clients can stamp envelopes in the node's time: 1.0 for a node on the wall clock, more for the demo's
    #: province, whose clock runs a day a minute
    clock_rate: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_block_txs <= MAX_BATCH:
            raise EncodingError(f"max_block_txs must be between 1 and {MAX_BATCH}", code="bad-argument")
        if not 0 <= self.max_wait_ms <= 60_000:
            raise EncodingError("max_wait_ms must be between 0 and 60000", code="bad-argument")
        if self.workers is not None and self.workers < 0:
            raise EncodingError("workers must be 0 (check inline) or more", code="bad-argument")
        if not self.clock_rate > 0:
            raise EncodingError("clock_rate must be more than 0", code="bad-argument")


@dataclass(eq=False)
class _Batch:
    """One admitted request: its envelopes commit in order, possibly across blocks.

    One future per request rather than per envelope: a future carries a
    condition variable, and at ingest rates that bookkeeping showed up in the
    profile. ``taken`` counts envelopes already handed to a block.
    """

    envelopes: list[SignedEnvelope]
    #: the payloads as validated at admission; execution uses them as they are
    payloads: list[Any]
    future: Future[list[Receipt]] = field(default_factory=Future)
    receipts: list[Receipt] = field(default_factory=list)
    taken: int = 0


BlockListener = Callable[[int, str, list[SignedEnvelope], list[Outcome], TreeHead], None]


class Node:
    """One peer over one store, embedded in this process."""

    def __init__(self, config: NodeConfig, *, key: SigningKey | None = None) -> None:
        self.config = config
        self.store = SqliteStore(config.data_dir)
        self.key = key if key is not None else SigningKey.from_file(config.data_dir / "keys" / "node.key")
        self.pool = VerifyPool(config.registry_path, config.workers)
        self.registry = self.pool.registry
        self._lock = threading.Lock()
        #: (signer, nonce) -> tx_id of every admitted, not yet committed envelope
        self._pending: dict[tuple[str, str], str] = {}
        #: blocks committed so far by this node (admission notes it before its lock-free store look-up)
        self._generation = 0
        #: (signer, nonce) -> tx_id committed after some in-flight admission's look-up began
        self._recent: dict[tuple[str, str], str] = {}
        #: (generation, pairs) in commit order, so ``_recent`` is pruned oldest first
        self._recent_blocks: deque[tuple[int, list[tuple[str, str]]]] = deque()
        #: generations up to this one were dropped from ``_recent`` by RECENT_MAX before every reader was done
        self._recent_floor = 0
        #: generation -> admissions whose store look-up started then and have not decided yet
        self._lookups: dict[int, int] = {}
        self._signers: dict[str, Signer | None] = {}
        self._signer_generation = 0
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._carry: _Batch | None = None
        self._listeners: list[BlockListener] = []
        #: committed state as execution sees it; only the committer thread touches it
        self.state = CachedState(self.store)
        tip = self.store.tip()
        if tip is None:
            self.tip = Tip(-1, GENESIS_PREV_HASH, GENESIS_STATE_ROOT, 0)
            self.frontier = merkle.MerkleFrontier()
        else:
            self.tip = Tip(tip.height, tip.block_hash, tip.state_root, tip.block_ms)
            self.frontier = merkle.MerkleFrontier(tip.tree_size, self.store.frontier_cover(tip.tree_size))
        self._running = True
        self._committer = threading.Thread(target=self._commit_loop, name="medledger-committer", daemon=True)
        self._committer.start()

    # -- public API -------------------------------------------------------------

    def add_listener(self, listener: BlockListener) -> None:
        """Called from the committer thread after each durable block."""
        self._listeners.append(listener)

    def remove_listener(self, listener: BlockListener) -> None:
        """Stop calling ``listener`` (a stream whose client went away)."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def submit(self, items: Sequence[Any]) -> Future[list[Receipt]]:
        """Check, admit and queue wire items; the future resolves once all are committed.

        Raises :class:`MedledgerError` (nothing queued) if any item is refused.
        """
        envelopes = self.check(items)
        return self.admit(envelopes)

    def submit_sync(self, items: Sequence[Any], timeout: float | None = 60) -> list[Receipt]:
        return self.submit(items).result(timeout)

    def check(self, items: Sequence[Any]) -> list[SignedEnvelope]:
        """The stateless checks, on the pool; raise with every refusal listed."""
        self._check_batch_size(items)
        results = self.pool.check_sync(items)
        return self._collect(results)

    def _check_batch_size(self, items: Sequence[Any]) -> None:
        if not items:
            raise EncodingError("no envelopes submitted", code="empty-batch")
        if len(items) > MAX_BATCH:
            raise EncodingError(
                f"{len(items)} envelopes in one request; the limit is {MAX_BATCH}", code="batch-too-large"
            )

    @staticmethod
    def _collect(results: list[SignedEnvelope | Refusal]) -> list[SignedEnvelope]:
        errors = [
            {"index": i, "code": r.code, "detail": r.detail, "status": r.status}
            for i, r in enumerate(results)
            if type(r) is Refusal
        ]
        if errors:
            raise _refusal(errors, len(results))
        return results  # type: ignore[return-value]  # no Refusal left

    def admit(self, envelopes: Sequence[SignedEnvelope]) -> Future[list[Receipt]]:
        """Stateful gateway checks, atomically for the whole batch, then queue."""
        now = self.config.clock()
        pairs = [(e.signer, e.nonce) for e in envelopes]
        with self._lock:
            seen = self._generation
            self._lookups[seen] = self._lookups.get(seen, 0) + 1
        try:
            committed = self.store.find_nonces(pairs)
            skew = self._max_skew_ms()
            payloads = self._validate(envelopes)
        except BaseException:
            with self._lock:
                self._lookup_done(seen)
            raise
        with self._lock:
            try:
                queued = self._admit_locked(envelopes, payloads, now, skew, committed, seen, pairs)
            finally:
                self._lookup_done(seen)  # only now: pruning must keep what this decision read
        return queued.future

    def _admit_locked(
        self,
        envelopes: Sequence[SignedEnvelope],
        payloads: list[Any],
        now: int,
        skew: int,
        committed: dict[tuple[str, str], str],
        seen: int,
        pairs: list[tuple[str, str]],
    ) -> _Batch:
        if not self._running:
            raise StoreError("the node is shutting down; submit again once it is back", code="unavailable")
        recent = self._committed_since(seen, pairs)
        errors: list[dict[str, Any]] = []
        batch: dict[tuple[str, str], str] = {}
        for i, env in enumerate(envelopes):
            problem = self._admission_problem(env, now, skew, committed, recent, batch)
            if problem is not None:
                errors.append({"index": i, **problem})
            batch.setdefault((env.signer, env.nonce), env.tx_id)
        if errors:
            raise _refusal(errors, len(envelopes))
        self._pending.update(batch)
        queued = _Batch(list(envelopes), payloads)
        # Once queued, receipts cannot be cancelled: the block will be written anyway.
        queued.future.set_running_or_notify_cancel()
        self._queue.put(queued)
        return queued

    # -- what committed while an admission was looking (all under self._lock) -----------------------------

    def _committed_since(self, seen: int, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Pairs committed after generation ``seen``, which a look-up begun then may have missed."""
        if seen == self._generation:
            return {}
        if seen < self._recent_floor:
            return self.store.find_nonces(pairs)  # what it needs was dropped: look again, the store is current
        return self._recent

    def _lookup_done(self, seen: int) -> None:
        left = self._lookups[seen] - 1
        if left:
            self._lookups[seen] = left
        else:
            del self._lookups[seen]
            self._prune_recent()

    def _prune_recent(self) -> None:
        """Forget pairs of generations every admission in flight looked up after (or all, if none is)."""
        oldest = min(self._lookups, default=self._generation)
        blocks = self._recent_blocks
        while blocks and (blocks[0][0] <= oldest or len(self._recent) > RECENT_MAX):
            generation, pairs = blocks.popleft()
            if generation > oldest:
                self._recent_floor = generation
            for pair in pairs:
                del self._recent[pair]

    def _committed(self, envelopes: Sequence[SignedEnvelope]) -> None:
        """A block is durable: its pairs leave ``_pending`` and, while an admission is looking, enter ``_recent``."""
        self._generation += 1
        pending = self._pending
        if not self._lookups:
            for env in envelopes:
                pending.pop((env.signer, env.nonce), None)
            return
        pairs = [(env.signer, env.nonce) for env in envelopes]
        recent = self._recent
        for pair, env in zip(pairs, envelopes, strict=True):
            pending.pop(pair, None)
            recent[pair] = env.tx_id
        self._recent_blocks.append((self._generation, pairs))
        self._prune_recent()

    def _validate(self, envelopes: Sequence[SignedEnvelope]) -> list[Any]:
        """Payload schemas, once: the validated payloads go on to execution."""
        payloads: list[Any] = []
        errors: list[dict[str, Any]] = []
        for i, env in enumerate(envelopes):
            try:
                payloads.append(self.registry.types[env.type].validate(env.payload))
            except MedledgerError as exc:
                errors.append({"index": i, "code": exc.code, "detail": exc.message, "status": 422})
        if errors:
            raise _refusal(errors, len(envelopes))
        return payloads

    def close(self) -> None:
        """Commit what is queued, then stop."""
        with self._lock:
            if not self._running:
                return
            self._running = False
            self._queue.put(None)
        self._committer.join()
        self.pool.close()
        self.store.close()

    # -- admission --------------------------------------------------------------

    def _max_skew_ms(self) -> int:
        return max_skew_ms(self.store.get_state)

    def signer(self, kid: str) -> Signer | None:
        """The committed identity behind a key, for admission.

        Cached, and the cache is dropped by any block that writes keys or
        members; a lookup that raced such a block is not cached. (Execution
        re-checks the signer deterministically, so admission only has to be
        right, not authoritative.)
        """
        try:
            return self._signers[kid]
        except KeyError:
            pass
        generation = self._signer_generation
        signer = signer_of(self.store.get_state, kid)
        if generation == self._signer_generation:
            self._signers[kid] = signer
        return signer

    def _admission_problem(
        self,
        env: SignedEnvelope,
        now: int,
        skew: int,
        committed: dict[tuple[str, str], str],
        recent: dict[tuple[str, str], str],
        batch: dict[tuple[str, str], str],
    ) -> dict[str, Any] | None:
        pair = (env.signer, env.nonce)
        earlier = committed.get(pair) or recent.get(pair) or self._pending.get(pair) or batch.get(pair)
        if earlier == env.tx_id:
            return {"code": "replayed-tx", "status": 409, "detail": f"transaction {env.tx_id} was already submitted"}
        if earlier is not None:
            return {
                "code": "nonce-reused",
                "status": 409,
                "detail": f"nonce {env.nonce} was already used by this signer (transaction {earlier})",
            }
        if env.type == "genesis":
            return {"code": "wrong-role", "status": 403, "detail": "a genesis cannot be submitted to a running ledger"}
        signer = self.signer(env.signer)
        if signer is None:
            return {
                "code": "unknown-signer",
                "status": 401,
                "detail": f"key {env.signer} is not registered on this ledger",
            }
        if not signer.active:
            return {
                "code": "revoked-signer",
                "status": 403,
                "detail": f"the key of {signer.member} was revoked or rotated; it no longer signs",
            }
        roles = self.registry.types[env.type].roles
        if roles is not None and signer.role not in roles:
            return {
                "code": "wrong-role",
                "status": 403,
                "detail": f"{signer.member} is a {signer.role}; {env.type} must be signed by "
                + " or ".join(sorted(roles)),
            }
        if abs(env.created_ms - now) > skew:
            return {
                "code": "clock-skew",
                "status": 422,
                "detail": f"created_at {env.created_at} is more than {skew // 1000} s from the node's "
                f"clock {format_ms(now)} (GET /healthz publishes the node's time; stamp envelopes with it)",
            }
        return None

    # -- ordering and commit ----------------------------------------------------

    def _next_block(self) -> list[tuple[_Batch, int, int]] | None:
        """Slices ``(batch, start, stop)`` for the next block: up to ``max_block_txs``
        envelopes, or whatever arrived within ``max_wait_ms`` of the first."""
        limit = self.config.max_block_txs
        slices: list[tuple[_Batch, int, int]] = []
        size = 0
        deadline = 0.0
        while size < limit:
            batch = self._carry
            self._carry = None
            if batch is None:
                try:
                    if not slices:
                        batch = self._queue.get()
                        deadline = time.monotonic() + self.config.max_wait_ms / 1000
                    else:
                        remaining = deadline - time.monotonic()
                        batch = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if batch is None:
                    if not slices:
                        return None
                    self._queue.put(None)
                    break
            start = batch.taken
            stop = min(len(batch.envelopes), start + limit - size)
            batch.taken = stop
            slices.append((batch, start, stop))
            size += stop - start
            if stop < len(batch.envelopes):
                self._carry = batch
        return slices

    def _commit_loop(self) -> None:
        while True:
            slices = self._next_block()
            if slices is None:
                return
            try:
                self._commit(slices)
            except Exception:
                log.exception("block %d could not be committed", self.tip.height + 1)
                self._fail(slices)

    def _fail(self, slices: list[tuple[_Batch, int, int]]) -> None:
        """A block that could not be written fails every request with an envelope in it.

        Nothing of the failed block is on disk (``append_block`` is all-or-nothing), but a request
        spanning several blocks may have had earlier blocks committed: each request is told exactly
        which of its envelopes were committed (their receipts) and which were not (their indices),
        so it can resubmit those and only those. The store's own words go to the log, not to clients.
        """
        height = self.tip.height + 1
        with self._lock:
            for batch, _, _ in slices:
                for env in batch.envelopes[len(batch.receipts) :]:
                    self._pending.pop((env.signer, env.nonce), None)
        for batch, _, _ in slices:
            if batch is self._carry:
                self._carry = None
            if not batch.future.done():
                batch.future.set_exception(_commit_failure(batch, height))

    def _commit(self, slices: list[tuple[_Batch, int, int]]) -> None:
        envelopes: list[SignedEnvelope] = []
        payloads: list[Any] = []
        for batch, start, stop in slices:
            envelopes += batch.envelopes[start:stop]
            payloads += batch.payloads[start:stop]
        block_ms = max(self.config.clock(), self.tip.block_ms)
        built = build_block(
            self.registry,
            self.state,
            self.tip,
            self.frontier,
            envelopes,
            payloads,
            block_ms=block_ms,
            proposer=self.key.key_id,
            node_key=self.key,
            ordering={"orderer": "embedded", "first_leaf": self.frontier.size},
        )
        self.store.append_block(built.block)
        self.state.apply(built.writes)
        self.tip, self.frontier = built.tip, built.frontier
        block = built.block
        with self._lock:
            for key in block.writes:
                if key.startswith(("key/", "member/")):
                    self._signer_generation += 1
                    self._signers.clear()
                    break
            self._committed(envelopes)
        head = block.tree_head
        height, block_hash = block.header.height, block.block_hash
        leaf = self.frontier.size - len(envelopes)
        outcomes = iter(built.outcomes)
        for batch, start, stop in slices:
            receipts = batch.receipts
            for env in batch.envelopes[start:stop]:
                outcome = next(outcomes)
                receipts.append(
                    Receipt(env.tx_id, outcome.status, height, leaf, block_hash, head, outcome.codes, outcome.reason)
                )
                leaf += 1
            if len(receipts) == len(batch.envelopes):
                batch.future.set_result(receipts)
        for listener in list(self._listeners):  # streams come and go from other threads
            try:
                listener(height, block_hash, envelopes, built.outcomes, head)
            except Exception:
                log.exception("block listener failed")

    def commit_genesis(self, genesis: SignedEnvelope, block_ms: int) -> None:
        """Write block 0 directly (``init`` only): genesis is signed offline by the regulator."""
        if self.tip.height != -1:
            raise StoreError("this ledger already has a genesis block", code="already-initialised")
        built = build_block(
            self.registry,
            self.store,
            self.tip,
            self.frontier,
            [genesis],
            None,
            block_ms=block_ms,
            proposer=self.key.key_id,
            node_key=self.key,
            ordering={"orderer": "genesis", "first_leaf": 0},
        )
        if built.outcomes[0].status != "ACCEPTED":
            raise StoreError(f"genesis refused: {built.outcomes[0].reason}", code="bad-genesis")
        self.store.append_block(built.block)
        self.state.apply(built.writes)
        self.tip, self.frontier = built.tip, built.frontier


def _commit_failure(batch: _Batch, height: int) -> StoreError:
    """What one request hears when a block holding some of its envelopes could not be written."""
    done, total = len(batch.receipts), len(batch.envelopes)
    if done == 0:
        said = "none of this request's envelopes was written; submit them again once the node is healthy"
    else:
        said = (
            f"{done} of this request's {total} envelopes were committed in earlier blocks (receipts in "
            f"`committed`); the {total - done} listed in `uncommitted` were not written: submit those again "
            "once the node is healthy"
        )
    return StoreError(
        f"the node could not write block {height} to its ledger store (the operator has the cause in the "
        f"server log); {said}",
        code="store-error",
        committed=[r.to_json() for r in batch.receipts],
        uncommitted=list(range(done, total)),
    )


def _refusal(errors: list[dict[str, Any]], total: int) -> MedledgerError:
    first = errors[0]
    where = f"envelope {first['index']}" if total > 1 else "the envelope"
    more = f" ({len(errors) - 1} more refused; see errors)" if len(errors) > 1 else ""
    statuses = {e["status"] for e in errors}
    return AdmissionError(
        f"{where} was refused: {first['detail']}{more}; nothing was written",
        code=first["code"] if len({e["code"] for e in errors}) == 1 else "batch-refused",
        status=first["status"] if len(statuses) == 1 else 400,
        errors=errors,
    )
