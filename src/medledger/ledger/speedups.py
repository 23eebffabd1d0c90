"""The one place that loads the optional C fast paths (``_speedups``; see its source for why).

The extension is built only where a C compiler was available at install time.
Each name here is the C function, or None without it; callers then run their
Python reference path alone, which is also what they fall back to whenever a
C function answers None ("not sure").
"""

from __future__ import annotations

try:
    from medledger.ledger._speedups import decode_parts, decode_wire, encode, envelopes

    #: which decoder answers the common case: "c", or "python" where the extension is missing
    DECODER = "c"
except ImportError:  # pragma: no cover - installed without a C compiler
    decode_parts = decode_wire = encode = envelopes = None  # type: ignore[assignment]
    DECODER = "python"

__all__ = ["DECODER", "decode_parts", "decode_wire", "encode", "envelopes"]
