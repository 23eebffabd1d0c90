"""The default store: one SQLite file in WAL mode.

One block is one SQLite transaction committed with ``synchronous=FULL``, so
the write-ahead log is fsynced before ``append_block`` returns: a block is
either wholly on disk or absent after a crash. The committer thread owns the
one writing connection; every other thread reads through its own connection,
which WAL lets run beside the writer without blocking it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from medledger.errors import StoreError
from medledger.ledger import merkle
from medledger.ledger.block import BlockHeader, TreeHead
from medledger.ledger.canonical import canonical_bytes
from medledger.ledger.store import BlockRecord, ChainTip, NewBlock, NodeId, TxRecord
from medledger.ledger.timefmt import parse_ms

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks(
    height INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE,
    header BLOB NOT NULL, signature BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tree_heads(
    tree_size INTEGER PRIMARY KEY, height INTEGER NOT NULL UNIQUE, root_hash TEXT NOT NULL,
    timestamp TEXT NOT NULL, signer TEXT NOT NULL, signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS txs(
    leaf_index INTEGER PRIMARY KEY, height INTEGER NOT NULL, tx_id BLOB NOT NULL UNIQUE,
    signer TEXT NOT NULL, nonce TEXT NOT NULL, body BLOB NOT NULL, signature BLOB NOT NULL,
    outcome BLOB NOT NULL, UNIQUE(nonce, signer));
CREATE INDEX IF NOT EXISTS txs_height ON txs(height);
CREATE TABLE IF NOT EXISTS tree_nodes(
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY(level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state(
    key TEXT PRIMARY KEY, value BLOB NOT NULL, height INTEGER NOT NULL) WITHOUT ROWID;
"""
DB_NAME = "ledger.sqlite"


def _tx(row: tuple[Any, ...]) -> TxRecord:
    return TxRecord(row[0], row[1], row[2].hex(), row[3], row[4], row[5])


