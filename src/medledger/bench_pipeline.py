"""The full-pipeline benchmark (issue 3): prescription chains through every rule, durably committed.

Each chain is what an Internet hospital, a pharmacy and an insurer really send
for one patient: real-name check, the offline encounter, the doctor's face
check, the online consultation, the doctor-signed prescription, its close,
the pharmacist's review, the dispense, two delivery hand-overs and the claim
(11 signed envelopes). Every contract rule that applies to each type runs,
against world state that grows as the chains commit.

Chains are signed up front (signing is the clients' work, not the node's),
then fed to a node with its worker pool in event-time order. The node's
clock is simulated and follows the batches being admitted: the workload is
minutes of a busy province compressed into seconds of wall time, and rules
that compare event times with the block time must see a consistent clock.
Stateless checks of several batches overlap on the pool while admission
stays in submission order, because a prescription must never be admitted
ahead of the consultation it cites.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from medledger.benchmarks import Log, run_threads, throughput, with_raw_verify
from medledger.contracts import formulary
from medledger.ledger import envelope
from medledger.ledger.keys import SigningKey
from medledger.ledger.timefmt import format_ms, parse_ms
from medledger.node.bootstrap import init_ledger
from medledger.node.node import Node, NodeConfig

START = parse_ms("2026-06-01T01:00:00.000Z")
MIN = 60_000
DOCTORS = 50
ENVELOPES_PER_CHAIN = 11
#: wall-clock-free spacing of chain starts: 10 ms of province time per chain
CHAIN_SPACING_MS = 10
#: how far ahead of the oldest uncommitted event the simulated clock may run (skew is 5 min)
LEAD_MS = 2 * MIN


class _Cast:
    """Deterministic keys for every actor of the benchmark province."""

    def __init__(self) -> None:
        self.keys: dict[str, SigningKey] = {}
        self.nonces = 0

    def key(self, member: str) -> SigningKey:
        if member not in self.keys:
            self.keys[member] = SigningKey(hashlib.sha256(b"bench-pipeline:" + member.encode()).digest())
        return self.keys[member]

    def wire(self, member: str, type_: str, payload: dict[str, Any], at: int) -> dict[str, str]:
        self.nonces += 1
        env = envelope.build(self.key(member), type_, payload, nonce=f"bp{self.nonces:010d}", created_ms=at)
        return env.to_wire()


def _setup(cast: _Cast, regulator: SigningKey) -> list[list[dict[str, str]]]:
    """The province, in stages that must each commit before the next is admitted."""
    cast.keys["regulator"] = regulator
    at = START - 20 * MIN
    w = cast.wire
    lic = {"valid_from": "2020-01-01", "valid_until": "2030-12-31"}
    stages: list[list[dict[str, str]]] = [[], [], [], []]
    orgs = (("hosp", "internet-hospital"), ("clinic", "clinic"), ("pharm", "pharmacy"), ("ins", "insurer"))
    for org, kind in orgs:
        stages[0].append(
            w(
                "regulator",
                "institution.admit",
                {
                    "org": org,
                    "name": f"bench-{kind}",
                    "kind": kind,
                    "physical": kind != "insurer",
                    "licence": {"number": f"LIC-{org.upper()}", **lic},
                },
                at,
            )
        )
        stages[0].append(
            w(
                "regulator",
                "member.register",
                {
                    "member": f"{org}/admin",
                    "org": org,
                    "role": "admin",
                    "key": cast.key(f"{org}/admin").key_id,
                },
                at,
            )
        )
    stages[0].append(w("regulator", "institution.internet-approval", {"org": "hosp", "approval": lic}, at))
    stages[0].append(
        w(
            "regulator",
            "rulebook.publish",
            {
                "version": 1,
                "params": {"max_consults_per_day": 1000},
                "formulary": formulary.default().digest,
            },
            at,
        )
    )
    members = [
        ("hosp/gw", "gateway"),
        ("clinic/gw", "gateway"),
        ("pharm/gw", "gateway"),
        ("ins/claims", "insurer"),
        ("pharm/ph-1", "pharmacist"),
    ] + [(f"hosp/dr-{i}", "doctor") for i in range(DOCTORS)]
    for member, role in members:
        org = member.split("/")[0]
        stages[1].append(
            w(
                f"{org}/admin",
                "member.register",
                {
                    "member": member,
                    "org": org,
                    "role": role,
                    "key": cast.key(member).key_id,
                },
                at,
            )
        )
    practitioners = [("pharm/ph-1", "PHA-0001", "pharmacist")] + [
        (f"hosp/dr-{i}", f"DOC-{i:04d}", "doctor") for i in range(DOCTORS)
    ]
    for member, licence, profession in practitioners:
        org = member.split("/")[0]
        stages[2].append(
            w(
                f"{org}/admin",
                "practitioner.register",
                {
                    "member": member,
                    "licence_no": licence,
                    "profession": profession,
                    "qualification": "physician" if profession == "doctor" else "pharmacist",
                    "first_practice": "2012-09-01",
                    "specialties": ["cardiology"],
                },
                at,
            )
        )
        if profession == "doctor":
            stages[3].append(
                w(
                    "hosp/admin",
                    "practitioner.site",
                    {
                        "licence_no": licence,
                        "filing": "primary",
                        "validity": lic,
                    },
                    at,
                )
            )
    return stages


def _chain(cast: _Cast, i: int, drug: formulary.Drug) -> list[tuple[int, str, str, dict[str, Any]]]:
    """One patient's whole chain as (event time, signer, type, payload)."""
    base = START + i * CHAIN_SPACING_MS
    patient = hashlib.sha256(b"bench-patient:%d" % i).hexdigest()
    document = hashlib.sha256(b"bench-document:%d" % i).hexdigest()
    doctor = f"hosp/dr-{i % DOCTORS}"
    c, rx, d = f"c-{i}", f"rx-{i}", f"d-{i}"
    qty = 30

    def t(minutes: float) -> str:
        return format_ms(base + int(minutes * MIN))

    return [
        (
            base,
            "hosp/gw",
            "patient.verify",
            {"patient": patient, "birth_month": "1975-04", "method": "resident-id", "at": t(0)},
        ),
        (
            base,
            "clinic/gw",
            "encounter.record",
            {
                "encounter_id": f"e-{i}",
                "patient": patient,
                "date": "2026-05-20",
                "diagnosis": "I10",
                "document": document,
            },
        ),
        (base, "hosp/gw", "doctor.authenticate", {"member": doctor, "method": "face", "at": t(0)}),
        (
            base + MIN,
            doctor,
            "consultation.open",
            {
                "consultation_id": c,
                "patient": patient,
                "specialty": "cardiology",
                "diagnosis": "I10.0",
                "prior": {"document": document, "org": "clinic", "date": "2026-05-20", "diagnosis": "I10"},
                "started_at": t(1),
            },
        ),
        (
            base + 3 * MIN,
            doctor,
            "prescription.issue",
            {
                "rx_id": rx,
                "consultation_id": c,
                "rxnorm": drug.rxnorm[0],
                "daily_units": 1,
                "days": qty,
                "quantity": qty,
                "issued_at": t(3),
            },
        ),
        (base + 6 * MIN, doctor, "consultation.close", {"consultation_id": c, "ended_at": t(6)}),
        (
            base + 7 * MIN,
            "pharm/ph-1",
            "prescription.review",
            {"rx_id": rx, "decision": "approved", "reason": "appropriate", "reviewed_at": t(7)},
        ),
        (
            base + 8 * MIN,
            "pharm/gw",
            "prescription.dispense",
            {"dispense_id": d, "rx_id": rx, "quantity": qty, "dispensed_at": t(8)},
        ),
        (base + 9 * MIN, "pharm/gw", "delivery.handover", {"dispense_id": d, "seq": 1, "to": "courier", "at": t(9)}),
        (
            base + 10 * MIN,
            "pharm/gw",
            "delivery.handover",
            {"dispense_id": d, "seq": 2, "to": "patient", "recipient": patient, "at": t(10)},
        ),
        (
            base + 10 * MIN,
            "ins/claims",
            "claim.submit",
            {"claim_id": f"cl-{i}", "dispense_id": d, "amount_fen": drug.unit_price_fen * qty},
        ),
    ]


