"""GET /v1/stream: blocks and alerts as server-sent events, resumable with Last-Event-ID, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from medledger._serving import BackgroundServer
from medledger.ledger import envelope
from medledger.ledger.keys import SigningKey
from medledger.ledger.receipt import Receipt
from medledger.ledger.timefmt import format_ms, now_ms
from medledger.node.bootstrap import DEMO_ORG, LedgerKeys, init_ledger
from medledger.node.node import Node, NodeConfig

#: the regulator's credential (the stream is for supervisors; filled in by the fixture)
AUTH: dict[str, str] = {}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Node, LedgerKeys, SigningKey]]:
    data = tmp_path_factory.mktemp("stream") / "ledger"
    keys = init_ledger(data)
    AUTH["authorization"] = f"Bearer {keys.regulator_token}"
    node = Node(NodeConfig(data, workers=0, max_wait_ms=2))
    doctor = SigningKey.generate()
    reg = envelope.build(
        keys.demo_admin,
        "member.register",
        {"member": f"{DEMO_ORG}/dr-stream", "org": DEMO_ORG, "role": "doctor", "key": doctor.key_id},
    )
    assert node.submit_sync([reg.to_wire()])[0].status == "ACCEPTED"
    try:
        with BackgroundServer(node) as server:
            yield server.url, node, keys, doctor
    finally:
        node.close()


def _events(lines: Iterator[str], until_block: int) -> list[tuple[str, str | None, Any]]:
    """(event, id, data) frames until the block event of ``until_block``."""
    out: list[tuple[str, str | None, Any]] = []
    event, ident, data = "message", None, None
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("id: "):
            ident = line[4:]
        elif line.startswith("data: "):
            data = orjson.loads(line[6:])
        elif line == "" and data is not None:
            out.append((event, ident, data))
            if event == "block" and data["height"] >= until_block:
                return out
            event, ident, data = "message", None, None
    raise AssertionError(f"stream ended before block {until_block}: {out}")


def _unlicensed_consultation(node: Node, doctor: SigningKey) -> Receipt:
    """A consultation by a doctor with no licence at an unadmitted institution: REJECTED with alerts."""
    env = envelope.build(
        doctor,
        "consultation.open",
        {
            "consultation_id": "c-stream",
            "patient": "ab" * 32,
            "specialty": "cardiology",
            "diagnosis": "I10",
            "started_at": format_ms(now_ms()),
        },
    )
    (receipt,) = node.submit_sync([env.to_wire()])
    return receipt


def test_a_live_block_arrives_with_its_alerts_first(served: tuple[str, Node, LedgerKeys, SigningKey]) -> None:
    url, node, _keys, doctor = served
    with httpx.stream("GET", url + "/v1/stream", headers=AUTH, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines).startswith("retry:")  # the stream is listening from here on
        receipt = _unlicensed_consultation(node, doctor)
        assert receipt.status == "REJECTED"
        frames = _events(lines, receipt.height)
    alerts = [data for event, _, data in frames if event == "alert"]
    block = frames[-1]
    assert block[0] == "block" and block[1] == str(receipt.height)
    assert block[2]["tree_size"] == receipt.tree_head.tree_size
    assert {"DOC-LICENCE", "PAT-REALNAME", "NO-FIRST-VISIT"} <= {a["rule"] for a in alerts}
    assert all(a["tx_id"] == receipt.tx_id and a["height"] == receipt.height for a in alerts)


def test_reconnecting_with_last_event_id_resumes_without_gaps(
    served: tuple[str, Node, LedgerKeys, SigningKey],
) -> None:
    url, node, keys, _ = served
    anchors = [
        envelope.build(keys.demo_admin, "anchor.record", {"label": f"his/export-{i}", "sha256": f"{i:02x}" * 32})
        for i in range(3)
    ]
    heights = [node.submit_sync([a.to_wire()])[0].height for a in anchors]
    resume_after = heights[0]
    with httpx.stream("GET", url + "/v1/stream", headers={**AUTH, "Last-Event-ID": str(resume_after)}, timeout=30) as r:
        frames = _events(r.iter_lines(), heights[-1])
    blocks = [int(ident) for event, ident, _ in frames if event == "block" and ident is not None]
    assert blocks == list(range(resume_after + 1, heights[-1] + 1))
    with httpx.stream("GET", url + "/v1/stream", params={"since": 0}, headers=AUTH, timeout=30) as r:
        frames = _events(r.iter_lines(), 1)
    assert [ident for event, ident, _ in frames if event == "block"] == ["0", "1"]


@pytest.mark.parametrize("header", ["abc", "-1", "9" * 40])
def test_a_bad_last_event_id_is_a_problem(served: tuple[str, Node, LedgerKeys, SigningKey], header: str) -> None:
    url, *_ = served
    response = httpx.get(url + "/v1/stream", headers={**AUTH, "Last-Event-ID": header}, timeout=30)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
