"""Turning a retry report into a :class:`SendResult`, logged once per send."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshalert.alerts.model import Notification
from meshalert.notify.base import SendResult
from meshalert.notify.grouping import NotificationGroup
from meshalert.notify.retry import AttemptOutcome, RetryPolicy, RetryReport, send_with_retries


def finish(
    channel: str, notification: Notification | NotificationGroup, report: RetryReport, log: Any
) -> SendResult:
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


@dataclass(frozen=True)
class Retrier:
    """A channel's retry settings, and the one way its sends are retried and reported."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random

    def send(
        self,
        channel: str,
        notification: Notification | NotificationGroup,
        attempt: Callable[[float], AttemptOutcome],
        *,
        deadline_s: float,
        log: Any,
    ) -> SendResult:
        report = send_with_retries(
            attempt,
            deadline_s=deadline_s,
            policy=self.policy,
            clock=self.clock,
            sleep=self.sleep,
            rand=self.rand,
        )
        return finish(channel, notification, report, log)
