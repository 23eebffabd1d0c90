"""What a first-time user meets at the command line (issue 12): what to publish, defaults, exit codes, output.

Every test runs the real ``medledger`` command in a subprocess, from a
working directory of its own, the way a user would.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from medledger._serving import BackgroundServer
from medledger.ledger.keys import SigningKey
from medledger.node.node import Node, NodeConfig


def medledger_in(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medledger", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_status_prints_what_to_publish_and_names_the_secret_files(tmp_path: Path) -> None:
    data = tmp_path / "ledger"
    assert medledger_in(tmp_path, "init", "--data", str(data)).returncode == 0
    node_key = SigningKey.from_file(data / "keys" / "node.key").key_id
    regulator_key = SigningKey.from_file(data / "keys" / "regulator.key").key_id
    node = Node(NodeConfig(data, workers=0))  # status is read-only: it runs beside a serving node
    try:
        as_json = medledger_in(tmp_path, "status", "--data", str(data), "--json")
        text = medledger_in(tmp_path, "status", "--data", str(data))
        only_key = medledger_in(tmp_path, "status", "--data", str(data), "--node-key")
    finally:
        node.close()
    assert as_json.returncode == 0, as_json.stderr
    facts = json.loads(as_json.stdout)
    assert facts["node_keys"] == {"regulator/node-1": node_key}
    assert facts["regulator_key"] == regulator_key
    assert facts["consortium"] == "demo-province-internet-medical-supervision"
    assert facts["tree_head"]["tree_size"] == 2 and facts["tree_head"]["signer"] == node_key
    assert len(facts["genesis"]["tx_id"]) == 64 and len(facts["genesis"]["block_hash"]) == 64
    assert facts["secret_files"] == ["credentials.json", "keys/demo-admin.key", "keys/node.key",
                                     "keys/regulator.key", "keys/regulator.token"]
    assert facts["shareable_files"] == ["ledger.sqlite", "medledger.json"]
    assert text.returncode == 0 and node_key in text.stdout and "SECRET" in text.stdout
    assert "keys/node.key" in text.stdout.split("SECRET")[1]
    for secret in (data / "keys").iterdir():
        assert secret.read_text().strip() not in as_json.stdout + text.stdout, "status never prints a secret"
    assert only_key.stdout == node_key + "\n"
    missing = medledger_in(tmp_path, "status", "--data", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "no ledger" in missing.stderr


def test_defaults_follow_demo_data_latest(tmp_path: Path) -> None:
    """``init`` without --data makes a run and links it; verify, status and load's admin key then need no options."""
    first = medledger_in(tmp_path, "init")
    assert first.returncode == 0, first.stderr
    latest = tmp_path / "demo-data" / "latest"
    assert latest.is_symlink() and os.readlink(latest).startswith("run-")
    assert "demo-data/latest now points at it" in first.stdout
    verified = medledger_in(tmp_path, "verify")
    assert verified.returncode == 0 and "ledger intact" in verified.stdout, verified.stderr
    node = Node(NodeConfig(latest.resolve(), workers=0, max_wait_ms=1))
    try:
        with BackgroundServer(node) as server:
            loaded = medledger_in(tmp_path, "load", "--url", server.url, "--count", "3")
    finally:
        node.close()
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["acknowledged"] == 3
    older = latest.resolve()
    second = medledger_in(tmp_path, "init")
    assert second.returncode == 0, second.stderr
    assert latest.resolve() != older and (latest / "ledger.sqlite").exists(), "latest follows the newest run"
    assert (older / "ledger.sqlite").exists(), "the older run is kept"
    help_text = medledger_in(tmp_path, "verify", "--help").stdout + medledger_in(tmp_path, "load", "--help").stdout
    assert "demo-data/latest" in help_text and "demo-data/latest/keys/demo-admin.key" in help_text


def test_the_demo_links_latest_and_prints_its_results_on_stdout(tmp_path: Path) -> None:
    run = medledger_in(tmp_path, "demo", "--port", "0", "--duration", "2", "--rate", "50", timeout=240)
    assert run.returncode == 0, run.stderr
    latest = tmp_path / "demo-data" / "latest"
    assert latest.is_symlink() and (latest / "ledger.sqlite").exists()
    assert "verify: ledger intact" in run.stdout and "alerts raised, by rule" in run.stdout
    assert "one case can raise several" in run.stdout and "`verify` counts 2 more" in run.stdout
    assert medledger_in(tmp_path, "verify").returncode == 0


