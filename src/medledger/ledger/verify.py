"""Re-derive a whole ledger from genesis and compare it with what the store holds.

Nothing stored is trusted: every envelope's canonical form and signature,
every outcome (by re-executing through :func:`medledger.ledger.chain.build_block`,
the node's own code path, with the block's own timestamp), every header field
and link, every block and tree-head signature (by a node key active at that
block), and finally every derived row (world state, Merkle nodes, alerts) and
every index (SQLite's own integrity check). What is not derived is checked
whole: the schema (no extra table, index, view or trigger), the ``meta`` rows,
and the storage class of every column. The first discrepancy is reported with
its height and, where one is involved, its transaction.
"""

from __future__ import annotations

import bisect
import hashlib
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from medledger.errors import MedledgerError, VerificationError
from medledger.ledger import keys, merkle
from medledger.ledger.block import GENESIS_PREV_HASH, BlockHeader
from medledger.ledger.canonical import canonical_bytes, parse_canonical
from medledger.ledger.chain import Tip, build_block
from medledger.ledger.envelope import SignedEnvelope, from_parts
from medledger.ledger.identity import NODE, signer_of
from medledger.ledger.sqlite_store import (
    COLUMN_TYPES,
    RUN_MAX,
    SqliteStore,
    expected_meta,
    expected_schema,
    node_runs,
)
from medledger.ledger.state import GENESIS_STATE_ROOT, MemoryState
from medledger.ledger.store import BlockRecord, TxRecord
from medledger.ledger.syntax import replaying
from medledger.ledger.timefmt import parse_ms
from medledger.ledger.txtypes import Registry

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class VerifyReport:
    blocks: int
    transactions: int
    tree_size: int
    root_hash: str
    state_keys: int

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "blocks": self.blocks,
            "transactions": self.transactions,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "state_keys": self.state_keys,
        }


class _NodeKeyCheck:
    """Tree heads and blocks must be signed by a key that is a node's at that block."""

    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def require(self, kid: str, height: int, what: str) -> None:
        signer = signer_of(self.state.get_state, kid)
        if height == 0:
            return  # checked after genesis executes (the genesis names the nodes)
        if signer is None or not signer.active or signer.role != NODE:
            raise VerificationError(
                f"{what} of block {height} is signed by {kid}, which is not an active node key", height=height
            )


def _fail(message: str, height: int, tx_id: str | None = None) -> VerificationError:
    return VerificationError(message, height=height, tx_id=tx_id)


SignatureCheck = Callable[[list[SignedEnvelope]], Callable[[], list[bool]]]
#: a block ready to replay: its record, rows, envelopes, pending signature result, or the fault found decoding it
_Decoded = tuple[
    BlockRecord, list[TxRecord], list[SignedEnvelope], Callable[[], list[bool]] | None, VerificationError | None
]
_LOOKAHEAD = 4


def _decode_block(height: int, txs: list[TxRecord], first_leaf: int, check_signature: bool) -> list[SignedEnvelope]:
    envelopes: list[SignedEnvelope] = []
    for i, tx in enumerate(txs):
        expected_leaf = first_leaf + i
        if tx.leaf_index != expected_leaf or tx.height != height:
            raise _fail(
                f"block {height}: entry at leaf {tx.leaf_index} is out of place (expected leaf {expected_leaf})",
                height,
                tx.tx_id,
            )
        try:
            env = from_parts(tx.body, tx.signature, check_signature=check_signature)
        except MedledgerError as exc:
            raise _fail(f"block {height}, leaf {tx.leaf_index}: {exc.message}", height, tx.tx_id) from exc
        if env.tx_id != tx.tx_id:
            raise _fail(
                f"block {height}, leaf {tx.leaf_index}: stored tx_id {tx.tx_id} is not the hash of the envelope",
                height,
                tx.tx_id,
            )
        if (env.signer, env.nonce) != (tx.signer, tx.nonce):
            raise _fail(
                f"block {height}, leaf {tx.leaf_index}: the signer/nonce index columns do not match the envelope",
                height,
                tx.tx_id,
            )
        envelopes.append(env)
    return envelopes


