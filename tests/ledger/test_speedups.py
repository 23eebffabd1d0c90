"""The C fast paths against the Python reference paths they stand in front of.

``medledger.ledger._speedups`` may only *accept*: for any input, it returns
either exactly what the Python path returns, or None (and the Python path
then decides, refusal or not). These tests hold it to that on valid
envelopes of every shape, on every refusal the Python path knows, on
targeted mutations at each boundary, and on random byte-level damage, and
check that it really does answer the common case (or it would be dead code).
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medledger.errors import MedledgerError
from medledger.ledger import _speedups, envelope, keys
from medledger.ledger.canonical import MAX_SAFE_INT, _check_value, _encode, b64e, canonical_bytes, parse_canonical

KEY = keys.SigningKey(bytes(range(32)))
SIGNATURE = bytes(range(64))  # the decoder does not verify signatures; callers do


def reference(item: Any) -> envelope.SignedEnvelope | None:
    try:
        return envelope._from_wire(item, check_signature=False)
    except MedledgerError:
        return None


def agree(item: Any) -> envelope.SignedEnvelope | None:
    """Assert the C answer is None or the reference's; return the C answer."""
    fast = _speedups.decode_wire(item)
    expected = reference(item)
    if fast is None:
        return None
    assert expected is not None, f"C accepted what Python refuses: {item!r}"
    got = envelope.SignedEnvelope(*fast)
    assert got == expected
    assert [type(v) for v in fast] == [bytes, bytes, str, dict, str, str, str, int, str]
    if isinstance(item, dict) and isinstance(item.get("envelope"), str):
        parts = _speedups.decode_parts(expected.body, expected.signature)
        assert parts is not None and envelope.SignedEnvelope(*parts) == expected
    return got


def wire(body: bytes, signature: bytes = SIGNATURE) -> dict[str, str]:
    return {"envelope": b64e(body), "signature": b64e(signature)}


def body_of(**fields: Any) -> bytes:
    obj: dict[str, Any] = {
        "type": "anchor.record",
        "payload": {"label": "x", "sha256": "ab" * 32},
        "signer": KEY.key_id,
        "nonce": "AAAAAAAAAAAAAAAAAAAAAA",
        "created_at": "2026-11-24T01:14:25.123Z",
    }
    obj.update(fields)
    return canonical_bytes({k: v for k, v in obj.items() if v is not ...})


def test_the_common_case_is_answered_in_c() -> None:
    assert envelope.DECODER == "c"
    env = envelope.build(KEY, "anchor.record", {"label": "x", "sha256": "ab" * 32})
    assert agree(env.to_wire()) == env
    assert envelope.from_wire(env.to_wire()) == env  # with the signature check, through the public API


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT)
    | st.sampled_from([MAX_SAFE_INT, -MAX_SAFE_INT, MAX_SAFE_INT - 1])  # the edges; beyond them: below
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_valid_payloads_of_every_shape(payload: dict[str, Any]) -> None:
    body = body_of(payload=payload)  # every generated payload is signable data
    got = agree(wire(body))
    if not any(b >= 0xF0 for b in body) and depth(payload) < 30:
        assert got is not None  # everything else is the C decoder's to answer


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


LEAP_AND_EDGES = [
    ("2024-02-29T00:00:00.000Z", True),
    ("2023-02-29T00:00:00.000Z", False),
    ("2000-02-29T23:59:59.999Z", True),
    ("1900-02-29T00:00:00.000Z", False),
    ("2100-02-29T00:00:00.000Z", False),
    ("2026-04-31T00:00:00.000Z", False),
    ("2026-12-31T23:59:59.999Z", True),
    ("2026-13-01T00:00:00.000Z", False),
    ("2026-00-01T00:00:00.000Z", False),
    ("2026-01-00T00:00:00.000Z", False),
    ("2026-01-01T24:00:00.000Z", False),
    ("2026-01-01T23:60:00.000Z", False),
    ("2026-01-01T23:59:60.000Z", False),
    ("1970-01-01T00:00:00.000Z", True),
    ("1969-12-31T23:59:59.999Z", True),  # valid; the C decoder leaves pre-1970 to Python
    ("0000-01-01T00:00:00.000Z", False),
    ("9999-12-31T23:59:59.999Z", True),
    ("2026-11-24T01:14:25.12Z", False),
    ("2026-11-24T01:14:25.1234Z", False),
    ("2026-11-24 01:14:25.123Z", False),
    ("2026-11-24T01:14:25.123z", False),
    ("2026-11-24T01:14:25.123+00:00", False),
    ("２026-11-24T01:14:25.123Z", False),
    ("+026-11-24T01:14:25.123Z", False),
    ("2026-11-24T01:14:2+.123Z", False),
]


