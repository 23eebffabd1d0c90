"""Acceptance 5: kill -9 a serving node mid-load, many times; nothing acknowledged is lost.

A real ``medledger serve`` process takes HTTP load from the real load
generator, which writes each receipt to disk the moment it is acknowledged.
The server is SIGKILLed at a random instant, restarted on the same data, and
the cycle repeats. Afterwards every acknowledged receipt must be in the
ledger exactly as receipted (same leaf, block and tree head) and ``verify``
must pass: no acknowledged transaction lost, no half-written block.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from medledger.ledger.keys import SigningKey
from medledger.ledger.sqlite_store import SqliteStore
from medledger.ledger.verify import verify_store
from medledger.loadgen import run_load
from medledger.node.bootstrap import init_ledger
from medledger.node.node import CORE_REGISTRY
from medledger.node.pool import load_registry

ROUNDS = int(os.environ.get("MEDLEDGER_CRASH_ROUNDS", "10"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(data: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "medledger", "serve", "--data", str(data), "--port", str(port), "--workers", "1",
         "--max-wait-ms", "5", "--max-block-txs", "200"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError("server did not start")


def test_kill_9_at_random_instants_loses_no_acknowledged_transaction(tmp_path: Path) -> None:
    data = tmp_path / "ledger"
    init_ledger(data)
    admin = SigningKey.from_file(data / "keys" / "demo-admin.key")
    receipts = tmp_path / "receipts.jsonl"
    rng = random.Random(int(os.environ.get("MEDLEDGER_CRASH_SEED", "5")))
    acknowledged = 0
    for _ in range(ROUNDS):
        port = _free_port()
        server = _start(data, port)
        result: dict[str, int] = {}
        stop = threading.Event()

        def load(port: int = port, result: dict[str, int] = result, stop: threading.Event = stop) -> None:
            outcome = run_load(f"http://127.0.0.1:{port}", admin, count=100_000, concurrency=6,
                               batch=rng.choice([1, 5, 25]), receipts=receipts, timeout=5, stop=stop)
            result["acknowledged"] = outcome.acknowledged

        loader = threading.Thread(target=load)
        loader.start()
        time.sleep(rng.uniform(0.4, 2.0))
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        stop.set()
        loader.join(120)
        assert not loader.is_alive()
        acknowledged += result.get("acknowledged", 0)

    lines = [json.loads(line) for line in receipts.read_text().splitlines()]
    assert len(lines) == acknowledged
    assert acknowledged > ROUNDS * 10, "the load must actually have been acknowledged between kills"

    # restart once more: recovery must open cleanly and serve
    port = _free_port()
    server = _start(data, port)
    server.send_signal(signal.SIGTERM)
    assert server.wait(60) == 0

    store = SqliteStore(data, readonly=True)
    try:
        for line in lines:
            receipt = line["receipt"]
            stored = store.tx(receipt["tx_id"])
            assert stored is not None, f"acknowledged transaction {receipt['tx_id']} was lost"
            assert stored.leaf_index == receipt["leaf_index"]
            assert stored.height == receipt["height"]
            block = store.block(receipt["height"])
            assert block is not None and block.block_hash == receipt["block_hash"]
            assert block.tree_head.to_json() == receipt["tree_head"]
        verify_store(store, load_registry(CORE_REGISTRY))
    finally:
        store.close()
