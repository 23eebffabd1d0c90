"""Scoring a simulation: what was injected, what the contracts detected, what they flagged wrongly.

Ground truth is a set of (tx_id, rule) pairs: for every injected case, the
transaction that violates the rule and the rule it violates. A pair is
*detected* when that transaction's receipt lists the rule among its codes
(hard and soft violations both appear there). COMPLAINT-SLA is the one rule a
block raises by itself when a deadline passes, not tied to a transaction: it
is detected when an alert of that rule cites the complaint's tx_id as
evidence. Any other rule code on any transaction we sent is a *false
positive*; on a transaction of a clean case it is also a *clean alert*, and a
correct rulebook over clean traffic has none.

A code that is not a catalogued rule (an unknown reference, a duplicate id)
means the simulator sent something structurally wrong; those are counted
apart as ``refusals`` so a simulator bug can never pass for a rule's miss.

The report is not signed data, so its ratios are floats (rounded to 4 places).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.table import Table

from medledger.contracts.catalogue import RULES, RULES_BY_ID
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.receipt import Receipt
from medledger.ledger.timefmt import parse_ms

COMPLAINT_SLA = "COMPLAINT-SLA"


@dataclass(frozen=True, slots=True)
class TxMeta:
    """Why the simulator sent a transaction: its case, and the rules it is expected to trigger."""

    case: int
    injected: bool
    variant: str = ""
    expect: tuple[str, ...] = ()
    note: str = ""


@dataclass(slots=True)
class RuleScore:
    rule: str
    injected: int = 0
    detected: int = 0
    false_positives: int = 0

    @property
    def precision(self) -> float:
        flagged = self.detected + self.false_positives
        return 1.0 if flagged == 0 else round(self.detected / flagged, 4)

    @property
    def recall(self) -> float | None:
        return None if self.injected == 0 else round(self.detected / self.injected, 4)

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": RULES_BY_ID[self.rule].kind,
            "injected": self.injected,
            "detected": self.detected,
            "false_positives": self.false_positives,
            "precision": self.precision,
            "recall": self.recall,
        }


@dataclass
class Report:
    """The outcome of one simulation run (``--report FILE`` writes :meth:`to_json`)."""

    seed: int
    days: float
    violation_rate: float
    cases_per_day: int
    mode: str
    start: str
    end: str
    simulated_days: float
    transactions: int
    blocks: int
    tree_size: int
    cases: int
    injected_cases: int
    clean_alerts: int
    rules: dict[str, RuleScore]
    refusals: dict[str, int]
    statuses: dict[str, int]
    elapsed_s: float
    truth_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "days": self.days,
            "violation_rate": self.violation_rate,
            "cases_per_day": self.cases_per_day,
            "mode": self.mode,
            "start": self.start,
            "end": self.end,
            "simulated_days": self.simulated_days,
            "transactions": self.transactions,
            "blocks": self.blocks,
            "tree_size": self.tree_size,
            "cases": self.cases,
            "injected_cases": self.injected_cases,
            "clean_alerts": self.clean_alerts,
            "statuses": dict(sorted(self.statuses.items())),
            "refusals": dict(sorted(self.refusals.items())),
            "rules": {rule: score.to_json() for rule, score in self.rules.items()},
            "elapsed_s": round(self.elapsed_s, 3),
            "truth_file": self.truth_file,
        }

    def counts(self) -> dict[str, Any]:
        """Everything but wall-clock facts: what two runs of one seed must agree on."""
        out = self.to_json()
        for name in ("elapsed_s", "truth_file"):
            out.pop(name)
        return out


@dataclass
class Scorer:
    """Accumulates ground truth and receipts as the run goes, so memory stays flat on long runs."""

    truth: IO[str] | None = None
    receipts: IO[str] | None = None
    scores: dict[str, RuleScore] = field(default_factory=lambda: {r.id: RuleScore(r.id) for r in RULES})
    clean_alerts: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    transactions: int = 0
    heights: set[int] = field(default_factory=set)
    tree_size: int = 0
    #: our complaint tx_ids -> (why we filed it, the envelope, when the regulator's answer fell due)
    complaints: dict[str, tuple[TxMeta, SignedEnvelope, int]] = field(default_factory=dict)
    last_block_ms: int = 0

    def record(self, env: SignedEnvelope, meta: TxMeta, receipt: Receipt, *, sla_ms: int = 0) -> None:
        """One committed transaction: compare its receipt's rule codes with what was expected of it.

        ``sla_ms`` is the complaint deadline in force, for a ``complaint.file``:
        its answer falls due that long after it reached the ledger.
        """
        self.transactions += 1
        self.statuses[receipt.status] += 1
        self.heights.add(receipt.height)
        self.tree_size = max(self.tree_size, receipt.tree_head.tree_size)
        block_ms = parse_ms(receipt.tree_head.timestamp)
        self.last_block_ms = max(self.last_block_ms, block_ms)
        expected = set(meta.expect)
        if env.type == "complaint.file" and receipt.status != "REJECTED":
            filed = parse_ms(env.payload["filed_at"])
            self.complaints[env.tx_id] = (meta, env, max(filed, block_ms) + sla_ms)
            expected.discard(COMPLAINT_SLA)
        for rule in sorted(expected):
            self._truth(env, meta, rule)
            if rule in receipt.codes:
                self.scores[rule].detected += 1
        for code in receipt.codes:
            if code in expected:
                continue
            if code not in self.scores:
                self.refusals[code] += 1
                continue
            self.scores[code].false_positives += 1
            if not meta.injected:
                self.clean_alerts += 1
        if self.receipts is not None:
            line = {
                "tx_id": env.tx_id,
                "type": env.type,
                "case": meta.case,
                "injected": meta.injected,
                "status": receipt.status,
                "codes": list(receipt.codes),
                "height": receipt.height,
            }
            self.receipts.write(json.dumps(line, separators=(",", ":")) + "\n")

    def _truth(self, env: SignedEnvelope, meta: TxMeta, rule: str) -> None:
        self.scores[rule].injected += 1
        if self.truth is not None:
            line = {
                "case": meta.case,
                "rule": rule,
                "variant": meta.variant,
                "tx_id": env.tx_id,
                "type": env.type,
                "note": meta.note,
            }
            self.truth.write(json.dumps(line, separators=(",", ":")) + "\n")

    def complaint_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Score COMPLAINT-SLA from the block-level alerts, once the run is over.

        An unanswered complaint counts as injected only if its deadline passed
        before the last block (a run stopped early has not yet reached the
        others' deadlines); an alert counts once per complaint it cites.
        """
        cited: set[str] = set()
        for alert in alerts:
            cited.update(tx for tx in alert.get("evidence") or [] if tx in self.complaints)
        for tx_id, (meta, env, due) in self.complaints.items():
            wanted = meta.injected and COMPLAINT_SLA in meta.expect and due < self.last_block_ms
            if wanted:
                self._truth(env, meta, COMPLAINT_SLA)
            if tx_id not in cited:
                continue
            if wanted:
                self.scores[COMPLAINT_SLA].detected += 1
            else:
                self.scores[COMPLAINT_SLA].false_positives += 1
                if not meta.injected:
                    self.clean_alerts += 1