@pytest.mark.parametrize(("created_at", "valid"), LEAP_AND_EDGES)
def test_timestamps_at_the_edges(created_at: str, valid: bool) -> None:
    item = wire(body_of(created_at=created_at))
    assert (reference(item) is not None) == valid
    got = agree(item)
    if valid and created_at >= "1970":
        assert got is not None and got.created_ms == envelope._from_wire(item, check_signature=False).created_ms


FIELD_CASES: list[tuple[str, Any, bool]] = [
    ("type", "a", True),
    ("type", "a" * 64, True),
    ("type", "a" * 65, False),
    ("type", "a.b-c_d9.e", True),
    ("type", "a.", False),
    ("type", ".a", False),
    ("type", "a..b", False),
    ("type", "9a", False),
    ("type", "a.9", False),
    ("type", "A", False),
    ("type", "a.B", False),
    ("type", "", False),
    ("type", "é", False),
    ("type", 7, False),
    ("nonce", "A" * 8, True),
    ("nonce", "A" * 7, False),
    ("nonce", "-_" * 32, True),
    ("nonce", "A" * 65, False),
    ("nonce", "AAAAAAA=", False),
    ("nonce", "AAAAAAA+", False),
    ("nonce", "AAAAAAAé", False),
    ("nonce", None, False),
    ("payload", [], False),
    ("payload", {}, True),
    ("payload", "x", False),
    ("signer", KEY.key_id[:-1], False),
    ("signer", KEY.key_id + "A", False),
    ("signer", KEY.key_id[:-1] + "B", False),  # non-zero unused bits: not the canonical spelling
    ("signer", KEY.key_id + "=", False),
    ("signer", 5, False),
    ("created_at", 1, False),
    ("created_at", ..., False),
    ("type", ..., False),
]


@pytest.mark.parametrize(("field", "value", "valid"), FIELD_CASES)
def test_fields_at_the_edges(field: str, value: Any, valid: bool) -> None:
    item = wire(body_of(**{field: value}))
    assert (reference(item) is not None) == valid
    got = agree(item)
    assert (got is not None) == valid


def test_extra_field_and_unsafe_numbers() -> None:
    obj = parse_canonical(body_of())
    for extra in ({"extra": 1}, {"payload": {"n": MAX_SAFE_INT}}, {"payload": {"n": -MAX_SAFE_INT}}):
        assert agree(wire(canonical_bytes({**obj, **extra}))) is not None or "extra" in extra
    # bodies no encoder of ours would produce, spelled by hand
    good = body_of()
    for raw in (
        good.replace(b'"label":"x"', b'"label":1.5'),
        good.replace(b'"label":"x"', b'"label":1e3'),
        good.replace(b'"label":"x"', b'"label":9007199254740992'),
        good.replace(b'"label":"x"', b'"label":-9007199254740992'),
        good.replace(b'"label":"x"', b'"label":99999999999999999999999'),
        good.replace(b'"label":"x"', b'"label":-0'),
        good.replace(b'"label":"x"', b'"label":NaN'),
        good.replace(b'"label":"x"', b'"label":"\\u0078"'),
        good.replace(b'"label":"x"', b'"label":"x","label":"x"'),
        good.replace(b'"label":"x"', b'"label" : "x"'),
        good.replace(b'"label":"x"', b'"label":"\xff"'),
        good.replace(b'"label":"x"', b'"label":"\xed\xa0\x80"'),
        good + b" ",
        b" " + good,
        good[:-1],
        b"[" + good + b"]",
        b"",
        b"null",
    ):
        assert agree(wire(raw)) is None, raw


def test_deep_nesting_goes_to_python() -> None:
    nested: Any = "x"
    for _ in range(40):
        nested = [nested]
    item = wire(body_of(payload={"n": nested}))
    assert _speedups.decode_wire(item) is None
    assert reference(item) is not None  # 40 levels are valid; Python decides


def test_four_byte_characters_go_to_python() -> None:
    item = wire(body_of(payload={"\U0001f600": 1, "\ue000": 2}))
    assert _speedups.decode_wire(item) is None
    assert reference(item) is not None


