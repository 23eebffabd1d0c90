"""Every route with bad parameters answers a 4xx problem, never a 500 and never FastAPI's own error body."""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest
from api_support import PROBLEM, ApiLedger, anchor, assert_guarded, assert_problem, body
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medledger.api import create_app
from medledger.ledger.canonical import b64e

UNKNOWN = "ab" * 32


@pytest.fixture(scope="module")
def known(api: ApiLedger) -> dict[str, int | str]:
    """One committed transaction, and the tree size after it."""
    (receipt,) = api.submit(anchor(api.keys.demo_admin))
    return {
        "tx_id": receipt["tx_id"],
        "leaf_index": receipt["leaf_index"],
        "size": receipt["tree_head"]["tree_size"],
        "height": receipt["height"],
    }


BAD_GETS = [
    ("/v1/blocks/-1", 400, "invalid-parameter"),
    ("/v1/blocks/abc", 400, "invalid-parameter"),
    ("/v1/blocks/1.5", 400, "invalid-parameter"),
    ("/v1/blocks/99999999999999999999999999", 400, "invalid-parameter"),
    ("/v1/blocks/{far}", 404, "not-found"),
    ("/v1/transactions/xyz", 400, "invalid-parameter"),
    ("/v1/transactions/" + "AB" * 32, 400, "invalid-parameter"),
    ("/v1/transactions/" + "a" * 65, 400, "invalid-parameter"),
    ("/v1/transactions/" + UNKNOWN, 404, "not-found"),
    ("/v1/proofs/inclusion/" + UNKNOWN, 404, "not-found"),
    ("/v1/proofs/inclusion/nothex", 400, "invalid-parameter"),
    ("/v1/proofs/inclusion/{tx}?tree_size=0", 400, "invalid-parameter"),
    ("/v1/proofs/inclusion/{tx}?tree_size=-3", 400, "invalid-parameter"),
    ("/v1/proofs/inclusion/{tx}?tree_size=abc", 400, "invalid-parameter"),
    ("/v1/proofs/inclusion/{tx}?tree_size=1e3", 400, "invalid-parameter"),
    ("/v1/proofs/inclusion/{tx}?tree_size=99999999999999999999999", 400, "invalid-parameter"),
    ("/v1/proofs/inclusion/{tx}?tree_size={beyond}", 400, "bad-tree-size"),
    ("/v1/proofs/inclusion/{tx}?tree_size={leaf}", 400, "bad-tree-size"),
    ("/v1/proofs/consistency", 400, "invalid-parameter"),
    ("/v1/proofs/consistency?first=0", 400, "invalid-parameter"),
    ("/v1/proofs/consistency?first=-1&second=2", 400, "invalid-parameter"),
    ("/v1/proofs/consistency?first=x&second=2", 400, "invalid-parameter"),
    ("/v1/proofs/consistency?first=2&second=1", 400, "bad-tree-size"),
    ("/v1/proofs/consistency?first=1&second={beyond}", 400, "bad-tree-size"),
    ("/v1/proofs/consistency?first={beyond}", 400, "bad-tree-size"),
    ("/v1/proofs/consistency?first=1&second=99999999999999999999999", 400, "invalid-parameter"),
    ("/nope", 404, "not-found"),
    ("/v1/blocks", 404, "not-found"),
    ("/v1/proofs/inclusion/", 404, "not-found"),
]


@pytest.mark.parametrize(("template", "status", "code"), BAD_GETS)
def test_bad_parameters_are_problems(
    api: ApiLedger, known: dict[str, int | str], template: str, status: int, code: str
) -> None:
    url = template.format(
        far=int(known["height"]) + 1000, tx=known["tx_id"], leaf=known["leaf_index"], beyond=int(known["size"]) + 1000
    )
    problem = assert_problem(api.http.get(url), status, code)
    if code == "invalid-parameter":
        assert problem["invalid_params"] and {"name", "in", "reason"} <= problem["invalid_params"][0].keys()


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("DELETE", "/v1/tree-head"),
        ("PUT", "/v1/transactions"),
        ("GET", "/v1/transactions"),
        ("POST", "/v1/blocks/1"),
        ("PATCH", "/healthz"),
    ],
)
def test_wrong_method_is_405_with_allow(api: ApiLedger, method: str, url: str) -> None:
    r = api.http.request(method, url)
    assert_problem(r, 405, "method-not-allowed")
    assert r.headers["allow"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(
        [
            "/v1/blocks/",
            "/v1/transactions/",
            "/v1/proofs/inclusion/",
            "/v1/proofs/consistency?first=",
            "/v1/proofs/consistency?first=1&second=",
            "/v1/proofs/inclusion/" + UNKNOWN + "?tree_size=",
        ]
    ),
    tail=st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
)
def test_no_get_input_is_a_server_error(api: ApiLedger, route: str, tail: str) -> None:
    r = api.http.get(route + quote(tail, safe=""))
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["code"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False)
            | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
            max_leaves=12,
        ).map(body),
        st.fixed_dictionaries({"envelope": st.text(max_size=120), "signature": st.text(max_size=100)}).map(body),
    )
)
def test_no_post_body_is_a_server_error(api: ApiLedger, content: bytes) -> None:
    before = api.snapshot()["txs"]
    r = api.post(content)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"] == PROBLEM
    assert api.snapshot()["txs"] == before


