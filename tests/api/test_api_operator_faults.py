"""Operator faults (the node's own files broken or gone) answer 503 with a sentence and no server path.

The operator learns the cause from the server log, once, however many
requests run into it; the client learns only that the node, not its request,
is at fault and that retrying later may work.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from medledger.api import create_app
from medledger.api.fhir.outcome import FHIR_JSON
from medledger.node.bootstrap import REGULATOR_MEMBER, REGULATOR_TOKEN, LedgerKeys, init_ledger
from medledger.node.node import Node, NodeConfig
from test_cli import medledger

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api_support import PROBLEM, anchor, body

from ledger_factory import regulator_headers, verify_ledger

REQUESTS = 4


@dataclass
class Served:
    data: Path
    keys: LedgerKeys
    client: TestClient


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    data = tmp_path / "ledger"
    keys = init_ledger(data)
    node = Node(NodeConfig(data, workers=0, max_wait_ms=2))
    try:
        with TestClient(create_app(node)) as client:
            yield Served(data, keys, client)
    finally:
        node.close()


def _logged(caplog: pytest.LogCaptureFixture, needle: str) -> int:
    return sum(needle in record.getMessage() for record in caplog.records)


def test_a_vanished_signing_key_is_a_503_without_paths_logged_once(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = served.data / "keys" / "gateway-signing.key"
    served.keys.regulator.to_file(key_file)
    issued = medledger(
        "credentials", "issue", "--data", str(served.data), "--member", REGULATOR_MEMBER,
        "--signing-key", str(key_file),
    )
    assert issued.returncode == 0, issued.stderr
    auth = {"authorization": f"Bearer {issued.stdout.strip()}"}
    key_file.unlink()
    with caplog.at_level(logging.ERROR):
        for _ in range(REQUESTS):
            write = served.client.post(
                "/fhir/Patient", content=b'{"resourceType": "Patient"}', headers={**auth, "content-type": FHIR_JSON}
            )
            assert write.status_code == 503, write.text
            assert write.headers["content-type"].startswith(FHIR_JSON)
            [issue] = write.json()["issue"]
            assert "signing key" in issue["diagnostics"]
            assert str(served.data.parent) not in write.text and "gateway-signing" not in write.text
            native = served.client.get("/v1/blocks/0", headers=auth)
            assert native.status_code == 503
            assert native.headers["content-type"] == PROBLEM
            problem = native.json()
            assert problem["code"] == "signing-key-unavailable"
            assert "/" not in problem["detail"]
            assert str(served.data.parent) not in native.text
    assert _logged(caplog, str(key_file)) == 1, [r.getMessage() for r in caplog.records]
    # the node's own credential is unaffected: the fault is this credential's, not the node's
    regulator = {"authorization": f"Bearer {(served.data / REGULATOR_TOKEN).read_text().strip()}"}
    assert served.client.get("/v1/blocks/0", headers=regulator).status_code == 200


def test_an_unreadable_credentials_file_is_a_503_without_paths_logged_once(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    auth = {"authorization": f"Bearer {(served.data / REGULATOR_TOKEN).read_text().strip()}"}
    credentials = served.data / "credentials.json"
    shutil.move(credentials, served.data / "credentials.saved")
    credentials.mkdir()  # reading it now fails in the OS (EISDIR), as an unreadable file would
    with caplog.at_level(logging.ERROR):
        for _ in range(REQUESTS):
            answer = served.client.get("/v1/blocks/0", headers=auth)
            assert answer.status_code == 503
            assert answer.json()["code"] == "bad-credentials-file"
            assert str(served.data.parent) not in answer.text
    assert _logged(caplog, str(credentials)) == 1


def test_a_store_that_cannot_be_read_is_a_503_logged_once(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    """An SQLite error no route expected (here a table gone from the file) is the store's fault, not a bug."""
    conn = sqlite3.connect(served.data / "ledger.sqlite")
    conn.execute("DROP TABLE alerts")
    conn.close()
    auth = {"authorization": f"Bearer {(served.data / REGULATOR_TOKEN).read_text().strip()}"}
    with caplog.at_level(logging.ERROR):
        for _ in range(REQUESTS):
            answer = served.client.get("/v1/alerts", headers=auth)
            assert answer.status_code == 503
            assert answer.json()["code"] == "store-unavailable"
    assert _logged(caplog, "no such table: alerts") == 1


def test_a_block_the_store_cannot_write_is_told_over_http_with_what_was_committed(tmp_path: Path) -> None:
    """A request spanning two blocks, the second refused by SQLite itself: 503 with the first block's receipts."""
    data = tmp_path / "ledger"
    keys = init_ledger(data)
    node = Node(NodeConfig(data, workers=0, max_wait_ms=0, max_block_txs=2))
    try:
        failing = node.tip.height + 2
        conn = sqlite3.connect(data / "ledger.sqlite")
        with conn:
            conn.execute(
                f"CREATE TRIGGER fault BEFORE INSERT ON blocks WHEN NEW.height = {failing} "
                "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
            )
        envs = [anchor(keys.demo_admin) for _ in range(3)]
        with TestClient(create_app(node)) as client:
            answer = client.post("/v1/transactions", content=body([e.to_wire() for e in envs]),
                                 headers={"content-type": "application/json"})
            assert answer.status_code == 503 and answer.headers["content-type"] == PROBLEM
            problem = answer.json()
            assert problem["code"] == "store-error"
            assert [r["tx_id"] for r in problem["committed"]] == [e.tx_id for e in envs[:2]]
            assert problem["uncommitted"] == [2]
            assert "disk I/O" not in problem["detail"] and str(tmp_path) not in answer.text
            for env in envs[:2]:
                assert client.get(f"/v1/transactions/{env.tx_id}",
                                  headers=regulator_headers(data)).status_code == 200
            assert client.get(f"/v1/transactions/{envs[2].tx_id}", headers=regulator_headers(data)).status_code == 404
            with conn:
                conn.execute("DROP TRIGGER fault")
            again = client.post("/v1/transactions", content=body(envs[2].to_wire()),
                                headers={"content-type": "application/json"})
            assert again.status_code == 200 and again.json()["height"] == failing
        conn.close()
    finally:
        node.close()
    verify_ledger(data)
