import shutil
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from medledger._serving import BackgroundServer
from medledger.node.bootstrap import init_ledger
from medledger.node.node import Node, NodeConfig

sys.path.insert(0, str(Path(__file__).parent))

from ledger_factory import LiveNode, Populated, populate


@pytest.fixture(scope="session")
def populated_template(tmp_path_factory: pytest.TempPathFactory) -> Populated:
    return populate(tmp_path_factory.mktemp("template") / "ledger")


@pytest.fixture
def populated(populated_template: Populated, tmp_path: Path) -> Populated:
    """A private copy of a small, fully populated ledger."""
    data = tmp_path / "ledger"
    # Copy the database through SQLite's backup API, not file by file: a reader connection of the
    # template's node (a thread-local one, closed whenever it is garbage-collected) may close during
    # the copy and delete the -wal/-shm files under copytree's feet. The backup is a consistent snapshot.
    shutil.copytree(populated_template.data, data, ignore=shutil.ignore_patterns("ledger.sqlite*", "ledger.lock"))
    source = sqlite3.connect(populated_template.data / "ledger.sqlite")
    target = sqlite3.connect(data / "ledger.sqlite")
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    p = populated_template
    return Populated(data, p.keys, p.alice, p.bob, p.bob_new, p.receipts)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveNode]:
    data_dir = tmp_path / "ledger"
    keys = init_ledger(data_dir)
    node = Node(NodeConfig(data_dir, workers=1, max_wait_ms=2))
    server = BackgroundServer(node)
    with server:
        live = LiveNode(server.url, data_dir, keys.node, keys.demo_admin, server, node)
        try:
            yield live
        finally:
            live.stop()
