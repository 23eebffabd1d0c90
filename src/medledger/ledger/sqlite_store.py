"""The default store: one SQLite file in WAL mode.

One block is one SQLite transaction committed with ``synchronous=FULL``, so
the write-ahead log is fsynced before ``append_block`` returns: a block is
either wholly on disk or absent after a crash.

Merkle nodes are stored as *runs*: the perfect nodes a block completes are
contiguous at each level, so each block writes one row per level (a blob of
hashes) instead of about two rows per transaction, which keeps the ingest
path cheap; a proof still reads only O(log n) rows by primary key. The committer thread owns the
one writing connection; every other thread reads through its own connection,
which WAL lets run beside the writer without blocking it.
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from medledger.errors import OperatorError, StoreError
from medledger.ledger import merkle
from medledger.ledger.block import BlockHeader, TreeHead
from medledger.ledger.store import AlertQuery, AlertRecord, BlockRecord, ChainTip, NewBlock, NodeId, TxRecord
from medledger.ledger.timefmt import parse_ms

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks(
    height INTEGER PRIMARY KEY, hash TEXT NOT NULL, header BLOB NOT NULL, signature BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tree_heads(
    height INTEGER PRIMARY KEY, tree_size INTEGER NOT NULL, root_hash TEXT NOT NULL,
    timestamp TEXT NOT NULL, signer TEXT NOT NULL, signature TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS tree_heads_size ON tree_heads(tree_size);
CREATE TABLE IF NOT EXISTS txs(
    leaf_index INTEGER PRIMARY KEY, height INTEGER NOT NULL, tx_id BLOB NOT NULL,
    signer TEXT NOT NULL, nonce TEXT NOT NULL, body BLOB NOT NULL, signature BLOB NOT NULL,
    outcome BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS txs_tx_id ON txs(tx_id);
CREATE UNIQUE INDEX IF NOT EXISTS txs_nonce ON txs(nonce, signer);
CREATE TABLE IF NOT EXISTS tree_runs(
    level INTEGER NOT NULL, start INTEGER NOT NULL, height INTEGER NOT NULL, hashes BLOB NOT NULL,
    PRIMARY KEY(level, start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state(
    key TEXT PRIMARY KEY, value BLOB NOT NULL, height INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts(
    height INTEGER NOT NULL, seq INTEGER NOT NULL, leaf_index INTEGER, rule TEXT NOT NULL,
    severity TEXT NOT NULL, institution TEXT, practitioner TEXT, block_ms INTEGER NOT NULL,
    body BLOB NOT NULL, PRIMARY KEY(height, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts(rule, height, seq);
CREATE INDEX IF NOT EXISTS alerts_institution ON alerts(institution, height, seq);
CREATE INDEX IF NOT EXISTS alerts_practitioner ON alerts(practitioner, height, seq);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts(block_ms);
"""


def expected_schema() -> list[tuple[str, str, str, str | None]]:
    """(type, name, table, normalised SQL or None) of every schema object this store creates, SQLite's
    automatic primary-key indexes included: anything else in a ledger file was put there by someone else."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(_SCHEMA)
        return [
            (kind, name, table, None if sql is None else " ".join(sql.split()))
            for kind, name, table, sql in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
        ]
    finally:
        conn.close()


def expected_meta() -> dict[str, bytes]:
    """The ``meta`` table's rows, exactly: nothing in it is derived from the blocks, so it is checked whole."""
    return {"schema_version": str(SCHEMA_VERSION).encode()}


#: the SQLite storage class of each column of each table (``typeof``); verify refuses any other, since a
#: value of another class can compare or decode differently from the bytes that were signed and hashed
COLUMN_TYPES: dict[str, dict[str, tuple[str, ...]]] = {
    "meta": {"key": ("text",), "value": ("blob",)},
    "blocks": {"height": ("integer",), "hash": ("text",), "header": ("blob",), "signature": ("blob",)},
    "tree_heads": {
        "height": ("integer",), "tree_size": ("integer",), "root_hash": ("text",), "timestamp": ("text",),
        "signer": ("text",), "signature": ("text",),
    },
    "txs": {
        "leaf_index": ("integer",), "height": ("integer",), "tx_id": ("blob",), "signer": ("text",),
        "nonce": ("text",), "body": ("blob",), "signature": ("blob",), "outcome": ("blob",),
    },
    "tree_runs": {"level": ("integer",), "start": ("integer",), "height": ("integer",), "hashes": ("blob",)},
    "state": {"key": ("text",), "value": ("blob",), "height": ("integer",)},
    "alerts": {
        "height": ("integer",), "seq": ("integer",), "leaf_index": ("integer", "null"), "rule": ("text",),
        "severity": ("text",), "institution": ("text", "null"), "practitioner": ("text", "null"),
        "block_ms": ("integer",), "body": ("blob",),
    },
}


