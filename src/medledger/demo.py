"""``medledger demo``: a province under supervision, in one command.

An embedded node on a fresh ledger serves the HTTP API while the province
simulator streams day-shaped traffic through it at a steady rate: doctors
consult and prescribe, pharmacists review and dispense, couriers deliver,
the insurer claims, the public complains, and a share of every kind of
violation is injected. The contracts judge each transaction as it commits;
the API answers queries (alerts, proofs, tree heads) while it runs.

The province runs on simulated time, faster than the wall clock (the node's
clock is the simulation's, so block times and tree heads carry province
time): a day of deadlines passes in a minute. That clock starts at the wall
clock and keeps a steady pace (``speed`` province seconds per wall second),
which the node publishes with its time in ``GET /healthz``. So anyone can try
the demo with their own transactions: ``medledger load`` and
``Client.clock`` stamp envelopes with the node's time, and a hospital's FHIR
write carrying real timestamps is never in the province's future (it is
late by however far the province has run ahead, and alerted as such).
Contracts still read only block time, so the province's deadlines are judged
exactly as in ``simulate``.

At the end (after ``duration`` seconds or Ctrl-C) the node commits what is
queued and stops, ``verify`` re-derives every block, outcome and alert from
genesis, and the alerts are summed up by rule.
"""

from __future__ import annotations

import threading
from pathlib import Path

from rich.console import Console
from rich.table import Table

from medledger.demo_dirs import link_latest
from medledger.errors import MedledgerError
from medledger.ledger.sqlite_store import DB_NAME, SqliteStore
from medledger.ledger.timefmt import format_ms, now_ms
from medledger.node.bootstrap import REGULATOR_TOKEN
from medledger.sim.drivers import EmbeddedDriver
from medledger.sim.report import COUNTS_NOTE, summary_table
from medledger.sim.run import SimConfig, run_simulation

#: simulated days the demo may run through (it stops earlier, at ``duration`` or Ctrl-C)
DEMO_DAYS = 30
#: province seconds per wall second: a day a minute, so a 90-second demo sees day-long deadlines pass
DEMO_SPEED = 1440.0


def _alert_table(data: Path) -> Table:
    store = SqliteStore(data, readonly=True)
    try:
        counts = store.alert_counts()
    finally:
        store.close()
    table = Table(title="alerts raised, by rule")
    table.add_column("rule")
    table.add_column("hard (REJECTED)", justify="right")
    table.add_column("soft (alert)", justify="right")
    for rule, by_severity in counts.items():
        table.add_row(rule, str(by_severity.get("hard", 0)), str(by_severity.get("soft", 0)))
    return table


def run_demo(
    data: Path,
    *,
    port: int,
    rate: float | None = None,
    duration: float | None,
    seed: int,
    console: Console,
    stop: threading.Event | None = None,
    out: Console | None = None,
    speed: float = DEMO_SPEED,
) -> None:
    """Serve a simulated province until ``duration`` seconds pass or Ctrl-C, then verify and summarise.

    The province starts at the wall clock and runs ``speed`` times faster; ``rate`` (transactions per
    second) caps it, slowing province time below ``speed`` whenever its traffic peaks above the cap.
    Progress goes to ``console``; the summary (the results) to ``out`` (default: ``console``). A ledger made
    under ``demo-data/`` becomes ``demo-data/latest``, the other commands' default.
    """
    out = out or console
    from medledger._serving import BackgroundServer
    from medledger.cli import run_verify

    if (data / DB_NAME).exists():
        raise MedledgerError(
            f"{data} already holds a ledger (a previous demo?); the demo builds a fresh province, so pass a new "
            f"--data directory (the old ledger is kept: `medledger verify --data {data}` still checks it)",
            code="already-initialised",
        )
    stop = stop or threading.Event()
    start = now_ms() // 60_000 * 60_000
    driver = EmbeddedDriver(data, start, workers=None, clock_rate=speed)
    linked = link_latest(data)
    if linked is not None:
        console.print(f"{linked} -> {data} (the other commands' default --data)")
    timer: threading.Timer | None = None
    report = None
    try:
        with BackgroundServer(driver.node, port=port) as server:
            console.print(f"API serving at {server.url}  (OpenAPI: {server.url}/docs)")
            token = (data / REGULATOR_TOKEN).read_text().strip()
            console.print(f"regulator credential: {token}  (also in {data / REGULATOR_TOKEN})")
            console.print(
                f"  try: curl -s -H 'Authorization: Bearer {token}' '{server.url}/v1/alerts?limit=5'\n"
                f"       curl -s {server.url}/v1/tree-head    curl -s {server.url}/fhir/metadata"
            )
            console.print(
                f"streaming the province from {format_ms(start)}, {speed:g} times faster than the wall clock"
                + (f" (at most {rate:g} transactions/s)" if rate else "")
                + (f", for {duration:g} s" if duration else ", until Ctrl-C")
                + f"; ledger in {data}\n"
                f"  the node's clock is the province's (GET /healthz publishes it): `medledger load` and "
                f"TxBuilder(key, clock=client.clock) stamp envelopes with it"
            )
            if duration:
                timer = threading.Timer(duration, stop.set)
                timer.daemon = True
                timer.start()
            config = SimConfig(
                seed=seed, days=DEMO_DAYS, pace=speed, max_tx_per_s=rate, truth_dir=data / "sim", start_ms=start
            )

            shown = [0]

            def progress(done_ms: int, _span: int, transactions: int) -> None:
                if transactions // 2000 > shown[0]:
                    shown[0] = transactions // 2000
                    console.print(f"  province time +{done_ms / 3_600_000:5.1f} h, {transactions:,} transactions")

            try:
                report = run_simulation(driver, config, progress=progress, stop=stop)
            except KeyboardInterrupt:
                console.print("interrupted: committing what is queued")
    finally:
        if timer is not None:
            timer.cancel()
        driver.close()
    if report is not None:
        out.print(summary_table(report))
    out.print(_alert_table(data))
    out.print(COUNTS_NOTE, highlight=False)
    result = run_verify(data, quiet=False)
    out.print(
        f"[bold green]verify: ledger intact[/]: {result['blocks']} blocks, {result['transactions']} "
        f"transactions, tree size {result['tree_size']}, root {result['root_hash']}"
    )
