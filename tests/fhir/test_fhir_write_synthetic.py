"""Bundles from an independent generator (PySynthea, tests/fhir/fixtures/synthetic) and privacy canaries.

Issue 4, acceptance 1: each Bundle, posted by a hospital gateway as it is
(transaction) and re-typed as a batch, is accepted or refused with a precise
OperationOutcome, never a 5xx; the ledger verifies afterwards; and no name,
identifier or phone number of those patients is in any byte of the node's
files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir_support import SYNTHETIC, FhirLedger, fhir, patient

from medledger.ledger.verify import verify_store

__all__ = ["fhir"]

FILES = sorted(SYNTHETIC.glob("*.json"))


def _canaries(resource: dict[str, Any]) -> set[str]:
    """Names, identifier values, phone numbers, e-mails and street lines of one Patient."""
    found: set[str] = set()
    for name in resource.get("name", []):
        found.update(name.get("given", []))
        if name.get("family"):
            found.add(name["family"])
    for ident in resource.get("identifier", []):
        found.add(ident["value"])
    for telecom in resource.get("telecom", []):
        found.add(telecom["value"])
    for address in resource.get("address", []):
        found.update(address.get("line", []))
    return {c for c in found if len(c) >= 5}


def _check_outcome(outcome: dict[str, Any]) -> None:
    assert outcome["resourceType"] == "OperationOutcome"
    for issue in outcome["issue"]:
        assert len(issue["diagnostics"]) >= 15
        assert issue.get("expression"), issue  # names the element or the entry


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_synthetic_bundle_as_transaction_and_as_batch(fhir: FhirLedger, path: Path) -> None:
    original = orjson.loads(path.read_bytes())
    before = fhir.snapshot()
    r = fhir.post("/fhir", original)
    assert r.status_code < 500, r.text
    if r.status_code != 200:
        assert 400 <= r.status_code < 500
        _check_outcome(r.json())
        assert fhir.snapshot() == before
    batch = {**original, "type": "batch"}
    r = fhir.post("/fhir", batch)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "batch-response" and len(out["entry"]) == len(original["entry"])
    for sent, got in zip(original["entry"], out["entry"], strict=True):
        status = got["response"]["status"]
        code = int(status.split()[0])
        assert code < 500, got
        if code >= 400:
            _check_outcome(got["response"]["outcome"])
        elif sent["resource"]["resourceType"] == "Patient":
            assert set(got["resource"]) == {"resourceType", "id", "extension", "meta"}


def test_no_canary_reaches_the_node_files_and_the_ledger_verifies(fhir: FhirLedger) -> None:
    own = patient("110101197707070707", name="Canary Wuzhou", phone="13912345678")
    r = fhir.post("/fhir/Patient", own)
    assert r.status_code in (200, 201), r.text
    canaries = _canaries(own) | {"Canary Wuzhou", "13912345678", "88 Canary Road"}
    for path in FILES:
        for item in orjson.loads(path.read_bytes())["entry"]:
            if item["resource"]["resourceType"] == "Patient":
                canaries |= _canaries(item["resource"])
        fhir.post("/fhir", {**orjson.loads(path.read_bytes()), "type": "batch"})
    assert len(canaries) > 20
    files = [p for p in fhir.data.rglob("*") if p.is_file()]
    assert any(p.name.startswith("ledger.sqlite") for p in files)
    for file in files:
        data = file.read_bytes()
        for canary in canaries:
            assert canary.encode() not in data, f"{canary!r} found in {file}"
    verify_store(fhir.w.node.store, fhir.w.node.registry)