def _workload(cast: _Cast, chains: int) -> list[tuple[int, dict[str, str]]]:
    drug = next(
        d
        for d in formulary.default().drugs
        if d.drug_class == "ordinary" and "I10" in d.indications and d.max_days >= 30 and d.rxnorm
    )
    # order by event time; ties keep chain order, then step order (a chain's steps can share an instant)
    events = [(step[0], i, n, step) for i in range(chains) for n, step in enumerate(_chain(cast, i, drug))]
    events.sort(key=lambda item: item[:3])
    return [(at, cast.wire(signer, type_, payload, at)) for at, _, _, (_, signer, type_, payload) in events]


def _batches(work: list[tuple[int, dict[str, str]]], size: int) -> list[tuple[int, int, list[dict[str, str]]]]:
    """(last event time, first event time, wire items): at most ``size`` items and one minute of events,
    so a batch admitted at its last event's time keeps its first within the clock skew."""
    out: list[tuple[int, int, list[dict[str, str]]]] = []
    items: list[dict[str, str]] = []
    first = last = 0
    for at, wire in work:
        if items and (len(items) == size or at - first > MIN):
            out.append((last, first, items))
            items = []
        if not items:
            first = at
        items.append(wire)
        last = at
    if items:
        out.append((last, first, items))
    return out


