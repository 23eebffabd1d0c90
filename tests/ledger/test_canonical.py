"""RFC 8785 output of the fast encoder equals the reference; strict parsing refuses every ambiguity."""

from __future__ import annotations

import os
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.errors import EncodingError
from medledger.ledger.canonical import (
    MAX_DEPTH,
    MAX_SAFE_INT,
    b64d,
    b64e,
    canonical_bytes,
    parse_canonical,
    parse_document,
    parse_json,
)

safe_ints = st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | safe_ints | text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=600, deadline=None)
@given(values)
def test_fast_encoder_equals_reference(value: Any) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)
    assert parse_canonical(canonical_bytes(value)) == value


def test_keys_outside_the_bmp_sort_by_utf16() -> None:
    # U+1F600 is D83D DE00 in UTF-16, which sorts before U+FB33; code-point order says the opposite.
    value = {"\U0001f600": 1, "\ufb33": 2}
    assert canonical_bytes(value) == rfc8785.dumps(value)
    assert canonical_bytes(value).index("\U0001f600".encode()) < canonical_bytes(value).index("\ufb33".encode())


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"a":1.5}', "float-not-allowed"),
        (b'{"a":1.0}', "float-not-allowed"),
        (b'{"a":1e2}', "float-not-allowed"),
        (b'{"a":9007199254740992}', "integer-out-of-range"),
        (b'{"a":NaN}', "malformed"),
        (b'{"a":1,"a":2}', "non-canonical"),
        (b'{"b":1,"a":2}', "non-canonical"),
        (b'{"a": 1}', "non-canonical"),
        (b'{"a":"\\u0041"}', "non-canonical"),
        (b'{"a":"\\ud800"}', "malformed"),
        (b'\xff', "malformed"),
        (b'{"a":', "malformed"),
    ],
)
def test_parse_canonical_refuses(raw: bytes, code: str) -> None:
    with pytest.raises(EncodingError) as info:
        parse_canonical(raw)
    assert info.value.code == code
    assert info.value.message


def test_canonical_bytes_refuses_floats_and_unsafe_ints() -> None:
    for bad in ({"x": 0.5}, [2**53], {"x": {1, 2}}):
        with pytest.raises(EncodingError):
            canonical_bytes(bad)


def test_parse_json_accepts_spacing_but_not_floats() -> None:
    assert parse_json(b' {"a" : [1, 2]} ') == {"a": [1, 2]}
    with pytest.raises(EncodingError):
        parse_json(b"[0.1]")


def test_base64url_has_one_spelling() -> None:
    for n in range(70):
        raw = os.urandom(n)
        assert b64d(b64e(raw)) == raw
    for bad in ["AQJ", "AQI=", "A+I", "A/I", "AQ I", "A", "é", "AQ=="]:
        with pytest.raises(EncodingError):
            b64d(bad)
    with pytest.raises(EncodingError):
        b64d(b64e(bytes(31)), length=32)


# -- duplicate keys and depth: every request body goes through parse_json / parse_document ------------------

_texts = st.text(alphabet=st.sampled_from("ab:\\\"{}[], "), max_size=6)
_objects = st.dictionaries(_texts, st.one_of(_texts, st.integers(-5, 5)), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(obj=_objects, inner=_objects)
def test_a_duplicate_key_is_refused_wherever_it_is_and_whatever_the_strings_hold(
    obj: dict[str, Any], inner: dict[str, Any]
) -> None:
    import orjson

    key = next(iter(inner))
    outer = {k: v for k, v in obj.items() if k != "n"}
    head = orjson.dumps(outer)[:-1] + (b"," if outer else b"")
    nested = head + b'"n":[' + orjson.dumps(inner) + b"]}"
    # the same key written twice inside the nested object (text with colons in strings takes the slow path)
    doubled = head + b'"n":[{' + orjson.dumps(key) + b":0," + orjson.dumps(inner)[1:] + b"]}"
    for parse in (parse_json, parse_document):
        assert parse(nested) == {**outer, "n": [inner]}
        with pytest.raises(EncodingError) as err:
            parse(doubled)
        assert err.value.code == "duplicate-key" and repr(key[:60]) in err.value.message


@pytest.mark.parametrize("parse", [parse_json, parse_document])
def test_nesting_is_bounded_before_anything_recurses(parse: Any) -> None:
    assert parse(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    for depth in (MAX_DEPTH + 1, 5000):
        with pytest.raises(EncodingError, match=f"nested more than {MAX_DEPTH} levels"):
            parse(b'{"a":' * depth + b"1" + b"}" * depth)


def test_a_document_may_hold_decimals_signed_data_may_not() -> None:
    assert parse_document(b'{"value":2.5}') == {"value": 2.5}
    with pytest.raises(EncodingError, match="not an integer"):
        parse_json(b'{"value":2.5}')
