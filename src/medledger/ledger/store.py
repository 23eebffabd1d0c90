"""The storage interface every ledger store implements (SQLite now, PostgreSQL later).

A store persists committed blocks and answers reads; it never decides
anything. ``append_block`` is all-or-nothing and durable when it returns: the
node acknowledges a transaction only after that, so a crash at any instant
loses no acknowledged transaction and leaves no half block.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from medledger.ledger.block import BlockHeader, TreeHead

NodeId = tuple[int, int]


@dataclass(frozen=True, slots=True)
class TxRecord:
    """One committed envelope as stored."""

    leaf_index: int
    height: int
    tx_id: str
    body: bytes
    signature: bytes
    outcome: bytes
    #: index columns (derived from ``body``; verify re-derives them)
    signer: str = ""
    nonce: str = ""


@dataclass(frozen=True, slots=True)
class BlockRecord:
    """One committed block: header bytes exactly as hashed and signed."""

    height: int
    header_bytes: bytes
    block_hash: str
    signature: bytes
    tree_head: TreeHead


@dataclass(frozen=True)
class NewBlock:
    """Everything one block commit writes, computed before the store is touched."""

    header: BlockHeader
    header_bytes: bytes
    block_hash: str
    signature: bytes
    tree_head: TreeHead
    #: (leaf_index, tx_id, signer, nonce, body, signature, outcome_bytes)
    txs: Sequence[tuple[int, str, str, str, bytes, bytes, bytes]]
    nodes: Sequence[tuple[int, int, bytes]]
    #: canonical bytes of each written state value (None = deleted)
    writes: dict[str, bytes | None]
    #: (seq, leaf_index or None for block-level, rule, severity, institution, practitioner, block_ms, body)
    alerts: Sequence[tuple[int, int | None, str, str, str | None, str | None, int, bytes]] = ()


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One committed alert: a rule violation, derived from a block's outcomes (verify re-derives it)."""

    height: int
    seq: int
    leaf_index: int | None
    rule: str
    severity: str
    institution: str | None
    practitioner: str | None
    block_ms: int
    body: bytes

    @property
    def alert_id(self) -> str:
        return f"{self.height}-{self.seq}"


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """Filters over alerts; all optional, combined with AND, newest first."""

    rule: str | None = None
    institution: str | None = None
    practitioner: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    #: resume below this (height, seq), exclusive: pagination that never skips or repeats
    before: tuple[int, int] | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class ChainTip:
    height: int
    block_hash: str
    tree_size: int
    state_root: str
    block_ms: int


class Store(Protocol):
    """What the node, the API and ``verify`` need from a store."""

    def tip(self) -> ChainTip | None: ...

    def append_block(self, block: NewBlock) -> None: ...

    def get_state(self, key: str) -> Any | None: ...

    def state_range(self, prefix: str, *, after: str | None = None, limit: int = 100) -> list[tuple[str, Any]]: ...

    def find_nonces(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]: ...

    def tx(self, tx_id: str) -> TxRecord | None: ...

    def block(self, height: int) -> BlockRecord | None: ...

    def block_txs(self, height: int) -> list[TxRecord]: ...

    def tree_head(self, tree_size: int | None = None) -> TreeHead | None: ...

    def tree_nodes(self, ids: Iterable[NodeId]) -> dict[NodeId, bytes]: ...

    def frontier_cover(self, tree_size: int) -> list[bytes]: ...

    def alerts(self, query: AlertQuery) -> list[AlertRecord]: ...

    def iter_blocks(self) -> Iterator[tuple[BlockRecord, list[TxRecord]]]: ...

    def close(self) -> None: ...
