"""Value builders shared by the state tests."""

from __future__ import annotations

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import (
    AlertRecord,
    AlertState,
    Evidence,
    Notification,
    NotificationKind,
    Severity,
    ThresholdInForce,
)

THRESHOLD = ThresholdInForce(name="above_ms", value=500.0, source="default")


def evidence(
    service: str = "production/checkout",
    observed: float | None = 812.5,
    alert_class: AlertClass = AlertClass.LATENCY,
) -> Evidence:
    return Evidence(
        alert_class=alert_class,
        service=service,
        observed=observed,
        threshold=THRESHOLD,
        window="5m",
        query="SELECT p99 FROM \"linkerd_request_latency_ms\" WHERE service = 'checkout'",
        samples=1234.0,
        detail={"worst_host": "node-1", "ratio": 0.25, "missing": None},
        previous_state=AlertState.PENDING,
        replay="meshalert backtest --class latency --service production/checkout",
    )


def record(
    service: str = "production/checkout",
    alert_class: AlertClass = AlertClass.LATENCY,
    state: AlertState = AlertState.FIRING,
    since_ms: int = 1_700_000_000_000,
) -> AlertRecord:
    return AlertRecord(
        alert_class=alert_class,
        service=service,
        state=state,
        since_ms=since_ms,
        episode_start_ms=since_ms - 120_000,
        last_notified_ms=since_ms,
        last_value=812.5,
        last_evaluated_ms=since_ms,
        threshold=THRESHOLD,
        flaps=1,
        reminder_seq=2,
    )


def notification(
    service: str = "production/checkout",
    episode_start_ms: int = 1_700_000_000_000,
    kind: NotificationKind = NotificationKind.FIRING,
    reminder_seq: int = 0,
) -> Notification:
    return Notification(
        kind=kind,
        alert_class=AlertClass.LATENCY,
        service=service,
        severity=Severity.CRITICAL,
        at_ms=episode_start_ms + 120_000,
        episode_start_ms=episode_start_ms,
        evidence=evidence(service),
        reminder_seq=reminder_seq,
    )
