"""Who may use which route: every route of the app x every caller role, against a matrix written out here.

The matrix is deliberately a second, hand-written copy of ``access.POLICY``
(DESIGN §2: the regulator supervises, auditors replicate and read, hospitals,
pharmacies and insurers integrate, the public files complaints and checks
receipts). A route added without a decision, or a policy change nobody meant,
fails here. "Allowed" means the route answered anything but 401/403 (a 404
for a made-up id is an answer); "refused" means 401 with a Bearer challenge
for the public and 403 for a member whose role the route refuses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import PROBLEM
from fastapi.routing import APIRoute

from conftest import LiveServer
from medledger.api.access import POLICY, ROLES, ROUTES, policy_markdown
from medledger.ledger import envelope
from medledger.ledger.keys import SigningKey
from medledger.ledger.timefmt import format_ms, now_ms
from medledger.node.bootstrap import init_ledger
from medledger.node.credentials import Credentials
from medledger.node.node import Node, NodeConfig

R, A, H, P, INS, U = "regulator", "auditor", "hospital", "pharmacy", "insurer", "public"
MEMBERS = frozenset({R, A, H, P, INS})
ALL = MEMBERS | {U}
WRITERS = frozenset({R, H, P, INS})

#: (method, route template) -> roles allowed
EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/v1/transactions"): ALL,  # the envelope's signature authenticates
    ("GET", "/v1/transactions/{tx_id}"): MEMBERS,
    ("GET", "/v1/blocks/{height}"): MEMBERS,
    ("GET", "/v1/tree-head"): ALL,  # anyone holding a receipt can check it
    ("GET", "/v1/proofs/inclusion/{tx_id}"): ALL,
    ("GET", "/v1/proofs/consistency"): ALL,
    ("GET", "/v1/alerts"): MEMBERS,  # scoped for institutions (test_api_access_scopes.py)
    ("GET", "/v1/institutions"): MEMBERS,
    ("GET", "/v1/practitioners"): MEMBERS,
    ("GET", "/v1/prescriptions/{rx_id}/trace"): MEMBERS,
    ("GET", "/v1/stream"): frozenset({R, A}),
    ("GET", "/v1/public/institutions"): ALL,
    ("POST", "/v1/public/complaints"): ALL,
    ("POST", "/v1/public/adverse-events"): ALL,
    ("GET", "/healthz"): ALL,
    ("GET", "/metrics"): ALL,
    ("GET", "/openapi.json"): ALL,
    ("GET", "/docs"): ALL,
    ("GET", "/docs/assets/{name}"): ALL,
    ("GET", "/fhir/metadata"): ALL,
    ("GET", "/fhir/{type}/{id}"): MEMBERS,
    ("GET", "/fhir/{type}"): MEMBERS,
    ("POST", "/fhir"): WRITERS,
    ("POST", "/fhir/{type}"): WRITERS,
}


@dataclass
class Matrix:
    url: str
    tokens: dict[str, str]
    tx_id: str
    routes: list[tuple[str, str]]
    node: Node
    #: a member key that can sign a valid envelope (an anchor)
    signer: SigningKey


def _register(node: Node, by: SigningKey, member: str, org: str, role: str, key: SigningKey) -> None:
    env = envelope.build(by, "member.register", {"member": member, "org": org, "role": role, "key": key.key_id})
    (receipt,) = node.submit_sync([env.to_wire()])
    assert receipt.status == "ACCEPTED", receipt.reason


def _admit(node: Node, regulator: SigningKey, org: str, kind: str) -> None:
    env = envelope.build(
        regulator,
        "institution.admit",
        {
            "org": org,
            "name": f"{org}-access-test",
            "kind": kind,
            "physical": True,
            "licence": {"number": f"LIC-{org.upper()}", "valid_from": "2020-01-01", "valid_until": "2030-12-31"},
        },
    )
    (receipt,) = node.submit_sync([env.to_wire()])
    assert receipt.status == "ACCEPTED", receipt.reason


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    data = tmp_path_factory.mktemp("access") / "ledger"
    keys = init_ledger(data)
    node = Node(NodeConfig(data, workers=0, max_wait_ms=2))
    credentials = Credentials(data)
    tokens = {R: keys.regulator_token}
    try:
        for org, kind, role, member_role in (
            ("north", "internet-hospital", H, "gateway"),
            ("east-pharmacy", "pharmacy", P, "gateway"),
            ("mutual", "insurer", INS, "insurer"),
        ):
            _admit(node, keys.regulator, org, kind)
            admin, member = SigningKey.generate(), SigningKey.generate()
            _register(node, keys.regulator, f"{org}/admin", org, "admin", admin)
            _register(node, admin, f"{org}/svc", org, member_role, member)
            key_file = data / "keys" / f"{org}-svc.key"
            member.to_file(key_file)
            tokens[role] = credentials.issue(f"{org}/svc", signing_key=key_file)
        auditor = SigningKey.generate()
        _register(node, keys.regulator, "audit-office/auditor", "audit-office", "auditor", auditor)
        tokens[A] = credentials.issue("audit-office/auditor")
        anchor = envelope.build(keys.demo_admin, "anchor.record", {"label": "test/doc", "sha256": os.urandom(32).hex()})
        (receipt,) = node.submit_sync([anchor.to_wire()])
        with LiveServer(node) as server:
            routes = [
                (method, route.path)
                for route in server.server.config.app.routes
                if isinstance(route, APIRoute) or hasattr(route, "methods")
                for method in sorted(getattr(route, "methods", None) or ())
                if method != "HEAD"
            ]
            yield Matrix(server.url, tokens, receipt.tx_id, routes, node, keys.demo_admin)
    finally:
        node.close()


def _request(
    m: Matrix, method: str, template: str, role: str, *, authorization: str | None = None, content: bytes = b"{}"
) -> httpx.Response:
    """``role``'s request to the route (``authorization``, if given, is sent as that header instead)."""
    path = (
        template.replace("{tx_id}", m.tx_id)
        .replace("{height}", "1")
        .replace("{rx_id}", "rx-unknown")
        .replace("{type}", "Patient")
        .replace("{id}", "unknown")
        .replace("{name}", "swagger-ui.css")
    )
    headers = {} if role == U else {"authorization": f"Bearer {m.tokens[role]}"}
    if authorization is not None:
        headers = {"authorization": authorization}
    params = {"first": "1"} if template == "/v1/proofs/consistency" else None
    with httpx.Client(base_url=m.url, timeout=30, headers=headers) as http:
        if template == "/v1/stream":
            with http.stream("GET", path) as response:
                if response.status_code != 200:
                    response.read()
                return response
        if method == "POST":
            content_type = "application/fhir+json" if template.startswith("/fhir") else "application/json"
            return http.post(path, content=content, headers={"content-type": content_type})
        return http.get(path, params=params)


