"""The floor benchmark: the verify-plus-insert reference the ingest figures are read against."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FLOOR_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "floor.py"


def _check(result: dict[str, object], count: int) -> None:
    r = result["raw_verify_per_s"]
    assert isinstance(r, float) and r > 0 and result["count"] == count
    assert result["machine"]["envelope_decoder"] in {"c", "python"}  # type: ignore[index]
    for variant in ("no_index", "replay_indexes", "required_minimum"):
        figures = result[variant]
        assert isinstance(figures, dict)
        assert figures["committed_per_s"] > 0
        assert abs(figures["ratio"] - figures["committed_per_s"] / r) < 0.001


def test_cli_reports_both_ratios_against_r_of_the_same_run() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "medledger", "bench", "floor", "--json", "--count", "1500", "--seconds", "0.2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    _check(json.loads(run.stdout), 1500)


def test_script_prints_json_then_the_summary() -> None:
    run = subprocess.run(
        [sys.executable, str(FLOOR_SCRIPT), "1000", "0.2"], capture_output=True, text=True, timeout=300, check=True
    )
    *report, summary = run.stdout.strip().splitlines()
    result = json.loads("\n".join(report))
    _check(result, 1000)
    assert summary == result["summary"] and summary.startswith("floor: R=")