#: Secondary indexes that answers rely on; verify checks every lookup through each.
INDEXES = (
    "txs_tx_id",
    "txs_nonce",
    "tree_heads_size",
    "alerts_rule",
    "alerts_institution",
    "alerts_practitioner",
    "alerts_time",
)
DB_NAME = "ledger.sqlite"


#: hashes per stored run: 4 KiB, about one page, so a proof's lookups each read one small row
RUN_MAX = 128


#: rows per multi-row INSERT, largest first; every block's rows go out in at most 7 statements of
#: each size, whose texts repeat, so the connection's statement cache keeps them all compiled
_GROUPS = (256, 32, 4, 1)


@functools.lru_cache(maxsize=64)
def _values_sql(head: str, width: int, rows: int) -> str:
    one = "(" + ",".join("?" * width) + ")"
    return head + ",".join([one] * rows)


def _insert(conn: sqlite3.Connection, head: str, width: int, rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (each ``width`` values) with a few multi-row statements instead of executemany.

    ``executemany`` releases the interpreter lock around every row's step and
    must win it back before the next; with the node's other threads busy, each
    of those hand-backs can wait a whole switch interval (5 ms). Measured with
    one busy thread beside it: 6.8 ms of wall per row, against 34 us for the
    same rows inserted 500 to a statement. A block's rows are few statements
    here, so the committer keeps the lock and the block's wall time follows
    its CPU time.
    """
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width  # 32766 by default, 999 before 3.32
    at = 0
    for size in _GROUPS:
        size = min(size, limit)
        if len(rows) - at < size:
            continue
        sql = _values_sql(head, width, size)
        while len(rows) - at >= size:
            conn.execute(sql, list(itertools.chain.from_iterable(rows[at : at + size])))
            at += size


def _exclusive(path: Path) -> int:
    """Hold an exclusive lock on the ledger for this process's lifetime.

    A ledger has exactly one writer: two nodes committing to one file would
    race for the same heights. Readers (verify, auditors) take no lock; WAL
    lets them read beside the writer. The lock dies with the process, so a
    crashed node never leaves a stale one behind.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"the ledger in {path.parent} is already open for writing by another medledger process; stop that "
            "node first (verify can run beside it)",
            code="ledger-busy",
            status=409,
        ) from None
    return fd


