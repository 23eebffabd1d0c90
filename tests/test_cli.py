"""The ``medledger`` command as users run it: real processes, exit codes, sentences."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from ledger_factory import Populated, regulator_headers
from medledger._serving import BackgroundServer, free_port
from medledger.node.bootstrap import REGULATOR_TOKEN
from medledger.node.node import Node, NodeConfig


def medledger(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medledger", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_init_verify_and_refusals(tmp_path: Path) -> None:
    data = tmp_path / "ledger"
    made = medledger("init", "--data", str(data))
    assert made.returncode == 0, made.stderr
    assert (data / "keys" / "node.key").stat().st_mode & 0o077 == 0, "key files must be private"
    again = medledger("init", "--data", str(data))
    assert again.returncode != 0 and "already holds a ledger" in again.stderr
    ok = medledger("verify", "--data", str(data), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {**json.loads(ok.stdout), "ok": True, "blocks": 2, "transactions": 2}
    missing = medledger("verify", "--data", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "no ledger" in missing.stderr
    no_serve = medledger("serve", "--data", str(tmp_path / "nothing"))
    assert no_serve.returncode != 0 and "medledger init" in no_serve.stderr


@pytest.fixture
def saved(populated: Populated, tmp_path: Path) -> dict[str, Path]:
    """Proofs, tree heads and a receipt saved from a live node, as a member would keep them."""
    node = Node(NodeConfig(populated.data, workers=0, max_wait_ms=1))
    files: dict[str, Path] = {}
    try:
        with (
            BackgroundServer(node) as server,
            httpx.Client(base_url=server.url, headers=regulator_headers(populated.data)) as http,
        ):
            old_head = http.get("/v1/tree-head").json()
            receipt = populated.receipts[3]
            wire = http.get(f"/v1/transactions/{receipt.tx_id}").json()["wire"]
            head = http.get("/v1/tree-head").json()
            inclusion = http.get(f"/v1/proofs/inclusion/{receipt.tx_id}",
                                 params={"tree_size": head["tree_size"]}).json()
            at_receipt = http.get(f"/v1/proofs/inclusion/{receipt.tx_id}",
                                  params={"tree_size": receipt.tree_head.tree_size}).json()
            head5 = http.get("/v1/blocks/2").json()["tree_head"]
            consistency = http.get("/v1/proofs/consistency",
                                   params={"first": head5["tree_size"], "second": head["tree_size"]}).json()
            for name, value in {
                "head": head, "old_head": old_head, "inclusion": inclusion, "wire": wire, "consistency": consistency,
                "head5": head5, "at_receipt": at_receipt,
                "receipt_line": {"receipt": receipt.to_json(), "wire": wire},
            }.items():
                files[name] = tmp_path / f"{name}.json"
                files[name].write_text(json.dumps(value))
    finally:
        node.close()
    files["node_key"] = Path(populated.keys.node.key_id)
    return files


def test_proof_verify_offline(saved: dict[str, Path]) -> None:
    node_key = str(saved["node_key"])
    run = medledger("proof", "verify", "--proof", str(saved["inclusion"]), "--tree-head", str(saved["head"]),
                    "--envelope", str(saved["wire"]), "--trusted-key", node_key)
    assert run.returncode == 0, run.stderr
    assert "included" in run.stdout
    run = medledger("proof", "verify", "--proof", str(saved["consistency"]), "--old-tree-head", str(saved["head5"]),
                    "--tree-head", str(saved["head"]))
    assert run.returncode == 0, run.stderr
    assert "consistent" in run.stdout
    run = medledger("proof", "verify", "--proof", str(saved["at_receipt"]), "--receipt", str(saved["receipt_line"]))
    assert run.returncode == 0, run.stderr
    assert "receipt holds" in run.stdout


def test_proof_verify_refuses_tampering(saved: dict[str, Path], tmp_path: Path) -> None:
    proof = json.loads(saved["inclusion"].read_text())
    proof["proof"][0] = ("0" if proof["proof"][0][0] != "0" else "1") + proof["proof"][0][1:]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(proof))
    run = medledger("proof", "verify", "--proof", str(bad), "--tree-head", str(saved["head"]))
    assert run.returncode == 2
    assert "does NOT verify" in run.stdout
    untrusted = medledger("proof", "verify", "--proof", str(saved["inclusion"]), "--tree-head", str(saved["head"]),
                          "--trusted-key", "A" * 43)
    assert untrusted.returncode == 2
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    run = medledger("proof", "verify", "--proof", str(garbage), "--tree-head", str(saved["head"]))
    assert run.returncode == 1 and "not JSON" in run.stderr


def test_demo_serves_a_supervised_province_then_verifies(tmp_path: Path) -> None:
    """The demo's API answers while the province streams; at the end verify passes and alerts are summed."""
    port = free_port()
    data = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "medledger", "demo", "--data", str(data), "--port", str(port), "--duration", "20",
         "--rate", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    alerts: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not alerts:
            try:
                auth = regulator_headers(data) if (data / REGULATOR_TOKEN).exists() else {}
                got = httpx.get(f"http://127.0.0.1:{port}/v1/alerts?limit=50", headers=auth, timeout=5)
                alerts = got.json()["alerts"] if got.status_code == 200 else []
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert alerts, "the API served no alert while the demo ran"
    assert {"id", "rule", "severity", "why", "block_time"} <= set(alerts[0])
    assert "alerts raised, by rule" in err + out
    assert "ledger intact" in err + out
    again = medledger("demo", "--data", str(data), "--port", str(free_port()), "--duration", "5")
    assert again.returncode == 1 and "already holds a ledger" in again.stderr


