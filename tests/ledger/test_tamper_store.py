"""Every byte of the ledger file is re-derived or checked: the parts no block derives.

``test_tamper.py`` edits what blocks derive (headers, envelopes, state, Merkle
runs, alerts). These cases edit the rest, as an insider with database access
would: the ``meta`` rows, the schema (an added trigger, view, table or index),
rows of a table beyond the blocks, and values stored with another SQLite type
than the node writes (same text, different bytes on disk).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable

import pytest

from ledger_factory import Populated, verify_ledger
from medledger.errors import VerificationError

Edit = Callable[[sqlite3.Connection], None]


def meta_version(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (b"2",))


def meta_key(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET key='schema_versio' WHERE key='schema_version'")


def meta_extra_row(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO meta VALUES('note', ?)", (b"x",))


def meta_value_as_text(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET value=CAST(value AS TEXT) WHERE key='schema_version'")


def trigger(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TRIGGER quiet BEFORE INSERT ON txs BEGIN SELECT 1; END")


def view(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE VIEW everything AS SELECT * FROM txs")


def table_with_sequence(conn: sqlite3.Connection) -> None:
    """An AUTOINCREMENT table brings sqlite_sequence with it."""
    conn.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT)")
    conn.execute("INSERT INTO notes(text) VALUES('x')")


def extra_index(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE INDEX txs_body ON txs(body)")


def stray_tree_head(conn: sqlite3.Connection) -> None:
    row = conn.execute("SELECT tree_size, root_hash, timestamp, signer, signature FROM tree_heads "
                       "ORDER BY height DESC LIMIT 1").fetchone()
    conn.execute("INSERT INTO tree_heads VALUES(99, ?, ?, ?, ?, ?)", (row[0] + 1000, *row[1:]))


def state_value_as_text(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE state SET value=CAST(value AS TEXT) WHERE key='params'")


def tx_id_as_text(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE txs SET tx_id=hex(tx_id) WHERE leaf_index=3")


def run_hashes_as_text(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE tree_runs SET hashes=hex(hashes) WHERE level=0 AND start=0")


CASES: list[tuple[Edit, str]] = [
    (meta_version, "meta table"),
    (meta_key, "meta table"),
    (meta_extra_row, "meta table"),
    (meta_value_as_text, "meta table"),
    (trigger, "trigger 'quiet'"),
    (view, "view 'everything'"),
    (table_with_sequence, "table 'notes'"),
    (extra_index, "index 'txs_body'"),
    (stray_tree_head, "tree heads"),
    (state_value_as_text, "state holds a value of the wrong type"),
    (tx_id_as_text, "txs holds a value of the wrong type"),
    (run_hashes_as_text, "tree_runs holds a value of the wrong type"),
]


def _edit(populated: Populated, edit: Edit) -> None:
    conn = sqlite3.connect(populated.data / "ledger.sqlite", isolation_level=None)
    conn.execute("BEGIN")
    edit(conn)
    conn.execute("COMMIT")
    conn.close()


@pytest.mark.parametrize(("edit", "said"), CASES, ids=[e.__name__ for e, _ in CASES])
def test_any_edit_outside_the_blocks_is_found(populated: Populated, edit: Edit, said: str) -> None:
    _edit(populated, edit)
    with pytest.raises(VerificationError) as info:
        verify_ledger(populated.data)
    assert said in info.value.message


def test_cli_refuses_a_ledger_with_a_trigger(populated: Populated) -> None:
    """The CLI verdict, not only the library's: a trigger added to the file fails `medledger verify`."""
    _edit(populated, trigger)
    run = subprocess.run(
        [sys.executable, "-m", "medledger", "verify", "--data", str(populated.data)],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2
    assert "trigger 'quiet'" in run.stdout + run.stderr
