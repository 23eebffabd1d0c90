"""The one timestamp format of signed data: RFC 3339 UTC with milliseconds.

``2026-11-24T01:14:25.123Z`` and nothing else: a single spelling per instant
keeps signed bytes canonical and lets humans read evidence directly. Internally
times are integer milliseconds since the Unix epoch.
"""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime, timedelta

from medledger.errors import EncodingError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_pattern = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    # the times of one block share their second, so formatting it is cached; fields are padded by hand
    # because strftime's %Y does not pad years before 1000 on every platform (parse_ms requires four digits)
    d = _EPOCH + timedelta(seconds=seconds)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}."


def format_ms(ms: int) -> str:
    """Render epoch milliseconds in the ledger's timestamp format."""
    return _second(ms // 1000) + f"{ms % 1000:03d}Z"


def parse_ms(text: str, *, what: str = "timestamp") -> int:
    """Parse the ledger's timestamp format into epoch milliseconds, strictly."""
    if not isinstance(text, str) or _pattern.fullmatch(text) is None:
        raise EncodingError(
            f"{what} must look like 2026-11-24T01:14:25.123Z (UTC, milliseconds), got {text!r}",
            code="malformed",
        )
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise EncodingError(f"{what} {text!r} is not a real date and time", code="malformed") from exc
    return (dt - _EPOCH) // _MS


def now_ms() -> int:
    """Wall-clock time; used by nodes and clients, never by contracts."""
    return time.time_ns() // 1_000_000
