"""Acceptance 6: any change to committed or derived bytes in the store is found, with its height.

Each case edits the SQLite file directly, the way an insider with database
access would, then runs ``verify`` through the library and through the CLI.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger_factory import Populated
from medledger.errors import VerificationError
from medledger.ledger.sqlite_store import SqliteStore
from medledger.ledger.verify import verify_store
from medledger.node.node import CORE_REGISTRY
from medledger.node.pool import load_registry

Edit = Callable[[sqlite3.Connection, Populated], int]  # returns the height verify must name


def _flip(blob: bytes, at: int | None = None) -> bytes:
    i = len(blob) // 2 if at is None else at
    return blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1 :]


def _tx_in_block(conn: sqlite3.Connection, height: int) -> int:
    return int(conn.execute("SELECT MIN(leaf_index) FROM txs WHERE height=?", (height,)).fetchone()[0])


def _update_blob(conn: sqlite3.Connection, table: str, column: str, where: str, args: tuple[object, ...]) -> None:
    (value,) = conn.execute(f"SELECT {column} FROM {table} WHERE {where}", args).fetchone()
    if isinstance(value, str):
        new: object = value[:-1] + ("0" if value[-1] != "0" else "1")
    elif isinstance(value, int):
        new = value + 1
    else:
        new = _flip(bytes(value))
    conn.execute(f"UPDATE {table} SET {column}=? WHERE {where}", (new, *args))


def column_edit(table: str, column: str, height: int) -> Edit:
    def edit(conn: sqlite3.Connection, p: Populated) -> int:
        if table == "txs":
            _update_blob(conn, table, column, "leaf_index=?", (_tx_in_block(conn, height),))
        else:
            _update_blob(conn, table, column, "height=?", (height,))
        return height

    edit.__name__ = f"{table}.{column}@{height}"
    return edit


def state_value(conn: sqlite3.Connection, p: Populated) -> int:
    key, height = conn.execute("SELECT key, height FROM state WHERE key LIKE 'member/%alice'").fetchone()
    conn.execute("UPDATE state SET value=? WHERE key=?", (b'{"key":"x","org":"demo-hospital","role":"admin"}', key))
    return int(height)


def state_height(conn: sqlite3.Connection, p: Populated) -> int:
    key, height = conn.execute("SELECT key, height FROM state WHERE key='params'").fetchone()
    conn.execute("UPDATE state SET height=height+1 WHERE key=?", (key,))
    return int(height)


def state_insert(conn: sqlite3.Connection, p: Populated) -> int:
    conn.execute("INSERT INTO state VALUES('member/demo-hospital/ghost', ?, 3)", (b'{"org":"demo-hospital"}',))
    return 3


def state_delete(conn: sqlite3.Connection, p: Populated) -> int:
    (height,) = conn.execute("SELECT height FROM state WHERE key LIKE 'member/%bob'").fetchone()
    conn.execute("DELETE FROM state WHERE key LIKE 'member/%bob'")
    return int(height)


def tree_run_hash(conn: sqlite3.Connection, p: Populated) -> int:
    level, start, height, hashes = conn.execute(
        "SELECT level, start, height, hashes FROM tree_runs WHERE level=1 ORDER BY start DESC LIMIT 1"
    ).fetchone()
    conn.execute("UPDATE tree_runs SET hashes=? WHERE level=? AND start=?", (_flip(bytes(hashes), 3), level, start))
    return int(height)


def tree_run_height(conn: sqlite3.Connection, p: Populated) -> int:
    level, start, height = conn.execute(
        "SELECT level, start, height FROM tree_runs WHERE level=0 AND height=4"
    ).fetchone()
    conn.execute("UPDATE tree_runs SET height=5 WHERE level=? AND start=?", (level, start))
    return int(height)


def tx_deleted(conn: sqlite3.Connection, p: Populated) -> int:
    conn.execute("DELETE FROM txs WHERE leaf_index=?", (_tx_in_block(conn, 3) + 2,))
    return 3


def tx_swapped(conn: sqlite3.Connection, p: Populated) -> int:
    """Two transactions of block 5 exchange places (their bodies and signatures)."""
    a = _tx_in_block(conn, 5)
    rows = conn.execute(
        "SELECT leaf_index, tx_id, signer, nonce, body, signature FROM txs WHERE leaf_index IN (?, ?)", (a, a + 1)
    ).fetchall()
    conn.execute("UPDATE txs SET tx_id=randomblob(32), nonce=hex(randomblob(8)) WHERE leaf_index IN (?, ?)",
                 (a, a + 1))
    for (li, *_), (_, tx_id, signer, nonce, body, sig) in zip(rows, reversed(rows), strict=True):
        conn.execute(
            "UPDATE txs SET tx_id=?, signer=?, nonce=?, body=?, signature=? WHERE leaf_index=?",
            (tx_id, signer, nonce, body, sig, li),
        )
    return 5


def last_block_dropped(conn: sqlite3.Connection, p: Populated) -> int:
    (top,) = conn.execute("SELECT MAX(height) FROM blocks").fetchone()
    conn.execute("DELETE FROM blocks WHERE height=?", (top,))
    conn.execute("DELETE FROM tree_heads WHERE height=?", (top,))
    return int(top)


CASES: list[Edit] = [
    column_edit("blocks", "header", 3),
    column_edit("blocks", "hash", 2),
    column_edit("blocks", "signature", 4),
    column_edit("tree_heads", "root_hash", 3),
    column_edit("tree_heads", "signature", 5),
    column_edit("tree_heads", "timestamp", 2),
    column_edit("tree_heads", "signer", 6),
    column_edit("tree_heads", "tree_size", 4),
    column_edit("txs", "body", 3),
    column_edit("txs", "signature", 5),
    column_edit("txs", "outcome", 3),
    column_edit("txs", "tx_id", 4),
    column_edit("txs", "signer", 2),
    column_edit("txs", "nonce", 5),
    column_edit("txs", "height", 6),
    state_value,
    state_height,
    state_insert,
    state_delete,
    tree_run_hash,
    tree_run_height,
    tx_deleted,
    tx_swapped,
    last_block_dropped,
]


def _verify(data: Path) -> VerificationError:
    store = SqliteStore(data, readonly=True)
    try:
        with pytest.raises(VerificationError) as info:
            verify_store(store, load_registry(CORE_REGISTRY))
    finally:
        store.close()
    return info.value


def test_untouched_ledger_verifies(populated: Populated) -> None:
    store = SqliteStore(populated.data, readonly=True)
    report = verify_store(store, load_registry(CORE_REGISTRY))
    store.close()
    assert report.blocks == 7
    assert report.tree_size == 2 + 2 + 6 + 1 + 7 + 1
    statuses = [r.status for r in populated.receipts]
    assert statuses.count("REJECTED") == 1


@pytest.mark.parametrize("edit", CASES, ids=lambda e: e.__name__)
def test_any_edit_is_found_at_its_height(populated: Populated, edit: Edit) -> None:
    conn = sqlite3.connect(populated.data / "ledger.sqlite", isolation_level=None)
    conn.execute("BEGIN")
    height = edit(conn, populated)
    conn.execute("COMMIT")
    conn.close()
    error = _verify(populated.data)
    assert error.height == height, error.message


def test_index_only_corruption_is_found(populated: Populated) -> None:
    """A byte changed in an index page (table rows intact) is caught and placed."""
    db = populated.data / "ledger.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    leaf = int(conn.execute("SELECT MIN(leaf_index) FROM txs WHERE height=4").fetchone()[0])
    (tx_id,) = conn.execute("SELECT tx_id FROM txs WHERE leaf_index=?", (leaf,)).fetchone()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    raw = bytearray(db.read_bytes())
    positions = [i for i in range(len(raw)) if raw[i : i + 32] == tx_id]
    assert len(positions) == 2, "tx_id must appear once in the table and once in its index"
    body_pages = {i // page_size for i in range(len(raw)) if raw[i : i + 12] == b'{"created_at'}
    index_pos = next(p for p in positions if p // page_size not in body_pages)
    raw[index_pos + 31] ^= 0x01
    db.write_bytes(bytes(raw))
    error = _verify(populated.data)
    assert error.height == 4, error.message


def test_cli_names_the_height_and_exits_nonzero(populated: Populated) -> None:
    conn = sqlite3.connect(populated.data / "ledger.sqlite")
    with conn:
        _update_blob(conn, "txs", "body", "leaf_index=?", (_tx_in_block(conn, 5),))
    conn.close()
    run = subprocess.run(
        [sys.executable, "-m", "medledger", "verify", "--data", str(populated.data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "height 5" in run.stdout and "transaction" in run.stdout, "the verdict is a result: stdout"
    ok = subprocess.run(
        [sys.executable, "-m", "medledger", "verify", "--data", str(populated.data), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 2
    assert '"height": 5' in ok.stdout


def test_dropped_unique_index_is_found(populated: Populated) -> None:
    """Without its unique index a table could hold a replayed tx_id; verify refuses the store."""
    conn = sqlite3.connect(populated.data / "ledger.sqlite")
    conn.execute("DROP INDEX txs_nonce")
    conn.close()
    error = _verify(populated.data)
    assert "txs_nonce" in error.message


def test_stray_merkle_run_is_found(populated: Populated) -> None:
    conn = sqlite3.connect(populated.data / "ledger.sqlite")
    with conn:
        conn.execute("INSERT INTO tree_runs VALUES(0, 999999, 4, zeroblob(32))")
    conn.close()
    error = _verify(populated.data)
    assert error.height == 4
    assert "produced by no block" in error.message


def test_cli_pool_path_finds_a_forged_signature(populated: Populated) -> None:
    """The CLI checks signatures on the worker pool, ahead of replay; a bad one is still named in order."""
    conn = sqlite3.connect(populated.data / "ledger.sqlite")
    with conn:
        _update_blob(conn, "txs", "signature", "leaf_index=?", (_tx_in_block(conn, 5) + 3,))
    conn.close()
    run = subprocess.run([sys.executable, "-m", "medledger", "verify", "--data", str(populated.data), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    report = json.loads(run.stdout)
    assert report["height"] == 5 and report["tx_id"] and "signature" in report["error"]