class SqliteStore:
    """A ledger store in ``DIR/ledger.sqlite``."""

    def __init__(self, data_dir: Path, *, readonly: bool = False) -> None:
        self.path = Path(data_dir) / DB_NAME
        self.readonly = readonly
        if readonly and not self.path.exists():
            raise StoreError(f"no ledger at {self.path}; run `medledger init --data {data_dir}` first", code="no-ledger")
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        if not readonly:
            Path(data_dir).mkdir(parents=True, exist_ok=True)
            self._writer = self._connect()
            with self._writer:
                self._writer.executescript(_SCHEMA)
                self._writer.execute(
                    "INSERT OR IGNORE INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION).encode(),)
                )

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.readonly:
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False,
                                       isolation_level=None)
            else:
                conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA cache_size=-65536")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open ledger store {self.path}: {exc}") from exc
        return conn

    @property
    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    # -- writes -----------------------------------------------------------------

    def append_block(self, block: NewBlock) -> None:
        if self._writer is None:
            raise StoreError("store is open read-only")
        conn = self._writer
        head = block.tree_head
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO blocks VALUES(?,?,?,?)",
                    (block.header.height, block.block_hash, block.header_bytes, block.signature),
                )
                conn.execute(
                    "INSERT INTO tree_heads VALUES(?,?,?,?,?,?)",
                    (head.tree_size, block.header.height, head.root_hash, head.timestamp, head.signer, head.signature),
                )
                height = block.header.height
                conn.executemany(
                    "INSERT INTO txs VALUES(?,?,?,?,?,?,?,?)",
                    [(li, height, bytes.fromhex(tid), sg, nc, body, sig, oc)
                     for li, tid, sg, nc, body, sig, oc in block.txs],
                )
                conn.executemany("INSERT INTO tree_nodes VALUES(?,?,?)", block.nodes)
                deletes = [(k,) for k, v in block.writes.items() if v is None]
                if deletes:
                    conn.executemany("DELETE FROM state WHERE key=?", deletes)
                conn.executemany(
                    "INSERT OR REPLACE INTO state VALUES(?,?,?)",
                    [(k, canonical_bytes(v), height) for k, v in block.writes.items() if v is not None],
                )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"cannot commit block {block.header.height}: {exc}") from exc

    # -- reads ------------------------------------------------------------------

    def tip(self) -> ChainTip | None:
        row = self._reader.execute("SELECT header, hash FROM blocks ORDER BY height DESC LIMIT 1").fetchone()
        if row is None:
            return None
        header = BlockHeader.from_json(orjson.loads(row[0]))
        return ChainTip(header.height, row[1], header.tree_size, header.state_root, parse_ms(header.timestamp))

    def get_state(self, key: str) -> Any | None:
        row = self._reader.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return None if row is None else orjson.loads(row[0])

    def state_items(self, prefix: str = "") -> Iterator[tuple[str, Any, int]]:
        cur = self._reader.execute(
            "SELECT key, value, height FROM state WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, prefix + "\U0010ffff"),
        )
        for key, value, height in cur:
            yield key, orjson.loads(value), height

    def seen(
        self, tx_ids: Sequence[str], nonces: Sequence[tuple[str, str]]
    ) -> tuple[set[str], set[tuple[str, str]]]:
        conn = self._reader
        found_ids: set[str] = set()
        found_nonces: set[tuple[str, str]] = set()
        for start in range(0, len(tx_ids), 500):
            chunk = [bytes.fromhex(t) for t in tx_ids[start:start + 500]]
            rows = conn.execute(
                f"SELECT tx_id FROM txs WHERE tx_id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            found_ids.update(r[0].hex() for r in rows)
        wanted = set(nonces)
        nonce_list = list({n for _, n in nonces})
        for start in range(0, len(nonce_list), 500):
            chunk = nonce_list[start:start + 500]
            rows = conn.execute(
                f"SELECT signer, nonce FROM txs WHERE nonce IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            found_nonces.update(pair for pair in map(tuple, rows) if pair in wanted)
        return found_ids, found_nonces

    _TX_COLS = "leaf_index, height, tx_id, body, signature, outcome"

    def tx(self, tx_id: str) -> TxRecord | None:
        try:
            raw = bytes.fromhex(tx_id)
        except ValueError:
            return None
        row = self._reader.execute(f"SELECT {self._TX_COLS} FROM txs WHERE tx_id=?", (raw,)).fetchone()
        return None if row is None else _tx(row)

    def tx_at(self, leaf_index: int) -> TxRecord | None:
        row = self._reader.execute(f"SELECT {self._TX_COLS} FROM txs WHERE leaf_index=?", (leaf_index,)).fetchone()
        return None if row is None else _tx(row)

    def block(self, height: int) -> BlockRecord | None:
        row = self._reader.execute(
            "SELECT b.height, b.header, b.hash, b.signature, t.tree_size, t.root_hash, t.timestamp, t.signer, "
            "t.signature FROM blocks b JOIN tree_heads t ON t.height = b.height WHERE b.height=?",
            (height,),
        ).fetchone()
        if row is None:
            return None
        return BlockRecord(row[0], row[1], row[2], row[3], TreeHead(row[4], row[5], row[6], row[7], row[8]))

    def block_txs(self, height: int) -> list[TxRecord]:
        rows = self._reader.execute(
            f"SELECT {self._TX_COLS} FROM txs WHERE height=? ORDER BY leaf_index", (height,)
        ).fetchall()
        return [_tx(r) for r in rows]

    def tree_head(self, tree_size: int | None = None) -> TreeHead | None:
        sql = "SELECT tree_size, root_hash, timestamp, signer, signature FROM tree_heads "
        if tree_size is None:
            row = self._reader.execute(sql + "ORDER BY tree_size DESC LIMIT 1").fetchone()
        else:
            row = self._reader.execute(sql + "WHERE tree_size=?", (tree_size,)).fetchone()
        return None if row is None else TreeHead(*row)

    def tree_nodes(self, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        wanted = list(dict.fromkeys(ids))
        out: dict[NodeId, bytes] = {}
        conn = self._reader
        for start in range(0, len(wanted), 400):
            chunk = wanted[start:start + 400]
            params = [v for pair in chunk for v in pair]
            clause = " OR ".join(["(level=? AND idx=?)"] * len(chunk))
            for level, idx, value in conn.execute(f"SELECT level, idx, hash FROM tree_nodes WHERE {clause}", params):
                out[(level, idx)] = value
        return out

    def frontier_cover(self, tree_size: int) -> list[bytes]:
        ids = merkle.perfect_cover(0, tree_size)
        nodes = self.tree_nodes(ids)
        return [nodes[i] for i in ids]

    def iter_blocks(self) -> Iterator[tuple[BlockRecord, list[TxRecord]]]:
        height = 0
        while True:
            record = self.block(height)
            if record is None:
                return
            yield record, self.block_txs(height)
            height += 1

    def meta(self, key: str) -> bytes | None:
        row = self._reader.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def connection(self) -> sqlite3.Connection:
        """This thread's read connection (verify scans whole tables through it)."""
        return self._reader

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