def test_wire_item_shapes() -> None:
    good = wire(body_of())
    plain = base64.urlsafe_b64encode(body_of()).decode()

    class Sub(dict[str, Any]):
        pass

    class Text(str):
        __slots__ = ()

    cases: list[Any] = [
        {**good, "extra": "x"},
        {"envelope": good["envelope"]},
        {"signature": good["signature"]},
        [good["envelope"], good["signature"]],
        Sub(good),
        {"envelope": Text(good["envelope"]), "signature": good["signature"]},
        {"envelope": good["envelope"].encode(), "signature": good["signature"]},
        {"envelope": plain, "signature": good["signature"]} if plain.endswith("=") else {},
        {"envelope": good["envelope"][:-1] + "+", "signature": good["signature"]},
        {"envelope": good["envelope"][:-1] + "/", "signature": good["signature"]},
        {"envelope": good["envelope"] + "A", "signature": good["signature"]},
        {"envelope": good["envelope"] + "AA", "signature": good["signature"]},
        {"envelope": " " + good["envelope"], "signature": good["signature"]},
        {"envelope": good["envelope"], "signature": good["signature"][:-1]},
        {"envelope": good["envelope"], "signature": good["signature"] + "A"},
        {"envelope": good["envelope"], "signature": good["signature"][:-1] + "B"},
        {"envelope": good["envelope"], "signature": b64e(bytes(63))},
        {"envelope": good["envelope"], "signature": b64e(bytes(65))},
        {"envelope": good["envelope"], "signature": "é" * 86},
        None,
        "x",
    ]
    for item in cases:
        assert agree(item) is None, item
    assert agree(good) is not None
    assert _speedups.decode_parts(bytearray(body_of()), SIGNATURE) is None
    assert _speedups.decode_parts(body_of(), SIGNATURE[:63]) is None
    assert agree({"envelope": b64e(b"x" * (envelope.MAX_ENVELOPE_BYTES + 1)), "signature": b64e(SIGNATURE)}) is None


Mutation = Callable[[bytes, int, int], bytes]
MUTATIONS: list[Mutation] = [
    lambda b, i, v: b[:i] + bytes([v]) + b[i + 1 :],
    lambda b, i, v: b[:i] + bytes([v]) + b[i:],
    lambda b, i, v: b[:i] + b[i + 1 :],
    lambda b, i, v: b[:i] + bytes([b[i] ^ (1 << (v % 8))]) + b[i + 1 :],
]


@settings(max_examples=1500, deadline=None)
@given(
    which=st.integers(0, len(MUTATIONS) - 1),
    at=st.integers(0, 10_000),
    value=st.integers(0, 255),
    typed=st.sampled_from(["anchor.record", "prescription.issue", "a.b"]),
)
def test_random_damage_is_never_accepted_differently(which: int, at: int, value: int, typed: str) -> None:
    body = body_of(type=typed, payload={"label": "x", "n": 12, "ok": True, "list": [None, -5, "é"]})
    damaged = MUTATIONS[which](body, at % len(body), value)
    agree(wire(damaged))
    text = wire(body)["envelope"]
    spot = at % len(text)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .é"
    agree({"envelope": text[:spot] + alphabet[value % len(alphabet)] + text[spot + 1 :], "signature": b64e(SIGNATURE)})


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    agree(wire(raw))
    agree({"envelope": raw.decode("latin-1"), "signature": b64e(SIGNATURE)})


def reference_encoding(value: Any) -> bytes | None:
    try:
        _check_value(value)
        return _encode(value)
    except MedledgerError:
        return None


def encoding_agrees(value: Any) -> bytes | None:
    fast = _speedups.encode(value)
    if fast is not None:
        assert fast == reference_encoding(value), value
    return fast


any_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text()
    | st.sampled_from([MAX_SAFE_INT, -MAX_SAFE_INT, MAX_SAFE_INT + 1, -MAX_SAFE_INT - 1, 2**63, -(2**63) - 1]),
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=8) | st.integers(0, 3), inner, max_size=4),
    max_leaves=14,
)


@settings(max_examples=600, deadline=None)
@given(value=any_values)
def test_encoding_agrees_with_the_reference(value: Any) -> None:
    fast = encoding_agrees(value)
    plain = reference_encoding(value)
    if plain is not None and "tuple" not in _types(value) and not any(b >= 0xF0 for b in plain) and depth(value) < 30:
        assert fast is not None  # the plain case is the C encoder's to answer