def _decoded(store: SqliteStore, check_signatures: SignatureCheck | None) -> Iterator[_Decoded]:
    """Blocks with their envelopes decoded and signature checks already under way.

    Checks for the next few blocks are submitted before the current one is
    executed, so the pool verifies while this process replays; a fault found
    ahead is handed over, not raised, so it is reported at its own height only
    after every earlier block has been checked.
    """
    ahead: deque[_Decoded] = deque()
    next_leaf = 0
    for record, txs in store.iter_blocks():
        try:
            envelopes = _decode_block(record.height, txs, next_leaf, check_signatures is None)
            pending = None if check_signatures is None else check_signatures(envelopes)
            ahead.append((record, txs, envelopes, pending, None))
        except VerificationError as exc:
            ahead.append((record, txs, [], None, exc))
        next_leaf += len(txs)
        if len(ahead) > _LOOKAHEAD:
            yield ahead.popleft()
    yield from ahead


def verify_store(
    store: SqliteStore,
    registry: Registry,
    *,
    progress: Progress | None = None,
    check_signatures: SignatureCheck | None = None,
) -> VerifyReport:
    """Raise :class:`VerificationError` at the first bad height; return a report if all holds."""
    try:
        return _verify(store, registry, progress, check_signatures)
    except sqlite3.DatabaseError as exc:
        raise VerificationError(f"the store file is damaged: {exc}", height=None) from exc


