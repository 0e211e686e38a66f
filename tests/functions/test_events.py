"""functions/events.py: class and cycle from each event shape EventBridge delivers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.events import (
    CYCLE_FROM_CLOCK,
    CYCLE_FROM_EVENT,
    EventError,
    alert_class_of,
    cycle_of,
)
from meshalert.alert_classes import AlertClass
from tests.functions.conftest import at, event

T = 1_767_225_906_000  # 2026-01-01T00:05:06Z


def test_recorded_shapes() -> None:
    full = event("scheduled_heartbeat")
    assert cycle_of(full, interval_ms=60_000, now_ms=0).cycle_ms == T - 6_000
    transformed = event("evaluate_latency_transformed")
    assert alert_class_of(transformed) is AlertClass.LATENCY
    assert cycle_of(transformed, interval_ms=60_000, now_ms=0).source == CYCLE_FROM_EVENT
    constant = event("evaluate_latency_constant")
    cycle = cycle_of(constant, interval_ms=60_000, now_ms=T + 30_000)
    assert (cycle.cycle_ms, cycle.source) == (T - 6_000, CYCLE_FROM_CLOCK)


@settings(max_examples=50)
@given(st.integers(0, 4_000_000_000), st.integers(0, 59))
def test_retried_deliveries_of_one_schedule_share_the_cycle(minute: int, jitter_s: int) -> None:
    scheduled = minute * 60_000
    first = cycle_of({"time": at(scheduled)}, interval_ms=60_000, now_ms=0)
    retry = cycle_of({"time": at(scheduled)}, interval_ms=60_000, now_ms=jitter_s * 1000)
    assert first == retry
    assert first.cycle_ms == scheduled


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], r"event: expected a JSON object"),
        ({}, r"event\.alert_class: missing"),
        ({"alert_class": 3}, r"event\.alert_class: 3 is not one of"),
        ({"alert_class": "latencies"}, r"'latencies' is not one of latency, failures"),
    ],
)
def test_bad_class_names_the_field(bad: object, message: str) -> None:
    with pytest.raises(EventError, match=message):
        alert_class_of(bad)


@pytest.mark.parametrize("bad", ["yesterday", "2026-01-01T00:05:06", 17])
def test_bad_time_names_the_field(bad: object) -> None:
    with pytest.raises(EventError, match=r"event\.time"):
        cycle_of({"time": bad}, interval_ms=60_000, now_ms=0)
