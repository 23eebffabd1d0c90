"""Bad input of every kind: a clear 4xx problem naming what was wrong, and nothing written.

Each case builds its request (possibly committing set-up transactions first,
e.g. registering the member it will then revoke), then the ledger is
snapshotted, the request sent, and the ledger compared: tree head and the row
count of every table must be unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import pytest
from api_support import (
    ApiLedger,
    anchor,
    assert_problem,
    body,
    canonical,
    envelope_obj,
    fresh_name,
    new_nonce,
    sign_bytes,
)

from medledger.ledger import envelope, keys
from medledger.ledger.canonical import b64d, b64e
from medledger.ledger.timefmt import now_ms
from medledger.node.node import MAX_BATCH

#: content type, body
Request = tuple[str | None, bytes]


@dataclass(frozen=True)
class Case:
    build: Callable[[ApiLedger], Request]
    status: int
    code: str


def _json(content: bytes) -> Request:
    return "application/json", content


def malformed_json(api: ApiLedger) -> Request:
    return _json(b'{"envelope": "abc", "signature": ')


def not_utf8(api: ApiLedger) -> Request:
    return _json(b'{"envelope": "\xff\xfe", "signature": "x"}')


def wrong_content_type(api: ApiLedger) -> Request:
    return "text/plain", body(anchor(api.keys.demo_admin).to_wire())


def form_content_type(api: ApiLedger) -> Request:
    return "application/x-www-form-urlencoded", b"envelope=abc&signature=def"


def no_content_type(api: ApiLedger) -> Request:
    return None, body(anchor(api.keys.demo_admin).to_wire())


def body_not_object_or_list(api: ApiLedger) -> Request:
    return _json(b'"just a string"')


def item_with_extra_field(api: ApiLedger) -> Request:
    return _json(body({**anchor(api.keys.demo_admin).to_wire(), "note": "hi"}))


def bad_base64(api: ApiLedger) -> Request:
    wire = anchor(api.keys.demo_admin).to_wire()
    return _json(body({**wire, "envelope": wire["envelope"] + "==="}))


def _signed_variant(api: ApiLedger, mutate: Callable[[bytes], bytes]) -> Request:
    """Valid fields, correctly signed, but the bytes are not the one canonical form."""
    obj = envelope_obj(api.keys.demo_admin, "anchor.record", {"label": "test/x", "sha256": os.urandom(32).hex()})
    raw = mutate(canonical(obj))
    return _json(body(sign_bytes(api.keys.demo_admin, raw)))


def non_canonical_space(api: ApiLedger) -> Request:
    return _signed_variant(api, lambda raw: raw.replace(b'":', b'": ', 1))


def non_canonical_key_order(api: ApiLedger) -> Request:
    def reorder(raw: bytes) -> bytes:
        obj = orjson.loads(raw)
        return orjson.dumps({k: obj[k] for k in sorted(obj, reverse=True)})

    return _signed_variant(api, reorder)


def float_in_payload(api: ApiLedger) -> Request:
    obj = envelope_obj(
        api.keys.demo_admin, "anchor.record", {"label": "test/x", "sha256": os.urandom(32).hex(), "weight": 1.5}
    )
    # Sorted and compact, exactly as a canonical encoder would lay it out, apart from the float.
    return _json(body(sign_bytes(api.keys.demo_admin, orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))))


def float_in_wire_body(api: ApiLedger) -> Request:
    return _json(b'{"envelope": 1.5, "signature": "x"}')


def wrong_signature(api: ApiLedger) -> Request:
    wire = anchor(api.keys.demo_admin).to_wire()
    sig = bytearray(b64d(wire["signature"]))
    sig[5] ^= 0x01
    return _json(body({**wire, "signature": b64e(bytes(sig))}))


def signature_of_other_bytes(api: ApiLedger) -> Request:
    good, other = anchor(api.keys.demo_admin), anchor(api.keys.demo_admin)
    return _json(body({"envelope": good.to_wire()["envelope"], "signature": other.to_wire()["signature"]}))


def unknown_signer(api: ApiLedger) -> Request:
    return _json(body(anchor(keys.SigningKey.generate()).to_wire()))


def revoked_signer(api: ApiLedger) -> Request:
    member = "demo-hospital/" + fresh_name("leaver")
    key = api.register(member, "member")
    (receipt,) = api.submit(
        envelope.build(api.keys.demo_admin, "member.revoke", {"member": member, "reason": "left-organisation"})
    )
    assert receipt["status"] == "ACCEPTED", receipt
    return _json(body(anchor(key).to_wire()))


def wrong_role(api: ApiLedger) -> Request:
    key = api.register("demo-hospital/" + fresh_name("clerk"), "member")
    env = envelope.build(
        key,
        "member.register",
        {
            "member": "demo-hospital/friend",
            "org": "demo-hospital",
            "role": "member",
            "key": keys.SigningKey.generate().key_id,
        },
    )
    return _json(body(env.to_wire()))


def genesis_resubmitted(api: ApiLedger) -> Request:
    env = envelope.build(
        api.keys.regulator,
        "genesis",
        {
            "consortium": "another",
            "regulator": {"member": "regulator", "key": api.keys.regulator.key_id},
            "nodes": [{"member": "regulator/node-1", "key": api.keys.node.key_id}],
        },
    )
    return _json(body(env.to_wire()))


def replayed_across_requests(api: ApiLedger) -> Request:
    env = anchor(api.keys.demo_admin)
    api.submit(env)
    return _json(body(env.to_wire()))


def replayed_within_request(api: ApiLedger) -> Request:
    wire = anchor(api.keys.demo_admin).to_wire()
    return _json(body([wire, wire]))


def nonce_reused(api: ApiLedger) -> Request:
    nonce = new_nonce()
    api.submit(anchor(api.keys.demo_admin, label="test/first", nonce=nonce))
    return _json(body(anchor(api.keys.demo_admin, label="test/second", nonce=nonce).to_wire()))


def nonce_reused_within_request(api: ApiLedger) -> Request:
    nonce = new_nonce()
    return _json(body([anchor(api.keys.demo_admin, label=f"test/n{i}", nonce=nonce).to_wire() for i in range(2)]))


def clock_ahead(api: ApiLedger) -> Request:
    return _json(body(anchor(api.keys.demo_admin, created_ms=now_ms() + 10 * 60_000).to_wire()))


def clock_behind(api: ApiLedger) -> Request:
    return _json(body(anchor(api.keys.demo_admin, created_ms=now_ms() - 10 * 60_000).to_wire()))


def oversized_body(api: ApiLedger) -> Request:
    return _json(b"[" + b" " * (8 * 1024 * 1024) + b"]")


def oversized_batch(api: ApiLedger) -> Request:
    return _json(body([anchor(api.keys.demo_admin).to_wire()] * (MAX_BATCH + 1)))


def oversized_envelope(api: ApiLedger) -> Request:
    obj = envelope_obj(api.keys.demo_admin, "anchor.record", {"label": "test/x", "sha256": "00" * 32, "pad": "p" * 70_000})
    return _json(body(sign_bytes(api.keys.demo_admin, canonical(obj))))


def envelope_one_byte_over(api: ApiLedger) -> Request:
    """65,537 bytes: its base64url still fits the wire item's length check, so the decoded size is judged."""
    obj = envelope_obj(api.keys.demo_admin, "anchor.record", {"label": "x", "sha256": "00" * 32, "pad": ""})
    pad = envelope.MAX_ENVELOPE_BYTES + 1 - len(canonical(obj))
    obj["payload"]["pad"] = "p" * pad
    raw = canonical(obj)
    assert len(raw) == envelope.MAX_ENVELOPE_BYTES + 1
    return _json(body(sign_bytes(api.keys.demo_admin, raw)))


