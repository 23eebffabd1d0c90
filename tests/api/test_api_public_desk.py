"""The public desk: complaints and adverse events from people without keys, over real HTTP.

Each accepted filing is a ledger transaction signed by the node's key with a
receipt the person can keep; each refused one is a 4xx problem that writes
nothing, and no field exists in which a name or free text could travel.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from medledger._serving import BackgroundServer
from medledger.ledger import envelope
from medledger.ledger.timefmt import format_ms, now_ms
from medledger.node.bootstrap import init_ledger
from medledger.node.node import Node, NodeConfig

#: the regulator's credential, to read back what the desk wrote (filled in by the fixture)
AUTH: dict[str, str] = {}


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Node]]:
    data = tmp_path_factory.mktemp("desk") / "ledger"
    keys = init_ledger(data)
    AUTH["authorization"] = f"Bearer {keys.regulator_token}"
    node = Node(NodeConfig(data, workers=0, max_wait_ms=2))
    admit = envelope.build(
        keys.regulator,
        "institution.admit",
        {
            "org": "eastlake",
            "name": "eastlake-internet-hospital",
            "kind": "internet-hospital",
            "physical": True,
            "licence": {"number": "LIC-EASTLAKE", "valid_from": "2020-01-01", "valid_until": "2030-12-31"},
        },
    )
    (receipt,) = node.submit_sync([admit.to_wire()])
    assert receipt.status == "ACCEPTED", receipt.reason
    try:
        with BackgroundServer(node) as server:
            yield server.url, node
    finally:
        node.close()


def _post(url: str, path: str, body: Any, **headers: str) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return httpx.post(url + path, content=body, headers={"content-type": "application/json", **headers})
    return httpx.post(url + path, json=body, timeout=30)


def test_a_complaint_is_filed_signed_by_the_node_with_a_receipt(desk: tuple[str, Node]) -> None:
    url, node = desk
    response = _post(url, "/v1/public/complaints", {"about": "eastlake", "category": "prescription"})
    assert response.status_code == 201, response.text
    filed = response.json()
    assert filed["id"].startswith("pc-") and filed["receipt"]["status"] == "ACCEPTED"
    tx = httpx.get(f"{url}/v1/transactions/{filed['receipt']['tx_id']}", headers=AUTH).json()
    assert tx["envelope"]["type"] == "complaint.file"
    assert tx["envelope"]["signer"] == node.key.key_id
    assert tx["envelope"]["payload"]["complaint_id"] == filed["id"]
    proof = httpx.get(f"{url}/v1/proofs/inclusion/{filed['receipt']['tx_id']}")
    assert proof.status_code == 200


def test_an_adverse_event_is_always_anonymous(desk: tuple[str, Node]) -> None:
    url, _ = desk
    body = {
        "category": "adverse-drug-reaction",
        "seriousness": "serious",
        "org": "eastlake",
        "rxnorm": "6809",
        "occurred_at": format_ms(now_ms() - 3_600_000),
    }
    response = _post(url, "/v1/public/adverse-events", body)
    assert response.status_code == 201, response.text
    tx = httpx.get(f"{url}/v1/transactions/{response.json()['receipt']['tx_id']}", headers=AUTH).json()
    assert tx["envelope"]["payload"]["anonymous"] is True
    assert tx["outcome"]["status"] == "ACCEPTED"


CANARY = "Zhang San 13800138000"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/public/complaints", {"about": "eastlake", "category": "billing", "name": CANARY}, 422, "invalid-payload"),
        (
            "/v1/public/complaints",
            {"about": "eastlake", "category": "billing", "details": CANARY},
            422,
            "invalid-payload",
        ),
        ("/v1/public/complaints", {"about": "eastlake", "category": "rude"}, 422, "invalid-payload"),
        ("/v1/public/complaints", {"about": "nowhere", "category": "billing"}, 404, "unknown-institution"),
        (
            "/v1/public/complaints",
            {"about": "eastlake", "category": "billing", "complaint_id": "pc-mine"},
            422,
            "invalid-payload",
        ),
        ("/v1/public/complaints", b"{not json", 400, "malformed"),
        ("/v1/public/complaints", b"[1, 2]", 400, "malformed"),
        ("/v1/public/complaints", b"{}" + b" " * 5000, 413, "too-large"),
        # a proxy reading the first "about" would log a complaint about another institution
        ("/v1/public/complaints", b'{"about":"nowhere","category":"billing","about":"eastlake"}', 400, "duplicate-key"),
        (
            "/v1/public/adverse-events",
            b'{"category":"fall","seriousness":"non-serious","occurred_at":"2026-01-01T00:00:00.000Z",'
            b'"seriousness":"death"}',
            400,
            "duplicate-key",
        ),
        (
            "/v1/public/adverse-events",
            {"category": "fall", "seriousness": "serious", "occurred_at": "2099-01-01T00:00:00.000Z"},
            422,
            "invalid-payload",
        ),
        (
            "/v1/public/adverse-events",
            {"category": "fall", "seriousness": "serious", "occurred_at": "yesterday"},
            400,
            "malformed",
        ),
        (
            "/v1/public/adverse-events",
            {
                "category": "fall",
                "seriousness": "serious",
                "anonymous": False,
                "occurred_at": "2026-01-01T00:00:00.000Z",
            },
            422,
            "invalid-payload",
        ),
    ],
)
def test_bad_filings_are_refused_and_write_nothing(
    desk: tuple[str, Node], path: str, body: Any, status: int, code: str
) -> None:
    url, _ = desk
    before = httpx.get(url + "/v1/tree-head").json()["tree_size"]
    response = _post(url, path, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    assert httpx.get(url + "/v1/tree-head").json()["tree_size"] == before


def test_a_filing_must_be_json(desk: tuple[str, Node]) -> None:
    url, _ = desk
    response = httpx.post(
        url + "/v1/public/complaints",
        content=b"about=eastlake",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
