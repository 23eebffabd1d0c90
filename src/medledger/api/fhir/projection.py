"""The FHIR read projection: committed blocks indexed into ``<data_dir>/fhir.sqlite``.

The ledger is the record; this file is a derived, disposable index of it.
It stores the last height it indexed (and that block's hash) in the same
SQLite transaction as the rows, so a crash leaves it consistent, and at
start it catches up from the store's blocks; deleting the file (or pointing
it at another ledger, or changing :data:`SCHEMA`) rebuilds it from scratch.

Following new blocks: the node calls listeners on its committer thread, which
is the ingest hot path, so the listener only wakes a worker thread that
indexes in the background. Reads never wait for the worker: they call
:meth:`Projection.catch_up` first, which indexes up to the node's tip under
the same lock, so a read right after a write receipt always sees the resource
(the node advances its tip before it resolves receipts).

Only ACCEPTED and ACCEPTED_WITH_ALERTS transactions become resources; a
REJECTED one is evidence on the ledger (``/v1/alerts``), not a resource.
Who may read a row is kept beside it (``readers``: the institutions whose
members recorded it), so scoping is one indexed join, not a policy in Python.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from medledger.api.fhir import conventions as cv
from medledger.api.fhir.render import RENDERERS, Context, Row, Tx, render
from medledger.errors import OperatorError, StoreError
from medledger.ledger.identity import signer_of
from medledger.ledger.sqlite_store import SqliteStore
from medledger.ledger.store import Store
from medledger.ledger.timefmt import format_ms, parse_ms
from medledger.ledger.txtypes import Signer
from medledger.node.node import Node

log = logging.getLogger(__name__)

DB_NAME = "fhir.sqlite"
#: bump when rows would render differently: the file is then rebuilt from the ledger at start
SCHEMA = "fhir-projection/1"
ACCEPTED_STATUSES = frozenset({"ACCEPTED", "ACCEPTED_WITH_ALERTS"})
#: blocks indexed per SQLite transaction (bounded so a long catch-up does not hold one huge write)
CHUNK_BLOCKS = 64
#: how long the follower thread waits for another block before it exits (restarted by the next block)
IDLE_SECONDS = 2.0
#: the follower's share of the interpreter while blocks keep coming, and its step: indexing in the
#: background once cost the native submission path a third of its rate (measured with py-spy); reads
#: still catch up fully before answering, so a lagging follower costs a reader time, never a wrong answer
FOLLOW_DUTY = 0.25
FOLLOW_BLOCKS = 8

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources(
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    org TEXT,
    patient TEXT,
    practitioner TEXT,
    last_updated INTEGER NOT NULL,
    tx_id TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY(type, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS resources_patient ON resources(type, patient, id);
CREATE INDEX IF NOT EXISTS resources_practitioner ON resources(type, practitioner, id);
CREATE INDEX IF NOT EXISTS resources_updated ON resources(type, last_updated);
CREATE TABLE IF NOT EXISTS readers(
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    org TEXT NOT NULL,
    PRIMARY KEY(type, id, org)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readers_org ON readers(org, type, id);
"""


@dataclass(frozen=True)
class Query:
    """One search over one resource type; every filter optional and ANDed, values within one ORed."""

    type: str
    ids: Sequence[str] = ()
    patients: Sequence[str] = ()
    practitioners: Sequence[str] = ()
    #: (SQL comparison, epoch ms) pairs on last_updated: (">=", t), ("<", t)
    updated: Sequence[tuple[str, int]] = ()
    #: None: a supervisor, every row; otherwise only rows this institution may read
    org: str | None = None
    #: resume after this logical id (the page cursor): ids order the result, so pages never skip or repeat
    after: str | None = None
    count: int = 50


@dataclass
class Page:
    #: (logical id, resource JSON) in id order
    resources: list[tuple[str, bytes]] = field(default_factory=list)
    total: int = 0
    last_id: str | None = None
    more: bool = False