def _types(value: Any) -> set[str]:
    found = {type(value).__name__}
    if isinstance(value, dict):
        for item in value.values():
            found |= _types(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= _types(item)
    return found


def test_encoding_leaves_the_unusual_to_python() -> None:
    class Text(str):
        __slots__ = ()

    class Number(int):
        pass

    nested: Any = 1
    for _ in range(40):
        nested = [nested]
    for value in (
        1.0,
        {"a": float("nan")},
        [2**53],
        {1: "x"},
        {Text("k"): 1},
        Text("x"),
        Number(1),
        ("a", 1),
        {"\U0001f600": 1, "\ue000": 2},
        nested,
        object(),
        b"bytes",
    ):
        assert _speedups.encode(value) is None, value
    assert canonical_bytes({"\U0001f600": 1, "\ue000": 2}) == rfc8785.dumps({"\U0001f600": 1, "\ue000": 2})
    assert canonical_bytes(nested) == b"[" * 40 + b"1" + b"]" * 40


def test_worker_answers_unpack_the_same_in_c() -> None:
    """The node rebuilds envelopes from a worker's packed answer; C and Python give equal envelopes."""
    from medledger.node import pool

    built = [
        envelope.build(KEY, "anchor.record", {"label": f"é{n}", "sha256": "ab" * 32, "n": n}) for n in range(20)
    ]
    refusal = pool.Refusal("bad-signature", "signature does not verify under the signer's key", 401)
    for results in (list(built), [*built[:5], refusal, *built[5:]], [refusal], []):
        rows_data, bodies, signatures = pool._pack(results)
        rows, values = orjson.loads(rows_data), orjson.loads(bodies)
        expected = pool._unpack_rows(rows, bodies, values, signatures)
        assert expected == results
        fast = _speedups.envelopes(rows, bodies, values, signatures, envelope.SignedEnvelope)
        assert fast is None if refusal in results else fast == results
        assert pool._unpack((rows_data, bodies, signatures)) == results
    rows_data, bodies, signatures = pool._pack(built)
    rows, values = orjson.loads(rows_data), orjson.loads(bodies)
    for bad_rows, bad_values, bad_signatures in (
        (rows[:-1], values, signatures),
        (rows, values[:-1], signatures),
        (rows, values, signatures[:-1]),
        ([[*rows[0][:2], 5, 2], *rows[1:]], values, signatures),
        ([[*rows[0][:3], len(bodies) + 1], *rows[1:]], values, signatures),
        ([[*rows[0][:2], -1, rows[0][3]], *rows[1:]], values, signatures),
        ([[*rows[0][:2], 2**70, rows[0][3]], *rows[1:]], values, signatures),
        ([[*rows[0][:3], 2**70], *rows[1:]], values, signatures),
        ([[*rows[0][:2], "0", rows[0][3]], *rows[1:]], values, signatures),
        ([["1", *rows[0][1:]], *rows[1:]], values, signatures),
        ([rows[0][:3], *rows[1:]], values, signatures),
        (rows, [{"type": "x"}, *values[1:]], signatures),
        (rows, [[], *values[1:]], signatures),
    ):
        assert _speedups.envelopes(bad_rows, bodies, bad_values, bad_signatures, envelope.SignedEnvelope) is None


def test_without_the_extension_everything_runs_on_the_python_path() -> None:
    """An install without a C compiler has no _speedups: decoding, encoding and the pool still work."""
    script = """
import sys
sys.modules["medledger.ledger._speedups"] = None  # what a failed optional build leaves: ImportError
from medledger.ledger import canonical, envelope, keys
from medledger.node import pool
assert envelope.DECODER == "python" and canonical._c_encode is None and pool._c_envelopes is None
key = keys.SigningKey(bytes(32))
built = [envelope.build(key, "anchor.record", {"label": f"x{n}", "sha256": "ab" * 32}) for n in range(3)]
assert [envelope.from_wire(e.to_wire()) for e in built] == built
assert pool._unpack(pool._pack(list(built))) == built
try:
    envelope.from_wire({"envelope": "e30", "signature": built[0].to_wire()["signature"]})
except Exception as exc:
    print(type(exc).__name__, exc.code)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["EncodingError", "malformed"]
