"""The floor benchmark: verification on every core plus the durable insert, nothing else.

The ingest target (issue 2) asks for T/R >= 0.7, citing a lean prototype of
"verify in a pool + batched SQLite commit". This module is that prototype,
measured in the same run as R, so the node's figures can be read against
the best any design on this machine could do with the same two costs:

* Ed25519 verification of 300-byte messages in one process per core
  (PyNaCl, chunks of 500 as bytes), and
* the committing process inserting each verified row into SQLite with
  ``synchronous=FULL`` in blocks of 2,000, overlapped with verification,
  once with no index and once with the two unique indexes the node needs for
  its replay checks (tx_id; nonce and signer).

It does none of the rest of the node's work: no base64 or canonical-JSON
checks, field syntax, admission, execution, Merkle tree, receipts or block
headers.

A third run adds only the work issue 2 itself requires of every envelope
and block, each step done by the same code the node uses: the workers decode
real wire envelopes (strict base64url, the RFC 8785 canonical check, field
syntax and tx_id, in the C decoder) before verifying; the committer hashes
each RFC 9162 leaf, appends the block to the Merkle frontier, stores the
perfect nodes, computes the block's tx_root and signs a tree head per block.
Still no admission (replay look-ups, signer, role, clock), execution,
payload schemas, state, receipts or block headers: whatever design meets the
target must fit those into the gap between this figure and 0.7.

``medledger bench floor`` and ``bench/floor.py`` run it.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sqlite3
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.signing
import orjson

from medledger.benchmarks import machine, make_envelopes, raw_verify_rates
from medledger.ledger import keys, merkle
from medledger.ledger.envelope import from_wire, leaf_data
from medledger.ledger.sqlite_store import node_runs

MESSAGE = 300
CHUNK = 500
BLOCK = 2000


def _verify(chunk: tuple[bytes, bytes, int]) -> tuple[bytes, bytes]:
    """One worker request: ``n`` (signature, message) pairs back to back -> a validity byte each."""
    public_key, blob, n = chunk
    valid = bytearray(n)
    for i in range(n):
        at = i * (64 + MESSAGE)
        try:
            nacl.bindings.crypto_sign_open(blob[at : at + 64 + MESSAGE], public_key)
            valid[i] = 1
        except nacl.exceptions.BadSignatureError:
            pass
    return bytes(valid), blob


_WIRE_ROW = struct.Struct("<32s64sHHI")


def _decode_and_verify(chunk: bytes) -> bytes:
    """One worker request of the third run: wire items as JSON -> a packed row per item."""
    out = []
    for item in orjson.loads(chunk):
        env = from_wire(item, check_signature=False)  # what the node's workers decode, in C where built
        try:
            nacl.bindings.crypto_sign_open(
                env.signature + keys.ENVELOPE_DOMAIN + env.body, keys.public_key_bytes(env.signer)
            )
        except nacl.exceptions.BadSignatureError:
            raise RuntimeError("a floor-benchmark signature did not verify") from None
        signer, nonce = env.signer.encode(), env.nonce.encode()
        out.append(
            _WIRE_ROW.pack(bytes.fromhex(env.tx_id), env.signature, len(signer), len(nonce), len(env.body))
            + signer
            + nonce
            + env.body
        )
    return b"".join(out)


def _database(tmp: str, indexes: bool) -> sqlite3.Connection:
    db = sqlite3.connect(Path(tmp) / "floor.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA wal_autocheckpoint=10000")
    db.execute("CREATE TABLE txs(leaf INTEGER PRIMARY KEY, tx_id BLOB, nonce TEXT, signer TEXT, body BLOB, sig BLOB)")
    db.execute("CREATE TABLE runs(level INTEGER, start INTEGER, hashes BLOB, PRIMARY KEY(level, start)) WITHOUT ROWID")
    db.execute("CREATE TABLE heads(size INTEGER PRIMARY KEY, root BLOB, tx_root BLOB, signature BLOB)")
    if indexes:
        db.execute("CREATE UNIQUE INDEX txs_tx_id ON txs(tx_id)")
        db.execute("CREATE UNIQUE INDEX txs_nonce ON txs(nonce, signer)")
    return db


def _run_log(chunks: list[bytes], count: int) -> float:
    """The third run: decode + verify on the workers; leaf hashes, Merkle log and tree heads here."""
    node_key = nacl.signing.SigningKey.generate()
    frontier = merkle.MerkleFrontier()
    with tempfile.TemporaryDirectory(prefix="medledger-floor-") as tmp:
        db = _database(tmp, indexes=True)
        procs = os.cpu_count() or 1
        with multiprocessing.get_context("spawn").Pool(procs) as pool:
            pool.map(_decode_and_verify, chunks[:procs])  # warm the workers
            start = time.perf_counter()
            rows: list[tuple[int, bytes, str, str, bytes, bytes]] = []
            leaves: list[bytes] = []

            def commit() -> None:
                nodes = frontier.append_many(leaves)
                tx_root = merkle.root(leaves)
                root = frontier.root()
                signature = node_key.sign(frontier.size.to_bytes(8, "big") + root + tx_root).signature
                db.execute("BEGIN")
                db.executemany("INSERT INTO txs VALUES(?,?,?,?,?,?)", rows)
                db.executemany("INSERT INTO runs VALUES(?,?,?)", node_runs(nodes))
                db.execute("INSERT INTO heads VALUES(?,?,?,?)", (frontier.size, root, tx_root, signature))
                db.execute("COMMIT")
                rows.clear()
                leaves.clear()

            for packed in pool.imap(_decode_and_verify, chunks):
                at = 0
                while at < len(packed):
                    tx_id, signature, signer_len, nonce_len, body_len = _WIRE_ROW.unpack_from(packed, at)
                    at += _WIRE_ROW.size
                    signer = packed[at : at + signer_len].decode()
                    nonce = packed[at + signer_len : at + signer_len + nonce_len].decode()
                    at += signer_len + nonce_len
                    body = packed[at : at + body_len]
                    at += body_len
                    leaves.append(merkle.leaf_hash(leaf_data(body, signature)))
                    rows.append((frontier.size + len(rows), tx_id, nonce, signer, body, signature))
                if len(rows) >= BLOCK:
                    commit()
            if rows:
                commit()
            elapsed = time.perf_counter() - start
        db.close()
    if frontier.size != count:
        raise RuntimeError(f"the floor committed {frontier.size} of {count} envelopes")
    return count / elapsed


def _run(chunks: list[tuple[bytes, bytes, int]], count: int, indexes: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="medledger-floor-") as tmp:
        db = _database(tmp, indexes)
        procs = os.cpu_count() or 1
        with multiprocessing.get_context("spawn").Pool(procs) as pool:
            pool.map(_verify, chunks[:procs])  # warm the workers
            start = time.perf_counter()
            leaf = 0
            rows: list[tuple[int, bytes, str, str, bytes, bytes]] = []
            for valid, blob in pool.imap(_verify, chunks):
                for i, ok in enumerate(valid):
                    if not ok:
                        raise RuntimeError("a floor-benchmark signature did not verify")
                    at = i * (64 + MESSAGE)
                    body = blob[at + 64 : at + 64 + MESSAGE]
                    tx_id = hashlib.sha256(body).digest()
                    rows.append((leaf, tx_id, body[:16].hex(), "signer", body, blob[at : at + 64]))
                    leaf += 1
                if len(rows) >= BLOCK:
                    db.execute("BEGIN")
                    db.executemany("INSERT INTO txs VALUES(?,?,?,?,?,?)", rows)
                    db.execute("COMMIT")
                    rows = []
            if rows:
                db.execute("BEGIN")
                db.executemany("INSERT INTO txs VALUES(?,?,?,?,?,?)", rows)
                db.execute("COMMIT")
            elapsed = time.perf_counter() - start
        db.close()
    return count / elapsed


def floor(count: int = 40_000, seconds: float = 2.0) -> dict[str, Any]:
    key = nacl.signing.SigningKey.generate()
    messages = [os.urandom(MESSAGE) for _ in range(count)]
    signed = [key.sign(m).signature + m for m in messages]
    public_key = bytes(key.verify_key)
    chunks = [
        (public_key, b"".join(signed[s : s + CHUNK]), len(signed[s : s + CHUNK])) for s in range(0, count, CHUNK)
    ]
    wire = make_envelopes(os.urandom(32), count)  # real anchor.record envelopes, ~300-byte payloads
    wire_chunks = [orjson.dumps(wire[s : s + CHUNK]) for s in range(0, count, CHUNK)]
    before = raw_verify_rates(seconds)
    bare = _run(chunks, count, indexes=False)
    indexed = _run(chunks, count, indexes=True)
    logged = _run_log(wire_chunks, count)
    after = raw_verify_rates(seconds)
    r = max(*before.values(), *after.values())
    result: dict[str, Any] = {
        "benchmark": "floor",
        "machine": machine(),
        "raw_verify_per_s": round(r, 1),
        "count": count,
        "no_index": {"committed_per_s": round(bare, 1), "ratio": round(bare / r, 3)},
        "replay_indexes": {"committed_per_s": round(indexed, 1), "ratio": round(indexed / r, 3)},
        "required_minimum": {"committed_per_s": round(logged, 1), "ratio": round(logged / r, 3)},
    }
    result["summary"] = (
        f"floor: R={r:,.0f} verify/s; verify + durable insert only: T/R={bare / r:.2f} without indexes, "
        f"{indexed / r:.2f} with the two replay indexes ({indexed:,.0f} tx/s); "
        f"{logged / r:.2f} adding only the decoding and Merkle log issue 2 requires ({logged:,.0f} tx/s)"
    )
    return result
