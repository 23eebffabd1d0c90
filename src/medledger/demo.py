"""``medledger demo``: the whole ledger lifecycle in one command.

Creates (or reuses) a ledger, serves the API, loads it over real HTTP with the
same generator integrators would use, prints the signed tree head and verifies
everything from genesis. Later issues grow this into the supervision demo.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from medledger.ledger.keys import SigningKey
from medledger.ledger.sqlite_store import DB_NAME
from medledger.node.bootstrap import DEMO_ORG, init_ledger
from medledger.node.node import Node, NodeConfig


def run_demo(
    data: Path, *, port: int, count: int, keep_serving: bool, console: Console, progress: Callable[[], Progress]
) -> None:
    from medledger._serving import BackgroundServer
    from medledger.cli import run_verify
    from medledger.loadgen import run_load

    if (data / DB_NAME).exists():
        console.print(f"reusing the ledger in {data}")
    else:
        init_ledger(data)
        console.print(f"created a new ledger in {data} (keys in {data / 'keys'})")
    node = Node(NodeConfig(data))
    try:
        with BackgroundServer(node, port=port) as server:
            console.print(f"API serving at {server.url}  (OpenAPI: {server.url}/docs)")
            admin = SigningKey.from_file(data / "keys" / "demo-admin.key")
            with progress() as bar:
                task = bar.add_task("submitting signed anchor.record transactions", total=count)
                result = run_load(
                    server.url,
                    admin,
                    org=DEMO_ORG,
                    count=count,
                    concurrency=8,
                    batch=25,
                    receipts=data / "demo-receipts.jsonl",
                    progress=lambda n: bar.update(task, advance=n),
                )
            console.print(
                f"acknowledged {result.acknowledged} of {result.submitted} "
                f"({result.acknowledged / max(result.elapsed, 1e-9):,.0f} tx/s over HTTP), "
                f"receipts in {data / 'demo-receipts.jsonl'}"
            )
            head = node.store.tree_head()
            assert head is not None
            console.print("signed tree head: " + json.dumps(head.to_json()))
            if keep_serving:
                console.print("serving until Ctrl-C")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
    finally:
        node.close()
    report = run_verify(data, quiet=False)
    console.print(
        f"[bold green]verify: ledger intact[/]: {report['blocks']} blocks, {report['transactions']} "
        f"transactions, tree size {report['tree_size']}, root {report['root_hash']}"
    )