def test_every_route_has_a_decision(matrix: Matrix) -> None:
    assert sorted(set(matrix.routes)) == sorted(EXPECTED), "a route without an access decision (or a stale one)"


@pytest.mark.parametrize("role", [R, A, H, P, INS, U])
def test_the_role_matrix(matrix: Matrix, role: str) -> None:
    wrong: list[str] = []
    for (method, template), allowed in sorted(EXPECTED.items()):
        response = _request(matrix, method, template, role)
        refused = response.status_code in (401, 403)
        if refused == (role in allowed):
            wrong.append(f"{method} {template}: {response.status_code} {response.text[:120]}")
            continue
        if refused:
            assert response.status_code == (401 if role == U else 403), (template, response.status_code)
            body: dict[str, Any] = response.json()
            if template.startswith("/fhir"):
                # FHIR clients read OperationOutcome, not problem+json
                assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["diagnostics"], template
                assert body["issue"][0]["code"] == ("login" if role == U else "forbidden"), template
            else:
                assert body["detail"], template
            if role == U:
                assert response.headers["www-authenticate"].startswith("Bearer"), template
    assert wrong == [], f"{role}: routes answering against the matrix"


def _valid_bodies(m: Matrix) -> dict[tuple[str, str], bytes]:
    """Bodies the public could send and that would be written: a credential that fails must stop them."""
    wire = envelope.build(m.signer, "anchor.record", {"label": "test/doc", "sha256": os.urandom(32).hex()}).to_wire()
    return {
        ("POST", "/v1/transactions"): json.dumps(wire).encode(),
        ("POST", "/v1/public/complaints"): json.dumps({"about": "north", "category": "billing"}).encode(),
        ("POST", "/v1/public/adverse-events"): json.dumps(
            {"category": "medication-error", "seriousness": "non-serious", "occurred_at": format_ms(now_ms() - 60_000)}
        ).encode(),
    }


