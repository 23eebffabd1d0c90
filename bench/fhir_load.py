"""Large FHIR Bundles must not freeze the server (issue 12, defect 3): prints JSON, then a one-line summary.

One live ``medledger serve``. In each phase a prober (its own process) GETs
``/healthz`` every 10 ms and two native clients post 100-envelope lists to ``/v1/transactions``
back to back; in the loaded phase three more clients post a ~6.6 MB batch
Bundle of 2,000 Patient entries to ``POST /fhir`` back to back. The entries
are valid R4 Patients the bench member may not record (the demo hospital's
admin, not a gateway): the server parses, bounds, validates and maps every
entry, then refuses each one with 403, so the load is the work that used to
run on the event loop, and the ledger does not grow under it.

Target: loaded ``/healthz`` p99 < 100 ms, loaded native rate >= half the
unloaded rate (both phases measured in this run).
Usage: python bench/fhir_load.py [SECONDS_PER_PHASE]
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from medledger.benchmarks import _prepare_ledger, machine, make_envelopes, served
from medledger.node.bootstrap import DEMO_ADMIN
from medledger.node.credentials import Credentials

ENTRIES = 2000
FHIR_CLIENTS = 3
NATIVE_CLIENTS = 2
NATIVE_BATCH = 100
PROBE_EVERY_S = 0.01
_SPAWN = multiprocessing.get_context("spawn")


def _bundle() -> bytes:
    """A batch Bundle of ENTRIES Patients, ~3.3 KB each (a narrative, identifiers, names)."""
    narrative = '<div xmlns="http://www.w3.org/1999/xhtml">' + "visit summary " * 200 + "</div>"
    entries = []
    for n in range(ENTRIES):
        entries.append({
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:012d}",
            "resource": {
                "resourceType": "Patient",
                "text": {"status": "generated", "div": narrative},
                "identifier": [
                    {"system": "urn:hosp:mrn", "value": f"MRN-{n:08d}"},
                    {"system": "urn:cn:resident-id", "value": f"11010119900101{n % 10000:04d}"},
                ],
                "name": [{"family": "Bench", "given": [f"P{n}"]}],
                "gender": "female",
                "birthDate": "1980-05-17",
            },
            "request": {"method": "POST", "url": "Patient"},
        })
    return orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries})


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _probe(url: str, seconds: float, results: multiprocessing.SimpleQueue[list[float]]) -> None:
    """GET /healthz every PROBE_EVERY_S for ``seconds`` from a process of its own (the clients' threads
    in the bench process would otherwise add their own interpreter-lock waits to the latencies)."""
    latencies: list[float] = []
    with httpx.Client(timeout=30) as client:
        results.put([])  # ready: the measured window starts now
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter()
            r = client.get(url + "/healthz")
            latencies.append(time.perf_counter() - start)
            if r.status_code != 200:
                raise RuntimeError(f"healthz {r.status_code}")
            time.sleep(PROBE_EVERY_S)
    results.put(latencies)


def _phase(url: str, seconds: float, work: list[bytes], token: str | None, bundle: bytes) -> dict[str, Any]:
    """Probe and ingest for ``seconds``; with ``token``, FHIR_CLIENTS also post ``bundle`` back to back."""
    stop = threading.Event()
    committed = [0]
    bundles: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def native() -> None:
        with httpx.Client(timeout=120, headers={"content-type": "application/json"}) as client:
            while not stop.is_set():
                with lock:
                    if not work:
                        errors.append("native workload exhausted: raise the envelope count")
                        return
                    body = work.pop()
                r = client.post(url + "/v1/transactions", content=body)
                if r.status_code != 200:
                    errors.append(f"native {r.status_code}: {r.text[:200]}")
                    return
                with lock:
                    committed[0] += NATIVE_BATCH

    def fhir() -> None:
        headers = {"content-type": "application/fhir+json", "authorization": f"Bearer {token}"}
        with httpx.Client(timeout=300, headers=headers) as client:
            while not stop.is_set():
                start = time.perf_counter()
                r = client.post(url + "/fhir", content=bundle)
                if r.status_code != 200:
                    errors.append(f"fhir {r.status_code}: {r.text[:200]}")
                    return
                bundles.append(time.perf_counter() - start)

    threads = [threading.Thread(target=native) for _ in range(NATIVE_CLIENTS)]
    if token is not None:
        threads += [threading.Thread(target=fhir) for _ in range(FHIR_CLIENTS)]
    for t in threads:
        t.start()
    # count native commits over the measured window only (the FHIR clients are then already busy)
    time.sleep(1.0)
    results: multiprocessing.SimpleQueue[list[float]] = _SPAWN.SimpleQueue()
    prober = _SPAWN.Process(target=_probe, args=(url, seconds, results))
    prober.start()
    results.get()
    with lock:
        first = committed[0]
    begin = time.perf_counter()
    window = results.get()
    with lock:
        last = committed[0]
    elapsed = time.perf_counter() - begin
    prober.join()
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"bench run failed: {errors[0]}")
    return {
        "seconds": round(elapsed, 2),
        "healthz_probes": len(window),
        "healthz_p50_ms": round(_percentile(window, 0.5) * 1000, 1),
        "healthz_p99_ms": round(_percentile(window, 0.99) * 1000, 1),
        "healthz_max_ms": round(max(window) * 1000, 1),
        "native_committed_per_s": round((last - first) / elapsed, 1),
        "fhir_bundles_answered": len(bundles),
        "fhir_bundle_seconds_median": round(_percentile(bundles, 0.5), 2) if bundles else None,
    }


def run(seconds: float = 10.0) -> dict[str, Any]:
    bundle = _bundle()
    with tempfile.TemporaryDirectory(prefix="medledger-bench-") as tmp:
        data, seed = _prepare_ledger(Path(tmp))
        token = Credentials(data).issue(DEMO_ADMIN, signing_key=data / "keys" / "demo-admin.key", label="bench")
        # enough fresh envelopes for both phases at several thousand per second
        per_phase = int(seconds + 2) * 6000
        items = make_envelopes(seed, 2 * per_phase)
        bodies = [orjson.dumps(items[i : i + NATIVE_BATCH]) for i in range(0, len(items), NATIVE_BATCH)]
        with served(data) as url:
            unloaded = _phase(url, seconds, bodies, None, bundle)
            loaded = _phase(url, seconds, bodies, token, bundle)
    ratio = loaded["native_committed_per_s"] / unloaded["native_committed_per_s"]
    met = loaded["healthz_p99_ms"] < 100 and ratio >= 0.5
    result: dict[str, Any] = {
        "benchmark": "fhir_load",
        "machine": machine(),
        "bundle_bytes": len(bundle),
        "bundle_entries": ENTRIES,
        "fhir_clients": FHIR_CLIENTS,
        "native_clients": NATIVE_CLIENTS,
        "unloaded": unloaded,
        "loaded": loaded,
        "native_rate_ratio": round(ratio, 3),
        "healthz_p99_ratio": round(loaded["healthz_p99_ms"] / max(unloaded["healthz_p99_ms"], 0.1), 2),
        "target_met": met,
    }
    result["summary"] = (
        f"fhir_load: {FHIR_CLIENTS} x {len(bundle) / 1e6:.1f} MB Bundles ({loaded['fhir_bundles_answered']} answered, "
        f"median {loaded['fhir_bundle_seconds_median']} s): /healthz p99 {unloaded['healthz_p99_ms']} -> "
        f"{loaded['healthz_p99_ms']} ms; native {unloaded['native_committed_per_s']:,.0f} -> "
        f"{loaded['native_committed_per_s']:,.0f} tx/s (x{ratio:.2f}); target {'met' if met else 'NOT met'}"
    )
    return result


if __name__ == "__main__":
    out = run(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
    print(json.dumps(out, indent=2))
    print(out["summary"])
