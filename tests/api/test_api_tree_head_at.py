"""``GET /v1/tree-head?tree_size=N``: an older signed head, to check a consistency proof from (issue 12)."""

from __future__ import annotations

from api_support import ApiLedger

from medledger.client import verify_consistency_offline
from medledger.ledger import envelope


def test_an_older_signed_head_by_size(api: ApiLedger) -> None:
    api.submit(envelope.build(api.keys.demo_admin, "anchor.record", {"label": "a/b", "sha256": "ab" * 32}))
    latest = api.http.get("/v1/tree-head").json()
    assert latest["tree_size"] > 2
    old = api.http.get("/v1/tree-head", params={"tree_size": 2})
    assert old.status_code == 200, old.text
    assert old.json()["tree_size"] == 2 and old.json()["signer"] == api.keys.node.key_id
    assert api.http.get("/v1/tree-head", params={"tree_size": latest["tree_size"]}).json() == latest
    proof = api.http.get("/v1/proofs/consistency", params={"first": 2, "second": latest["tree_size"]}).json()
    verify_consistency_offline(proof, old.json(), latest, trusted_keys=[api.keys.node.key_id])
    beyond = api.http.get("/v1/tree-head", params={"tree_size": latest["tree_size"] + 5})
    assert beyond.status_code == 404 and beyond.headers["content-type"].startswith("application/problem+json")
    assert "no block ended at tree size" in beyond.json()["detail"]
    assert api.http.get("/v1/tree-head", params={"tree_size": 0}).status_code == 400
