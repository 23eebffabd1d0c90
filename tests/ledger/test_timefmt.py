"""The one timestamp spelling of signed data: every instant formats one way and parses back to itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.errors import EncodingError
from medledger.ledger.timefmt import format_ms, parse_ms

#: 0001-01-01 .. 9999-12-31T23:59:59.999Z in epoch milliseconds
LOWEST = -62_135_596_800_000
HIGHEST = 253_402_300_799_999


@given(st.integers(min_value=LOWEST, max_value=HIGHEST))
def test_every_instant_round_trips_and_matches_datetime(ms: int) -> None:
    text = format_ms(ms)
    assert parse_ms(text) == ms
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert text == expected.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_the_same_second_cached_keeps_its_milliseconds() -> None:
    assert [format_ms(1_764_000_000_000 + n) for n in (0, 7, 999)] == [
        "2025-11-24T16:00:00.000Z",
        "2025-11-24T16:00:00.007Z",
        "2025-11-24T16:00:00.999Z",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-24T01:14:25Z",
        "2026-11-24T01:14:25.123+00:00",
        "2026-02-30T00:00:00.000Z",
        " 2026-11-24T01:14:25.123Z",
        "2026-11-24T24:00:00.000Z",
        "2026-11-24T01:60:00.000Z",
        "2016-12-31T23:59:60.000Z",  # a leap second has no epoch millisecond of its own
        "2026-11-24T01:14:+5.123Z",  # int() would take these fields; the format does not
        "2026-11-24T01:14:25.+12Z",
        "2026-11-24T01:14:25.123z",
        "\uff12026-11-24T01:14:25.123Z",  # a fullwidth digit is a digit to Unicode, not to us
    ],
)
def test_other_spellings_are_refused(text: str) -> None:
    with pytest.raises(EncodingError):
        parse_ms(text)
