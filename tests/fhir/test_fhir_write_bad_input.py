"""Every kind of bad write is a clear 4xx OperationOutcome and leaves the ledger byte-for-byte unchanged."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fhir_support import FhirLedger, bundle, entry, fhir, patient

from medledger.api.fhir import writes

__all__ = ["fhir"]

OK_PATIENT = patient("110101199001010011")


def _refused(f: FhirLedger, r: Any, status: int, *, words: str = "") -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["resourceType"] == "OperationOutcome"
    text = " ".join(i["diagnostics"] for i in body["issue"])
    assert len(text) >= 15 and words.lower() in text.lower(), body
    return body


@pytest.mark.parametrize(
    ("path", "content", "ctype", "who", "status", "words"),
    [
        ("/fhir/Patient", b"{not json", "application/fhir+json", "hosp/gw", 400, "not valid JSON"),
        ("/fhir/Patient", b"[1, 2]", "application/fhir+json", "hosp/gw", 400, "JSON object"),
        ("/fhir/Patient", orjson.dumps(OK_PATIENT), "text/plain", "hosp/gw", 415, "application/fhir+json"),
        ("/fhir/Patient", orjson.dumps(OK_PATIENT), None, "hosp/gw", 415, "none"),
        ("/fhir/Unicorn", orjson.dumps(OK_PATIENT), "application/fhir+json", "hosp/gw", 404, "not a FHIR R4 resource"),
        (
            "/fhir/Observation",
            orjson.dumps({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
            "application/fhir+json",
            "hosp/gw",
            422,
            "does not record Observation",
        ),
        (
            "/fhir/Patient",
            orjson.dumps({"resourceType": "Patient", "birthDate": "19x0"}),
            "application/fhir+json",
            "hosp/gw",
            400,
            "Patient.birthDate",
        ),
        (
            "/fhir/Patient",
            orjson.dumps({"resourceType": "Patient", "shoeSize": 44}),
            "application/fhir+json",
            "hosp/gw",
            400,
            "Patient.shoeSize",
        ),
        (
            "/fhir/Patient",
            orjson.dumps({"resourceType": "Encounter"}),
            "application/fhir+json",
            "hosp/gw",
            400,
            "posted to /fhir/Patient",
        ),
        ("/fhir/Patient", orjson.dumps(OK_PATIENT), "application/fhir+json", "readonly", 403, "read-only"),
        ("/fhir/Patient", orjson.dumps(OK_PATIENT), "application/fhir+json", "ins/claims", 403, "patient.verify"),
        (
            "/fhir/Practitioner",
            orjson.dumps({"resourceType": "Practitioner"}),
            "application/fhir+json",
            "hosp/gw",
            403,
            "admin",
        ),
        (
            "/fhir",
            orjson.dumps({"resourceType": "Bundle", "type": "collection"}),
            "application/fhir+json",
            "hosp/gw",
            400,
            "transaction or batch",
        ),
        ("/fhir", orjson.dumps(OK_PATIENT), "application/fhir+json", "hosp/gw", 400, "takes a Bundle"),
    ],
)
def test_bad_writes_are_refused_and_write_nothing(
    fhir: FhirLedger, path: str, content: bytes, ctype: str | None, who: str, status: int, words: str
) -> None:
    before = fhir.snapshot()
    r = fhir.post(path, content, who=who, content_type=ctype)
    _refused(fhir, r, status, words=words)
    assert fhir.snapshot() == before


def test_no_credential_is_401_and_public_cannot_write(fhir: FhirLedger) -> None:
    before = fhir.snapshot()
    r = fhir.http.post(
        "/fhir/Patient", content=orjson.dumps(OK_PATIENT), headers={"content-type": "application/fhir+json"}
    )
    _refused(fhir, r, 401)
    r = fhir.http.post(
        "/fhir/Patient",
        content=orjson.dumps(OK_PATIENT),
        headers={"content-type": "application/fhir+json", "authorization": "Bearer nope"},
    )
    _refused(fhir, r, 401)
    assert fhir.snapshot() == before


def test_oversized_bodies_are_413(fhir: FhirLedger) -> None:
    before = fhir.snapshot()
    big = orjson.dumps({**OK_PATIENT, "text": {"status": "generated", "div": "x" * writes.MAX_RESOURCE_BYTES}})
    _refused(fhir, fhir.post("/fhir/Patient", big), 413)
    huge = b'{"resourceType":"Bundle","type":"batch","entry":[' + b" " * writes.MAX_BUNDLE_BYTES + b"]}"
    _refused(fhir, fhir.post("/fhir", huge), 413)
    assert fhir.snapshot() == before


def test_a_transaction_with_one_bad_entry_writes_nothing(fhir: FhirLedger) -> None:
    before = fhir.snapshot()
    body = bundle(
        entry(patient("110101199001010022"), "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001"),
        entry(
            {"resourceType": "Observation", "status": "final", "code": {"text": "bp"}},
            "urn:uuid:aaaaaaaa-0000-4000-8000-000000000002",
        ),
    )
    r = fhir.post("/fhir", body)
    out = _refused(fhir, r, 422, words="Observation")
    assert out["issue"][0]["expression"] == ["Bundle.entry[1].resource"]
    bad = bundle(entry({"resourceType": "Patient", "gender": 7}, "urn:uuid:aaaaaaaa-0000-4000-8000-000000000003"))
    out = _refused(fhir, fhir.post("/fhir", bad), 400)
    assert out["issue"][0]["expression"] == ["Bundle.entry[0].resource.gender"]
    put = bundle(
        {
            "fullUrl": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000004",
            "resource": OK_PATIENT,
            "request": {"method": "PUT", "url": "Patient/x"},
        }
    )
    _refused(fhir, fhir.post("/fhir", put), 400, words="only creates")
    assert fhir.snapshot() == before


def test_a_batch_keeps_the_good_entries(fhir: FhirLedger) -> None:
    body = bundle(
        entry(patient("110101199001010033"), "urn:uuid:bbbbbbbb-0000-4000-8000-000000000001"),
        entry(
            {"resourceType": "Observation", "status": "final", "code": {"text": "bp"}},
            "urn:uuid:bbbbbbbb-0000-4000-8000-000000000002",
        ),
        kind="batch",
    )
    r = fhir.post("/fhir", body)
    assert r.status_code == 200, r.text
    first, second = r.json()["entry"]
    assert first["response"]["status"] == "201 Created"
    assert second["response"]["status"] == "422"
    assert second["response"]["outcome"]["issue"][0]["code"] == "not-supported"


def test_a_batch_answers_every_entry_even_one_without_a_resource(fhir: FhirLedger) -> None:
    body = bundle(entry(patient("110101199001010044"), "urn:uuid:cccccccc-0000-4000-8000-000000000001"), kind="batch")
    body["entry"].insert(0, {"fullUrl": "urn:uuid:cccccccc-0000-4000-8000-000000000002"})
    r = fhir.post("/fhir", body)
    assert r.status_code == 200, r.text
    empty, good = r.json()["entry"]
    assert empty["response"]["status"] == "400"
    assert empty["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[0]"]
    assert good["response"]["status"] == "201 Created"
