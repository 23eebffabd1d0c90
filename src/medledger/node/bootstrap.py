"""Creating a new ledger: keys, the genesis block and a demo institution.

``init`` is the only place a block is written without going through
admission: the genesis is signed offline by the regulator and names the
consortium's first node. Everything after it (starting with the demo
institution's admin) goes through the normal submission path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medledger.errors import StoreError
from medledger.ledger import envelope
from medledger.ledger.identity import ADMIN, REGULATOR
from medledger.ledger.keys import SigningKey
from medledger.ledger.sqlite_store import DB_NAME
from medledger.ledger.timefmt import now_ms
from medledger.node.credentials import Credentials
from medledger.node.node import Node, NodeConfig

REGULATOR_MEMBER = REGULATOR
NODE_MEMBER = "regulator/node-1"
DEMO_ORG = "demo-hospital"
DEMO_ADMIN = "demo-hospital/admin"
CONFIG_NAME = "medledger.json"


REGULATOR_TOKEN = "keys/regulator.token"
#: written first into every ledger directory, so git never offers its keys and tokens for a commit
GITIGNORE_TEXT = (
    "# medledger ledger directory: private keys, bearer credentials and the store. Never commit it.\n*\n"
)


def ignore_in_git(data_dir: Path) -> None:
    """Make ``data_dir`` invisible to git wherever the user puts it (a ``.gitignore`` of ``*``, itself included).

    Written before any key exists, so even an init that fails half way leaves nothing committable.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    ignore = data_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text(GITIGNORE_TEXT)


@dataclass(frozen=True)
class LedgerKeys:
    regulator: SigningKey
    node: SigningKey
    demo_admin: SigningKey
    #: bearer credential of the regulator on this node (signs its FHIR writes with the regulator key)
    regulator_token: str

    @classmethod
    def load(cls, data_dir: Path) -> LedgerKeys:
        d = data_dir / "keys"
        return cls(
            SigningKey.from_file(d / "regulator.key"),
            SigningKey.from_file(d / "node.key"),
            SigningKey.from_file(d / "demo-admin.key"),
            (data_dir / REGULATOR_TOKEN).read_text().strip(),
        )


def init_ledger(
    data_dir: Path,
    *,
    consortium: str = "demo-province-internet-medical-supervision",
    max_clock_skew_ms: int = 300_000,
    clock: Callable[[], int] = now_ms,
) -> LedgerKeys:
    """Create ``data_dir`` with keys, genesis (block 0), the demo admin (block 1) and the regulator's
    bearer credential (``keys/regulator.token``).

    ``clock`` stamps the genesis and the first block: the simulator builds a
    whole ledger in simulated time, and block times may never go backwards.
    """
    data_dir = Path(data_dir)
    if (data_dir / DB_NAME).exists():
        raise StoreError(
            f"{data_dir} already holds a ledger; choose an empty directory", code="already-initialised", status=409
        )
    ignore_in_git(data_dir)
    regulator, node_key, admin = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    keys_dir = data_dir / "keys"
    regulator.to_file(keys_dir / "regulator.key")
    node_key.to_file(keys_dir / "node.key")
    admin.to_file(keys_dir / "demo-admin.key")
    created = clock()
    genesis = envelope.build(
        regulator,
        "genesis",
        {
            "consortium": consortium,
            "regulator": {"member": REGULATOR_MEMBER, "key": regulator.key_id},
            "nodes": [{"member": NODE_MEMBER, "key": node_key.key_id}],
            "params": {"max_clock_skew_ms": max_clock_skew_ms},
        },
        created_ms=created,
    )
    node = Node(NodeConfig(data_dir, workers=0, clock=clock), key=node_key)
    try:
        node.commit_genesis(genesis, created)
        register = envelope.build(
            regulator,
            "member.register",
            {
                "member": DEMO_ADMIN,
                "org": DEMO_ORG,
                "role": ADMIN,
                "key": admin.key_id,
            },
            created_ms=clock(),
        )
        node.submit_sync([register.to_wire()])
    finally:
        node.close()
    token = Credentials(data_dir).issue(REGULATOR_MEMBER, signing_key=keys_dir / "regulator.key", label="init")
    token_fd = os.open(data_dir / REGULATOR_TOKEN, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(token_fd, token.encode() + b"\n")
    finally:
        os.close(token_fd)
    (data_dir / CONFIG_NAME).write_text(
        json.dumps(
            {
                "consortium": consortium,
                "node_member": NODE_MEMBER,
                "keys": {
                    "regulator": "keys/regulator.key",
                    "node": "keys/node.key",
                    "demo_admin": "keys/demo-admin.key",
                    "regulator_token": REGULATOR_TOKEN,
                },
                "demo": {"org": DEMO_ORG, "admin_member": DEMO_ADMIN},
            },
            indent=2,
        )
        + "\n"
    )
    return LedgerKeys(regulator, node_key, admin, token)
