"""Property-based conformance of the HTTP API against its own ``/openapi.json`` (issue 4, acceptance 3).

A real uvicorn server on loopback serves a small simulated province (so list
routes answer with real rows, not empty pages), schemathesis loads the schema
from that running server and, for every operation, sends generated requests
(valid and invalid) with the regulator's credential, so protected routes are
exercised past the 401. Every response must be:

* not a 5xx (``not_a_server_error``);
* a status the operation documents (``status_code_conformance``: every route
  documents ``4XX``/``5XX`` app-wide, problem+json on the native API and FHIR
  OperationOutcomes under ``/fhir``, so refusals are documented without
  listing each code);
* of a documented media type (``content_type_conformance``);
* valid against the documented schema of that status and media type
  (``response_schema_conformance``).

Generated ids rarely exist, so a second pair of tests sends requests built
from the ledger's own content (existing transactions, prescriptions, blocks,
FHIR resources; valid signed submissions and public filings) through the same
checks: the success bodies are validated too, not only the refusals.

The native routes and the FHIR facade run as separate tests, so a fault in
one is visible on its own and cannot hide the other; inside each test every
operation is a subtest of its own.

``GET /v1/stream`` is left out: it is an endless server-sent-event stream (a
request only ends when the client hangs up), which schemathesis would wait on
until its timeout; ``test_api_stream.py`` tests it properly.

The run is bounded and repeatable: a fixed seed, deterministic generation, a
small number of examples per operation, no example database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import load_all_checks, not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup, as_reported_failure
from schemathesis.core.result import Ok
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ledger_factory import regulator_headers
from medledger._serving import BackgroundServer
from medledger.contracts import queries
from medledger.ledger import envelope
from medledger.ledger.timefmt import format_ms, now_ms
from medledger.node.bootstrap import LedgerKeys
from medledger.node.node import Node, NodeConfig
from medledger.sim.drivers import EmbeddedDriver
from medledger.sim.run import SIM_START, SimConfig, run_simulation

#: generated requests per operation (fuzzing phase); the examples and coverage phases add a few each
MAX_EXAMPLES = 25
SEED = 20260302
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: the endless SSE stream (see the module docstring)
STREAM_PATH = "/v1/stream"
FHIR_PATHS = r"^/fhir"


@dataclass
class Served:
    url: str
    auth: dict[str, str]
    node: Node
    keys: LedgerKeys


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A small simulated province behind uvicorn on loopback, with the regulator's Authorization header."""
    data: Path = tmp_path_factory.mktemp("schemathesis") / "ledger"
    driver = EmbeddedDriver(data, SIM_START)
    try:
        run_simulation(driver, SimConfig(seed=5, days=0.1))
    finally:
        driver.close()
    node = Node(NodeConfig(data, workers=0))
    try:
        with BackgroundServer(node) as server:
            yield Served(server.url, regulator_headers(data), node, LedgerKeys.load(data))
    finally:
        node.close()


