"""Throughput and latency measurements behind ``medledger bench`` and ``bench/``.

Figures are reported as ratios against a baseline measured in the same run,
because the machines we run on are shared and noisy:

* ingest: T (envelopes/s durably committed, fully validated, one Ed25519
  signature each) against R (raw Ed25519 verifications/s of this machine using
  every core, the faster of PyNaCl and ``cryptography``). R is sampled before
  and after the T runs and the higher sample is used, so noise can only make
  the ratio look worse.
* proofs: median proof latency on a large log against the latency of a single
  stored-node lookup.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

Log = Callable[[str], None] | None
T = TypeVar("T")
PAYLOAD_LABEL = "bench/ingest-his-daily-export"


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import nacl

    from medledger.ledger.envelope import DECODER

    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pynacl": nacl.__version__,
        "envelope_decoder": DECODER,
        "platform": platform.platform(),
    }


# -- R: raw verification rate -----------------------------------------------------


def _verify_loop(lib: str, seconds: float) -> float:
    message = os.urandom(300)
    if lib == "pynacl":
        import nacl.signing

        sk = nacl.signing.SigningKey.generate()
        signature = sk.sign(message).signature
        vk = sk.verify_key

        def one() -> None:
            vk.verify(message, signature)
    else:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        private = Ed25519PrivateKey.generate()
        signature = private.sign(message)
        public = private.public_key()

        def one() -> None:
            public.verify(signature, message)

    count = 0
    start = time.perf_counter()
    while True:
        for _ in range(200):
            one()
        count += 200
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def raw_verify_rates(seconds: float = 3.0, procs: int | None = None) -> dict[str, float]:
    """Verifications/s summed over one process per core, per library."""
    procs = procs or os.cpu_count() or 1
    ctx = multiprocessing.get_context("spawn")
    rates: dict[str, float] = {}
    with ProcessPoolExecutor(procs, mp_context=ctx) as pool:
        list(pool.map(_verify_loop, ["pynacl"] * procs, [0.05] * procs))  # warm the workers
        for lib in ("pynacl", "cryptography"):
            rates[lib] = sum(pool.map(_verify_loop, [lib] * procs, [seconds] * procs))
    return rates


# -- workload ---------------------------------------------------------------------


def _sign_range(seed: bytes, start: int, stop: int, created_ms: int) -> list[dict[str, str]]:
    from medledger.ledger import envelope
    from medledger.ledger.keys import SigningKey
    from medledger.ledger.syntax import counter

    key = SigningKey(seed)
    out = []
    for n in range(start, stop):
        digest = hashlib.sha256(seed + n.to_bytes(8, "big")).hexdigest()
        env = envelope.build(
            key, "anchor.record", {"label": f"{PAYLOAD_LABEL}/{counter(n)}", "sha256": digest}, created_ms=created_ms
        )
        out.append(env.to_wire())
    return out


def make_envelopes(seed: bytes, count: int) -> list[dict[str, str]]:
    """``count`` signed anchor.record envelopes (~300 bytes each), signed on every core."""
    from medledger.ledger.timefmt import now_ms

    procs = os.cpu_count() or 1
    step = -(-count // (procs * 4))
    created = now_ms() + 60_000  # within the skew window for the whole run
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        chunks = pool.map(
            _sign_range,
            [seed] * len(range(0, count, step)),
            range(0, count, step),
            [min(s + step, count) for s in range(0, count, step)],
            [created] * len(range(0, count, step)),
        )
        return [w for chunk in chunks for w in chunk]


def _prepare_ledger(root: Path) -> tuple[Path, bytes]:
    """A fresh ledger with one registered member whose key signs the workload."""
    from medledger.ledger import envelope
    from medledger.ledger.keys import SigningKey
    from medledger.node.bootstrap import DEMO_ORG, init_ledger
    from medledger.node.node import Node, NodeConfig

    data = root / "ledger"
    keys = init_ledger(data)
    member = SigningKey.generate()
    node = Node(NodeConfig(data, workers=0))
    try:
        node.submit_sync(
            [
                envelope.build(
                    keys.demo_admin,
                    "member.register",
                    {"member": f"{DEMO_ORG}/bench", "org": DEMO_ORG, "role": "member", "key": member.key_id},
                ).to_wire()
            ]
        )
    finally:
        node.close()
    return data, member.seed


# -- T: library level -------------------------------------------------------------


def run_threads(target: Callable[[], None], count: int) -> None:
    """Run ``target`` on ``count`` threads and wait for all (callers collect their own errors)."""
    pool = [threading.Thread(target=target) for _ in range(count)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def _drain(
    work: list[Any], threads: int, make_sender: Callable[[], Callable[[Any], list[str]]]
) -> tuple[Counter[str], float]:
    """Send every item of ``work`` from ``threads`` threads (each with its own sender);
    return the receipt statuses counted and the wall time. A failed send fails the run."""
    lock = threading.Lock()
    statuses: Counter[str] = Counter()
    errors: list[BaseException] = []

    def run() -> None:
        send = make_sender()
        while True:
            with lock:
                if not work or errors:
                    return
                item = work.pop()
            try:
                got = send(item)
            except Exception as exc:  # noqa: BLE001 - reported after the threads stop
                with lock:
                    errors.append(exc)
                return
            with lock:
                statuses.update(got)

    start = time.perf_counter()
    run_threads(run, threads)
    if errors:
        raise RuntimeError(f"bench run failed: {errors[0]}") from errors[0]
    return statuses, time.perf_counter() - start


def library_ingest(count: int, *, batch: int = 500, submitters: int = 8, log: Log = None) -> dict[str, Any]:
    from medledger.node.node import Node, NodeConfig

    with tempfile.TemporaryDirectory(prefix="medledger-bench-") as tmp:
        data, seed = _prepare_ledger(Path(tmp))
        items = make_envelopes(seed, count)
        node = Node(NodeConfig(data, max_block_txs=2000, max_wait_ms=20))
        batches = [items[i : i + batch] for i in range(0, count, batch)]

        def submit(mine: list[dict[str, str]]) -> list[str]:
            return [receipt.status for receipt in node.submit(mine).result(120)]

        try:
            statuses, elapsed = _drain(batches, submitters, lambda: submit)
            blocks = node.tip.height
        finally:
            node.close()
    if statuses != {"ACCEPTED": count}:
        raise RuntimeError(f"bench workload not all accepted: {dict(statuses)}")
    if log:
        log(f"library: {count} envelopes committed in {elapsed:.2f} s ({blocks} blocks)")
    return throughput(count, elapsed, blocks=blocks, batch=batch, submitters=submitters)


# -- T: through HTTP --------------------------------------------------------------


def http_ingest(count: int, *, batch: int = 500, concurrency: int = 4, log: Log = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="medledger-bench-") as tmp:
        data, seed = _prepare_ledger(Path(tmp))
        items = make_envelopes(seed, count)
        bodies = [orjson.dumps(items[i : i + batch]) for i in range(0, count, batch)]
        with served(data) as url:
            clients: list[httpx.Client] = []

            def poster() -> Callable[[bytes], list[str]]:
                client = httpx.Client(timeout=120, headers={"content-type": "application/json"})
                clients.append(client)

                def post(body: bytes) -> list[str]:
                    response = client.post(url + "/v1/transactions", content=body)
                    if response.status_code != 200:
                        raise RuntimeError(f"HTTP bench request refused: {response.text[:300]}")
                    return [r["status"] for r in orjson.loads(response.content)["receipts"]]

                return post

            try:
                statuses, elapsed = _drain(bodies, concurrency, poster)
            finally:
                for client in clients:
                    client.close()
    if statuses != {"ACCEPTED": count}:
        raise RuntimeError(f"HTTP bench workload not all accepted: {dict(statuses)}")
    if log:
        log(f"http: {count} envelopes committed in {elapsed:.2f} s")
    return throughput(count, elapsed, batch=batch, concurrency=concurrency)


@contextmanager
def served(data: Path) -> Iterator[str]:
    """``medledger serve`` on ``data`` in its own process (clients in this one must not share its GIL);
    yields the base URL, stops it with SIGTERM (a clean shutdown) on exit."""
    from medledger._serving import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "medledger", "serve", "--data", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {server.stderr.read().decode() if server.stderr else ''}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become healthy in 60 s")


def ingest(count: int = 40_000, http_count: int = 20_000, log: Log = None, seconds: float = 3.0) -> dict[str, Any]:
    """The ingest benchmark of issue 2: R, T (library), T (HTTP) and the ratios."""

    def run() -> tuple[dict[str, Any], dict[str, Any] | None]:
        return library_ingest(count, log=log), http_ingest(http_count, log=log) if http_count > 0 else None

    (library, http), r, result = with_raw_verify(run, "ingest", seconds, log)
    best = result["raw_verify_library"]
    library["ratio"] = round(library["committed_per_s"] / r, 3)
    result["library"] = library
    summary = (
        f"ingest: R={r:,.0f} verify/s ({best}, {os.cpu_count()} procs); library T={library['committed_per_s']:,.0f}"
        f" tx/s, T/R={library['ratio']:.2f}"
    )
    if http is not None:
        http["ratio"] = round(http["committed_per_s"] / r, 3)
        result["http"] = http
        summary += f"; http T={http['committed_per_s']:,.0f} tx/s, T/R={http['ratio']:.2f}"
    result["summary"] = summary
    return result


def with_raw_verify(run: Callable[[], T], name: str, seconds: float, log: Log) -> tuple[T, float, dict[str, Any]]:
    """Run a throughput measurement between two samples of R, the machine's raw verify rate.

    The higher sample of the faster library is R, so noise can only make a
    ratio against it look worse. Returns the measurement, R, and the start of
    the JSON report (benchmark name, machine, R and its samples).
    """
    before = raw_verify_rates(seconds)
    if log:
        log(f"raw verify (before): {before}")
    measured = run()
    after = raw_verify_rates(seconds)
    if log:
        log(f"raw verify (after): {after}")
    raw = {lib: max(before[lib], after[lib]) for lib in before}
    best = max(raw, key=lambda lib: raw[lib])
    r = raw[best]
    return (
        measured,
        r,
        {
            "benchmark": name,
            "machine": machine(),
            "raw_verify_per_s": round(r, 1),
            "raw_verify_library": best,
            "raw_verify_samples": {"before": before, "after": after},
        },
    )


def throughput(count: int, elapsed: float, **settings: Any) -> dict[str, Any]:
    """The figures every T measurement reports, then how it was run."""
    return {"count": count, "elapsed_s": round(elapsed, 3), "committed_per_s": round(count / elapsed, 1), **settings}


# -- proofs -----------------------------------------------------------------------


def proofs(size: int = 1_000_000, samples: int = 2000, log: Log = None) -> dict[str, Any]:
    """Median proof latency from a store holding a ``size``-entry tree."""
    from medledger.ledger import merkle
    from medledger.ledger import proofs as store_proofs
    from medledger.ledger.sqlite_store import SqliteStore

    rng = random.Random(9162)
    with tempfile.TemporaryDirectory(prefix="medledger-bench-") as tmp:
        store = SqliteStore(Path(tmp))
        frontier = merkle.MerkleFrontier()
        build_start = time.perf_counter()
        chunk = 2000  # the node's default block size: the runs are laid out as ingest lays them out
        for start in range(0, size, chunk):
            leaves = [
                hashlib.sha256(b"\x00" + n.to_bytes(8, "big")).digest() for n in range(start, min(start + chunk, size))
            ]
            store.append_tree_nodes(frontier.append_many(leaves), start // chunk)
        build_s = time.perf_counter() - build_start
        root = frontier.root()
        if log:
            log(f"built a {size:,}-entry tree in {build_s:.1f} s")

        def timed(fn: Callable[[], object]) -> float:
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1e6

        lookups = [timed(lambda: store.tree_nodes([(0, rng.randrange(size))])) for _ in range(samples)]
        incl: list[float] = []
        cons: list[float] = []
        for _ in range(samples):
            index = rng.randrange(size)
            incl.append(timed(partial(store_proofs.inclusion_proof, store, index, size, size)))
        for _ in range(samples):
            first = rng.randrange(1, size)
            cons.append(timed(partial(store_proofs.consistency_proof, store, first, size, size)))
        # correctness of what was timed, on a sample
        for _ in range(50):
            index = rng.randrange(size)
            leaf = store.tree_nodes([(0, index)])[(0, index)]
            merkle.verify_inclusion(leaf, index, size, store_proofs.inclusion_proof(store, index, size, size), root)
            first = rng.randrange(1, size)
            merkle.verify_consistency(
                first,
                size,
                store_proofs.root_at(store, first),
                root,
                store_proofs.consistency_proof(store, first, size, size),
            )
        store.close()
    lookup_med = statistics.median(lookups)
    incl_med = statistics.median(incl)
    cons_med = statistics.median(cons)
    result = {
        "benchmark": "proofs",
        "machine": machine(),
        "tree_size": size,
        "build_s": round(build_s, 1),
        "node_lookup_median_us": round(lookup_med, 1),
        "inclusion_median_us": round(incl_med, 1),
        "inclusion_p99_us": round(sorted(incl)[int(len(incl) * 0.99)], 1),
        "consistency_median_us": round(cons_med, 1),
        "consistency_p99_us": round(sorted(cons)[int(len(cons) * 0.99)], 1),
        "inclusion_vs_lookup": round(incl_med / lookup_med, 2),
        "consistency_vs_lookup": round(cons_med / lookup_med, 2),
    }
    result["summary"] = (
        f"proofs on {size:,} entries: inclusion median {incl_med:.0f} us, consistency median "
        f"{cons_med:.0f} us (x{incl_med / lookup_med:.1f} and x{cons_med / lookup_med:.1f} a single "
        f"node lookup of {lookup_med:.0f} us)"
    )
    return result
