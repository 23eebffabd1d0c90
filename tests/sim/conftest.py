"""The acceptance run, done once: ``medledger simulate --embedded --seed 7 --days 2`` as a user runs it.

Several tests read its report, its ground truth and its SQLite file, so it is
session-scoped: the two simulated days cost about half a minute on two cores
and are the point of the whole package.
"""

from __future__ import annotations

import json
import time

import pytest
from sim_support import SimRun, medledger


@pytest.fixture(scope="session")
def seed7(tmp_path_factory: pytest.TempPathFactory) -> SimRun:
    root = tmp_path_factory.mktemp("sim-seed7")
    data, report = root / "ledger", root / "r.json"
    started = time.monotonic()
    done = medledger(
        "simulate", "--embedded", "--seed", "7", "--days", "2", "--data", str(data), "--report", str(report)
    )
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    truth = [json.loads(line) for line in (data / "sim" / "ground-truth.jsonl").read_text().splitlines()]
    return SimRun(data, json.loads(report.read_text()), truth, wall, done.stderr)