def _verify(
    store: SqliteStore,
    registry: Registry,
    progress: Progress | None,
    check_signatures: SignatureCheck | None,
) -> VerifyReport:
    conn = store.connection()
    _check_schema(conn)
    _check_meta(conn)
    _check_types(conn)
    total = conn.execute("SELECT COUNT(*) FROM blocks").fetchone()[0]
    if total == 0:
        raise VerificationError("the ledger has no blocks (no genesis)", height=0)
    state = MemoryState()
    nodes_check = _NodeKeyCheck(state)
    tip = Tip(-1, GENESIS_PREV_HASH, GENESIS_STATE_ROOT, 0)
    frontier = merkle.MerkleFrontier()
    run_count = 0
    alert_count = 0
    tx_count = 0
    leaf_heights: list[tuple[int, int]] = []  # (first leaf, height) per block, to name heights later
    for record, txs, envelopes, signatures, failure in _decoded(store, check_signatures):
        height = record.height
        if height != tip.height + 1:
            raise _fail(f"block {tip.height + 1} is missing; next stored block is {height}", tip.height + 1)
        try:
            header = BlockHeader.from_json(parse_canonical(record.header_bytes))
        except MedledgerError as exc:
            raise _fail(f"block {height} header is not canonical: {exc.message}", height) from exc
        if hashlib.sha256(record.header_bytes).hexdigest() != record.block_hash:
            raise _fail(f"block {height}: stored hash does not match its header", height)
        if header.height != height:
            raise _fail(f"block {height}: header says height {header.height}", height)
        if failure is not None:
            raise failure
        if signatures is not None:
            for env, good in zip(envelopes, signatures(), strict=True):
                if not good:
                    raise _fail(
                        f"block {height}: signature of transaction {env.tx_id} does not verify", height, env.tx_id
                    )
        try:
            block_ms = parse_ms(header.timestamp)
        except MedledgerError as exc:
            raise _fail(f"block {height}: {exc.message}", height) from exc
        if block_ms < tip.block_ms:
            raise _fail(f"block {height}: timestamp goes back in time", height)
        nodes_check.require(header.proposer, height, "header")
        # payloads are judged by the syntax of their time: a ledger cannot change its past (ledger.syntax)
        with replaying():
            built = build_block(
                registry,
                state,
                tip,
                frontier,
                envelopes,
                None,
                block_ms=block_ms,
                proposer=header.proposer,
                node_key=None,
                ordering=header.ordering,
            )
        mine = built.block.header
        for env, stored, outcome in zip(envelopes, txs, built.block.txs, strict=True):
            if stored.outcome != outcome[6]:
                raise _fail(
                    f"block {height}: stored outcome of transaction {env.tx_id} is "
                    f"{stored.outcome.decode(errors='replace')}, re-execution gives "
                    f"{outcome[6].decode()}",
                    height,
                    env.tx_id,
                )
        alert_count += _compare_alerts(conn, built.block.alerts, height, first_leaf=frontier.size, envelopes=envelopes)
        for name in ("prev_hash", "tx_root", "tx_count", "results_hash", "state_root", "tree_size", "tree_root"):
            if getattr(mine, name) != getattr(header, name):
                raise _fail(
                    f"block {height}: header {name} is {getattr(header, name)!r}, re-derived {getattr(mine, name)!r}",
                    height,
                )
        try:
            keys.verify(
                keys.BLOCK_DOMAIN, keys.public_key_bytes(header.proposer), record.header_bytes, record.signature
            )
        except MedledgerError as exc:
            raise _fail(f"block {height}: block signature does not verify", height) from exc
        head = record.tree_head
        if (head.tree_size, head.root_hash, head.timestamp) != (mine.tree_size, mine.tree_root, mine.timestamp):
            raise _fail(
                f"block {height}: stored tree head ({head.tree_size}, {head.root_hash}) does not match the block",
                height,
            )
        try:
            head.verify_signature()
        except MedledgerError as exc:
            raise _fail(f"block {height}: tree head signature does not verify", height) from exc
        nodes_check.require(head.signer, height, "tree head")
        state.apply(built.writes, height)
        if height == 0:
            nodes_check.require(header.proposer, 1, "header of genesis")
            nodes_check.require(head.signer, 1, "tree head of genesis")
        run_count += _compare_runs(conn, built.block.nodes, height)
        leaf_heights.append((frontier.size, height))
        tip, frontier = built.tip, built.frontier
        tx_count += len(txs)
        if progress is not None:
            progress(height + 1, total)
    extra = conn.execute("SELECT COUNT(*) FROM txs WHERE leaf_index >= ?", (frontier.size,)).fetchone()[0]
    if extra:
        raise _fail(f"{extra} transactions are stored beyond the last block", tip.height + 1)
    _compare_state(conn, state)
    stored_runs = conn.execute("SELECT COUNT(*) FROM tree_runs").fetchone()[0]
    if stored_runs != run_count:
        _find_stray_run(conn, leaf_heights, frontier.size, stored_runs, run_count)
    stored_alerts = conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
    if stored_alerts != alert_count:
        row = conn.execute("SELECT MAX(height) FROM alerts").fetchone()
        raise _fail(
            f"the store holds {stored_alerts} alerts; re-executing the blocks raises {alert_count}",
            min(int(row[0] or 0), tip.height),
        )
    stored_heads = conn.execute("SELECT COUNT(*) FROM tree_heads").fetchone()[0]
    if stored_heads != tip.height + 1:
        row = conn.execute("SELECT MIN(height) FROM tree_heads WHERE height < 0 OR height > ?", (tip.height,))
        stray = row.fetchone()[0]
        raise _fail(
            f"the store holds {stored_heads} tree heads for {tip.height + 1} blocks",
            tip.height if stray is None else int(stray),
        )
    _check_indexes(conn, leaf_heights)
    _check_alert_indexes(conn)
    _integrity(conn)
    return VerifyReport(tip.height + 1, tx_count, frontier.size, frontier.root().hex(), len(state.values))


def _check_indexes(conn: sqlite3.Connection, leaf_heights: list[tuple[int, int]]) -> None:
    """Every lookup the API answers through a secondary index must find the right row."""
    rows = conn.execute("SELECT leaf_index, tx_id, nonce, signer FROM txs ORDER BY leaf_index")
    while chunk := rows.fetchmany(500):
        marks = ",".join("?" * len(chunk))
        by_id = dict(
            conn.execute(
                f"SELECT tx_id, leaf_index FROM txs INDEXED BY txs_tx_id WHERE tx_id IN ({marks})",
                [r[1] for r in chunk],
            ).fetchall()
        )
        by_nonce = {
            (n, sg): li
            for n, sg, li in conn.execute(
                f"SELECT nonce, signer, leaf_index FROM txs INDEXED BY txs_nonce WHERE nonce IN ({marks})",
                [r[2] for r in chunk],
            )
        }
        for leaf, tx_id, nonce, signer in chunk:
            if by_id.get(tx_id) != leaf or by_nonce.get((nonce, signer)) != leaf:
                height = _height_of_leaf(leaf, leaf_heights)
                raise _fail(
                    f"the transaction index does not lead to leaf {leaf}: lookups by tx_id or nonce would answer "
                    "wrongly",
                    height,
                    bytes(tx_id).hex(),
                )
    for height, size in conn.execute("SELECT height, tree_size FROM tree_heads ORDER BY height").fetchall():
        found = conn.execute("SELECT height FROM tree_heads INDEXED BY tree_heads_size WHERE tree_size=?", (size,))
        if found.fetchone() != (height,):
            raise _fail(f"the tree-head index does not lead to the tree head of block {height}", height)


