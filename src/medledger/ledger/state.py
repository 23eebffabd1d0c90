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
from collections.abc import Iterable
from typing import Any, Protocol

import orjson

from medledger.ledger.canonical import canonical_bytes

GENESIS_STATE_ROOT = "00" * 32
_MISSING = object()


class StateReader(Protocol):
    """Read access to committed state."""

    def get_state(self, key: str) -> Any | None: ...

    def get_states(self, keys: Iterable[str]) -> dict[str, Any]:
        """Values of the keys that exist, in one round trip where the backend allows."""
        ...


class MemoryState:
    """Committed state held in a dict: verify's replay target and a test double-free store."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.written_at: dict[str, int] = {}

    def get_state(self, key: str) -> Any | None:
        return self.values.get(key)

    def get_states(self, keys: Iterable[str]) -> dict[str, Any]:
        values = self.values
        return {k: values[k] for k in keys if k in values}

    def apply(self, writes: dict[str, Any | None], height: int) -> None:
        for key, value in writes.items():
            if value is None:
                self.values.pop(key, None)
            else:
                self.values[key] = value
            self.written_at[key] = height


class CachedState:
    """A read-through cache of committed state in front of a store.

    The node executes every block against this: signer and member records are
    read by nearly every transaction, and :meth:`BlockState.prefetch` turns the
    rest into one batched read per block. The cache is updated from each
    committed block's write set, so it never serves a stale value; absent keys
    are cached too (as absent).
    """

    def __init__(self, base: StateReader, max_entries: int = 200_000) -> None:
        self._base = base
        self._values: dict[str, Any | None] = {}
        self._max = max_entries

    def get_state(self, key: str) -> Any | None:
        try:
            return self._values[key]
        except KeyError:
            value = self._base.get_state(key)
            self._remember({key: value})
            return value

    def get_states(self, keys: Iterable[str]) -> dict[str, Any]:
        cached = self._values
        missing = [k for k in keys if k not in cached]
        if missing:
            found = self._base.get_states(missing)
            self._remember({k: found.get(k) for k in missing})
        return {k: v for k in keys if (v := cached.get(k)) is not None}

    def apply(self, writes: dict[str, Any | None]) -> None:
        self._remember(writes)

    def _remember(self, values: dict[str, Any | None]) -> None:
        if len(self._values) + len(values) > self._max:
            self._values.clear()
        self._values.update(values)


class BlockState:
    """Per-block overlay with a per-transaction layer on top."""

    __slots__ = ("_base", "_block", "_read", "_tx", "identity_version")

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._block: dict[str, Any | None] = {}
        self._tx: dict[str, Any | None] = {}
        self._read: dict[str, Any | None] = {}
        #: bumped by every committed write to identity keys, so signer lookups can be cached in between
        self.identity_version = 0

    def prefetch(self, keys: Iterable[str]) -> None:
        """Load committed values the block is about to read, in one batch."""
        wanted = [k for k in keys if k not in self._read]
        if wanted:
            found = self._base.get_states(wanted)
            for k in wanted:
                self._read[k] = found.get(k)

    def get(self, key: str) -> Any | None:
        value = self._tx.get(key, _MISSING)
        if value is _MISSING:
            value = self._block.get(key, _MISSING)
            if value is _MISSING:
                value = self._read.get(key, _MISSING)
                if value is _MISSING:
                    value = self._read[key] = self._base.get_state(key)
        return value

    def put(self, key: str, value: Any) -> None:
        self._tx[key] = value

    def delete(self, key: str) -> None:
        self._tx[key] = None

    def commit_tx(self) -> None:
        if self._tx:
            if any(k.startswith(("key/", "member/")) for k in self._tx):
                self.identity_version += 1
            self._block.update(self._tx)
            self._tx = {}

    def rollback_tx(self) -> None:
        self._tx = {}

    @property
    def writes(self) -> dict[str, Any | None]:
        """The block's write set (None = deleted)."""
        return self._block


def encode_writes(writes: dict[str, Any | None]) -> dict[str, bytes | None]:
    """Canonical bytes of each written value (None = deleted), computed once per block."""
    return {k: None if v is None else canonical_bytes(v) for k, v in writes.items()}


def next_state_root(prev_root: str, encoded: dict[str, bytes | None]) -> str:
    """Chain a block's write set onto the previous state root.

    Hashes canonical ``[[key, value], ...]`` sorted by key, assembled from the
    already-encoded values (a JSON string encodes the same wherever it sits).
    """
    if not encoded:
        return prev_root
    parts = [b"[" + orjson.dumps(k) + b"," + (b"null" if v is None else v) + b"]" for k, v in sorted(encoded.items())]
    return hashlib.sha256(bytes.fromhex(prev_root) + b"[" + b",".join(parts) + b"]").hexdigest()
