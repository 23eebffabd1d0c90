"""What a node's operator may publish, and which files of its directory must stay private.

Members pin the node key that signs tree heads (``Client(trusted_node_keys=...)``,
``medledger proof verify --trusted-key``), so the operator has to hand it out;
the key files beside it are private seeds that must never be. This module reads
everything publishable from the ledger itself (genesis, world state, the
latest signed tree head), read-only, so it works beside a running node, and
sorts the directory's files into secret and shareable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from medledger.errors import StoreError
from medledger.ledger.sqlite_store import DB_NAME, SqliteStore
from medledger.node.credentials import CREDENTIALS_NAME

#: files (relative to the data dir, as glob patterns) that hold secrets: private key seeds, bearer tokens,
#: and the token hashes with the key paths the node signs members' writes with
SECRET_FILES = ("keys/*.key", "keys/*.token", CREDENTIALS_NAME)
#: files that may be shared: the ledger store (for auditors: it holds no secret, only the signed log and
#: its state) and the directory's configuration, which holds paths, never key material
SHAREABLE_FILES = (DB_NAME, "medledger.json")


@dataclass(frozen=True)
class LedgerStatus:
    """The publishable facts of one ledger directory."""

    consortium: str
    regulator_key: str
    #: member id -> active key id of every node the genesis names
    node_keys: dict[str, str]
    genesis_tx_id: str
    genesis_block_hash: str
    tree_head: dict[str, Any]
    height: int
    secret_files: list[str]
    shareable_files: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "consortium": self.consortium,
            "regulator_key": self.regulator_key,
            "node_keys": self.node_keys,
            "genesis": {"tx_id": self.genesis_tx_id, "block_hash": self.genesis_block_hash},
            "height": self.height,
            "tree_head": self.tree_head,
            "secret_files": self.secret_files,
            "shareable_files": self.shareable_files,
        }


def _present(data: Path, patterns: tuple[str, ...]) -> list[str]:
    return sorted({str(p.relative_to(data)) for pattern in patterns for p in data.glob(pattern) if p.is_file()})


def ledger_status(data: Path) -> LedgerStatus:
    """Read the publishable facts from ``data``'s ledger (read-only); StoreError if there is none to read."""
    store = SqliteStore(data, readonly=True)
    try:
        tip = store.tip()
        genesis_block = store.block(0)
        genesis_txs = store.block_txs(0)
        head = store.tree_head()
        consortium = store.get_state("consortium")
        if tip is None or genesis_block is None or not genesis_txs or head is None or consortium is None:
            raise StoreError(f"the ledger in {data} has no genesis yet", code="no-ledger")
        genesis = genesis_txs[0]
        nodes = orjson.loads(genesis.body)["payload"]["nodes"]
        node_keys = {}
        for node in nodes:
            record = store.get_state("member/" + node["member"])
            if record is not None and record.get("status") == "active":
                node_keys[node["member"]] = record["key"]
        regulator = store.get_state("member/" + consortium["regulator"]) or {}
        return LedgerStatus(
            consortium=consortium["name"],
            regulator_key=regulator.get("key", ""),
            node_keys=node_keys,
            genesis_tx_id=genesis.tx_id,
            genesis_block_hash=genesis_block.block_hash,
            tree_head=head.to_json(),
            height=tip.height,
            secret_files=_present(data, SECRET_FILES),
            shareable_files=_present(data, SHAREABLE_FILES),
        )
    finally:
        store.close()
