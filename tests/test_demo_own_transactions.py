"""While the demo runs, a user's own transactions are accepted (issue 12, friction 10).

The demo's node runs on its province's clock, a day a minute, so anything
stamped with the real time used to be refused for clock skew (and a FHIR
resource with real timestamps was in the province's future). Here the demo
runs in-process, and while it streams: ``medledger load``, the README's
Python snippet (read from README.md) and a FHIR write through a gateway
credential all go through, and the demo still ends verified and summarised.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console

from medledger._serving import free_port
from medledger.api.fhir import conventions as cv
from medledger.client import Client
from medledger.demo import run_demo
from medledger.ledger.keys import SigningKey
from medledger.ledger.timefmt import parse_ms
from medledger.transactions import TxBuilder

README = Path(__file__).resolve().parents[1] / "README.md"


def _medledger(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medledger", *args], capture_output=True, text=True, timeout=300)


def readme_python_snippet() -> str:
    text = README.read_text()
    found = re.compile(r"```python\n(.*?)\n```", re.S).search(text, text.index("Submitting from Python"))
    assert found is not None
    return found.group(1) + "\n"


def _wait_for_traffic(url: str, data: Path, thread: threading.Thread) -> dict[str, object]:
    """Until the province streams (setup done, its clock ahead of the wall clock): the health answer."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and thread.is_alive():
        try:
            health = httpx.get(url + "/healthz", timeout=5).json()
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        if health["tree_size"] > 200 and parse_ms(health["time"]) > time.time() * 1000 + 600_000:
            return dict(health)
        time.sleep(0.2)
    raise AssertionError("the demo did not start streaming")


def test_the_demo_accepts_load_the_readme_snippet_and_a_fhir_write(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    out = io.StringIO()
    failure: list[BaseException] = []

    def demo() -> None:
        try:
            run_demo(data, port=port, duration=None, seed=7, stop=stop,
                     console=Console(file=out, width=200, force_terminal=False))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failure.append(exc)

    thread = threading.Thread(target=demo, name="demo", daemon=True)
    thread.start()
    try:
        health = _wait_for_traffic(url, data, thread)
        assert health["clock_rate"] == 1440.0

        # 1. medledger load, as the README's demo paragraph shows it
        load = _medledger("load", "--url", url, "--count", "300", "--concurrency", "4", "--batch", "10",
                          "--admin-key", str(data / "keys" / "demo-admin.key"))
        assert load.returncode == 0, load.stderr
        result = json.loads(load.stdout)
        assert result["acknowledged"] == 300 and result["refused"] == 0, result

        # 2. the README's Python snippet, with the demo's paths
        snippet = (readme_python_snippet()
                   .replace("http://127.0.0.1:8400", url)
                   .replace("ledger/keys/demo-admin.key", str(data / "keys" / "demo-admin.key"))
                   .replace("trusted-head.json", str(tmp_path / "trusted-head.json")))
        ran = subprocess.run([sys.executable, "-c", snippet + "print(receipt.status)\n"], capture_output=True,
                             text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip() == "ACCEPTED"

        # 3. a hospital's FHIR write with real timestamps, through a gateway credential
        gateway = SigningKey.generate()
        gateway_file = tmp_path / "demo-gw.key"
        gateway.to_file(gateway_file)
        with Client(url) as client:
            admin = TxBuilder(SigningKey.from_file(data / "keys" / "demo-admin.key"), clock=client.clock)
            (registered,) = client.submit(admin.member_register(member="demo-hospital/gw", org="demo-hospital",
                                                                role="gateway", key=gateway.key_id))
        assert registered.status == "ACCEPTED", registered
        issued = _medledger("credentials", "issue", "--data", str(data), "--member", "demo-hospital/gw",
                            "--signing-key", str(gateway_file))
        assert issued.returncode == 0, issued.stderr
        fhir = httpx.Client(base_url=url, timeout=60, headers={
            "Authorization": f"Bearer {issued.stdout.strip()}", "Content-Type": "application/fhir+json"})
        patient = fhir.post("/fhir/Patient", json={
            "resourceType": "Patient",
            "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                 "code": "NI"}]},
                            "system": "urn:cn:resident-id", "value": "110101198001010091"}],
            "birthDate": "1980-01-01",
        })
        assert patient.status_code == 201, patient.text
        event = {
            "resourceType": "AdverseEvent",
            "identifier": {"system": cv.SID_RECORD, "value": "aedemo"},
            "actuality": "actual",
            "subject": {"reference": f"Patient/{patient.json()['id']}"},
            "category": [{"coding": [{"system": cv.CS_ADVERSE_CATEGORY, "code": "adverse-drug-reaction"}]}],
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "seriousness": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
                                        "code": "Non-serious"}]},
        }
        written = fhir.post("/fhir/AdverseEvent", json=event)
        assert written.status_code == 201, written.text
        fhir.close()
    finally:
        stop.set()
        thread.join(timeout=300)
    assert not failure, failure
    summary = out.getvalue()
    assert "ledger intact" in summary and "alerts raised, by rule" in summary, summary
