from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshalert.durations import DurationError, format_duration_ms, parse_duration_ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("500ms", 500),
        ("10s", 10_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("7d", 604_800_000),
        ("1m30s", 90_000),
        ("0.5s", 500),
        (" 2M ", 120_000),
    ],
)
def test_parse(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "5", "m5", "5 m", "5mm", "-1s", "1s2"])
def test_rejects_with_the_value_named(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration_ms(text)


@given(st.integers(min_value=0, max_value=10**12))
def test_format_round_trips(ms: int) -> None:
    assert parse_duration_ms(format_duration_ms(ms)) == ms
