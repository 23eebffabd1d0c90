"""World state: a key-value map of canonical JSON values, changed only by blocks.

State is a flat map so that the ledger layer can store, hash and verify it
without knowing what it holds. A block executes against a :class:`BlockState`
overlay: each transaction writes into its own layer, which is folded into the
block on success and dropped on rejection (a REJECTED transaction changes no
state). The block's write set, canonically encoded, is chained into the
header's ``state_root``: ``state_root[h] = SHA-256(state_root[h-1] ||
canonical(sorted writes of h))``. Two members that disagree on any write
disagree on that block's hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, Protocol

from medledger.ledger.canonical import canonical_bytes

GENESIS_STATE_ROOT = "00" * 32
_MISSING = object()


class StateReader(Protocol):
    """Read access to committed state."""

    def get_state(self, key: str) -> Any | None: ...


class MemoryState:
    """Committed state held in a dict: verify's replay target and a test double-free store."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.written_at: dict[str, int] = {}

    def get_state(self, key: str) -> Any | None:
        return self.values.get(key)

    def apply(self, writes: dict[str, Any | None], height: int) -> None:
        for key, value in writes.items():
            if value is None:
                self.values.pop(key, None)
            else:
                self.values[key] = value
            self.written_at[key] = height


class BlockState:
    """Per-block overlay with a per-transaction layer on top."""

    __slots__ = ("_base", "_block", "_tx")

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._block: dict[str, Any | None] = {}
        self._tx: dict[str, Any | None] = {}

    def get(self, key: str) -> Any | None:
        value = self._tx.get(key, _MISSING)
        if value is _MISSING:
            value = self._block.get(key, _MISSING)
            if value is _MISSING:
                return self._base.get_state(key)
        return value

    def put(self, key: str, value: Any) -> None:
        self._tx[key] = value

    def delete(self, key: str) -> None:
        self._tx[key] = None

    def commit_tx(self) -> None:
        if self._tx:
            self._block.update(self._tx)
            self._tx = {}

    def rollback_tx(self) -> None:
        self._tx = {}

    @property
    def writes(self) -> dict[str, Any | None]:
        """The block's write set (None = deleted)."""
        return self._block

    def items(self) -> Iterator[tuple[str, Any | None]]:
        return iter(sorted(self._block.items()))


def next_state_root(prev_root: str, writes: dict[str, Any | None]) -> str:
    """Chain a block's write set onto the previous state root."""
    if not writes:
        return prev_root
    encoded = canonical_bytes([[key, writes[key]] for key in sorted(writes)])
    return hashlib.sha256(bytes.fromhex(prev_root) + encoded).hexdigest()