def node_runs(nodes: Sequence[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """Group perfect nodes into contiguous (level, start, hashes) runs of at most RUN_MAX."""
    by_level: dict[int, list[tuple[int, bytes]]] = {}
    for level, idx, value in nodes:
        by_level.setdefault(level, []).append((idx, value))
    runs: list[tuple[int, int, bytes]] = []
    for level, items in by_level.items():
        items.sort()
        start = prev = items[0][0]
        chunk = [items[0][1]]
        for idx, value in items[1:]:
            if idx != prev + 1 or len(chunk) == RUN_MAX:
                runs.append((level, start, b"".join(chunk)))
                start, chunk = idx, []
            chunk.append(value)
            prev = idx
        runs.append((level, start, b"".join(chunk)))
    return runs


def _tx(row: tuple[Any, ...]) -> TxRecord:
    return TxRecord(row[0], row[1], row[2].hex(), row[3], row[4], row[5], row[6], row[7])


def _alert(row: tuple[Any, ...]) -> AlertRecord:
    return AlertRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bytes(row[8]))


class SqliteStore:
    """A ledger store in ``DIR/ledger.sqlite``."""

    def __init__(self, data_dir: Path, *, readonly: bool = False) -> None:
        self.path = Path(data_dir) / DB_NAME
        self.readonly = readonly
        if readonly and not self.path.exists():
            raise StoreError(
                f"no ledger at {self.path}; run `medledger init --data {data_dir}` first", code="no-ledger"
            )
        self._local = threading.local()
        #: every thread's reader, so close() releases them all (not only the calling thread's): a reader
        #: left to the garbage collector closes at a random later moment, and the last close deletes -wal
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._lock_file: int | None = None
        if not readonly:
            Path(data_dir).mkdir(parents=True, exist_ok=True)
            self._lock_file = _exclusive(Path(data_dir) / "ledger.lock")
            self._writer = self._connect()
            with self._writer:
                self._writer.executescript(_SCHEMA)
                self._writer.executemany("INSERT OR IGNORE INTO meta VALUES(?, ?)", expected_meta().items())

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.readonly:
                conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
                )
            else:
                conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                # Checkpoint every ~40 MiB of WAL instead of 4 MiB: index pages that
                # random keys (tx_id, nonce) touch are then copied back once per many
                # blocks rather than once per block (measured: -33% wall per row).
                conn.execute("PRAGMA wal_autocheckpoint=10000")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA cache_size=-65536")
        except sqlite3.Error as exc:
            raise OperatorError(
                "the node cannot open its ledger store; the operator must repair it",
                code="store-unavailable",
                cause=f"cannot open ledger store {self.path}: {exc}",
            ) from exc
        return conn

    @property
    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
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
                    (block.header.height, head.tree_size, head.root_hash, head.timestamp, head.signer, head.signature),
                )
                height = block.header.height
                _insert(
                    conn,
                    "INSERT INTO txs VALUES",
                    8,
                    [
                        (li, height, bytes.fromhex(tid), sg, nc, body, sig, oc)
                        for li, tid, sg, nc, body, sig, oc in block.txs
                    ],
                )
                self._insert_runs(conn, block.nodes, height)
                deletes = [(k,) for k, v in block.writes.items() if v is None]
                if deletes:
                    conn.executemany("DELETE FROM state WHERE key=?", deletes)
                _insert(
                    conn,
                    "INSERT OR REPLACE INTO state VALUES",
                    3,
                    [(k, v, height) for k, v in block.writes.items() if v is not None],
                )
                if block.alerts:
                    _insert(conn, "INSERT INTO alerts VALUES", 9, [(height, *row) for row in block.alerts])
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"cannot commit block {block.header.height}: {exc}") from exc

    @staticmethod
    def _insert_runs(conn: sqlite3.Connection, nodes: Sequence[tuple[int, int, bytes]], height: int) -> None:
        _insert(
            conn,
            "INSERT INTO tree_runs VALUES",
            4,
            [(level, start, height, blob) for level, start, blob in node_runs(nodes)],
        )

    def append_tree_nodes(self, nodes: Sequence[tuple[int, int, bytes]], height: int) -> None:
        """Bulk-load Merkle nodes (benchmarks build large trees this way)."""
        if self._writer is None:
            raise StoreError("store is open read-only")
        with self._write_lock, self._writer:
            self._insert_runs(self._writer, nodes, height)

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

    def state_range(self, prefix: str, *, after: str | None = None, limit: int = 100) -> list[tuple[str, Any]]:
        """State entries whose key starts with ``prefix``, in key order, after ``after`` (a cursor).

        One range scan of the primary key: listings of institutions or
        practitioners never read the rest of the state.
        """
        low = prefix if after is None or after < prefix else after
        op = ">" if after is not None and after >= prefix else ">="
        rows = self._reader.execute(
            f"SELECT key, value FROM state WHERE key {op} ? AND key < ? ORDER BY key LIMIT ?",
            (low, prefix + "\U0010ffff", max(0, limit)),
        )
        return [(key, orjson.loads(value)) for key, value in rows]

    def get_states(self, keys: Iterable[str]) -> dict[str, Any]:
        wanted = list(keys)
        out: dict[str, Any] = {}
        conn = self._reader
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for key, value in conn.execute(
                f"SELECT key, value FROM state WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ):
                out[key] = orjson.loads(value)
        return out

    def find_nonces(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The tx_id already committed under each ``(signer, nonce)`` that has one.

        One indexed lookup answers both replay questions: a hit with the same
        tx_id is a replayed transaction, a hit with another is a reused nonce.
        """
        conn = self._reader
        wanted = set(pairs)
        found: dict[tuple[str, str], str] = {}
        nonce_list = list({n for _, n in wanted})
        for start in range(0, len(nonce_list), 500):
            some = nonce_list[start : start + 500]
            for signer, nonce, tx_id in conn.execute(
                f"SELECT signer, nonce, tx_id FROM txs WHERE nonce IN ({','.join('?' * len(some))})", some
            ):
                if (signer, nonce) in wanted:
                    found[(signer, nonce)] = bytes(tx_id).hex()
        return found

    _TX_COLS = "leaf_index, height, tx_id, body, signature, outcome, signer, nonce"

    def tx(self, tx_id: str) -> TxRecord | None:
        try:
            raw = bytes.fromhex(tx_id)
        except ValueError:
            return None
        row = self._reader.execute(f"SELECT {self._TX_COLS} FROM txs WHERE tx_id=?", (raw,)).fetchone()
        return None if row is None else _tx(row)

    def block(self, height: int) -> BlockRecord | None:
        row = self._reader.execute(
            "SELECT b.height, b.header, b.hash, b.signature, t.tree_size, t.root_hash, t.timestamp, t.signer, "
            "t.signature FROM blocks b LEFT JOIN tree_heads t ON t.height = b.height WHERE b.height=?",
            (height,),
        ).fetchone()
        if row is None:
            return None
        return BlockRecord(row[0], row[1], row[2], row[3], TreeHead(row[4], row[5], row[6], row[7], row[8]))

    def block_txs(self, height: int) -> list[TxRecord]:
        row = self._reader.execute("SELECT header FROM blocks WHERE height=?", (height,)).fetchone()
        if row is None:
            return []
        try:
            header = orjson.loads(row[0])
            first = header["tree_size"] - header["tx_count"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise StoreError(f"block {height} header is damaged; run `medledger verify`") from exc
        rows = self._reader.execute(
            f"SELECT {self._TX_COLS} FROM txs WHERE leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index",
            (first, header["tree_size"]),
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
        """The stored perfect nodes asked for (missing ones are simply absent)."""
        out: dict[NodeId, bytes] = {}
        conn = self._reader
        runs: dict[int, list[tuple[int, bytes]]] = {}
        for level, idx in ids:
            if (level, idx) in out:
                continue
            blob = None
            for start, hashes in runs.get(level, ()):
                if start <= idx < start + len(hashes) // 32:
                    blob = (start, hashes)
                    break
            if blob is None:
                row = conn.execute(
                    "SELECT start, hashes FROM tree_runs WHERE level=? AND start<=? ORDER BY start DESC LIMIT 1",
                    (level, idx),
                ).fetchone()
                if row is None:
                    continue
                blob = (row[0], bytes(row[1]))
                runs.setdefault(level, []).append(blob)
            offset = (idx - blob[0]) * 32
            if 0 <= offset < len(blob[1]):
                out[(level, idx)] = blob[1][offset : offset + 32]
        return out

    def iter_tree_runs(self) -> Iterator[tuple[int, int, int, bytes]]:
        """Every stored run (level, start, height, hashes), for verify."""
        for level, start, height, hashes in self._reader.execute(
            "SELECT level, start, height, hashes FROM tree_runs ORDER BY level, start"
        ):
            yield level, start, height, bytes(hashes)

    def frontier_cover(self, tree_size: int) -> list[bytes]:
        ids = merkle.perfect_cover(0, tree_size)
        nodes = self.tree_nodes(ids)
        return [nodes[i] for i in ids]

    def alerts(self, query: AlertQuery) -> list[AlertRecord]:
        """Alerts matching every given filter, newest first (one indexed range scan)."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("rule", query.rule),
            ("institution", query.institution),
            ("practitioner", query.practitioner),
        ):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        if query.since_ms is not None:
            where.append("block_ms>=?")
            args.append(query.since_ms)
        if query.until_ms is not None:
            where.append("block_ms<?")
            args.append(query.until_ms)
        if query.before is not None:
            where.append("(height, seq) < (?, ?)")
            args.extend(query.before)
        sql = f"SELECT {self._ALERT_COLS} FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY height DESC, seq DESC LIMIT ?"
        args.append(max(0, query.limit))
        return [_alert(row) for row in self._reader.execute(sql, args)]

    def alert_counts(self) -> dict[str, dict[str, int]]:
        """Alerts per rule and severity (the supervision summary), one grouped scan."""
        counts: dict[str, dict[str, int]] = {}
        for rule, severity, n in self._reader.execute(
            "SELECT rule, severity, COUNT(*) FROM alerts GROUP BY rule, severity ORDER BY rule"
        ):
            counts.setdefault(rule, {})[severity] = n
        return counts

    def block_alerts(self, height: int) -> list[AlertRecord]:
        rows = self._reader.execute(
            f"SELECT {self._ALERT_COLS} FROM alerts WHERE height=? ORDER BY seq", (height,)
        ).fetchall()
        return [_alert(row) for row in rows]

    _ALERT_COLS = "height, seq, leaf_index, rule, severity, institution, practitioner, block_ms, body"

    def iter_blocks(self) -> Iterator[tuple[BlockRecord, list[TxRecord]]]:
        """Blocks in height order with their transactions, trusting no header.

        Transactions are streamed once in leaf order and grouped by their
        ``height`` column, so a damaged header cannot hide or misplace rows:
        whatever is grouped wrongly shows up as a count or position mismatch.
        """
        conn = self.connection()
        txs = conn.execute(f"SELECT {self._TX_COLS} FROM txs ORDER BY leaf_index")
        pending = txs.fetchone()
        for (height,) in conn.execute("SELECT height FROM blocks ORDER BY height").fetchall():
            record = self.block(height)
            if record is None:
                record = BlockRecord(height, b"", "", b"", TreeHead(-1, "", "", "", ""))
            group: list[TxRecord] = []
            while pending is not None and pending[1] <= height:
                group.append(_tx(pending))
                pending = txs.fetchone()
            yield record, group

    def connection(self) -> sqlite3.Connection:
        """This thread's read connection (verify scans whole tables through it)."""
        return self._reader

    def close(self) -> None:
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._local = threading.local()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._lock_file is not None:
            os.close(self._lock_file)  # closing the descriptor releases the lock
            self._lock_file = None
