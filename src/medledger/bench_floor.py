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
headers. ``medledger bench floor`` and ``bench/floor.py`` run it.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.signing

from medledger.benchmarks import machine, raw_verify_rates

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


def _run(chunks: list[tuple[bytes, bytes, int]], count: int, indexes: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="medledger-floor-") as tmp:
        db = sqlite3.connect(Path(tmp) / "floor.sqlite", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA wal_autocheckpoint=10000")
        db.execute(
            "CREATE TABLE txs(leaf INTEGER PRIMARY KEY, tx_id BLOB, nonce TEXT, signer TEXT, body BLOB, sig BLOB)"
        )
        if indexes:
            db.execute("CREATE UNIQUE INDEX txs_tx_id ON txs(tx_id)")
            db.execute("CREATE UNIQUE INDEX txs_nonce ON txs(nonce, signer)")
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
    before = raw_verify_rates(seconds)
    bare = _run(chunks, count, indexes=False)
    indexed = _run(chunks, count, indexes=True)
    after = raw_verify_rates(seconds)
    r = max(*before.values(), *after.values())
    result: dict[str, Any] = {
        "benchmark": "floor",
        "machine": machine(),
        "raw_verify_per_s": round(r, 1),
        "count": count,
        "no_index": {"committed_per_s": round(bare, 1), "ratio": round(bare / r, 3)},
        "replay_indexes": {"committed_per_s": round(indexed, 1), "ratio": round(indexed / r, 3)},
    }
    result["summary"] = (
        f"floor: R={r:,.0f} verify/s; verify + durable insert only: T/R={bare / r:.2f} without indexes, "
        f"{indexed / r:.2f} with the two replay indexes ({indexed:,.0f} tx/s)"
    )
    return result