def test_bench_ingest_prints_the_ratio_keys() -> None:
    run = medledger("bench", "ingest", "--json", "--count", "600", "--http-count", "300", "--seconds", "0.3")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["raw_verify_per_s"] > 0
    for part in ("library", "http"):
        assert result[part]["committed_per_s"] > 0
        assert result[part]["ratio"] == pytest.approx(result[part]["committed_per_s"] / result["raw_verify_per_s"],
                                                      abs=0.001)
    assert "T/R=" in result["summary"]


def test_one_writer_per_ledger_and_a_clear_port_conflict(tmp_path: Path) -> None:
    """A second node on the same data, or a server on a taken port, is refused with a sentence."""
    import socket

    data = tmp_path / "ledger"
    assert medledger("init", "--data", str(data)).returncode == 0
    node = Node(NodeConfig(data, workers=0))
    try:
        second = medledger("serve", "--data", str(data), "--port", str(free_port()), timeout=120)
        assert second.returncode == 1
        assert "already open for writing by another medledger process" in second.stderr
        ok = medledger("verify", "--data", str(data))
        assert ok.returncode == 0, "verify must run beside a live node"
    finally:
        node.close()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        busy = medledger("serve", "--data", str(data), "--port", str(taken.getsockname()[1]), timeout=120)
        assert busy.returncode == 1
        assert "cannot listen" in busy.stderr and "already in use" in busy.stderr
    finally:
        taken.close()


def test_serve_says_exactly_why_it_cannot_listen(tmp_path: Path) -> None:
    """A port out of range is one sentence, not a traceback; an address not on this machine is not blamed on
    the port; a privileged port says so."""
    data = tmp_path / "ledger"
    assert medledger("init", "--data", str(data)).returncode == 0
    for port in ("99999", "-1"):
        bad = medledger("serve", "--data", str(data), "--port", port, timeout=120)
        assert bad.returncode == 1 and f"--port {port} is not a TCP port" in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of a real machine
    foreign = medledger("serve", "--data", str(data), "--host", "192.0.2.1", "--port", str(free_port()), timeout=120)
    assert foreign.returncode == 1 and "192.0.2.1 is not an address of this machine" in foreign.stderr
    assert "in use" not in foreign.stderr and "Traceback" not in foreign.stderr
    unknown = medledger("serve", "--data", str(data), "--host", "no-such-host.invalid", timeout=120)
    assert unknown.returncode == 1 and "not an IP address or a name" in unknown.stderr


def test_serve_names_a_privileged_port() -> None:
    """Run as an unprivileged user (dropping root if the tests run as root): port 80 is refused by the kernel."""
    unprivileged_from = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    if unprivileged_from.exists() and int(unprivileged_from.read_text()) <= 80:
        pytest.skip("this kernel lets anyone bind port 80")
    # not under pytest's tmp_path: its parents are private to root, and the unprivileged user must reach the ledger
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        data = base / "ledger"
        command = [sys.executable, "-m", "medledger", "serve", "--data", str(data), "--port", "80"]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv: cannot try a privileged port as a normal user")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        assert medledger("init", "--data", str(data)).returncode == 0
        data.chmod(0o755)
        refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1, refused.stderr
        assert "port 80 is privileged" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        shutil.rmtree(base)


def test_bench_pipeline_commits_clean_chains_with_every_rule_on() -> None:
    run = medledger("bench", "pipeline", "--json", "--chains", "120", "--seconds", "0.3")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["pipeline"]["count"] == 120 * 11
    assert result["pipeline"]["ratio"] > 0 and result["raw_verify_per_s"] > 0
    assert "T/R=" in result["summary"]
