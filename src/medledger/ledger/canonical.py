"""RFC 8785 (JCS) canonical JSON, strict parsing, and strict base64url.

Signed data must have exactly one byte representation, or a signature over
one spelling could be replayed under another and the ledger would hold two
"different" records of one event. Three decisions follow:

* Floats are refused outright (RFC 8785 number serialisation of doubles is a
  well-known source of cross-implementation disagreement; money and doses are
  integers in minor units).
* Integers must be I-JSON safe (|n| <= 2**53 - 1), the range every JSON
  implementation round-trips exactly.
* Parsing is strict: the received bytes must re-encode to themselves, which
  also rejects duplicate keys, insignificant whitespace and escape variants.

The hot path encodes with ``orjson`` (sorted keys, compact), which emits
exactly the JCS form for the values we allow: measured here at ~0.7 us per
envelope against ~36 us for the pure-Python ``rfc8785`` package and ~10 us for
the stdlib encoder. The one JCS rule it does not follow is key order for keys
holding characters outside the Basic Multilingual Plane (JCS sorts by UTF-16
code units, orjson by code points); output containing any 4-byte UTF-8
sequence is therefore re-encoded by the reference ``rfc8785`` package. A
property test holds the fast path to the reference on generated values.
"""

from __future__ import annotations

import binascii
import json
import re
from typing import Any

import orjson
import rfc8785

from medledger.errors import EncodingError

# Accept-only C encoder: the same checks and bytes for plain values, None for anything else.
from medledger.ledger.speedups import encode as _c_encode

MAX_SAFE_INT = 2**53 - 1

_four_byte_utf8 = re.compile(rb"[\xf0-\xf4]")


def _refuse_float(text: str) -> Any:
    raise EncodingError(
        f"number {text} is not an integer; signed data carries no floats (use integers in minor units)",
        code="float-not-allowed",
    )


#: Deepest JSON nesting any body may have. Real records nest a few levels (a FHIR resource about
#: ten); the bound is enforced while parsing, before any model sees the value, because model
#: validators (pydantic, fhir.resources) recurse once per level and would overflow the stack.
MAX_DEPTH = 64


