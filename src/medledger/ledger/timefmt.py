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
_EPOCH_ORDINAL = _EPOCH.toordinal()
_pattern = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", re.ASCII)


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    # the times of one block share their second, so formatting it is cached; fields are padded by hand
    # because strftime's %Y does not pad years before 1000 on every platform (parse_ms requires four digits)
    d = _EPOCH + timedelta(seconds=seconds)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}."


def format_ms(ms: int) -> str:
    """Render epoch milliseconds in the ledger's timestamp format."""
    return _second(ms // 1000) + f"{ms % 1000:03d}Z"


_minute_pattern = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:", re.ASCII)
# Strict digit fields by table lookup: int() of a slice costs ~0.4 us and accepts "+1" and " 1".
_SECONDS = {f"{n:02d}": n * 1000 for n in range(60)}  # no leap second: it has no epoch-ms of its own
_MILLIS = {f"{n:03d}": n for n in range(1000)}


@functools.lru_cache(maxsize=4096)
def _minute_ms(prefix: str) -> int | None:
    """``YYYY-MM-DDTHH:MM:`` -> epoch ms of that minute, or None if it is not a real minute.

    The events of one block share a handful of minutes, so this is nearly always a cache hit.
    """
    if _minute_pattern.fullmatch(prefix) is None:
        return None
    try:
        dt = datetime.fromisoformat(prefix + "00")
    except ValueError:
        return None
    return ((dt.toordinal() - _EPOCH_ORDINAL) * 86_400 + dt.hour * 3600 + dt.minute * 60) * 1000


@functools.lru_cache(maxsize=65_536)
def _parsed(text: str) -> int | None:
    """Epoch ms of a well-formed 24-character timestamp, None otherwise.

    Cached whole: a payload's event times are parsed when it is validated and
    again when its rules run, on the node's one interpreter. Only strings of
    the format's length reach the cache, so hostile input cannot fill memory
    with long keys (65,536 short entries are a few MB).
    """
    if text[19] == "." and text[23] == "Z":
        minute = _minute_ms(text[:17])
        second = _SECONDS.get(text[17:19])
        milli = _MILLIS.get(text[20:23])
        if minute is not None and second is not None and milli is not None:
            return minute + second + milli
    return None


def parse_ms(text: str, *, what: str = "timestamp") -> int:
    """Parse the ledger's timestamp format into epoch milliseconds, strictly."""
    if type(text) is str and len(text) == 24:
        ms = _parsed(text)
        if ms is not None:
            return ms
    if not isinstance(text, str) or _pattern.fullmatch(text) is None:
        raise EncodingError(
            f"{what} must look like 2026-11-24T01:14:25.123Z (UTC, milliseconds), got {text!r}",
            code="malformed",
        )
    raise EncodingError(f"{what} {text!r} is not a real date and time", code="malformed")


def now_ms() -> int:
    """Wall-clock time; used by nodes and clients, never by contracts."""
    return time.time_ns() // 1_000_000
