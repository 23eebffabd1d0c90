"""Supervision queries over a simulated province: institutions, practitioners, a prescription's trace.

The province is built by the simulator (real signed traffic through a real
node), then served over real HTTP; every trace step is checked against the
signed tree head with the RFC 9162 verifier, the way an auditor would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ledger_factory import regulator_headers
from medledger._serving import BackgroundServer
from medledger.ledger import merkle
from medledger.ledger.block import TreeHead
from medledger.node.credentials import Credentials
from medledger.node.node import Node, NodeConfig
from medledger.sim.drivers import EmbeddedDriver
from medledger.sim.run import SIM_START, SimConfig, run_simulation

#: the regulator's credential for the province's node (filled in by the fixture)
AUTH: dict[str, str] = {}
CHAIN = ["offline-diagnosis", "doctor-real-name", "consultation", "prescription", "review", "dispense"]


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Node]]:
    data = tmp_path_factory.mktemp("province") / "ledger"
    driver = EmbeddedDriver(data, SIM_START)
    try:
        run_simulation(driver, SimConfig(seed=3, days=0.3))
    finally:
        driver.close()
    AUTH.update(regulator_headers(data))
    node = Node(NodeConfig(data, workers=0))
    try:
        with BackgroundServer(node) as server:
            yield server.url, node
    finally:
        node.close()


def _get(url: str, path: str, **params: Any) -> Any:
    response = httpx.get(url + path, params=params, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_prescription_trace_is_provable_step_by_step(province: tuple[str, Node]) -> None:
    url, node = province
    claimed = next(
        key[len("rx/") :]
        for key, rx in node.store.state_range("rx/", limit=100_000)
        if rx["dispenses"] and (node.store.get_state("dispense/" + rx["dispenses"][0]) or {}).get("claim_tx")
    )
    trace = _get(url, f"/v1/prescriptions/{claimed}/trace")
    steps = [s["step"] for s in trace["steps"]]
    assert steps[: len(CHAIN)] == CHAIN
    assert steps[-1] == "claim" and "handover" in steps
    head = TreeHead.from_json(trace["tree_head"])
    head.verify_signature()
    for step in trace["steps"]:
        assert step["status"] in ("ACCEPTED", "ACCEPTED_WITH_ALERTS")
        assert merkle.verify_inclusion(
            bytes.fromhex(step["leaf_hash"]),
            step["leaf_index"],
            head.tree_size,
            [bytes.fromhex(p) for p in step["proof"]],
            bytes.fromhex(head.root_hash),
        )
        tx = _get(url, f"/v1/transactions/{step['tx_id']}")
        assert tx["leaf_index"] == step["leaf_index"] and tx["envelope"]["type"] == step["type"]


def test_trace_of_an_unknown_prescription_is_a_404_problem(province: tuple[str, Node]) -> None:
    url, _ = province
    response = httpx.get(url + "/v1/prescriptions/rx-never-issued/trace", headers=AUTH, timeout=30)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "alerts" in response.json()["detail"]


def test_institutions_page_without_gaps_and_filter(province: tuple[str, Node]) -> None:
    url, _ = province
    everything = _get(url, "/v1/institutions", limit=1000)["institutions"]
    assert {"internet-hospital", "pharmacy", "insurer"} <= {i["kind"] for i in everything}
    assert {"suspended"} <= {i["status"] for i in everything}
    paged: list[str] = []
    after = None
    while True:
        page = _get(url, "/v1/institutions", limit=3, **({"after": after} if after else {}))
        paged += [i["org"] for i in page["institutions"]]
        after = page["next"]
        if after is None:
            break
    assert paged == [i["org"] for i in everything]
    pharmacies = _get(url, "/v1/institutions", kind="pharmacy")["institutions"]
    assert pharmacies and all(i["kind"] == "pharmacy" for i in pharmacies)


def test_the_public_listing_shows_licences_but_no_internal_references(province: tuple[str, Node]) -> None:
    url, _ = province
    public = _get(url, "/v1/public/institutions")["institutions"]
    assert public
    for inst in public:
        assert {"org", "name", "kind", "status", "licence", "internet_approval"} == set(inst)
        assert {"number", "valid_from", "valid_until"} == set(inst["licence"])


def test_practitioners_carry_their_licence_status_everywhere(province: tuple[str, Node]) -> None:
    url, _ = province
    revoked = _get(url, "/v1/practitioners", status="revoked")["practitioners"]
    assert revoked, "the simulated province revokes a doctor's licence"
    assert all(p["status"] == "revoked" and p["status_tx"] for p in revoked)
    pharmacists = _get(url, "/v1/practitioners", profession="pharmacist", limit=1000)["practitioners"]
    assert pharmacists and all(p["profession"] == "pharmacist" for p in pharmacists)
    some = _get(url, "/v1/practitioners", profession="doctor", limit=50)["practitioners"]
    org = some[0]["members"][0].split("/")[0]
    at_org = _get(url, "/v1/practitioners", org=org, limit=1000)["practitioners"]
    assert at_org and all(any(m.startswith(org + "/") for m in p["members"]) for p in at_org)
    assert any(p["sites"] for p in some)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/institutions?status=closed",
        "/v1/institutions?limit=0",
        "/v1/practitioners?profession=nurse",
        "/v1/practitioners?after=%00",
        "/v1/public/institutions?limit=5000",
        "/v1/prescriptions/bad%20id/trace",
    ],
)
def test_bad_parameters_are_4xx_problems(province: tuple[str, Node], path: str) -> None:
    url, _ = province
    response = httpx.get(url + path, headers=AUTH, timeout=30)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


# -- what institutions see of supervision (access.SCOPES) ----------------------------------------------------


def _member_of(node: Node, org: str) -> str:
    """Some active member of ``org`` (its admin at least), to issue a read credential to."""
    return next(
        key[len("member/") :]
        for key, member in node.store.state_range("member/", limit=100_000)
        if member["org"] == org and member["status"] == "active"
    )


def _as(node: Node, org: str) -> dict[str, str]:
    token = Credentials(node.config.data_dir).issue(_member_of(node, org), label="scope test")
    return {"authorization": f"Bearer {token}"}


def _orgs(node: Node, kind: str) -> list[str]:
    return [key[len("inst/") :] for key, inst in node.store.state_range("inst/", limit=10_000) if inst["kind"] == kind]


def test_a_hospital_sees_its_own_alerts_only(province: tuple[str, Node]) -> None:
    url, node = province
    everything = _get(url, "/v1/alerts", limit=1000)["alerts"]
    hospitals = [org for org in _orgs(node, "internet-hospital") if any(a["institution"] == org for a in everything)]
    assert len(hospitals) >= 2, "the province must have alerts at two hospitals for this test to mean anything"
    mine, other = hospitals[:2]
    auth = _as(node, mine)
    seen = httpx.get(url + "/v1/alerts", params={"limit": 1000}, headers=auth, timeout=30).json()["alerts"]
    assert seen and {a["institution"] for a in seen} == {mine}
    assert [a["id"] for a in seen] == [a["id"] for a in _get(url, "/v1/alerts", institution=mine, limit=1000)["alerts"]]
    refused = httpx.get(url + "/v1/alerts", params={"institution": other}, headers=auth, timeout=30)
    assert refused.status_code == 403 and other in refused.json()["detail"]


def test_an_insurer_sees_claim_alerts_only(province: tuple[str, Node]) -> None:
    url, node = province
    (insurer, *_) = _orgs(node, "insurer")
    auth = _as(node, insurer)
    seen = httpx.get(url + "/v1/alerts", params={"limit": 1000}, headers=auth, timeout=30).json()["alerts"]
    assert {a["rule"] for a in seen} <= {"CLAIM-MATCH"}
    assert len(seen) == len(_get(url, "/v1/alerts", rule="CLAIM-MATCH", limit=1000)["alerts"])
    refused = httpx.get(url + "/v1/alerts", params={"rule": "RX-LIMITS"}, headers=auth, timeout=30)
    assert refused.status_code == 403


def test_a_trace_is_shown_to_the_institutions_in_it(province: tuple[str, Node]) -> None:
    url, node = province
    rx_id, rx = next(
        (key[len("rx/") :], rx) for key, rx in node.store.state_range("rx/", limit=100_000) if rx["dispenses"]
    )
    dispense = node.store.get_state("dispense/" + rx["dispenses"][0])
    pharmacy = node.store.get_state("member/" + node.store.get_state("key/" + _signer(url, dispense["tx"]))["member"])
    outsider = next(org for org in _orgs(node, "internet-hospital") if org != rx["org"])
    path = f"{url}/v1/prescriptions/{rx_id}/trace"
    for org, status in ((rx["org"], 200), (pharmacy["org"], 200), (outsider, 404)):
        response = httpx.get(path, headers=_as(node, org), timeout=30)
        assert response.status_code == status, (org, response.text)


def _signer(url: str, tx_id: str) -> str:
    return str(_get(url, f"/v1/transactions/{tx_id}")["envelope"]["signer"])
