"""``medledger credentials``: issue, list and revoke against a node that keeps serving meanwhile."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from medledger._serving import BackgroundServer
from medledger.ledger.keys import SigningKey
from medledger.node.node import Node, NodeConfig
from test_cli import medledger


def test_issue_list_and_revoke_take_effect_on_a_running_node(tmp_path: Path) -> None:
    data = tmp_path / "ledger"
    assert medledger("init", "--data", str(data)).returncode == 0
    assert (data / "credentials.json").stat().st_mode & 0o077 == 0, "credential hashes are private"
    node = Node(NodeConfig(data, workers=0))
    try:
        with BackgroundServer(node) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            issued = medledger(
                "credentials", "issue", "--data", str(data), "--member", "demo-hospital/admin", "--label", "his"
            )
            assert issued.returncode == 0, issued.stderr
            token = issued.stdout.strip()
            assert token.startswith("mlt_") and len(token) > 40
            auth = {"authorization": f"Bearer {token}"}
            # the demo admin's institution is not admitted yet: its ledger role makes it a hospital
            assert http.get("/v1/alerts", headers=auth).status_code == 200
            assert http.get("/v1/stream", headers=auth).status_code == 403

            listed = medledger("credentials", "list", "--data", str(data))
            rows = [json.loads(line) for line in listed.stdout.splitlines()]
            assert {r["member"] for r in rows} == {"regulator", "demo-hospital/admin"}
            assert token not in listed.stdout and all(r["token_sha256"].endswith("...") for r in rows)

            revoked = medledger("credentials", "revoke", "--data", str(data), "--member", "demo-hospital/admin")
            assert revoked.returncode == 0, revoked.stderr
            refused = http.get("/v1/alerts", headers=auth)
            assert refused.status_code == 401 and refused.json()["code"] == "bad-credentials"
    finally:
        node.close()


def test_refusals_say_why(tmp_path: Path) -> None:
    data = tmp_path / "ledger"
    assert medledger("init", "--data", str(data)).returncode == 0
    stranger = medledger("credentials", "issue", "--data", str(data), "--member", "nobody/here")
    assert stranger.returncode != 0 and "no member 'nobody/here'" in stranger.stderr
    other_key = tmp_path / "other.key"
    SigningKey.generate().to_file(other_key)
    wrong_key = medledger(
        "credentials", "issue", "--data", str(data), "--member", "demo-hospital/admin", "--signing-key", str(other_key)
    )
    assert wrong_key.returncode != 0 and "is not demo-hospital/admin's active key" in wrong_key.stderr
    nothing = medledger("credentials", "revoke", "--data", str(data), "--member", "demo-hospital/admin")
    assert nothing.returncode != 0 and "has no credential" in nothing.stderr
    no_ledger = medledger("credentials", "list", "--data", str(tmp_path / "missing"))
    assert no_ledger.returncode != 0 and "no ledger" in no_ledger.stderr
