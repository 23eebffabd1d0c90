"""Builds small real ledgers for tests: every kind of core transaction, several blocks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medledger._serving import BackgroundServer
from medledger.ledger import envelope
from medledger.ledger.keys import SigningKey
from medledger.ledger.receipt import Receipt
from medledger.ledger.sqlite_store import SqliteStore
from medledger.ledger.verify import VerifyReport, verify_store
from medledger.node.bootstrap import DEMO_ORG, REGULATOR_TOKEN, LedgerKeys, init_ledger
from medledger.node.node import CORE_REGISTRY, Node, NodeConfig
from medledger.node.pool import load_registry


def regulator_headers(data_dir: Path) -> dict[str, str]:
    """The Authorization header of the regulator credential ``init`` issued for ``data_dir``."""
    token = (Path(data_dir) / REGULATOR_TOKEN).read_text().strip()
    return {"authorization": f"Bearer {token}"}


def verify_ledger(data: Path) -> VerifyReport:
    """Re-derive the whole ledger in ``data`` (raises VerificationError at the first bad height)."""
    store = SqliteStore(data, readonly=True)
    try:
        return verify_store(store, load_registry(CORE_REGISTRY))
    finally:
        store.close()


@dataclass
class Populated:
    data: Path
    keys: LedgerKeys
    alice: SigningKey
    bob: SigningKey
    bob_new: SigningKey
    receipts: list[Receipt]

    def heights(self) -> list[int]:
        return sorted({r.height for r in self.receipts})


def anchor(key: SigningKey, n: int) -> dict[str, str]:
    return envelope.build(key, "anchor.record", {"label": f"test/{n}", "sha256": os.urandom(32).hex()}).to_wire()


def register(
    admin: SigningKey, member: str, key: SigningKey, *, org: str = DEMO_ORG, role: str = "member"
) -> dict[str, str]:
    return envelope.build(
        admin, "member.register", {"member": member, "org": org, "role": role, "key": key.key_id}
    ).to_wire()


def populate(data: Path) -> Populated:
    """Genesis (0), demo admin (1), then blocks 2..6 with registrations, anchors,
    a contract-level rejection, a key rotation and a revocation."""
    keys = init_ledger(data)
    alice, bob, bob_new = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    node = Node(NodeConfig(data, workers=0, max_wait_ms=1))
    receipts: list[Receipt] = []
    try:
        admin = keys.demo_admin
        receipts += node.submit_sync(
            [register(admin, f"{DEMO_ORG}/alice", alice), register(admin, f"{DEMO_ORG}/bob", bob)]
        )
        receipts += node.submit_sync(
            [anchor(alice, i) for i in range(5)]
            + [register(admin, "other-org/eve", SigningKey.generate(), org="other-org")]
        )
        receipts += node.submit_sync(
            [envelope.build(bob, "member.rotate", {"member": f"{DEMO_ORG}/bob", "new_key": bob_new.key_id}).to_wire()]
        )
        receipts += node.submit_sync([anchor(bob_new, i) for i in range(7)])
        receipts += node.submit_sync(
            [
                envelope.build(
                    admin, "member.revoke", {"member": f"{DEMO_ORG}/alice", "reason": "left-organisation"}
                ).to_wire()
            ]
        )
    finally:
        node.close()
    return Populated(data, keys, alice, bob, bob_new, receipts)


@dataclass
class LiveNode:
    """A fresh ledger served over real HTTP on a loopback port."""

    url: str
    data_dir: Path
    node_key: SigningKey
    admin_key: SigningKey
    server: BackgroundServer
    node: Node

    def stop(self) -> None:
        """Take the server down (tests use it to kill a node mid-run); safe to call twice."""
        self.server.stop()
        self.node.close()
