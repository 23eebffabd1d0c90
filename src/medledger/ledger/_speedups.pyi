"""Accept-only C fast paths for envelope decoding and canonical encoding; see ``_speedups.c``."""

from typing import Any, TypeVar

_T = TypeVar("_T")

_Fields = tuple[bytes, bytes, str, dict[str, Any], str, str, str, int, str]

def decode_wire(item: Any, /) -> _Fields | None: ...
def decode_parts(body: bytes, signature: bytes, /) -> _Fields | None: ...
def encode(value: Any, /) -> bytes | None: ...
def envelopes(
    rows: list[Any], bodies: bytes, values: list[Any], signatures: bytes, cls: type[_T], /
) -> list[_T] | None: ...
