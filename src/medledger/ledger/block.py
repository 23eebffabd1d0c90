"""Block headers and signed tree heads.

A block header commits to everything a block decided: its envelopes (``tx_root``,
the Merkle root of just this block's leaves), the outcome of each
(``results_hash``), the state it produced (``state_root``, see
:mod:`medledger.ledger.state`), the whole log after it (``tree_size``,
``tree_root``) and its predecessor (``prev_hash``). The block hash is SHA-256
of the canonical header; the proposing node signs it. After every block the
node also signs an RFC 9162-style tree head, the small object light clients
keep and compare.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medledger.errors import EncodingError
from medledger.ledger import keys
from medledger.ledger.canonical import b64d, b64e, canonical_bytes

GENESIS_PREV_HASH = "00" * 32


def results_hash(outcomes: Sequence[bytes]) -> str:
    """Commit to the outcomes in order (canonical JSON never holds a raw newline)."""
    return hashlib.sha256(b"\n".join(outcomes)).hexdigest()


@dataclass(frozen=True, slots=True)
class BlockHeader:
    height: int
    prev_hash: str
    tx_root: str
    tx_count: int
    results_hash: str
    state_root: str
    tree_size: int
    tree_root: str
    timestamp: str
    proposer: str
    ordering: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "prev_hash": self.prev_hash,
            "tx_root": self.tx_root,
            "tx_count": self.tx_count,
            "results_hash": self.results_hash,
            "state_root": self.state_root,
            "tree_size": self.tree_size,
            "tree_root": self.tree_root,
            "timestamp": self.timestamp,
            "proposer": self.proposer,
            "ordering": self.ordering,
        }

    def to_bytes(self) -> bytes:
        return canonical_bytes(self.to_json())

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_json(cls, obj: Any) -> BlockHeader:
        try:
            return cls(**obj)
        except TypeError as exc:
            raise EncodingError(f"block header has the wrong fields: {exc}", code="malformed") from exc


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A signed statement: the log had ``tree_size`` entries with this root."""

    tree_size: int
    root_hash: str
    timestamp: str
    signer: str
    signature: str = ""

    def signed_bytes(self) -> bytes:
        return canonical_bytes(
            {
                "root_hash": self.root_hash,
                "signer": self.signer,
                "timestamp": self.timestamp,
                "tree_size": self.tree_size,
            }
        )

    def sign(self, key: keys.SigningKey) -> TreeHead:
        unsigned = TreeHead(self.tree_size, self.root_hash, self.timestamp, key.key_id)
        return TreeHead(
            self.tree_size,
            self.root_hash,
            self.timestamp,
            key.key_id,
            b64e(key.sign(keys.TREE_HEAD_DOMAIN, unsigned.signed_bytes())),
        )

    def verify_signature(self) -> None:
        """Raise SignatureError unless signed by ``signer`` (whether that key is trusted is the caller's call)."""
        keys.verify(
            keys.TREE_HEAD_DOMAIN,
            keys.public_key_bytes(self.signer),
            self.signed_bytes(),
            b64d(self.signature, what="tree head signature", length=64),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "timestamp": self.timestamp,
            "signer": self.signer,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, obj: Any) -> TreeHead:
        if not isinstance(obj, dict) or set(obj) != {"tree_size", "root_hash", "timestamp", "signer", "signature"}:
            raise EncodingError(
                "a tree head is an object with tree_size, root_hash, timestamp, signer and signature",
                code="malformed",
            )
        if type(obj["tree_size"]) is not int or obj["tree_size"] < 0:
            raise EncodingError("tree_size must be a non-negative integer", code="malformed")
        for name in ("root_hash", "timestamp", "signer", "signature"):
            if not isinstance(obj[name], str):
                raise EncodingError(f"tree head {name} must be a string", code="malformed")
        return cls(obj["tree_size"], obj["root_hash"], obj["timestamp"], obj["signer"], obj["signature"])