class Projection:
    """The off-ledger index of FHIR resources behind ``GET /fhir``, for one node."""

    def __init__(self, node: Node, path: Path | None = None) -> None:
        self.node = node
        self.path = path if path is not None else Path(node.config.data_dir) / DB_NAME
        self._lock = threading.Lock()
        self._local = threading.local()
        self._signers: dict[str, Signer] = {}
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self._writer = self._connect()
        with self._writer:
            self._writer.executescript(_SCHEMA_SQL)
        self._indexed = self._check_or_reset()

    # -- storage ------------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # derived data: a crash may lose the last chunk, which the next start re-indexes from the ledger
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error as exc:
            raise OperatorError(
                "the node cannot open its FHIR index; the operator must repair it",
                code="store-unavailable",
                cause=f"cannot open the FHIR projection {self.path}: {exc}",
            ) from exc
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _meta(self, key: str) -> str | None:
        row = self._writer.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _check_or_reset(self) -> int:
        """The height indexed so far, or -1 after wiping a file that does not describe this ledger."""
        schema, height, block_hash = self._meta("schema"), self._meta("height"), self._meta("block_hash")
        if schema == SCHEMA and height is not None:
            indexed = int(height)
            block = self.node.store.block(indexed) if indexed >= 0 else None
            if indexed < 0 or (block is not None and block.block_hash == block_hash):
                return indexed
            log.warning("FHIR projection %s describes another ledger; rebuilding it", self.path)
        with self._transaction() as conn:
            conn.execute("DELETE FROM resources")
            conn.execute("DELETE FROM readers")
            conn.execute("DELETE FROM meta")
            conn.execute("INSERT INTO meta VALUES('schema', ?)", (SCHEMA,))
            conn.execute("INSERT INTO meta VALUES('height', '-1')")
        return -1

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @property
    def indexed_height(self) -> int:
        return self._indexed

    # -- following the ledger -----------------------------------------------------------------------------

    def on_block(self, height: int, *_: Any) -> None:
        """Node listener (committer thread): wake the follower; indexing happens off the hot path."""
        self._wake.set()
        worker = self._worker
        if worker is None or not worker.is_alive():
            self.start_follower()

    def start_follower(self) -> None:
        with self._worker_lock:
            if self._worker is not None and self._worker.is_alive():
                return
            self._worker = threading.Thread(target=self._follow, name="medledger-fhir-projection", daemon=True)
            self._worker.start()

    def _follow(self) -> None:
        """Index while blocks keep coming; exit after :data:`IDLE_SECONDS` without one.

        The follower reads the ledger through its own read-only store, closed when it exits, so a
        follower that comes and goes leaves no connection behind in the node's store.
        """
        try:
            store = SqliteStore(Path(self.node.config.data_dir), readonly=True)
        except StoreError:
            log.debug("FHIR projection follower could not open the ledger", exc_info=True)
            return
        try:
            while True:
                self._wake.clear()
                started = time.monotonic()
                self.catch_up(store, max_blocks=FOLLOW_BLOCKS)
                if self._indexed < self.node.tip.height:
                    # background indexing shares one interpreter with the committer: take at most
                    # FOLLOW_DUTY of it while blocks keep coming (a read catches up the rest itself)
                    time.sleep((time.monotonic() - started) * (1 / FOLLOW_DUTY - 1))
                    continue
                if not self._wake.wait(IDLE_SECONDS):
                    return
        except Exception:
            # the node may be closing under us; reads catch up on their own, so nothing is lost
            log.debug("FHIR projection follower stopped", exc_info=True)
        finally:
            store.close()

    def catch_up(self, store: Store | None = None, *, max_blocks: int | None = None) -> int:
        """Index every block up to the node's tip (at most ``max_blocks`` of them); returns the height indexed."""
        target = self.node.tip.height
        if max_blocks is not None:
            target = min(target, self._indexed + max_blocks)
        if self._indexed >= target:
            return self._indexed
        with self._lock:
            store = store if store is not None else self.node.store
            while self._indexed < target:
                last = min(target, self._indexed + CHUNK_BLOCKS)
                with self._transaction() as conn:
                    block_hash = ""
                    for height in range(self._indexed + 1, last + 1):
                        block_hash = self._index_block(conn, store, height)
                    conn.execute("UPDATE meta SET value=? WHERE key='height'", (str(last),))
                    conn.execute("INSERT OR REPLACE INTO meta VALUES('block_hash', ?)", (block_hash,))
                self._indexed = last
            return self._indexed

    def _index_block(self, conn: sqlite3.Connection, store: Store, height: int) -> str:
        block = store.block(height)
        if block is None:
            raise StoreError(f"block {height} is missing from the ledger; run `medledger verify`")
        block_ms = parse_ms(orjson.loads(block.header_bytes)["timestamp"])
        ctx = Context(store.get_state, lambda kind, logical_id: self._previous(conn, kind, logical_id))
        for record in store.block_txs(height):
            fields = orjson.loads(record.body)
            tx_type = fields["type"]
            if tx_type not in RENDERERS:
                continue
            outcome = orjson.loads(record.outcome)
            if outcome.get("status") not in ACCEPTED_STATUSES:
                continue
            tx = Tx(
                record.tx_id,
                tx_type,
                fields["payload"],
                self._signer(store, fields["signer"]),
                block_ms,
                outcome["status"],
                tuple(outcome.get("codes") or ()),
            )
            for row in render(tx, ctx):
                self._store_row(conn, row, tx)
        return block.block_hash

    def _signer(self, store: Store, kid: str) -> Signer:
        """Key -> member -> institution: facts a key never changes once registered, so they cache forever."""
        known = self._signers.get(kid)
        if known is None:
            known = signer_of(store.get_state, kid)
            if known is None:
                # an accepted transaction's key was registered, and registrations are never removed
                raise StoreError(
                    f"a committed transaction names key {kid}, which the ledger lacks; run `medledger verify`"
                )
            self._signers[kid] = known
        return known

    @staticmethod
    def _previous(conn: sqlite3.Connection, kind: str, logical_id: str) -> dict[str, Any] | None:
        row = conn.execute("SELECT body FROM resources WHERE type=? AND id=?", (kind, logical_id)).fetchone()
        if row is None:
            return None
        value: dict[str, Any] = orjson.loads(row[0])
        return value

    @staticmethod
    def _store_row(conn: sqlite3.Connection, row: Row, tx: Tx) -> None:
        existing = conn.execute("SELECT version FROM resources WHERE type=? AND id=?", (row.type, row.id)).fetchone()
        if existing is None or row.replace:
            version = 1 if existing is None else int(existing[0]) + 1
            meta: dict[str, Any] = {
                "versionId": str(version),
                "lastUpdated": format_ms(tx.block_ms),
                "extension": [
                    {"url": cv.EXT_TX_ID, "valueString": tx.tx_id},
                    {"url": cv.EXT_LEDGER_STATUS, "valueCode": tx.status},
                ],
            }
            if tx.codes:
                meta["tag"] = [{"system": cv.RULE_SYSTEM, "code": code} for code in tx.codes]
            resource = {"resourceType": row.type, "id": row.id, "meta": meta, **row.body}
            conn.execute(
                "INSERT OR REPLACE INTO resources VALUES(?,?,?,?,?,?,?,?,?)",
                (
                    row.type,
                    row.id,
                    version,
                    row.org,
                    row.patient,
                    row.practitioner,
                    tx.block_ms,
                    tx.tx_id,
                    orjson.dumps(resource),
                ),
            )
        if row.org is not None:
            conn.execute("INSERT OR IGNORE INTO readers VALUES(?,?,?)", (row.type, row.id, row.org))

    # -- reading ------------------------------------------------------------------------------------------

    def read(self, kind: str, logical_id: str, org: str | None) -> tuple[bytes, int, int] | None:
        """(resource JSON, version, last_updated ms) if it exists and ``org`` may see it (None: supervisor)."""
        self.catch_up()
        sql = "SELECT body, version, last_updated FROM resources r WHERE type=? AND id=?"
        args: list[Any] = [kind, logical_id]
        if org is not None:
            sql += " AND EXISTS(SELECT 1 FROM readers x WHERE x.type=r.type AND x.id=r.id AND x.org=?)"
            args.append(org)
        row = self._reader().execute(sql, args).fetchone()
        return None if row is None else (bytes(row[0]), int(row[1]), int(row[2]))

    def search(self, query: Query) -> Page:
        self.catch_up()
        where = ["r.type=?"]
        args: list[Any] = [query.type]
        for column, values in (
            ("r.id", query.ids),
            ("r.patient", query.patients),
            ("r.practitioner", query.practitioners),
        ):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args += list(values)
        for op, ms in query.updated:
            if op not in ("<", "<=", ">", ">=", "="):
                raise ValueError(op)
            where.append(f"r.last_updated {op} ?")
            args.append(ms)
        if query.org is not None:
            where.append("EXISTS(SELECT 1 FROM readers x WHERE x.type=r.type AND x.id=r.id AND x.org=?)")
            args.append(query.org)
        conn = self._reader()
        clause = " AND ".join(where)
        total = int(conn.execute(f"SELECT count(*) FROM resources r WHERE {clause}", args).fetchone()[0])
        page = Page(total=total)
        if query.count == 0:
            page.more = total > 0
            return page
        if query.after is not None:
            clause += " AND r.id > ?"
            args = [*args, query.after]
        rows = conn.execute(
            f"SELECT r.id, r.body FROM resources r WHERE {clause} ORDER BY r.id LIMIT ?", [*args, query.count + 1]
        ).fetchall()
        page.more = len(rows) > query.count
        rows = rows[: query.count]
        page.resources = [(str(r[0]), bytes(r[1])) for r in rows]
        page.last_id = rows[-1][0] if rows else None
        return page

    def counts(self) -> dict[str, int]:
        """Rows per resource type (tests and diagnostics)."""
        self.catch_up()
        return {str(t): int(n) for t, n in self._reader().execute("SELECT type, count(*) FROM resources GROUP BY type")}
