"""Running a simulation: set the province up, stream its traffic window by window, score it.

The library entry point is :func:`run_simulation`; ``medledger simulate`` is a
thin wrapper, and ``medledger demo`` can drive the same function at a steady
pace (``pace`` simulated seconds per wall second, or ``max_tx_per_s``) with a
``stop`` event to end it.

The rulebook the simulation publishes first (:data:`SIM_PARAMS`) shortens a
few windows. A 15-day complaint deadline cannot pass in a two-day run, so the
regulator sets one day; prescriptions are valid for 12 hours and must follow
their consultation within 4; clinical events must reach the ledger within 2
hours. Those are exactly the knobs the rulebook puts on the ledger so that a
regulator can turn them, and every outcome records the version it was judged
under, so nothing about the rules themselves is special-cased for simulation.
Over HTTP the simulator publishes that rulebook version on the target ledger
too, so point it at a ledger meant for demonstration, not at production.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import IO

from medledger.contracts.catalogue import DEFAULT_PARAMS, RULES
from medledger.ledger import envelope
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.syntax import counter
from medledger.ledger.timefmt import format_ms, parse_ms
from medledger.sim.cases import Planner
from medledger.sim.drivers import Driver, SimulationError
from medledger.sim.injection import DAY, MINUTE, Scheduler, Variant
from medledger.sim.medicine import Medicine
from medledger.sim.province import Province, SetupTx
from medledger.sim.report import Report, Scorer, TxMeta
from medledger.sim.seeded import Seeded
from medledger.sim.traffic import Arrivals, Traffic

#: embedded runs start at a fixed instant (a Monday, 08:00 in the province), never at the wall clock
SIM_START = parse_ms("2026-03-02T00:00:00.000Z")
SIM_PARAMS: dict[str, int] = {
    **DEFAULT_PARAMS,
    "complaint_sla_d": 1,
    "rx_validity_h": 12,
    "rx_window_h": 4,
    "report_deadline_h": 2,
}
DEFAULT_VIOLATION_RATE = 0.25
DEFAULT_CASES_PER_DAY = 1500
TRUTH_FILE = "ground-truth.jsonl"
RECEIPTS_FILE = "receipts.jsonl"

#: called with (simulated milliseconds done, simulated milliseconds in the run, transactions so far)
ProgressFn = Callable[[int, int, int], None]


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. ``days`` bounds simulated time; over HTTP ``duration_s`` bounds wall time too."""

    seed: int = 7
    days: float = 2.0
    violation_rate: float = DEFAULT_VIOLATION_RATE
    cases_per_day: int = DEFAULT_CASES_PER_DAY
    duration_s: float | None = None
    #: simulated seconds per wall second (embedded only; None runs flat out)
    pace: float | None = None
    #: at most this many transactions per wall second (None: no limit)
    max_tx_per_s: float | None = None
    #: where ground truth and receipts are written (None: not written)
    truth_dir: Path | None = None
    #: when an embedded province starts (None: :data:`SIM_START`); the demo starts it at the wall clock
    start_ms: int | None = None

    def check(self) -> None:
        if not self.days > 0:
            raise SimulationError(f"days must be more than 0, got {self.days}", code="bad-argument")
        if not 0 <= self.violation_rate <= 1:
            raise SimulationError(
                f"the violation rate is a fraction of cases, between 0 and 1; got {self.violation_rate}",
                code="bad-argument",
            )
        if self.cases_per_day < 1:
            raise SimulationError(f"cases per day must be at least 1, got {self.cases_per_day}", code="bad-argument")
        for name in ("duration_s", "pace", "max_tx_per_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise SimulationError(f"{name} must be more than 0, got {value}", code="bad-argument")


class _Run:
    """One simulation in progress: signing, submitting and scoring."""

    def __init__(self, driver: Driver, config: SimConfig, scorer: Scorer) -> None:
        self.driver = driver
        self.config = config
        self.scorer = scorer
        self.rng = Random(config.seed)
        self.seeded = Seeded(config.seed, driver.tag)
        self.medicine = Medicine()
        self.province = Province(self.rng, self.seeded, self.medicine, driver.regulator)
        self.params = dict(SIM_PARAMS)
        self.sla_ms = self.params["complaint_sla_d"] * DAY
        self.truth_hash = hashlib.sha256()

    def sign(self, signer: str, type_: str, payload: dict[str, object], at: int) -> SignedEnvelope:
        return envelope.build(self.province.keys[signer], type_, payload, nonce=self.seeded.nonce(), created_ms=at)

    def submit(self, batch: list[tuple[SignedEnvelope, TxMeta]]) -> None:
        receipts = self.driver.submit([env for env, _ in batch])
        for (env, meta), receipt in zip(batch, receipts, strict=True):
            for rule in meta.expect:
                self.truth_hash.update(f"{env.tx_id} {rule}\n".encode())
            self.scorer.record(env, meta, receipt, sla_ms=self.sla_ms)

    def setup(self, at: int) -> int:
        """Register the province, stage by stage; the time the last stage committed."""
        version = self.driver.rulebook_version() + 1
        stages = self.province.setup_stages(version, self.params)
        setup_meta = TxMeta(0, False, note="setup")
        for stage in stages:
            if self.driver.simulated:
                at += MINUTE
                self.driver.advance_to(at, None)
            else:
                at = self.driver.now()
            batch = [(self.sign(tx.signer, tx.type, tx.payload, at), setup_meta) for tx in stage]
            receipts = self.driver.submit([env for env, _ in batch])
            refused = [(tx, r) for tx, r in zip(stage, receipts, strict=True) if r.status != "ACCEPTED"]
            if refused:
                tx, receipt = refused[0]
                raise SimulationError(_setup_refusal(tx, receipt.status, receipt.codes, receipt.reason))
            for (env, meta), receipt in zip(batch, receipts, strict=True):
                self.scorer.record(env, meta, receipt)
        return at


def _setup_refusal(tx: SetupTx, status: str, codes: tuple[str, ...], reason: str) -> str:
    return f"setting up the province failed: {tx.type} by {tx.signer} was {status} ({', '.join(codes)}: {reason})"


def _available(planner: Planner, medicine: Medicine) -> Callable[[Variant, int], bool]:
    def available(variant: Variant, at: int) -> bool:
        wanted = variant.mods.get("patient")
        if wanted == "holder":
            return planner.holder(at, pick=False) is not None
        if wanted == "prohibitable":
            return bool(medicine.prohibitable)
        return True

    return available


def _pause(
    started: float, simulated_ms: int, transactions: int, config: SimConfig, stop: threading.Event | None
) -> bool:
    """Hold back to the requested pace; False if stopped meanwhile."""
    wait = 0.0
    if config.pace is not None:
        wait = max(wait, simulated_ms / 1000 / config.pace - (time.monotonic() - started))
    if config.max_tx_per_s is not None:
        wait = max(wait, transactions / config.max_tx_per_s - (time.monotonic() - started))
    if wait <= 0:
        return stop is None or not stop.is_set()
    if stop is None:
        time.sleep(wait)
        return True
    return not stop.wait(wait)


def run_simulation(
    driver: Driver,
    config: SimConfig,
    *,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> Report:
    """Set up the province on ``driver``'s ledger, run its traffic and return the scored report.

    Raises :class:`SimulationError` if the node refuses anything the
    simulator sent (which would be a simulator bug: it only ever makes
    contract-level violations) or cannot be reached.
    """
    config.check()
    began = time.monotonic()
    truth: IO[str] | None = None
    receipts: IO[str] | None = None
    if config.truth_dir is not None:
        config.truth_dir.mkdir(parents=True, exist_ok=True)
        truth = (config.truth_dir / TRUTH_FILE).open("w")
        receipts = (config.truth_dir / RECEIPTS_FILE).open("w")
    scorer = Scorer(truth, receipts)
    try:
        run = _Run(driver, config, scorer)
        sim_start = SIM_START if config.start_ms is None else config.start_ms
        setup_at = sim_start - 30 * MINUTE if driver.simulated else driver.now()
        done_setup = run.setup(setup_at)
        start = sim_start if driver.simulated else max(done_setup, driver.now()) + 1000
        span = int(config.days * DAY)
        if config.duration_s is not None and not driver.simulated:
            span = min(span, int(config.duration_s * 1000))
        end = start + span
        planner = Planner(run.province, run.medicine, run.rng, run.seeded, run.params, end)
        expected = config.cases_per_day * span / DAY * config.violation_rate / len(RULES)
        scheduler = Scheduler(start, end, run.params, expected, _available(planner, run.medicine))
        arrivals = Arrivals(run.rng, start, config.cases_per_day, run.params["local_offset_min"])
        traffic = Traffic(planner, scheduler, arrivals, config.violation_rate)
        paced_from = time.monotonic()
        t = start
        stopped = False
        while t < end:
            window_end = min(t + driver.window_ms, end)
            traffic.plan_until(window_end)
            steps = planner.due(window_end)
            # a simulated clock moves through quiet windows too, so it keeps the pace it publishes
            if (steps or driver.simulated) and not driver.advance_to(window_end, stop):
                stopped = True
                break
            if steps:
                run.submit([(run.sign(s.signer, s.type, s.payload, s.at), s.meta) for s in steps])
            t = window_end
            if progress is not None:
                progress(t - start, span, scorer.transactions)
            if stop is not None and stop.is_set():
                stopped = True
                break
            if driver.simulated and not _pause(paced_from, t - start, scorer.transactions, config, stop):
                stopped = True
                break
        finish = end if not stopped else max(t, start)
        if driver.simulated:
            driver.advance_to(finish, None)
        # the digest of every (tx_id, rule) injected, committed before anything is scored
        sign = "minus-" if config.seed < 0 else ""
        label = f"medledger-sim/ground-truth/seed-{sign}{counter(abs(config.seed))}"
        anchor = run.sign(
            run.province.public_desk,
            "anchor.record",
            {"label": label, "sha256": run.truth_hash.hexdigest()},
            driver.now(),
        )
        run.submit([(anchor, TxMeta(0, False, note="ground truth digest"))])
        scorer.complaint_alerts(driver.alerts("COMPLAINT-SLA"))
        elapsed = time.monotonic() - began
        return Report(
            seed=config.seed,
            days=config.days,
            violation_rate=config.violation_rate,
            cases_per_day=config.cases_per_day,
            mode=driver.mode,
            start=format_ms(start),
            end=format_ms(finish),
            simulated_days=round((finish - start) / DAY, 4),
            transactions=scorer.transactions,
            blocks=len(scorer.heights),
            tree_size=scorer.tree_size,
            cases=planner.cases,
            injected_cases=planner.injected_cases,
            clean_alerts=scorer.clean_alerts,
            rules=scorer.scores,
            refusals=dict(scorer.refusals),
            statuses=dict(scorer.statuses),
            elapsed_s=elapsed,
            truth_file=None if config.truth_dir is None else str(config.truth_dir / TRUTH_FILE),
        )
    finally:
        if truth is not None:
            truth.close()
        if receipts is not None:
            receipts.close()