def test_exit_codes_tell_could_not_check_from_checked_and_wrong(tmp_path: Path) -> None:
    nothing = str(tmp_path / "nothing")
    for args in (("verify", "--data", nothing), ("verify", "--data", nothing, "--json"),
                 ("status", "--data", nothing), ("serve", "--data", nothing), ("credentials", "list", "--data", nothing)):
        run = medledger_in(tmp_path, *args)
        assert run.returncode == 1, (args, run.returncode, run.stderr)
        assert "no ledger" in run.stderr and "Traceback" not in run.stderr
    usage = medledger_in(tmp_path, "verify", "--no-such-option")
    assert usage.returncode == 1 and "No such option" in usage.stderr
    assert medledger_in(tmp_path, "no-such-command").returncode == 1
    unreadable = medledger_in(tmp_path, "proof", "verify", "--tree-head", nothing, "--trusted-key", "A" * 43)
    assert unreadable.returncode == 1 and "cannot read" in unreadable.stderr
    data = tmp_path / "ledger"
    assert medledger_in(tmp_path, "init", "--data", str(data)).returncode == 0
    conn = sqlite3.connect(data / "ledger.sqlite")
    with conn:
        conn.execute("UPDATE txs SET signature = zeroblob(64) WHERE leaf_index = 1")
    conn.close()
    tampered = medledger_in(tmp_path, "verify", "--data", str(data))
    assert tampered.returncode == 2, tampered.stderr
    assert "ledger verification FAILED at height 1" in tampered.stdout, "the verdict is a result: stdout"
    as_json = medledger_in(tmp_path, "verify", "--data", str(data), "--json")
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["ok"] is False
    helped = " ".join(medledger_in(tmp_path, "--help").stdout.split())
    assert "Exit codes: 0 done" in helped and "2 verification failed" in helped


def test_verdicts_go_to_stdout_and_diagnostics_to_stderr(tmp_path: Path) -> None:
    data = tmp_path / "ledger"
    made = medledger_in(tmp_path, "init", "--data", str(data))
    assert "created ledger in" in made.stdout and "created ledger" not in made.stderr
    ok = medledger_in(tmp_path, "verify", "--data", str(data))
    assert ok.returncode == 0 and ok.stdout.startswith("ledger intact: 2 blocks"), (ok.stdout, ok.stderr)
    assert "ledger intact" not in ok.stderr
    head = json.loads(medledger_in(tmp_path, "status", "--data", str(data), "--json").stdout)["tree_head"]
    (tmp_path / "head.json").write_text(json.dumps(head))
    held = medledger_in(tmp_path, "proof", "verify", "--tree-head", str(tmp_path / "head.json"),
                        "--trusted-key", head["signer"])
    assert held.returncode == 0 and "tree head holds" in held.stdout and held.stderr == ""
    revoked = medledger_in(tmp_path, "credentials", "revoke", "--member", "regulator", "--data", str(data))
    assert revoked.returncode == 0 and "revoked 1 credential(s) of regulator" in revoked.stdout


def test_version_and_flags_in_help(tmp_path: Path) -> None:
    shown = medledger_in(tmp_path, "--version")
    assert shown.returncode == 0 and shown.stdout == f"medledger {version('medledger')}\n"
    for command in (("verify",), ("simulate",), ("proof", "verify"), ("bench", "ingest"), ("status",)):
        text = medledger_in(tmp_path, *command, "--help").stdout
        assert "--help" in text and "<bool>" not in text, (command, text)
    assert "--json         print a JSON report" in medledger_in(tmp_path, "verify", "--help").stdout


def test_simulate_explains_its_counts(tmp_path: Path) -> None:
    """The simulator's transaction count and verify's differ by init's two; the output says so."""
    data = tmp_path / "sim"
    sim = medledger_in(tmp_path, "simulate", "--embedded", "--days", "0.05", "--cases-per-day", "400",
                       "--data", str(data), "--report", str(tmp_path / "r.json"))
    assert sim.returncode == 0, sim.stderr
    assert "`verify` counts 2 more, which `init` committed first: the genesis and the demo admin's" in sim.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    verified = json.loads(medledger_in(tmp_path, "verify", "--data", str(data), "--json").stdout)
    assert verified["transactions"] == report["transactions"] + 2
    conn = sqlite3.connect(data / "ledger.sqlite")
    first_two = [json.loads(body)["type"] for (body,) in conn.execute("SELECT body FROM txs WHERE leaf_index < 2 "
                                                                     "ORDER BY leaf_index")]
    conn.close()
    assert first_two == ["genesis", "member.register"]