def test_tampered_real_envelope_bytes_never_500(api: ApiLedger) -> None:
    """Byte flips anywhere in a genuine envelope: always a 4xx refusal."""
    env = anchor(api.keys.demo_admin)
    wire = env.to_wire()
    raw = bytearray(env.body)
    for _ in range(40):
        pos = int.from_bytes(os.urandom(2), "big") % len(raw)
        mutated = bytearray(raw)
        mutated[pos] ^= 1 << (pos % 8)
        r = api.post(body({**wire, "envelope": b64e(bytes(mutated))}))
        assert 400 <= r.status_code < 500, r.text


def test_an_unexpected_failure_is_a_500_problem(api: ApiLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug must still answer problem+json (and be logged), never a bare traceback or HTML page."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    app = create_app(api.node)
    monkeypatch.setattr(api.node.store, "tree_head", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/v1/tree-head")
    problem = assert_problem(r, 500, "internal-error")
    assert "disk on fire" not in problem["detail"]  # internals stay in the log
    assert_guarded(r, "a 500")  # even the last-resort answer is neither sniffed nor cached


@pytest.mark.parametrize(
    ("method", "url", "unknown"),
    [
        ("GET", "/v1/alerts?rules=RX-LIMITS", "rules"),  # a misspelt filter used to return every alert
        ("GET", "/v1/alerts?rule=RX-LIMITS&limt=5", "limt"),
        ("GET", "/v1/tree-head?verbose=1", "verbose"),
        ("GET", "/v1/institutions?kind=clinic&page=2", "page"),
        ("GET", "/v1/public/institutions?status=active", "status"),  # a member-only filter, not public
        ("GET", "/healthz?x=1", "x"),
        ("GET", "/v1/transactions/{tx}?format=json", "format"),
        ("POST", "/v1/transactions?dry_run=1", "dry_run"),
        ("POST", "/v1/public/complaints?anonymous=false", "anonymous"),
    ],
)
def test_an_unknown_query_parameter_is_a_400_naming_it(
    api: ApiLedger, known: dict[str, int | str], method: str, url: str, unknown: str
) -> None:
    before = api.snapshot()
    content = body({"about": "demo-hospital", "category": "billing"}) if "complaints" in url else body([])
    r = api.http.request(
        method, url.format(tx=known["tx_id"]), content=content if method == "POST" else None,
        headers={"content-type": "application/json"} if method == "POST" else None,
    )
    problem = assert_problem(r, 400, "unknown-parameter")
    assert repr(unknown) in problem["detail"] and [p["name"] for p in problem["invalid_params"]] == [unknown]
    assert api.snapshot() == before


def test_documented_parameters_are_still_accepted(api: ApiLedger, known: dict[str, int | str]) -> None:
    for url in (
        "/v1/alerts?rule=RX-LIMITS&limit=5",
        f"/v1/proofs/inclusion/{known['tx_id']}?tree_size={known['size']}",
        "/v1/public/institutions?kind=internet-hospital&limit=2",
        "/fhir/metadata?_format=json",
    ):
        assert api.http.get(url).status_code == 200, url


def test_an_unknown_rule_id_is_a_400_listing_the_rulebook(api: ApiLedger) -> None:
    """An unknown rule used to answer an empty list, indistinguishable from 'no violations'."""
    problem = assert_problem(api.http.get("/v1/alerts", params={"rule": "RX-LIMIT"}), 400, "unknown-rule")
    assert "'RX-LIMIT'" in problem["detail"] and "RX-LIMITS" in problem["detail"]


def test_unknown_fhir_parameters_are_an_outcome_400_unless_lenient(api: ApiLedger) -> None:
    """FHIR's strict handling on every FHIR read route; `Prefer: handling=lenient` has them ignored."""
    for url in ("/fhir/metadata?mode=full", "/fhir/Patient/unknown?_elements=id"):
        r = api.http.get(url)
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/fhir+json"), url
        outcome = r.json()
        assert outcome["resourceType"] == "OperationOutcome" and "handling=lenient" in outcome["issue"][0]["diagnostics"]
    assert api.http.get("/fhir/metadata?mode=full", headers={"prefer": "handling=lenient"}).status_code == 200