def write_report(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


#: printed under the per-rule tables, because their counts measure different things and look inconsistent
COUNTS_NOTE = (
    "injected/detected count cases: each injected case carries one violation, detected when the transaction "
    "carrying it raised its rule. Alerts count every rule each transaction breaks, so one case can raise several "
    "(after a refused step, the same case's next step often breaks the rule again): alerts >= detected. "
    "The simulator counts the transactions it submitted; `verify` counts 2 more, which `init` committed first: "
    "the genesis and the demo admin's registration."
)


def summary_table(report: Report) -> Table:
    """The per-rule scores as a terminal table (``medledger simulate`` prints it at the end)."""
    table = Table(
        title=f"seed {report.seed}: {report.simulated_days} simulated days, {report.transactions} transactions"
    )
    table.add_column("rule", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    for name in ("injected", "detected", "FP", "precision", "recall"):
        table.add_column(name, justify="right")
    for rule, score in report.rules.items():
        missed = score.recall is not None and score.recall < 1.0
        style = "red" if missed or score.false_positives else None
        table.add_row(
            rule,
            RULES_BY_ID[rule].kind,
            str(score.injected),
            str(score.detected),
            str(score.false_positives),
            _ratio(score.precision),
            _ratio(score.recall),
            style=style,
        )
    return table
