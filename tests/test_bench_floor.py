"""bench/floor.py: the verify-plus-insert reference the ingest figures are read against."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FLOOR = Path(__file__).resolve().parents[1] / "bench" / "floor.py"


def test_floor_reports_both_ratios_against_r_of_the_same_run() -> None:
    run = subprocess.run(
        [sys.executable, str(FLOOR), "1500", "0.2"], capture_output=True, text=True, timeout=300, check=True
    )
    *report, summary = run.stdout.strip().splitlines()
    result = json.loads("\n".join(report))
    r = result["raw_verify_per_s"]
    assert r > 0 and result["count"] == 1500
    for variant in ("no_index", "replay_indexes"):
        committed = result[variant]["committed_per_s"]
        assert committed > 0
        assert abs(result[variant]["ratio"] - committed / r) < 0.001
    assert summary == result["summary"] and summary.startswith("floor: R=")
