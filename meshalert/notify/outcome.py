"""Turning a retry report into a :class:`SendResult`, logged once per send."""

from __future__ import annotations

from typing import Any

from meshalert.alerts.model import Notification
from meshalert.notify.base import SendResult
from meshalert.notify.retry import RetryReport


def finish(channel: str, notification: Notification, report: RetryReport, log: Any) -> SendResult:
    outcome = report.outcome
    result = SendResult(
        channel=channel,
        ok=outcome.ok,
        dedup_key=notification.dedup_key,
        attempts=report.attempts,
        elapsed_s=report.elapsed_s,
        status=outcome.status,
        error=None if outcome.ok else (outcome.error or "failed"),
    )
    fields = {
        "channel": channel,
        "dedup_key": result.dedup_key,
        "attempts": result.attempts,
        "elapsed_s": round(result.elapsed_s, 3),
        "status": result.status,
    }
    if result.ok:
        log.info("notify.sent", **fields)
    else:
        log.warning("notify.failed", error=result.error, **fields)
    return result
