"""Over real HTTP (uvicorn on loopback): submissions, concurrency, streamed oversize bodies, and ``serve``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from api_support import PROBLEM, ApiLedger, anchor, assert_problem, body

from medledger.ledger import merkle
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.sqlite_store import SqliteStore
from medledger.node.bootstrap import init_ledger


def test_submit_and_prove_over_http(live: ApiLedger) -> None:
    env = anchor(live.keys.demo_admin)
    r = live.post(body(env.to_wire()))
    assert r.status_code == 200, r.text
    receipt = r.json()
    proof = live.http.get(f"/v1/proofs/inclusion/{env.tx_id}").json()
    head = live.http.get("/v1/tree-head").json()
    assert proof["tree_size"] == head["tree_size"]
    assert merkle.verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        receipt["leaf_index"],
        head["tree_size"],
        [bytes.fromhex(p) for p in proof["proof"]],
        bytes.fromhex(head["root_hash"]),
    )


def test_concurrent_requests_each_get_their_own_receipts(live: ApiLedger) -> None:
    batches = [[anchor(live.keys.demo_admin) for _ in range(5)] for _ in range(12)]

    def send(batch: list[SignedEnvelope]) -> list[str]:
        r = live.post(body([e.to_wire() for e in batch]))
        assert r.status_code == 200, r.text
        return [x["tx_id"] for x in r.json()["receipts"]]

    with ThreadPoolExecutor(6) as pool:
        answered = list(pool.map(send, batches))
    assert answered == [[e.tx_id for e in batch] for batch in batches]
    leaves = [live.http.get(f"/v1/transactions/{e.tx_id}").json()["leaf_index"] for b in batches for e in b]
    assert len(set(leaves)) == 60


def test_streamed_body_over_the_limit_is_413(live: ApiLedger) -> None:
    """Chunked upload (no Content-Length): the cap applies while reading, not after buffering."""

    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(64):
            yield b" " * 8192
        yield b"]"

    before = live.snapshot()
    r = live.http.post("/v1/transactions", content=chunks(), headers={"content-type": "application/json"})
    problem = assert_problem(r, 413, "too-large")
    assert str(256 * 1024) in problem["detail"]
    assert live.snapshot() == before


def test_declared_length_over_the_limit_is_413(live: ApiLedger) -> None:
    before = live.snapshot()
    r = live.post(b"[" + b" " * (300 * 1024) + b"]")
    assert_problem(r, 413, "too-large")
    assert live.snapshot() == before
    assert live.http.get("/healthz").status_code == 200  # and the server is still fine


def test_unknown_route_over_http_is_a_problem(live: ApiLedger) -> None:
    r = live.http.get("/v2/everything")
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


def _wait_for_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "medledger serving" in line:
            return line
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"serve did not print its startup line; stderr: {proc.stderr.read() if proc.stderr else ''}")


def test_serve_prints_url_and_commits_before_exiting_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "served"
    keys = init_ledger(data)
    code = (
        "import sys; from pathlib import Path; from medledger.api.server import serve; "
        "serve(Path(sys.argv[1]), '127.0.0.1', 0, workers=0, max_wait_ms=2)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = _wait_for_line(proc, time.monotonic() + 30)
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        assert "tree size 2" in line, line
        env = anchor(keys.demo_admin)
        r = httpx.post(f"{match.group(0)}/v1/transactions", json=env.to_wire(), timeout=30)
        assert r.status_code == 200, r.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    store = SqliteStore(data, readonly=True)
    try:
        assert store.tx(env.tx_id) is not None
    finally:
        store.close()
