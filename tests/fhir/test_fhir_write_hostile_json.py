"""Hostile JSON on the FHIR write side: deep nesting, duplicate keys, too many entries.

Each is a 4xx OperationOutcome that writes nothing and costs the log at most a
line or two (a 120-level extension once overflowed the R4 model's recursion:
a 500, a dropped connection and ~265 KB of traceback per request).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from fhir_support import FhirLedger, bundle, entry, fhir, patient

from medledger.api.fhir import writes
from medledger.ledger.canonical import MAX_DEPTH

__all__ = ["fhir"]


def _nested_extension(levels: int) -> dict[str, Any]:
    """A Patient whose extension holds an extension, ``levels`` times (two JSON levels each)."""
    ext: dict[str, Any] = {"url": "urn:x:leaf", "valueString": "x"}
    for _ in range(levels):
        ext = {"url": "urn:x:nest", "extension": [ext]}
    return {**patient("110101199001010099"), "extension": [ext]}


def _outcome(r: Any, status: int, words: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["resourceType"] == "OperationOutcome"
    text = " ".join(i["diagnostics"] for i in body["issue"])
    assert words.lower() in text.lower(), body
    return body


def _log_lines(caplog: pytest.LogCaptureFixture) -> int:
    return len(caplog.text.splitlines())


@pytest.mark.parametrize("where", ["resource", "bundle-entry"])
def test_deep_nesting_is_400_with_at_most_two_log_lines(
    fhir: FhirLedger, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    deep = _nested_extension(120)
    before = fhir.snapshot()
    with caplog.at_level(logging.DEBUG):
        caplog.clear()
        if where == "resource":
            r = fhir.post("/fhir/Patient", deep)
        else:
            r = fhir.post("/fhir", bundle(entry(deep, "urn:uuid:aaaaaaaa-0000-4000-8000-00000000dee9"), kind="batch"))
        _outcome(r, 400, f"nested more than {MAX_DEPTH} levels")
        assert _log_lines(caplog) <= 2, caplog.text[:2000]
    assert fhir.snapshot() == before


def test_nesting_just_inside_the_limit_is_judged_by_the_model_not_the_stack(fhir: FhirLedger) -> None:
    # 30 extension levels: 2 JSON levels each, plus the resource's own: under MAX_DEPTH, so the R4 model
    # must judge it (here: a valid Patient, recorded) without overflowing its recursion
    r = fhir.post("/fhir/Patient", _nested_extension((MAX_DEPTH - 4) // 2))
    assert r.status_code in (200, 201), r.text


@pytest.mark.parametrize(
    ("path", "content", "key"),
    [
        ("/fhir/Patient", b'{"resourceType":"Patient","birthDate":"1980-05-17","birthDate":"1990-01-01"}', "birthDate"),
        (
            "/fhir/Patient",
            b'{"resourceType":"Patient","identifier":[{"system":"urn:cn:resident-id","value":"1","value":"2"}]}',
            "value",
        ),
        ("/fhir", b'{"resourceType":"Bundle","type":"batch","type":"transaction","entry":[]}', "type"),
        (
            "/fhir",
            b'{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient",'
            b'"gender":"male","gender":"female"}}]}',
            "gender",
        ),
    ],
)
def test_duplicate_keys_are_400_naming_the_key(fhir: FhirLedger, path: str, content: bytes, key: str) -> None:
    before = fhir.snapshot()
    body = _outcome(fhir.post(path, content), 400, f"'{key}' appears twice")
    assert any("duplicate-key" in str(i.get("details")) for i in body["issue"]), body
    assert fhir.snapshot() == before


def test_too_many_bundle_entries_is_413(fhir: FhirLedger) -> None:
    before = fhir.snapshot()
    many = bundle(*[{"resource": {"resourceType": "Basic"}}] * (writes.MAX_BUNDLE_ENTRIES + 1), kind="batch")
    body = _outcome(fhir.post("/fhir", orjson.dumps(many)), 413, f"at most {writes.MAX_BUNDLE_ENTRIES} entries")
    assert any("too-large" in str(i.get("details")) for i in body["issue"]), body
    assert fhir.snapshot() == before
