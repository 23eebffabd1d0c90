"""Accept-only C decoding of wire envelopes; see ``_wirecheck.c`` for why and how."""

from typing import Any

_Fields = tuple[bytes, bytes, str, dict[str, Any], str, str, str, int, str]

def decode_wire(item: Any, /) -> _Fields | None: ...
def decode_parts(body: bytes, signature: bytes, /) -> _Fields | None: ...
