"""`medledger load` and the README's Python snippet fail with one sentence, never a traceback (issue 12, 2b)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ledger_factory import LiveNode
from medledger._serving import free_port
from medledger.ledger.keys import SigningKey
from test_demo_own_transactions import readme_python_snippet


def _load(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medledger", "load", "--count", "20", *args],
                          capture_output=True, text=True, timeout=120)


def _one_sentence(run: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    for part in expected:
        assert part in lines[0], lines[0]


def test_load_failures_are_one_sentence(live: LiveNode, tmp_path: Path) -> None:
    admin = str(live.data_dir / "keys" / "demo-admin.key")
    _one_sentence(_load("--url", live.url, "--admin-key", str(tmp_path / "missing.key")),
                  "cannot read key file", "missing.key")
    dead = f"http://127.0.0.1:{free_port()}"
    _one_sentence(_load("--url", dead, "--admin-key", admin, "--wait", "1"),
                  f"no medledger node answered at {dead} within 1 s")
    _one_sentence(_load("--url", "not a url", "--admin-key", admin, "--wait", "1"), "cannot reach the node")
    stranger = tmp_path / "stranger.key"
    SigningKey.generate().to_file(stranger)
    _one_sentence(_load("--url", live.url, "--admin-key", str(stranger)))
    _one_sentence(_load("--url", live.url, "--admin-key", admin, "--receipts", str(tmp_path)),
                  f"cannot write {tmp_path}")
    _one_sentence(_load("--url", live.url, "--admin-key", admin, "--wait", "-1"), "--wait")


def test_the_readme_snippet_fails_with_one_sentence(live: LiveNode, tmp_path: Path) -> None:
    snippet = readme_python_snippet().replace("trusted-head.json", str(tmp_path / "trusted-head.json"))
    for url, key, expected in (
        (live.url, str(tmp_path / "missing.key"), "EncodingError: cannot read key file"),
        (f"http://127.0.0.1:{free_port()}", str(live.data_dir / "keys" / "demo-admin.key"),
         "MedledgerError: cannot reach the node"),
    ):
        script = snippet.replace("http://127.0.0.1:8400", url).replace("ledger/keys/demo-admin.key", key)
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert run.returncode == 1
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith("medledger.errors.") and expected in last, run.stderr
        assert "direct cause" not in run.stderr and "During handling" not in run.stderr, run.stderr
