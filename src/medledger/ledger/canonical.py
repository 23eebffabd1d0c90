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


MAX_DEPTH = 64


def _check_value(value: Any, depth: int = 0) -> None:
    """Refuse anything a JCS encoder cannot represent exactly (floats, unsafe ints),
    and nesting deeper than any real record needs (a cheap denial-of-service)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return
    if kind is int:
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise EncodingError(
                f"integer {value} is outside the I-JSON safe range ±(2**53-1)",
                code="integer-out-of-range",
            )
        return
    if kind is dict or kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            raise EncodingError(f"JSON is nested more than {MAX_DEPTH} levels deep", code="malformed")
        if kind is dict:
            for key, item in value.items():
                if type(key) is not str:
                    raise EncodingError(f"object key {key!r} is not a string", code="malformed")
                if type(item) is not str:
                    _check_value(item, depth + 1)
        else:
            for item in value:
                if type(item) is not str:
                    _check_value(item, depth + 1)
        return
    if kind is float:
        _refuse_float(repr(value))
    raise EncodingError(f"a {kind.__name__} cannot be signed data", code="malformed")


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
    """Parse JSON strictly: no floats, NaN, unsafe integers or invalid Unicode; any spacing."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EncodingError(f"not valid JSON: {exc}", code="malformed") from exc
    _check_value(value)
    return value


def parse_canonical(data: bytes) -> Any:
    """Parse bytes that must already be the canonical encoding of their value."""
    value = parse_json(data)
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