_ALERT_ROW = "seq, leaf_index, rule, severity, institution, practitioner, block_ms, body"


def _compare_alerts(
    conn: sqlite3.Connection,
    produced: Sequence[tuple[Any, ...]],
    height: int,
    *,
    first_leaf: int,
    envelopes: Sequence[SignedEnvelope],
) -> int:
    """The alerts this block raises are stored exactly so (and no others at this height)."""
    stored = conn.execute(f"SELECT {_ALERT_ROW} FROM alerts WHERE height=? ORDER BY seq", (height,)).fetchall()
    for index, want in enumerate(produced):
        got = stored[index] if index < len(stored) else None
        if got is None or (*got[:7], bytes(got[7])) != tuple(want):
            leaf = want[1]
            tx_id = envelopes[leaf - first_leaf].tx_id if leaf is not None else None
            raise _fail(
                f"block {height}: alert {index} ({want[2]}) is missing or differs from the one re-execution raises",
                height,
                tx_id,
            )
    if len(stored) > len(produced):
        raise _fail(
            f"block {height}: {len(stored) - len(produced)} stored alerts were raised by no transaction", height
        )
    return len(produced)


def _check_alert_indexes(conn: sqlite3.Connection) -> None:
    """Alert queries (by rule, institution, practitioner, time) must find every alert exactly."""
    for column, index in (
        ("rule", "alerts_rule"),
        ("institution", "alerts_institution"),
        ("practitioner", "alerts_practitioner"),
        ("block_ms", "alerts_time"),
    ):
        counts = conn.execute(
            f"SELECT {column}, COUNT(*) FROM alerts NOT INDEXED WHERE {column} IS NOT NULL GROUP BY {column}"
        ).fetchall()
        for value, count in counts:
            found = conn.execute(
                f"SELECT COUNT(*) FROM alerts INDEXED BY {index} WHERE {column}=?", (value,)
            ).fetchone()[0]
            if found != count:
                height = conn.execute(f"SELECT MIN(height) FROM alerts NOT INDEXED WHERE {column}=?", (value,))
                raise _fail(
                    f"the alert index {index} answers {found} alerts for {value!r}, the table holds {count}",
                    int(height.fetchone()[0]),
                )


def _integrity(conn: sqlite3.Connection) -> None:
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise VerificationError(f"the store file is damaged: {exc}", height=None) from exc
    if rows != [("ok",)]:
        raise VerificationError(
            "SQLite integrity check failed (a table and its index disagree): " + "; ".join(r[0] for r in rows[:3]),
            height=None,
        )


def _compare_state(conn: sqlite3.Connection, state: MemoryState) -> None:
    stored_keys: set[str] = set()
    for key, value, height in conn.execute("SELECT key, value, height FROM state"):
        stored_keys.add(key)
        expected = state.values.get(key)
        written = state.written_at.get(key)
        if expected is None:
            raise _fail(f"world state holds key {key!r} that no transaction wrote", int(height))
        if bytes(value) != canonical_bytes(expected) or height != written:
            raise _fail(
                f"world state {key!r} differs from what block {written} wrote (stored as of block {height})",
                written or 0,
            )
    missing = set(state.values) - stored_keys
    if missing:
        key = sorted(missing)[0]
        raise _fail(f"world state lacks {key!r}, written by block {state.written_at[key]}", state.written_at[key])


