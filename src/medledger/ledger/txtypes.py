"""Transaction types, outcomes and the deterministic execution context.

The ledger layer executes handlers without knowing what they mean: each
transaction type declares who may sign it (checked at the gateway, before
ordering, and again deterministically at execution, because a key can be
revoked between admission and commit), how its payload is validated
(statelessly, at the gateway) and how it changes world state. The identity and
anchor types live in :mod:`medledger.ledger.identity`; the medical rulebook
registers its own types from the ``contracts`` layer.

Handlers read time only from :attr:`TxContext.block_ms`, never the wall clock,
so every member replaying the same blocks reaches the same state and hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from medledger.errors import EncodingError
from medledger.ledger.canonical import canonical_bytes
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.state import BlockState

ACCEPTED = "ACCEPTED"
ACCEPTED_WITH_ALERTS = "ACCEPTED_WITH_ALERTS"
REJECTED = "REJECTED"


@dataclass(slots=True)
class Outcome:
    """What a committed transaction did: its status, rule codes and alerts.

    Not ``frozen`` for the reason :class:`SignedEnvelope` is not: one is built per envelope.
    """

    status: str
    codes: tuple[str, ...] = ()
    reason: str = ""
    #: one mapping per violation: at least ``rule`` and ``severity``; ``institution``
    #: and ``practitioner`` when known (the store indexes alerts by them)
    alerts: tuple[Mapping[str, Any], ...] = ()
    #: version of the rule parameters the transaction was judged under, so any
    #: past decision can be re-derived (None for types no rulebook judges)
    rulebook: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.rulebook is not None:
            out["rulebook"] = self.rulebook
        if self.codes:
            out["codes"] = list(self.codes)
        if self.reason:
            out["reason"] = self.reason
        if self.alerts:
            out["alerts"] = [dict(a) for a in self.alerts]
        return out

    def to_bytes(self) -> bytes:
        if self is OK:
            return _OK_BYTES
        if not self.alerts and not self.codes:
            # the common case: a handful of shapes, encoded once each
            cached = _PLAIN_BYTES.get((self.status, self.rulebook))
            if cached is None:
                cached = _PLAIN_BYTES[(self.status, self.rulebook)] = canonical_bytes(self.to_json())
            return cached
        return canonical_bytes(self.to_json())


OK = Outcome(ACCEPTED)
_OK_BYTES = canonical_bytes(OK.to_json())
_PLAIN_BYTES: dict[tuple[str, int | None], bytes] = {}


def rejected(code: str, reason: str) -> Outcome:
    return Outcome(REJECTED, (code,), reason)


@dataclass(frozen=True, slots=True)
class Signer:
    """The world-state identity behind a key, as of the current block."""

    key: str
    member: str
    org: str
    role: str
    active: bool


@dataclass(slots=True)
class TxContext:
    """Everything a handler may consult: nothing else is deterministic."""

    envelope: SignedEnvelope
    payload: Any
    signer: Signer
    state: BlockState
    height: int
    block_ms: int
    leaf_index: int


Handler = Callable[[TxContext], Outcome]
#: runs at the start of every block after genesis with (state, height, block_ms): deadlines that
#: pass without any transaction (an unanswered complaint) still raise their alerts
BlockHook = Callable[[BlockState, int, int], list[Mapping[str, Any]]]
Validator = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class TxType:
    """One kind of ledger transaction."""

    name: str
    #: roles whose keys may sign this type; None admits every registered role
    roles: frozenset[str] | None
    validate: Validator
    execute: Handler
    summary: str = ""
    #: state keys the handler will read, from the raw payload, so a block can
    #: fetch them all in one batch before executing (optional; a speed hint only)
    reads: Callable[[dict[str, Any]], Iterable[str]] | None = None
    #: further keys that depend on values ``reads`` fetched (the patient a cited consultation names...),
    #: given the raw payload and a state getter; a second batched round, also only a speed hint
    derived_reads: Callable[[dict[str, Any], Callable[[str], Any]], Iterable[str]] | None = None


@dataclass
class Registry:
    """The set of transaction types a node accepts; the same on every member."""

    types: dict[str, TxType] = field(default_factory=dict)
    on_block: list[BlockHook] = field(default_factory=list)

    def register(self, tx_type: TxType) -> None:
        if tx_type.name in self.types:
            raise ValueError(f"transaction type {tx_type.name} registered twice")
        self.types[tx_type.name] = tx_type

    def get(self, name: str) -> TxType:
        try:
            return self.types[name]
        except KeyError:
            raise EncodingError(
                f"unknown transaction type {name!r}; this ledger accepts: " + ", ".join(sorted(self.types)),
                code="unknown-type",
            ) from None
