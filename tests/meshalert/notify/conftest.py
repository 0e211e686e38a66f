from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import (
    AlertState,
    Evidence,
    Notification,
    NotificationKind,
    Severity,
    ThresholdInForce,
)
from tests.fixtures.http_server import http_server  # noqa: F401  (fixture)

QUERY = (
    'from(bucket: "linkerd")\n  |> range(start: -5m)\n'
    '  |> filter(fn: (r) => r._measurement == "linkerd_request_latency_ms_bucket")\n'
    '  |> filter(fn: (r) => r.le < "+Inf")'
)


def notification(**overrides: Any) -> Notification:
    evidence_fields: dict[str, Any] = {
        "alert_class": AlertClass.LATENCY,
        "service": "production/checkout",
        "observed": 612.0,
        "threshold": ThresholdInForce("above_ms", 250.0, "file:/etc/meshalert/rules.yaml"),
        "window": "5m",
        "query": QUERY,
        "samples": 1840.0,
        "detail": {"percentile": 99.0, "worst_host": "node-3"},
        "previous_state": AlertState.PENDING,
        "replay": "meshalert backtest --class latency --service production/checkout",
    }
    evidence_fields.update(overrides.pop("evidence", {}))
    fields: dict[str, Any] = {
        "kind": NotificationKind.FIRING,
        "alert_class": evidence_fields["alert_class"],
        "service": evidence_fields["service"],
        "severity": Severity.CRITICAL,
        "at_ms": 1_700_000_120_000,
        "episode_start_ms": 1_700_000_000_000,
        "evidence": Evidence(**evidence_fields),
    }
    fields.update(overrides)
    return Notification(**fields)


@pytest.fixture
def make_notification() -> Callable[..., Notification]:
    return notification