@pytest.mark.parametrize(
    ("header", "code"),
    [
        pytest.param("Basic dXNlcjpwYXNz", "bad-credentials", id="not-bearer"),
        pytest.param("Bearer", "bad-credentials", id="empty-token"),
        pytest.param("", "bad-credentials", id="empty-header"),
        pytest.param("Bearer mlt_not-a-credential", "bad-credentials", id="unknown-token"),
    ],
)
def test_a_bad_credential_is_401_on_every_route_and_writes_nothing(matrix: Matrix, header: str, code: str) -> None:
    """A client that sends a credential means to be someone: serving it as the public would hide its bug (and
    file its complaint anonymously). Public routes, /healthz, /metrics, /docs and FHIR alike refuse it."""
    bodies = _valid_bodies(matrix)
    size = matrix.node.frontier.size
    wrong: list[str] = []
    for method, template in sorted(EXPECTED):
        response = _request(
            matrix, method, template, U, authorization=header, content=bodies.get((method, template), b"{}")
        )
        if response.status_code != 401 or not response.headers.get("www-authenticate", "").startswith("Bearer"):
            wrong.append(f"{method} {template}: {response.status_code} {response.text[:120]}")
        elif template.startswith("/fhir"):
            assert response.json()["issue"][0]["code"] == "login", template
        else:
            assert response.headers["content-type"] == PROBLEM and response.json()["code"] == code, template
    assert wrong == [], "routes that did not refuse a bad credential"
    assert matrix.node.frontier.size == size, "a request with a bad credential wrote to the ledger"
    # the same bodies without any credential are the public's and are written: the refusal above was the token's
    for route, content in _valid_bodies(matrix).items():
        assert _request(matrix, *route, U, content=content).status_code in (200, 201), route
    assert matrix.node.frontier.size == size + len(bodies)


def test_two_authorization_headers_are_refused(matrix: Matrix) -> None:
    """A proxy reading the first header and the node reading the last would disagree on who is calling."""
    good = f"Bearer {matrix.tokens[R]}"
    response = httpx.get(
        matrix.url + "/v1/tree-head", headers=[("authorization", good), ("authorization", good)], timeout=30
    )
    assert response.status_code == 401 and response.json()["code"] == "bad-credentials"


def test_revoking_the_member_on_the_ledger_ends_its_credential(tmp_path: Path) -> None:
    keys = init_ledger(tmp_path)
    node = Node(NodeConfig(tmp_path, workers=0, max_wait_ms=2))
    try:
        auditor = SigningKey.generate()
        _register(node, keys.regulator, "audit-office/auditor", "audit-office", "auditor", auditor)
        token = Credentials(tmp_path).issue("audit-office/auditor")
        with LiveServer(node) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            auth = {"authorization": f"Bearer {token}"}
            assert http.get("/v1/alerts", headers=auth).status_code == 200
            revoke = envelope.build(
                keys.regulator, "member.revoke", {"member": "audit-office/auditor", "reason": "left-organisation"}
            )
            assert node.submit_sync([revoke.to_wire()])[0].status == "ACCEPTED"
            refused = http.get("/v1/alerts", headers=auth)
            assert refused.status_code == 401 and refused.json()["code"] == "revoked-member"
    finally:
        node.close()


def test_an_institution_cannot_make_itself_an_auditor(matrix: Matrix, tmp_path: Path) -> None:
    """Auditors read every institution's records, so only the regulator may register one."""
    keys = init_ledger(tmp_path)
    node = Node(NodeConfig(tmp_path, workers=0, max_wait_ms=2))
    try:
        env = envelope.build(
            keys.demo_admin,
            "member.register",
            {
                "member": "demo-hospital/peek",
                "org": "demo-hospital",
                "role": "auditor",
                "key": SigningKey.generate().key_id,
            },
        )
        (receipt,) = node.submit_sync([env.to_wire()])
        assert receipt.status == "REJECTED" and receipt.codes == ("NOT-AUTHORISED",), receipt.reason
    finally:
        node.close()


def test_the_docs_show_the_policy_in_force() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    assert policy_markdown() in docs, "docs/api.md's access table is stale: paste access.policy_markdown() into it"


def test_the_policy_matches_the_matrix() -> None:
    """POLICY's permissions, mapped to routes, give exactly the hand-written matrix (for the non-FHIR part
    the route test above covers answers; this covers the table the docs are generated from)."""
    assert set(POLICY) == set(ROUTES)
    assert all(POLICY[p] <= set(ROLES) for p in POLICY)
    assert POLICY["stream.read"] == EXPECTED[("GET", "/v1/stream")]
    assert POLICY["fhir.write"] == EXPECTED[("POST", "/fhir")]
    assert POLICY["alerts.read"] == EXPECTED[("GET", "/v1/alerts")]