def _height_of_leaf(leaf: int, leaf_heights: list[tuple[int, int]]) -> int:
    pos = bisect.bisect_right(leaf_heights, (leaf, 1 << 62)) - 1
    return leaf_heights[max(pos, 0)][1]


def _compare_runs(conn: sqlite3.Connection, nodes: Sequence[tuple[int, int, bytes]], height: int) -> int:
    """The Merkle node runs this block should have written are stored exactly so; returns how many."""
    runs = node_runs(nodes)
    for level, start, hashes in runs:
        row = conn.execute("SELECT height, hashes FROM tree_runs WHERE level=? AND start=?", (level, start)).fetchone()
        if row is None or row[0] != height or bytes(row[1]) != hashes:
            raise _fail(
                f"Merkle nodes (level {level}, from index {start}) differ from the tree re-derived from the "
                f"envelopes of block {height}",
                height,
            )
    return len(runs)


def _find_stray_run(
    conn: sqlite3.Connection, leaf_heights: list[tuple[int, int]], tree_size: int, stored: int, produced: int
) -> None:
    """Name the run no block produced (only on failure: it recomputes the expected keys from leaf ranges)."""
    expected: set[tuple[int, int]] = set()
    bounds = [*leaf_heights[1:], (tree_size, -1)]
    for (first, _height), (end, _) in zip(leaf_heights, bounds, strict=True):
        level = 0
        while (end >> level) > 0:
            lo = ((first + (1 << level)) >> level) - 1  # first node whose last leaf is in [first, end)
            hi = end >> level  # one past the last
            expected.update((level, start) for start in range(lo, hi, RUN_MAX))
            level += 1
    for level, start, height in conn.execute("SELECT level, start, height FROM tree_runs"):
        if (level, start) not in expected:
            raise _fail(f"Merkle node run (level {level}, from index {start}) was produced by no block", int(height))
    raise _fail(f"the store holds {stored} Merkle node runs; the blocks produce {produced}", leaf_heights[-1][1])


def _check_schema(conn: sqlite3.Connection) -> None:
    """The tables and indexes are exactly the store's own, and nothing else is in the file: a dropped unique
    index would let duplicate tx_ids or nonces in, a trigger or view could change what is written or read."""
    found = {
        (kind, name, table): None if sql is None else " ".join(sql.split())
        for kind, name, table, sql in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
    }
    expected = expected_schema()
    for kind, name, table, sql in expected:
        if (kind, name, table) not in found or found[(kind, name, table)] != sql:
            raise VerificationError(
                f"the store's {kind} {name} is missing or altered; replays and lookups could no longer be ruled out",
                height=None,
            )
    extra = sorted(set(found) - {(kind, name, table) for kind, name, table, _ in expected})
    if extra:
        kind, name, _ = extra[0]
        raise VerificationError(
            f"the store holds a {kind} {name!r} that medledger never creates; it could change what is written or "
            "read, so the file is not the node's own",
            height=None,
        )


def _check_meta(conn: sqlite3.Connection) -> None:
    """``meta`` holds exactly the store's own rows (nothing in it is derived from the blocks)."""
    stored = conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
    if stored != sorted(expected_meta().items()):
        raise VerificationError(
            f"the store's meta table is not the one medledger writes ({len(stored)} rows, expected "
            f"{', '.join(f'{k}={v.decode()}' for k, v in expected_meta().items())})",
            height=None,
        )


def _check_types(conn: sqlite3.Connection) -> None:
    """Every column holds values of its own storage class (one scan per table, read from record headers)."""
    for table, columns in COLUMN_TYPES.items():
        wrong = " OR ".join(
            f"typeof({column}) NOT IN ({','.join(repr(t) for t in kinds)})" for column, kinds in columns.items()
        )
        where = "height" if "height" in columns else "NULL"
        row = conn.execute(f"SELECT {where} FROM {table} WHERE {wrong} LIMIT 1").fetchone()
        if row is not None:
            height = row[0] if isinstance(row[0], int) else None
            raise VerificationError(
                f"a row of {table} holds a value of the wrong type (stored differently from what was written)"
                + (f" at height {height}" if height is not None else ""),
                height=height,
            )
