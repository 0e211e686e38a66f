"""One way to write each value: the unit follows the threshold's name."""

from __future__ import annotations

import math

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.units import format_class_value, format_threshold, format_value


@pytest.mark.parametrize(
    ("value", "name", "text"),
    [
        (812.0, "latency.above_ms", "812 ms"),
        (31.08, "latency.recover_below_ms", "31.08 ms"),
        (99.0, "latency.percentile", "p99"),
        (0.075, "failures.rate_above", "7.5%"),
        (0.04, "failures.recover_below", "4%"),
        (20.0, "failures.min_requests", "20 requests"),
        (0.6, "endpoints.available_ratio_below", "60%"),
        (6.0, "endpoints.available_below", "6 endpoints"),
        (3.0, "retries.exhausted_above", "3 retries"),
        (10_880.4, "retries.exhausted_above", "10880 retries"),
        (125_000.0, "latency.above_ms", "125000 ms"),
        (0.296, "retries.ratio_above", "29.6%"),
        (3.0, "retries.anomaly_factor", "3x"),
        (0.35, "retries.anomaly_factor x baseline", "35%"),
        (None, "latency.above_ms", "no data"),
        (math.nan, "failures.rate_above", "no data"),
    ],
)
def test_value_with_its_unit(value: float | None, name: str, text: str) -> None:
    assert format_value(value, name) == text


def test_threshold_and_class_value() -> None:
    assert format_threshold(500.0, "latency.above_ms") == "above_ms 500 ms"
    assert format_threshold(None, "latency.above_ms") == "-"
    assert format_class_value(0.6, AlertClass.ENDPOINTS) == "60%"
    assert format_class_value(250.0, AlertClass.LATENCY) == "250 ms"
