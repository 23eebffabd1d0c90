"""``GET /fhir/metadata``: a truthful R4 CapabilityStatement, public, JSON only.

Truthful means checked against the server itself: every interaction it lists
answers, every search parameter it lists is applied (an unlisted one is
refused), and nothing it does not do (update, delete, history) is claimed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from medledger.api import create_app
from medledger.api.fhir.render import RESOURCE_TYPES
from medledger.node.bootstrap import init_ledger
from medledger.node.node import Node, NodeConfig

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    data = tmp_path_factory.mktemp("fhir-metadata")
    keys = init_ledger(data)
    node = Node(NodeConfig(data, workers=0, max_wait_ms=2))
    try:
        with TestClient(create_app(node)) as test_client:
            yield test_client, {"authorization": f"Bearer {keys.regulator_token}"}
    finally:
        node.close()


def statement(client: TestClient) -> dict[str, Any]:
    r = client.get("/fhir/metadata")  # no credential: the statement is public
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = r.json()
    return body


def test_the_statement_is_a_valid_r4_capability_statement(client: tuple[TestClient, dict[str, str]]) -> None:
    body = statement(client[0])
    CapabilityStatement.model_validate(body)
    assert body["fhirVersion"] == "4.0.1" and body["format"] == ["json"]
    assert body["status"] == "active" and body["kind"] == "instance"
    assert body["software"]["name"] == "medledger"
    assert body["implementation"]["url"] == "http://testserver/fhir"
    (rest,) = body["rest"]
    assert rest["mode"] == "server" and rest["security"]["service"]
    assert {r["type"] for r in rest["resource"]} == set(RESOURCE_TYPES)
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch"}


def test_only_interactions_that_work_are_claimed(client: tuple[TestClient, dict[str, str]]) -> None:
    test_client, auth = client
    for resource in statement(test_client)["rest"][0]["resource"]:
        codes = {i["code"] for i in resource["interaction"]}
        assert {"read", "search-type"} <= codes <= {"create", "read", "search-type"}, resource["type"]
        assert ("create" in codes) == (resource["type"] not in ("Condition", "Provenance"))
        assert resource["readHistory"] is False and resource["updateCreate"] is False
        search = test_client.get(f"/fhir/{resource['type']}", headers=auth)
        assert search.status_code == 200 and search.json()["type"] == "searchset"
        assert test_client.get(f"/fhir/{resource['type']}/nothing-here", headers=auth).status_code == 404
        for verb in ("put", "delete"):
            r = test_client.request(verb, f"/fhir/{resource['type']}/x", headers=auth)
            assert r.status_code == 405 and r.json()["resourceType"] == "OperationOutcome"


def test_listed_search_parameters_are_applied_and_no_others(client: tuple[TestClient, dict[str, str]]) -> None:
    test_client, auth = client
    samples = {
        "_id": "x",
        "_lastUpdated": "ge2020-01-01",
        "_count": "5",
        "patient": "Patient/x",
        "practitioner": "Practitioner/x",
    }
    for resource in statement(test_client)["rest"][0]["resource"]:
        listed = {p["name"] for p in resource["searchParam"]}
        assert {"_id", "_lastUpdated", "_count"} <= listed
        for name, value in samples.items():
            r = test_client.get(f"/fhir/{resource['type']}", params={name: value}, headers=auth)
            assert r.status_code == (200 if name in listed else 400), (resource["type"], name, r.text)


def test_xml_is_not_acceptable(client: tuple[TestClient, dict[str, str]]) -> None:
    test_client, _ = client
    r = test_client.get("/fhir/metadata", params={"_format": "xml"})
    assert r.status_code == 406 and r.json()["resourceType"] == "OperationOutcome"
    assert test_client.get("/fhir/metadata", params={"_format": "application/fhir+json"}).status_code == 200
