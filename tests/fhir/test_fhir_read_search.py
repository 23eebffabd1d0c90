"""Search, paging, content negotiation and scoping of ``GET /fhir``, over a province built natively.

Search answers must be exactly the filtered set (checked against the full
listing), pages must cover it without gaps or repeats, a filter the server
does not apply must be refused rather than ignored, and each institution
must see only what its own members recorded, a row it may not see answering
like one that does not exist.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fhir_read_world import ReadProvince, build

from medledger.api import create_app
from medledger.ledger.timefmt import format_ms

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReadProvince, TestClient]]:
    p = build(tmp_path_factory.mktemp("fhir-search"))
    try:
        with TestClient(create_app(p.w.node)) as client:
            yield p, client
    finally:
        p.w.close()


def search(client: TestClient, headers: dict[str, str], path: str, **params: Any) -> dict[str, Any]:
    r = client.get(path, params=params, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    bundle: dict[str, Any] = r.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    for entry in bundle.get("entry", []):
        assert entry["search"] == {"mode": "match"}
        assert entry["fullUrl"].endswith(f"/fhir/{entry['resource']['resourceType']}/{entry['resource']['id']}")
        assert entry["fullUrl"].startswith("http")
    return bundle


def ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def outcome(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = r.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["diagnostics"]
    return body


def test_search_by_patient_accepts_a_reference_or_a_bare_id(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    reg, alice = p.headers["regulator"], p.facts["alice"]
    by_ref = search(client, reg, "/fhir/Encounter", patient=f"Patient/{alice}")
    assert sorted(ids(by_ref)) == sorted([p.facts["cid"], p.facts["document"]])
    assert ids(search(client, reg, "/fhir/Encounter", patient=alice)) == ids(by_ref)
    assert by_ref["total"] == 2
    assert ids(search(client, reg, "/fhir/MedicationRequest", patient=alice)) == [p.facts["rx_id"]]
    both = search(client, reg, "/fhir/Condition", patient=f"{alice},{p.facts['bob']}")
    assert len(ids(both)) == 3
    r = client.get("/fhir/Encounter", params={"patient": "Practitioner/DOC-0001"}, headers=reg)
    assert "must reference a Patient" in outcome(r, 400)["issue"][0]["diagnostics"]


def test_search_by_practitioner(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    reg = p.headers["regulator"]
    li = search(client, reg, "/fhir/Encounter", practitioner="Practitioner/DOC-0001")
    assert p.facts["cid"] in ids(li) and all(
        e["resource"]["participant"][0]["individual"]["reference"] == "Practitioner/DOC-0001" for e in li["entry"]
    )
    assert ids(search(client, reg, "/fhir/MedicationRequest", practitioner="DOC-0001")) == [p.facts["rx_id"]]
    assert ids(search(client, reg, "/fhir/MedicationDispense", practitioner="PHA-0001")) == ["d-alice"]
    roles = search(client, reg, "/fhir/PractitionerRole", practitioner="DOC-0001")
    assert ids(roles) == ["DOC-0001.hosp"]


def test_search_by_last_updated_with_prefixes(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    reg = p.headers["regulator"]
    boundary = format_ms(p.facts["clinical_from"])
    every = set(ids(search(client, reg, "/fhir/Organization")))
    assert every == {"hosp", "clinic", "pharm", "ins"}
    assert ids(search(client, reg, "/fhir/Organization", _lastUpdated=f"ge{boundary}")) == []
    assert set(ids(search(client, reg, "/fhir/Organization", _lastUpdated=f"lt{boundary}"))) == every
    everyone = set(ids(search(client, reg, "/fhir/Patient")))
    assert set(ids(search(client, reg, "/fhir/Patient", _lastUpdated=f"gt{boundary[:10]}"))) == set()
    assert set(ids(search(client, reg, "/fhir/Patient", _lastUpdated=f"eq{boundary[:10]}"))) == everyone
    assert set(ids(search(client, reg, "/fhir/Patient", _lastUpdated=f"le{boundary[:7]}"))) == everyone
    # a range: two bounds AND together; a time with an offset is converted
    day = boundary[:10]
    ranged = client.get(
        "/fhir/Patient",
        params=[("_lastUpdated", f"ge{day}T00:00:00+00:00"), ("_lastUpdated", f"lt{day}T23:59Z")],
        headers=reg,
    )
    assert set(ids(ranged.json())) == everyone
    for bad in ("sa2026", "2026-13", "yesterday", "ge2026-02-30"):
        outcome(client.get("/fhir/Patient", params={"_lastUpdated": bad}, headers=reg), 400)


def test_id_search_and_count_zero(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    reg = p.headers["regulator"]
    assert ids(search(client, reg, "/fhir/Organization", _id="hosp,pharm")) == ["hosp", "pharm"]
    only_total = search(client, reg, "/fhir/Organization", _count=0)
    assert only_total["total"] == 4 and "entry" not in only_total
    outcome(client.get("/fhir/Organization", params={"_count": "many"}, headers=reg), 400)
    outcome(client.get("/fhir/Organization", params={"_count": "-1"}, headers=reg), 400)


def test_paging_covers_the_set_once_with_absolute_next_links(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    reg = p.headers["regulator"]
    full = search(client, reg, "/fhir/Condition", _count=500)
    seen: list[str] = []
    bundle = search(client, reg, "/fhir/Condition", _count=2)
    pages = 1
    while True:
        seen += ids(bundle)
        assert bundle["total"] == full["total"]
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt:
            break
        parts = urlsplit(nxt[0])
        assert parts.scheme == "http" and parts.path == "/fhir/Condition"
        assert parse_qs(parts.query)["_count"] == ["2"]
        bundle = search(client, reg, parts.path, **{k: v[0] for k, v in parse_qs(parts.query).items()})
        pages += 1
    assert seen == ids(full) and len(seen) == len(set(seen)) == full["total"] >= 3
    assert pages == (full["total"] + 1) // 2


def test_unsupported_parameters_are_refused_unless_lenient(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    reg = p.headers["regulator"]
    r = client.get("/fhir/Encounter", params={"status": "finished", "patient:missing": "true"}, headers=reg)
    text = outcome(r, 400)["issue"][0]["diagnostics"]
    assert "status" in text and "patient:missing" in text
    outcome(client.get("/fhir/Patient", params={"patient": p.facts["alice"]}, headers=reg), 400)
    lenient = client.get(
        "/fhir/Encounter",
        params={"status": "finished", "patient": p.facts["alice"]},
        headers={**reg, "prefer": "handling=lenient"},
    )
    assert lenient.status_code == 200
    self_url = next(link["url"] for link in lenient.json()["link"] if link["relation"] == "self")
    assert "status" not in self_url and "patient=" in self_url
    assert lenient.json()["total"] == 2


def test_json_only(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    reg = p.headers["regulator"]
    for fmt in ("json", "application/fhir+json", "application/json"):
        assert client.get("/fhir/Organization/hosp", params={"_format": fmt}, headers=reg).status_code == 200
    outcome(client.get("/fhir/Organization/hosp", params={"_format": "xml"}, headers=reg), 406)
    outcome(client.get("/fhir/Organization", headers={**reg, "accept": "application/fhir+xml"}), 406)
    outcome(client.get("/fhir/metadata", headers={"accept": "application/xml"}), 406)
    assert client.get("/fhir/Organization", headers={**reg, "accept": "application/fhir+json"}).status_code == 200
    assert client.get("/fhir/Organization", headers={**reg, "accept": "text/html, */*;q=0.1"}).status_code == 200


def test_unknown_types_and_ids_are_404_outcomes(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    reg = p.headers["regulator"]
    body = outcome(client.get("/fhir/Observation", headers=reg), 404)
    assert body["issue"][0]["code"] == "not-found" and "Observation" in body["issue"][0]["diagnostics"]
    outcome(client.get("/fhir/Observation/x", headers=reg), 404)
    outcome(client.get("/fhir/Patient/" + "0" * 64, headers=reg), 404)
    outcome(client.get("/fhir/Patient/not_a_fhir_id", headers=reg), 404)


# -- scoping ----------------------------------------------------------------------------------------------


def visible(client: TestClient, headers: dict[str, str], path: str) -> bool:
    r = client.get(path, headers=headers)
    if r.status_code == 404:
        outcome(r, 404)
        return False
    assert r.status_code == 200, r.text
    return True


def test_the_public_gets_401_but_may_read_the_capability_statement(province: tuple[ReadProvince, TestClient]) -> None:
    _, client = province
    outcome(client.get("/fhir/Organization/hosp"), 401)
    outcome(client.get("/fhir/Encounter"), 401)
    assert client.get("/fhir/metadata").status_code == 200


def test_each_institution_sees_what_its_members_recorded(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    f, h = p.facts, p.headers
    rx, enc, offline = (
        f"/fhir/MedicationRequest/{f['rx_id']}",
        f"/fhir/Encounter/{f['cid']}",
        f"/fhir/Encounter/{f['document']}",
    )
    table = {
        # path: (regulator, hospital, clinic, pharmacy, insurer)
        rx: (True, True, False, False, False),
        enc: (True, True, False, False, False),
        offline: (True, False, True, False, False),
        "/fhir/MedicationDispense/d-alice": (True, False, False, True, False),
        "/fhir/Claim/k-alice": (True, False, False, False, True),
        f"/fhir/Patient/{f['alice']}": (True, True, False, False, False),
        f"/fhir/Patient/{f['bob']}": (True, False, True, False, False),
        "/fhir/Organization/hosp": (True, True, False, False, False),
        "/fhir/Practitioner/DOC-0001": (True, True, False, False, False),
        "/fhir/Consent/consent-a": (True, True, False, False, False),
        "/fhir/AdverseEvent/ae-1": (True, True, False, False, False),
    }
    for path, expected in table.items():
        got = tuple(visible(client, h[who], path) for who in ("regulator", "hosp", "clinic", "pharm", "ins"))
        assert got == expected, path


def test_search_results_are_scoped_too(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    f, h = p.facts, p.headers
    everything = search(client, h["regulator"], "/fhir/Encounter", _count=500)
    hospital = search(client, h["hosp"], "/fhir/Encounter", _count=500)
    clinic = search(client, h["clinic"], "/fhir/Encounter", _count=500)
    assert f["cid"] in ids(hospital) and f["document"] not in ids(hospital)
    assert f["document"] in ids(clinic) and f["cid"] not in ids(clinic)
    assert set(ids(hospital)) | set(ids(clinic)) == set(ids(everything))
    assert hospital["total"] == len(ids(hospital))
    assert ids(search(client, h["clinic"], "/fhir/MedicationRequest", patient=f["alice"])) == []
