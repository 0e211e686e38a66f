"""Values with their units, the one way every view writes them. Pure: values in, text out.

The unit follows the threshold's name (``latency.above_ms``, ``failures.rate_above``,
``endpoints.available_below``, ``retries.exhausted_above``, ...): milliseconds, percentages
of requests or of a load balancer, endpoint counts, exhausted retries. ``status``,
``history``, ``demo`` and every notification channel use these functions, so one alert
reads the same everywhere: ``812 ms`` against ``above_ms 500 ms``.
"""

from __future__ import annotations

import math

from meshalert.alert_classes import AlertClass

_COUNT_UNITS = {
    "available_below": "endpoints",
    "exhausted_above": "retries",
    "min_requests": "requests",
}


def _field(threshold_name: str) -> str:
    return threshold_name.rpartition(".")[2].split(" ")[0]


def format_value(value: float | None, threshold_name: str) -> str:
    """``812 ms``, ``7.5%``, ``6 endpoints``, ``3 retries``, ``no data``."""
    if value is None or not math.isfinite(value):
        return "no data"
    name = _field(threshold_name)
    if name == "anomaly_factor" and " x " not in threshold_name:
        return f"{value:g}x"  # the factor itself; "anomaly_factor x baseline" is a ratio
    if name == "percentile":
        return f"p{value:g}"
    if name.endswith("_ms"):
        return f"{_number(value)} ms"
    if "rate" in name or "ratio" in name or name in ("recover_below", "anomaly_factor"):
        return f"{value * 100:.3g}%"
    if name in _COUNT_UNITS:
        return f"{_number(value)} {_COUNT_UNITS[name]}"
    return _number(value)


def _number(value: float) -> str:
    """Four significant digits, never an exponent: ``812``, ``31.08``, ``10880``."""
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def format_threshold(value: float | None, threshold_name: str) -> str:
    """``above_ms 500 ms``: the threshold's own name (without its class) and its value."""
    if value is None:
        return "-"
    name = threshold_name.partition(".")[2] or threshold_name
    return f"{name} {format_value(value, threshold_name)}"


PRIMARY_THRESHOLD = {
    AlertClass.LATENCY: "latency.above_ms",
    AlertClass.FAILURES: "failures.rate_above",
    AlertClass.ENDPOINTS: "endpoints.available_ratio_below",
    AlertClass.RETRIES: "retries.ratio_above",
    AlertClass.INGEST: "ingest.stale_after_ms",
    AlertClass.EVALUATION: "evaluation.stale_after_ms",
}
"""The unit of a class's value when no threshold was recorded with it."""


def format_class_value(value: float | None, alert_class: AlertClass) -> str:
    return format_value(value, PRIMARY_THRESHOLD[alert_class])