def _check_value(value: Any, depth: int = 0, strict: bool = True) -> int:
    """Refuse nesting deeper than :data:`MAX_DEPTH` (a cheap denial-of-service) and, when ``strict``
    (signed data), anything a JCS encoder cannot represent exactly (floats, unsafe ints).

    Returns how many object keys the value holds, for :func:`_refuse_duplicates`.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return 0
    if kind is int:
        if strict and not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise EncodingError(
                f"integer {value} is outside the I-JSON safe range ±(2**53-1)",
                code="integer-out-of-range",
            )
        return 0
    if kind is dict or kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            raise EncodingError(f"JSON is nested more than {MAX_DEPTH} levels deep", code="malformed")
        keys = 0
        if kind is dict:
            keys = len(value)
            for key, item in value.items():
                if type(key) is not str:
                    raise EncodingError(f"object key {key!r} is not a string", code="malformed")
                if type(item) is not str:
                    keys += _check_value(item, depth + 1, strict)
        else:
            for item in value:
                if type(item) is not str:
                    keys += _check_value(item, depth + 1, strict)
        return keys
    if kind is float:
        if not strict:
            return 0
        _refuse_float(repr(value))
    raise EncodingError(f"a {kind.__name__} cannot be signed data", code="malformed")


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def _refuse_duplicates(data: bytes | str, keys: int) -> None:
    """Refuse an object holding one key twice, naming it.

    orjson (like most parsers) keeps the last of two equal keys, another reader may keep the first:
    a proxy or auditor would then see another request than the one the node acts on. The test is
    exact and costs one C byte count in the common case: every key in the text is followed by one
    ``:`` outside strings, so if the text holds no more colons than the parsed value holds keys,
    no key was dropped. Only text with colons inside strings (URLs, times) pays for the second,
    pair-preserving parse; it runs on input already known to be valid and at most MAX_DEPTH deep.
    """
    colons = data.count(b":") if isinstance(data, bytes) else data.count(":")
    if colons <= keys:
        return
    try:
        json.loads(data, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as dup:
        shown = dup.key if len(dup.key) <= 60 else dup.key[:60] + "..."
        raise EncodingError(
            f"the JSON object key {shown!r} appears twice; duplicate keys are refused (readers disagree on "
            "which one counts)",
            code="duplicate-key",
        ) from None


def _load(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise EncodingError(f"JSON is nested more than {MAX_DEPTH} levels deep", code="malformed") from None
        raise EncodingError(f"not valid JSON: {exc}", code="malformed") from None


def _encode(value: Any) -> bytes:
    try:
        out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise EncodingError(f"value cannot be encoded as JSON: {exc}", code="malformed") from exc
    # isascii() is a C scan that answers for nearly all ledger data; the regex costs ~2 us
    if not out.isascii() and _four_byte_utf8.search(out) is not None:
        out = rfc8785.dumps(value)
    return out


def canonical_bytes(value: Any) -> bytes:
    """Encode a value as RFC 8785 canonical JSON, refusing floats and unsafe integers."""
    out = _c_encode(value) if _c_encode is not None else None
    if out is not None:
        return out
    _check_value(value)
    return _encode(value)


def parsed_canonical_bytes(value: Any) -> bytes:
    """Encode a value that came from :func:`parse_canonical` (already checked)."""
    return _encode(value)


def parse_json(data: bytes | str) -> Any:
    """Parse a request body strictly, as signed data: no floats, NaN, unsafe integers, invalid Unicode,
    duplicate keys or nesting deeper than MAX_DEPTH; any spacing."""
    value = _load(data)
    _refuse_duplicates(data, _check_value(value))
    return value


def parse_document(data: bytes | str) -> Any:
    """Parse a body that is not signed data (a FHIR resource): numbers as JSON has them, but the
    same refusals of duplicate keys and of nesting deeper than MAX_DEPTH as :func:`parse_json`."""
    value = _load(data)
    _refuse_duplicates(data, _check_value(value, 0, False))
    return value


def parse_canonical(data: bytes) -> Any:
    """Parse bytes that must already be the canonical encoding of their value."""
    # no duplicate-key pass: a value re-encodes to bytes without the dropped key, so the
    # comparison below refuses duplicates exactly
    value = _load(data)
    _check_value(value)
    if _encode(value) != data:
        raise EncodingError(
            "bytes are not RFC 8785 canonical JSON (key order, spacing, escapes or duplicate keys "
            "differ from the one canonical form); sign and send the canonical bytes",
            code="non-canonical",
        )
    return value


_to_url = bytes.maketrans(b"+/", b"-_")


def b64e_bytes(data: bytes) -> bytes:
    """:func:`b64e` as ASCII bytes, for splicing into canonical bytes (one per committed envelope).

    Straight to binascii: ``base64.urlsafe_b64encode`` is a Python wrapper that costs 4x as much.
    """
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_to_url)


def b64e(data: bytes) -> str:
    """base64url without padding: the one spelling used for bytes in signed data."""
    return b64e_bytes(data).decode("ascii")


def _std_table() -> bytes:
    """base64url -> standard alphabet, with "+", "/" and "=" made invalid, so one
    strict C decode both translates and refuses every foreign character."""
    table = bytearray(range(256))
    for char in b"+/=":
        table[char] = ord("!")
    table[ord("-")] = ord("+")
    table[ord("_")] = ord("/")
    return bytes(table)


_to_std = _std_table()
_B64_VALUE = {c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
_pads = (b"", b"", b"==", b"=")


def b64d(text: str, *, what: str = "value", length: int | None = None) -> bytes:
    """Decode base64url strictly: one spelling per byte string, so none is malleable."""
    try:
        data = text.encode("ascii")
        raw = binascii.a2b_base64(data.translate(_to_std) + _pads[len(data) % 4], strict_mode=True)
    except (AttributeError, UnicodeEncodeError, binascii.Error, ValueError):
        raise EncodingError(f"{what} is not unpadded base64url", code="malformed") from None
    # Canonical spelling: the unused low bits of a partial last group are zero.
    tail = len(raw) % 3
    if tail and _B64_VALUE[data[-1]] & (0x0F if tail == 1 else 0x03):
        raise EncodingError(f"{what} is not the canonical base64url spelling", code="non-canonical")
    if length is not None and len(raw) != length:
        raise EncodingError(f"{what} must be {length} bytes, got {len(raw)}", code="malformed")
    return raw