def _good_item(api: ApiLedger) -> dict[str, str]:
    return anchor(api.keys.demo_admin).to_wire()


def duplicate_key_in_item(api: ApiLedger) -> Request:
    first, second = _good_item(api), _good_item(api)
    # a reader keeping the first "envelope" sees another envelope than one keeping the last (orjson)
    return _json(
        b'{"envelope":"%s","signature":"%s","envelope":"%s"}'
        % (first["envelope"].encode(), second["signature"].encode(), second["envelope"].encode())
    )


def duplicate_key_in_batch(api: ApiLedger) -> Request:
    good, other = _good_item(api), _good_item(api)
    item = b'{"signature":"%s","envelope":"%s","signature":"%s"}' % (
        b"A" * 86, other["envelope"].encode(), other["signature"].encode()
    )
    return _json(b"[" + body(good) + b"," + item + b"]")


def unknown_type(api: ApiLedger) -> Request:
    return _json(body(envelope.build(api.keys.demo_admin, "prescription.teleport", {"x": 1}).to_wire()))


def payload_fails_schema(api: ApiLedger) -> Request:
    env = envelope.build(api.keys.demo_admin, "anchor.record", {"label": "test/x", "sha256": "not-a-digest"})
    return _json(body(env.to_wire()))


def payload_missing_field(api: ApiLedger) -> Request:
    return _json(body(envelope.build(api.keys.demo_admin, "anchor.record", {"label": "test/x"}).to_wire()))


