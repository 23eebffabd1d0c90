"""``medledger simulate --url``: the same simulator driving a served node over HTTP, in real time.

Over HTTP the clock is the wall clock, so a short run only reaches the
violations that show at once (reports filed after their deadline); the
point here is that the whole path works: setup through the API, day-shaped
traffic in one-second windows, COMPLAINT-SLA alerts read back through
``GET /v1/alerts``, a report, and a ledger that verifies afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

from sim_support import medledger

from ledger_factory import LiveNode


def test_simulate_over_http_then_verify(live: LiveNode, tmp_path: Path) -> None:
    report_file = tmp_path / "r.json"
    done = medledger(
        "simulate",
        "--url",
        live.url,
        "--data",
        str(live.data_dir),
        "--seed",
        "3",
        "--duration",
        "15",
        "--cases-per-day",
        "2000000",
        "--violation-rate",
        "0.3",
        "--report",
        str(report_file),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(report_file.read_text())
    late = report["rules"]["LATE-REPORT"]
    print(
        f"\nover HTTP: {report['transactions']} transactions in {report['blocks']} blocks, "
        f"{report['injected_cases']} of {report['cases']} cases injected, LATE-REPORT {late}"
    )
    assert report["mode"] == "http" and report["transactions"] > 300
    assert report["clean_alerts"] == 0 and report["refusals"] == {}
    assert late["injected"] > 0 and late["recall"] == 1.0 and late["precision"] == 1.0
    for rule, score in report["rules"].items():
        assert score["false_positives"] == 0, rule
        assert score["detected"] == score["injected"], rule
    truth = next(live.data_dir.glob("sim-r*/ground-truth.jsonl"))
    assert sum(1 for _ in truth.open()) == sum(s["injected"] for s in report["rules"].values())
    live.stop()
    verified = medledger("verify", "--data", str(live.data_dir), "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["transactions"] >= report["tree_size"]