@pytest.fixture(scope="module")
def api_schema(served: Served) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": served.auth["authorization"]},
            "request-timeout": 30,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            # stateful (links between operations) is a separate, unbounded exploration; not part of this gate
            "phases": {"stateful": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_url(served.url + "/openapi.json", config=config, timeout=30).exclude(
        path=STREAM_PATH
    )


def _check(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


def _run(schema: Any, subtests: pytest.Subtests) -> None:
    """Every operation of ``schema`` through schemathesis's phases (examples, coverage, fuzzing), one subtest each.

    This is what ``schemathesis.pytest.from_fixture(...).parametrize()`` does, minus its renaming of the
    pytest node (it assigns ``node._nodeid``, which pytest 9.2 no longer has, so that loader fails before
    running anything); ``get_all_tests`` is the function it uses to build the per-operation tests.
    """
    load_all_checks()
    tests = list(get_all_tests(schema=schema, test_func=_check, settings=None, given_kwargs=None))
    assert tests, "the schema has no operations to test"
    for result in tests:
        if isinstance(result, Ok):
            operation, test = result.ok()
            with subtests.test(msg=operation.label):
                try:
                    test()
                except FailureGroup as exc:
                    raise as_reported_failure(exc) from None
        else:
            error = result.err()
            with subtests.test(msg=f"{error.method} {error.path}"):
                error.as_failing_test_function()()


def test_native_routes_conform_to_their_schema(api_schema: Any, subtests: pytest.Subtests) -> None:
    _run(api_schema.exclude(path_regex=FHIR_PATHS), subtests)


def test_fhir_routes_conform_to_their_schema(api_schema: Any, subtests: pytest.Subtests) -> None:
    _run(api_schema.include(path_regex=FHIR_PATHS), subtests)


def _real_cases(schema: Any, served: Served) -> list[Any]:
    """Requests generation cannot guess (ids that exist, valid signed envelopes), so 2xx bodies of every
    route are checked against their schema too, not only the refusals random ids and bodies earn."""
    store = served.node.store
    rx_id = next(key[len("rx/") :] for key, rx in store.state_range("rx/", limit=100_000) if rx["dispenses"])
    chain = queries.prescription_chain(store, rx_id)
    assert chain
    # a transaction an alert was raised on (REJECTED ones included): outcomes with codes, reasons and alerts
    alerted = [alert["tx_id"] for alert in _alerts(served) if alert.get("tx_id")][:3]
    org = next(key[len("inst/") :] for key, _ in store.state_range("inst/", limit=1))
    head = store.tree_head()
    assert head is not None
    tip = served.node.tip.height
    admin = served.keys.demo_admin

    def anchor(n: int) -> dict[str, str]:
        payload = {"label": f"schemathesis/{n}", "sha256": f"{n:064x}"}
        return envelope.build(admin, "anchor.record", payload).to_wire()

    cases = [
        schema["/v1/prescriptions/{rx_id}/trace"]["GET"].Case(path_parameters={"rx_id": rx_id}),
        schema["/v1/blocks/{height}"]["GET"].Case(path_parameters={"height": tip}),
        schema["/v1/blocks/{height}"]["GET"].Case(path_parameters={"height": 0}),
        schema["/v1/proofs/consistency"]["GET"].Case(query={"first": 1, "second": head.tree_size}),
        schema["/v1/alerts"]["GET"].Case(query={"limit": 1000}),
        schema["/v1/public/complaints"]["POST"].Case(
            body={"about": org, "category": "billing"}, media_type="application/json"
        ),
        schema["/v1/public/adverse-events"]["POST"].Case(
            body={
                "category": "fall",
                "seriousness": "serious",
                "occurred_at": format_ms(now_ms() - 3_600_000),
                "org": org,
                "rxnorm": "197361",
            },
            media_type="application/json",
        ),
        schema["/v1/transactions"]["POST"].Case(body=anchor(1), media_type="application/json"),
        schema["/v1/transactions"]["POST"].Case(body=[anchor(2), anchor(3)], media_type="application/json"),
    ]
    for tx in [*(tx for _, tx in chain), *alerted]:
        cases.append(schema["/v1/transactions/{tx_id}"]["GET"].Case(path_parameters={"tx_id": tx}))
        cases.append(schema["/v1/proofs/inclusion/{tx_id}"]["GET"].Case(path_parameters={"tx_id": tx}))
        cases.append(
            schema["/v1/proofs/inclusion/{tx_id}"]["GET"].Case(
                path_parameters={"tx_id": tx}, query={"tree_size": head.tree_size}
            )
        )
    return cases


def _alerts(served: Served) -> list[dict[str, Any]]:
    response = httpx.get(served.url + "/v1/alerts", params={"limit": 1000}, headers=served.auth, timeout=30)
    assert response.status_code == 200, response.text
    alerts: list[dict[str, Any]] = response.json()["alerts"]
    return alerts


def test_real_requests_get_answers_that_conform(api_schema: Any, served: Served, subtests: pytest.Subtests) -> None:
    """Existing ids and valid submissions: the success bodies match their documented schemas."""
    for case in _real_cases(api_schema, served):
        with subtests.test(msg=f"{case.operation.label} {case.path_parameters or case.query or ''}"):
            # the config's headers apply to generated cases only; explicit ones carry the credential themselves
            response = case.call_and_validate(headers=served.auth, checks=CHECKS)
            assert response.status_code < 300, response.text


def _fhir_get(schema: Any, segments: int) -> tuple[Any, list[str]]:
    """The GET operation on ``/fhir/{a}`` (search) or ``/fhir/{a}/{b}`` (read), and its path parameter
    names, found by shape: the facade is young and its parameter names may still change."""
    for path, methods in schema.items():
        if re.fullmatch(r"/fhir" + r"/\{[^}]+\}" * segments, path) and "GET" in methods:
            return methods["GET"], re.findall(r"\{([^}]+)\}", path)
    raise AssertionError(f"no GET /fhir route with {segments} path parameters in the schema")


def _fhir_real_cases(schema: Any, served: Served) -> list[Any]:
    """The capability statement, then a search and a read of every resource type it lists."""
    cases = [schema["/fhir/metadata"]["GET"].Case()]
    metadata = httpx.get(served.url + "/fhir/metadata", headers=served.auth, timeout=30)
    assert metadata.status_code == 200, metadata.text
    search, (type_param,) = _fhir_get(schema, 1)
    read, (read_type, read_id) = _fhir_get(schema, 2)
    for resource in metadata.json()["rest"][0]["resource"]:
        kind = resource["type"]
        cases.append(search.Case(path_parameters={type_param: kind}, query={"_count": 2}))
        found = httpx.get(f"{served.url}/fhir/{kind}", params={"_count": 1}, headers=served.auth, timeout=30)
        assert found.status_code == 200, found.text
        for entry in found.json().get("entry", []):
            cases.append(read.Case(path_parameters={read_type: kind, read_id: entry["resource"]["id"]}))
    return cases


def test_fhir_real_requests_get_answers_that_conform(
    api_schema: Any, served: Served, subtests: pytest.Subtests
) -> None:
    for case in _fhir_real_cases(api_schema, served):
        with subtests.test(msg=f"{case.operation.label} {case.path_parameters or ''}"):
            response = case.call_and_validate(headers=served.auth, checks=CHECKS)
            assert response.status_code < 300, response.text
