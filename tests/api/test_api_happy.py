"""Submissions are answered with receipts that everything else on the API agrees with and proves."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from api_support import ApiLedger, anchor, body

from medledger.api.app import (
    BlockModel,
    ConsistencyProofModel,
    HealthModel,
    InclusionProofModel,
    ReceiptList,
    ReceiptModel,
    TransactionModel,
    TreeHeadModel,
)
from medledger.ledger import envelope, merkle
from medledger.ledger.block import TreeHead


def _check_head(head_json: dict[str, Any], api: ApiLedger) -> TreeHead:
    head = TreeHead.from_json(head_json)
    head.verify_signature()
    assert head.signer == api.keys.node.key_id
    return head


def test_submit_single_and_list_then_read_everything_back(api: ApiLedger) -> None:
    single = anchor(api.keys.demo_admin, label="test/single")
    r = api.post(body(single.to_wire()))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    first = r.json()
    ReceiptModel.model_validate(first)
    assert first["tx_id"] == single.tx_id
    assert first["status"] == "ACCEPTED"
    head1 = _check_head(first["tree_head"], api)
    assert head1.tree_size == first["leaf_index"] + 1

    batch = [anchor(api.keys.demo_admin, label=f"test/batch-{i}") for i in range(3)]
    r = api.post(body([e.to_wire() for e in batch]))
    assert r.status_code == 200, r.text
    ReceiptList.model_validate(r.json())
    receipts = r.json()["receipts"]
    assert [x["tx_id"] for x in receipts] == [e.tx_id for e in batch]
    indexes = [x["leaf_index"] for x in receipts]
    assert indexes == list(range(indexes[0], indexes[0] + 3))
    assert indexes[0] == first["leaf_index"] + 1
    last = receipts[-1]
    head2 = _check_head(last["tree_head"], api)
    assert head2.tree_size >= last["leaf_index"] + 1

    # The transaction, as stored, re-verifies from its wire bytes.
    r = api.http.get(f"/v1/transactions/{single.tx_id}")
    assert r.status_code == 200, r.text
    tx = r.json()
    TransactionModel.model_validate(tx)
    assert tx["height"] == first["height"] and tx["leaf_index"] == first["leaf_index"]
    assert tx["block_hash"] == first["block_hash"]
    assert tx["outcome"] == {"status": "ACCEPTED"}
    assert tx["envelope"]["payload"] == single.payload
    again = envelope.from_wire(tx["wire"], check_signature=True)
    assert again.tx_id == single.tx_id and again.body == single.body

    # Its block names it and hashes to the receipt's block hash.
    r = api.http.get(f"/v1/blocks/{first['height']}")
    assert r.status_code == 200, r.text
    block = r.json()
    BlockModel.model_validate(block)
    assert block["block_hash"] == first["block_hash"]
    header_bytes = orjson.dumps(block["header"], option=orjson.OPT_SORT_KEYS)
    assert hashlib.sha256(header_bytes).hexdigest() == block["block_hash"]
    assert block["tree_head"] == first["tree_head"]
    assert block["header"]["tree_size"] == head1.tree_size
    assert block["header"]["tree_root"] == head1.root_hash
    listed = {t["tx_id"]: t for t in block["transactions"]}
    assert listed[single.tx_id] == {
        "tx_id": single.tx_id,
        "leaf_index": first["leaf_index"],
        "type": "anchor.record",
        "signer": api.keys.demo_admin.key_id,
        "outcome": {"status": "ACCEPTED"},
    }

    # The latest tree head is the last receipt's.
    r = api.http.get("/v1/tree-head")
    assert r.status_code == 200
    TreeHeadModel.model_validate(r.json())
    assert r.json() == last["tree_head"]

    # Inclusion of the first transaction, in the current tree and in the tree of its own block.
    for size, head in ((None, head2), (head1.tree_size, head1)):
        query = "" if size is None else f"?tree_size={size}"
        r = api.http.get(f"/v1/proofs/inclusion/{single.tx_id}{query}")
        assert r.status_code == 200, r.text
        proof = r.json()
        InclusionProofModel.model_validate(proof)
        leaf_hash = hashlib.sha256(b"\x00" + single.leaf_data()).digest()
        assert proof["leaf_hash"] == leaf_hash.hex()
        assert proof["tree_size"] == head.tree_size
        assert proof["tree_head"] == head.to_json()
        path = [bytes.fromhex(p) for p in proof["proof"]]
        assert merkle.verify_inclusion(
            leaf_hash, proof["leaf_index"], head.tree_size, path, bytes.fromhex(proof["root_hash"])
        )
        assert merkle.verify_inclusion(
            leaf_hash, proof["leaf_index"], head.tree_size, path, bytes.fromhex(head.root_hash)
        )

    # The older signed head is a prefix of the newer one.
    for query in (f"first={head1.tree_size}&second={head2.tree_size}", f"first={head1.tree_size}"):
        r = api.http.get(f"/v1/proofs/consistency?{query}")
        assert r.status_code == 200, r.text
        cons = r.json()
        ConsistencyProofModel.model_validate(cons)
        assert (cons["first"], cons["second"]) == (head1.tree_size, head2.tree_size)
        assert (cons["first_root"], cons["second_root"]) == (head1.root_hash, head2.root_hash)
        assert merkle.verify_consistency(
            head1.tree_size,
            head2.tree_size,
            bytes.fromhex(head1.root_hash),
            bytes.fromhex(head2.root_hash),
            [bytes.fromhex(p) for p in cons["proof"]],
        )

    r = api.http.get("/healthz")
    assert r.status_code == 200
    HealthModel.model_validate(r.json())
    health = r.json()
    assert health == {"status": "ok", "height": last["height"], "tree_size": head2.tree_size,
                      "time": health["time"], "clock_rate": 1.0}


def test_inclusion_at_a_size_no_block_ended_at(api: ApiLedger) -> None:
    """Any past size can be proved against; only block boundaries have a signed head to show."""
    receipts = api.submit(*[anchor(api.keys.demo_admin) for _ in range(6)])
    # Two neighbours in one block: the size between them ends no block.
    pair = next(i for i in range(5) if receipts[i]["height"] == receipts[i + 1]["height"])
    tx_id, leaf = receipts[pair]["tx_id"], receipts[pair]["leaf_index"]
    r = api.http.get(f"/v1/proofs/inclusion/{tx_id}?tree_size={leaf + 1}")
    assert r.status_code == 200, r.text
    proof = r.json()
    assert proof["tree_head"] is None
    assert merkle.verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        leaf,
        leaf + 1,
        [bytes.fromhex(p) for p in proof["proof"]],
        bytes.fromhex(proof["root_hash"]),
    )


def test_contract_rejection_is_a_committed_200(api: ApiLedger) -> None:
    """A hard rule firing is evidence: 200, REJECTED with codes, and on the ledger."""
    before = api.snapshot()
    ghost = envelope.build(api.keys.demo_admin, "member.revoke", {"member": "demo-hospital/nobody", "reason": "other"})
    r = api.post(body(ghost.to_wire()))
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["status"] == "REJECTED"
    assert receipt["codes"] == ["UNKNOWN-MEMBER"]
    assert "nobody" in receipt["reason"]
    tx = api.http.get(f"/v1/transactions/{ghost.tx_id}").json()
    assert tx["outcome"]["status"] == "REJECTED"
    assert tx["outcome"]["codes"] == ["UNKNOWN-MEMBER"]
    assert api.snapshot()["txs"] == before["txs"] + 1


def test_openapi_describes_bodies_and_problems(api: ApiLedger) -> None:
    r = api.http.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    paths = spec["paths"]
    for path in (
        "/v1/transactions",
        "/v1/transactions/{tx_id}",
        "/v1/blocks/{height}",
        "/v1/tree-head",
        "/v1/proofs/inclusion/{tx_id}",
        "/v1/proofs/consistency",
        "/healthz",
        "/metrics",
    ):
        assert path in paths, path
    post = paths["/v1/transactions"]["post"]
    request_schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/WireItem"} in request_schema["oneOf"]
    assert post["responses"]["200"]["content"]["application/json"]["schema"]
    schemas = spec["components"]["schemas"]
    for name in ("Problem", "WireItem", "ReceiptModel", "TransactionModel", "BlockModel", "InclusionProofModel"):
        assert name in schemas, name
    for path, item in paths.items():
        for op in item.values():
            if path == "/fhir" or path.startswith("/fhir/"):
                # errors under /fhir are FHIR OperationOutcomes, not problem+json
                for status in ("4XX", "5XX"):
                    outcome = op["responses"][status]["content"]["application/fhir+json"]["schema"]
                    assert outcome == {"$ref": "#/components/schemas/OperationOutcome"}, path
                continue
            problem = op["responses"]["4XX"]["content"]["application/problem+json"]["schema"]
            assert problem == {"$ref": "#/components/schemas/Problem"}, path
            assert "422" not in op["responses"], path  # FastAPI's own validation body is never sent
