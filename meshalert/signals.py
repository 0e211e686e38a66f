"""The engine's four signals as charts show them: a title, a unit and the threshold that is
in the charted value's unit (the status page and the backtest report draw them alike)."""

from __future__ import annotations

from collections.abc import Mapping

from meshalert.alert_classes import AlertClass
from meshalert.charts import Unit

SIGNAL_TITLES: Mapping[AlertClass, str] = {
    AlertClass.LATENCY: "latency",
    AlertClass.FAILURES: "failure rate",
    AlertClass.ENDPOINTS: "endpoints available",
    AlertClass.RETRIES: "retry ratio",
}
SIGNAL_UNITS: Mapping[AlertClass, Unit] = {
    AlertClass.LATENCY: Unit(" ms", name="percentile, ms"),
    AlertClass.FAILURES: Unit("%", 100.0, name="% of requests"),
    AlertClass.ENDPOINTS: Unit("%", 100.0, name="% of load balancer, worst host"),
    AlertClass.RETRIES: Unit("%", 100.0, name="retries / requests"),
}
SIGNAL_THRESHOLDS: Mapping[AlertClass, str] = {
    AlertClass.LATENCY: "latency.above_ms",
    AlertClass.FAILURES: "failures.rate_above",
    AlertClass.ENDPOINTS: "endpoints.available_ratio_below",
    AlertClass.RETRIES: "retries.ratio_above",
}
"""The threshold drawn on each class's chart: the one in the unit of its value (the engine's
observation value: a percentile in ms, or a ratio)."""
