"""The province simulator against the real contracts: every rule injected, every injection detected,
nothing flagged on clean traffic, the ledger it leaves behind verifies, and one seed is one run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from sim_support import SimRun, medledger

from medledger.contracts.catalogue import HARD_RULES, RULES, RULES_BY_ID
from medledger.sim import EmbeddedDriver, SimConfig, run_simulation
from medledger.sim.injection import BY_RULE, VARIANTS
from medledger.sim.run import SIM_START


def test_every_rule_injected_and_detected_with_no_clean_alert(seed7: SimRun) -> None:
    report = seed7.report
    print(
        f"\nseed 7, 2 days: {report['transactions']} transactions, {report['blocks']} blocks, "
        f"{seed7.wall_s:.1f} s wall (simulation alone {report['elapsed_s']} s)"
    )
    assert set(report["rules"]) == {r.id for r in RULES}
    assert report["clean_alerts"] == 0
    assert report["refusals"] == {}, "the simulator sent something structurally wrong"
    assert report["simulated_days"] == 2.0 and report["seed"] == 7
    for rule, score in report["rules"].items():
        assert score["injected"] >= 20, (rule, score)
        assert score["recall"] == 1.0, (rule, score)
        assert score["precision"] == 1.0, (rule, score)
        assert score["false_positives"] == 0, (rule, score)
        assert score["severity"] == RULES_BY_ID[rule].kind


def test_ground_truth_matches_the_report(seed7: SimRun) -> None:
    by_rule = Counter(line["rule"] for line in seed7.truth)
    assert by_rule == {rule: score["injected"] for rule, score in seed7.report["rules"].items()}
    assert len({(t["tx_id"], t["rule"]) for t in seed7.truth}) == len(seed7.truth)
    variants = {t["variant"] for t in seed7.truth}
    assert variants == {v.label for v in VARIANTS}, "every way of violating a rule was exercised"
    receipts = {}
    for line in (seed7.data / "sim" / "receipts.jsonl").read_text().splitlines():
        receipt = json.loads(line)
        receipts[receipt["tx_id"]] = receipt
    for truth in seed7.truth:
        if truth["rule"] == "COMPLAINT-SLA":
            assert receipts[truth["tx_id"]]["status"] == "ACCEPTED"
            continue
        receipt = receipts[truth["tx_id"]]
        assert receipt["codes"] == [truth["rule"]], truth
        hard = truth["rule"] in HARD_RULES and truth["variant"] != "RX-NO-AI/instant"
        assert receipt["status"] == ("REJECTED" if hard else "ACCEPTED_WITH_ALERTS"), truth
    clean = [r for r in receipts.values() if not r["injected"]]
    assert clean and all(r["status"] == "ACCEPTED" for r in clean)


def test_the_simulated_ledger_verifies(seed7: SimRun) -> None:
    done = medledger("verify", "--data", str(seed7.data), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True
    assert result["transactions"] == seed7.report["tree_size"]


def test_every_rule_has_a_variant() -> None:
    assert all(BY_RULE[rule.id] for rule in RULES)


def _short_run(data: Path, seed: int) -> tuple[dict[str, object], str]:
    driver = EmbeddedDriver(data, SIM_START)
    try:
        report = run_simulation(driver, SimConfig(seed=seed, days=0.25, truth_dir=data / "sim"))
    finally:
        driver.close()
    return report.counts(), (data / "sim" / "ground-truth.jsonl").read_text()


def test_one_seed_is_one_run(tmp_path: Path) -> None:
    first, first_truth = _short_run(tmp_path / "a", 11)
    second, second_truth = _short_run(tmp_path / "b", 11)
    assert first == second
    assert first_truth == second_truth and first_truth.count("\n") > 50
    _, other_truth = _short_run(tmp_path / "c", 12)
    assert other_truth != first_truth


def test_bad_arguments_are_refused_with_a_sentence(tmp_path: Path) -> None:
    both = medledger("simulate", "--embedded", "--url", "http://127.0.0.1:9", "--data", str(tmp_path / "x"))
    assert both.returncode != 0 and "choose one of --embedded and --url" in both.stderr
    rate = medledger("simulate", "--violation-rate", "1.5", "--data", str(tmp_path / "y"))
    assert rate.returncode != 0 and "between 0 and 1" in rate.stderr
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("keep me")
    busy = medledger("simulate", "--data", str(used))
    assert busy.returncode != 0 and "is not empty" in busy.stderr
    assert (used / "something").read_text() == "keep me"
    lonely = medledger("simulate", "--duration", "5", "--data", str(tmp_path / "z"))
    assert lonely.returncode != 0 and "--duration" in lonely.stderr