class _Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def _feed(
    node: Node, clock: _Clock, batches: list[tuple[int, int, list[dict[str, str]]]], checkers: int
) -> Counter[str]:
    """Check batches on several threads at once, admit them strictly in order, count the outcomes."""
    statuses: Counter[str] = Counter()
    lock = threading.Condition()
    state = {"next_check": 0, "next_admit": 0}
    futures: list[Any] = [None] * len(batches)
    errors: list[BaseException] = []

    def run() -> None:
        while True:
            with lock:
                k = state["next_check"]
                if k >= len(batches) or errors:
                    return
                state["next_check"] += 1
            at, _first, items = batches[k]
            try:
                envelopes = node.check(items)
                # bound how far the clock runs ahead of the blocks being cut: every envelope must stay
                # within the clock skew of the block that commits it, so earlier batches whose events
                # are more than LEAD_MS older must be committed before this one is admitted
                for j in range(max(0, k - 256), k):
                    if batches[j][1] < at - LEAD_MS:
                        while futures[j] is None and not errors:
                            time.sleep(0.0005)
                        if futures[j] is not None:
                            futures[j].result(300)
                with lock:
                    while state["next_admit"] != k and not errors:
                        lock.wait()
                    if errors:
                        return
                    clock.ms = max(clock.ms, at)
                    futures[k] = node.admit(envelopes)
                    state["next_admit"] += 1
                    lock.notify_all()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the threads stop
                with lock:
                    errors.append(exc)
                    lock.notify_all()
                return

    run_threads(run, checkers)
    if errors:
        raise RuntimeError(f"pipeline bench failed: {errors[0]}") from errors[0]
    for future in futures:
        statuses.update(r.status + "".join(f" {c}" for c in r.codes) for r in future.result(300))
    return statuses


def pipeline_ingest(chains: int, *, batch: int = 500, checkers: int = 3, log: Log = None) -> dict[str, Any]:
    """Commit ``chains`` prescription chains through a node with every rule on; T in envelopes/s."""
    cast = _Cast()
    with tempfile.TemporaryDirectory(prefix="medledger-pipeline-") as tmp:
        data = Path(tmp) / "ledger"
        clock = _Clock(START - 30 * MIN)
        keys = init_ledger(data, clock=clock)
        node = Node(NodeConfig(data, max_block_txs=2000, max_wait_ms=20, clock=clock), key=keys.node)
        clock.ms = START - 20 * MIN
        try:
            for stage in _setup(cast, keys.regulator):
                for start in range(0, len(stage), 500):
                    node.submit_sync(stage[start : start + 500])
            work = _workload(cast, chains)
            batches = _batches(work, batch)
            first_height = node.tip.height
            began = time.perf_counter()
            statuses = _feed(node, clock, batches, checkers)
            elapsed = time.perf_counter() - began
            blocks = node.tip.height - first_height
        finally:
            node.close()
    count = len(work)
    if statuses != {"ACCEPTED": count}:
        raise RuntimeError(f"pipeline workload not all accepted (a rule fired on clean traffic): {dict(statuses)}")
    if log:
        log(f"pipeline: {chains} chains = {count} envelopes committed in {elapsed:.2f} s ({blocks} blocks)")
    return throughput(count, elapsed, chains=chains, blocks=blocks, batch=batch, checkers=checkers)


def pipeline(chains: int = 4000, log: Log = None, seconds: float = 3.0) -> dict[str, Any]:
    """R before and after, T of the full pipeline in between, and T/R."""
    result, r, report = with_raw_verify(lambda: pipeline_ingest(chains, log=log), "pipeline", seconds, log)
    result["ratio"] = round(result["committed_per_s"] / r, 3)
    report["pipeline"] = result
    report["summary"] = (
        f"pipeline: R={r:,.0f} verify/s ({report['raw_verify_library']}); prescription chains "
        f"T={result['committed_per_s']:,.0f} tx/s over {result['count']} envelopes, T/R={result['ratio']:.2f} "
        "(target 0.50)"
    )
    return report
