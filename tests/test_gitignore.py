"""Friction 8 of issue 12: following the README must never leave private keys where `git add -A` takes them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)


def test_every_ledger_directory_hides_itself_from_git(tmp_path: Path) -> None:
    """`init` and the embedded `simulate` (which `demo` shares) leave nothing for `git status` to offer."""
    _git(tmp_path, "init", "-q")
    init = subprocess.run(
        [sys.executable, "-m", "medledger", "init", "--data", "ledger"], cwd=tmp_path, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    simulate = subprocess.run(
        [sys.executable, "-m", "medledger", "simulate", "--embedded", "--days", "0.02", "--cases-per-day", "200",
         "--data", "runs/sim-data"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert simulate.returncode == 0, simulate.stderr
    assert (tmp_path / "ledger" / "keys" / "regulator.key").exists()
    assert (tmp_path / "runs" / "sim-data" / "keys" / "regulator.key").exists()
    status = _git(tmp_path, "status", "--porcelain", "--untracked-files=all").stdout
    assert status == "", f"git would offer these for a commit:\n{status}"


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")
def test_the_readme_artefacts_are_ignored_in_the_repository() -> None:
    """What the README's commands write in the repository root is ignored there too."""
    paths = ["ledger/keys/node.key", "sim-data/ledger.sqlite", "r.json", "receipts.jsonl", "trusted-head.json",
             "demo-data/run-1/keys/regulator.key"]
    found = subprocess.run(["git", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True)
    assert sorted(found.stdout.split()) == sorted(paths)
