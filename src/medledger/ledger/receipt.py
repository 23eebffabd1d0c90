"""Receipts, and strict reading of JSON that came from someone else.

A receipt is what a node hands back once a transaction is durably committed;
the node builds it, the API serialises it, and clients parse it back, so the
one type lives here in the ledger layer. A light client must never let a
missing or oddly typed field turn into a silent default, so every reader
names the field it could not use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from medledger.errors import EncodingError
from medledger.ledger.block import TreeHead

RECEIPT_STATUSES: Final = frozenset({"ACCEPTED", "ACCEPTED_WITH_ALERTS", "REJECTED"})

_hex64 = re.compile(r"[0-9a-f]{64}")


# field it could not use.
# --------------------------------------------------------------------------


def bad_json(what: str) -> EncodingError:
    return EncodingError(what, code="bad-response")


def json_object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise bad_json(f"{what} must be a JSON object")
    return value


def json_field(obj: Mapping[str, Any], name: str, what: str) -> Any:
    try:
        return obj[name]
    except KeyError:
        raise bad_json(f"{what} has no {name!r}") from None


def json_int(obj: Mapping[str, Any], name: str, what: str) -> int:
    value = json_field(obj, name, what)
    if type(value) is not int or value < 0:
        raise bad_json(f"{what} {name} must be a non-negative integer, got {value!r}")
    return value


def json_str(obj: Mapping[str, Any], name: str, what: str) -> str:
    value = json_field(obj, name, what)
    if not isinstance(value, str):
        raise bad_json(f"{what} {name} must be a string, got {value!r}")
    return value


def json_hash(value: Any, what: str) -> bytes:
    """A SHA-256 in the one spelling the ledger uses (64 lowercase hex digits)."""
    if not isinstance(value, str) or _hex64.fullmatch(value) is None:
        raise bad_json(f"{what} must be 64 lowercase hex digits, got {value!r}")
    return bytes.fromhex(value)


def json_hashes(value: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise bad_json(f"{what} must be a list of hex hashes")
    return tuple(json_hash(item, f"{what}[{i}]") for i, item in enumerate(value))


def json_tree_head(value: Any, what: str) -> TreeHead:
    try:
        head = TreeHead.from_json(value)
    except EncodingError as exc:
        raise bad_json(f"{what}: {exc.message}") from None
    json_hash(head.root_hash, f"{what} root_hash")
    return head


@dataclass(slots=True)
class Receipt:
    """What a node hands back once a transaction is durably committed.

    Not ``frozen`` for the reason :class:`SignedEnvelope` is not: one is built per envelope.

    The signed ``tree_head`` and ``leaf_index`` are the checkable part: with an
    inclusion proof they prove the envelope is in the log. ``height`` and
    ``block_hash`` say where to look for the block and are not proven here.
    """

    tx_id: str
    status: str
    height: int
    leaf_index: int
    block_hash: str
    tree_head: TreeHead
    codes: tuple[str, ...] = ()
    reason: str = ""

    @classmethod
    def from_json(cls, value: Any) -> Receipt:
        obj = json_object(value, "receipt")
        what = "receipt"
        tx_id = json_str(obj, "tx_id", what)
        json_hash(tx_id, "receipt tx_id")
        status = json_str(obj, "status", what)
        if status not in RECEIPT_STATUSES:
            raise bad_json(f"receipt status must be one of {sorted(RECEIPT_STATUSES)}, got {status!r}")
        block_hash = json_str(obj, "block_hash", what)
        json_hash(block_hash, "receipt block_hash")
        codes = obj.get("codes", [])
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise bad_json("receipt codes must be a list of strings")
        reason = obj.get("reason", "")
        if not isinstance(reason, str):
            raise bad_json("receipt reason must be a string")
        return cls(
            tx_id,
            status,
            json_int(obj, "height", what),
            json_int(obj, "leaf_index", what),
            block_hash,
            json_tree_head(json_field(obj, "tree_head", what), "receipt tree_head"),
            tuple(codes),
            reason,
        )

    def to_json(self) -> dict[str, Any]:
        """The server's receipt shape, so a saved receipt reads back unchanged."""
        out: dict[str, Any] = {
            "tx_id": self.tx_id,
            "status": self.status,
            "height": self.height,
            "leaf_index": self.leaf_index,
            "block_hash": self.block_hash,
            "tree_head": self.tree_head.to_json(),
        }
        if self.codes:
            out["codes"] = list(self.codes)
        if self.reason:
            out["reason"] = self.reason
        return out