def empty_list(api: ApiLedger) -> Request:
    return _json(b"[]")


def empty_body(api: ApiLedger) -> Request:
    return _json(b"")


def nested_too_deep(api: ApiLedger) -> Request:
    return _json(b"[" * 1000 + b"]" * 1000)


def deeply_nested_payload(api: ApiLedger) -> Request:
    obj = envelope_obj(api.keys.demo_admin, "anchor.record", {"label": "test/x", "sha256": "00" * 32})
    raw = canonical(obj).replace(b'"label":"test/x"', b'"label":' + b"[" * 1010 + b"]" * 1010)
    return _json(body(sign_bytes(api.keys.demo_admin, raw)))


CASES = {
    "malformed-json": Case(malformed_json, 400, "malformed"),
    "not-utf8": Case(not_utf8, 400, "malformed"),
    "wrong-content-type": Case(wrong_content_type, 415, "unsupported-media-type"),
    "form-content-type": Case(form_content_type, 415, "unsupported-media-type"),
    "no-content-type": Case(no_content_type, 415, "unsupported-media-type"),
    "body-not-object-or-list": Case(body_not_object_or_list, 400, "malformed"),
    "item-with-extra-field": Case(item_with_extra_field, 400, "malformed"),
    "bad-base64": Case(bad_base64, 400, "malformed"),
    "non-canonical-space": Case(non_canonical_space, 400, "non-canonical"),
    "non-canonical-key-order": Case(non_canonical_key_order, 400, "non-canonical"),
    "float-in-payload": Case(float_in_payload, 400, "float-not-allowed"),
    "float-in-wire-body": Case(float_in_wire_body, 400, "float-not-allowed"),
    "wrong-signature": Case(wrong_signature, 401, "bad-signature"),
    "signature-of-other-bytes": Case(signature_of_other_bytes, 401, "bad-signature"),
    "unknown-signer": Case(unknown_signer, 401, "unknown-signer"),
    "revoked-signer": Case(revoked_signer, 403, "revoked-signer"),
    "wrong-role": Case(wrong_role, 403, "wrong-role"),
    "genesis-resubmitted": Case(genesis_resubmitted, 403, "wrong-role"),
    "replayed-across-requests": Case(replayed_across_requests, 409, "replayed-tx"),
    "replayed-within-request": Case(replayed_within_request, 409, "replayed-tx"),
    "nonce-reused": Case(nonce_reused, 409, "nonce-reused"),
    "nonce-reused-within-request": Case(nonce_reused_within_request, 409, "nonce-reused"),
    "clock-ahead": Case(clock_ahead, 422, "clock-skew"),
    "clock-behind": Case(clock_behind, 422, "clock-skew"),
    "oversized-body": Case(oversized_body, 413, "too-large"),
    "oversized-batch": Case(oversized_batch, 400, "batch-too-large"),
    "oversized-envelope": Case(oversized_envelope, 413, "too-large"),
    "envelope-one-byte-over": Case(envelope_one_byte_over, 413, "too-large"),
    "duplicate-key-in-item": Case(duplicate_key_in_item, 400, "duplicate-key"),
    "duplicate-key-in-batch": Case(duplicate_key_in_batch, 400, "duplicate-key"),
    "unknown-type": Case(unknown_type, 400, "unknown-type"),
    "payload-fails-schema": Case(payload_fails_schema, 422, "invalid-payload"),
    "payload-missing-field": Case(payload_missing_field, 422, "invalid-payload"),
    "empty-list": Case(empty_list, 400, "empty-batch"),
    "empty-body": Case(empty_body, 400, "malformed"),
    "nested-too-deep": Case(nested_too_deep, 400, "malformed"),
    "deeply-nested-payload": Case(deeply_nested_payload, 400, "malformed"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_refused_with_a_problem_and_nothing_written(api: ApiLedger, name: str) -> None:
    case = CASES[name]
    content_type, content = case.build(api)
    before = api.snapshot()
    r = api.post(content, content_type)
    problem = assert_problem(r, case.status, case.code)
    assert "errors" not in problem or all(e["code"] for e in problem["errors"])
    assert api.snapshot() == before, f"{name} changed the ledger"


@pytest.mark.parametrize(("name", "key"), [("duplicate-key-in-item", "envelope"), ("duplicate-key-in-batch", "signature")])
def test_a_duplicate_key_is_named(api: ApiLedger, name: str, key: str) -> None:
    content_type, content = CASES[name].build(api)
    problem = assert_problem(api.post(content, content_type), 400, "duplicate-key")
    assert f"'{key}' appears twice" in problem["detail"], problem


def test_one_bad_item_sinks_the_whole_batch(api: ApiLedger) -> None:
    good = [anchor(api.keys.demo_admin, label=f"test/good-{i}") for i in range(5)]
    bad = anchor(keys.SigningKey.generate(), label="test/stranger")
    items = [g.to_wire() for g in good[:2]] + [bad.to_wire()] + [g.to_wire() for g in good[2:]]
    before = api.snapshot()
    problem = assert_problem(api.post(body(items)), 401, "unknown-signer")
    assert [(e["index"], e["code"]) for e in problem["errors"]] == [(2, "unknown-signer")]
    assert "envelope 2" in problem["detail"] and "nothing was written" in problem["detail"]
    assert api.snapshot() == before
    for g in good:
        assert api.http.get(f"/v1/transactions/{g.tx_id}").status_code == 404
    # The good ones were not "used up": they go through on their own.
    assert [x["status"] for x in api.submit(*good)] == ["ACCEPTED"] * 5


def test_several_different_faults_are_all_listed(api: ApiLedger) -> None:
    good = anchor(api.keys.demo_admin).to_wire()
    flipped = {**anchor(api.keys.demo_admin).to_wire(), "signature": b64e(b"\x00" * 64)}
    garbled = {**anchor(api.keys.demo_admin).to_wire(), "envelope": "%%%"}
    before = api.snapshot()
    problem = assert_problem(api.post(body([good, flipped, garbled])), 400, "batch-refused")
    assert [(e["index"], e["code"]) for e in problem["errors"]] == [(1, "bad-signature"), (2, "malformed")]
    assert "1 more refused" in problem["detail"]
    assert api.snapshot() == before


def test_replay_within_request_names_the_second_copy(api: ApiLedger) -> None:
    wire = anchor(api.keys.demo_admin).to_wire()
    problem = assert_problem(api.post(body([wire, wire])), 409, "replayed-tx")
    assert [(e["index"], e["code"]) for e in problem["errors"]] == [(1, "replayed-tx")]
