"""Retries bounded by an absolute deadline: backoff with full jitter, Retry-After honoured.

The policy arithmetic is pure; :func:`send_with_retries` is the loop, with its clock,
sleep and randomness injected so tests can drive it without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

MIN_ATTEMPT_S = 0.05
"""Below this much time left an attempt cannot succeed; stop instead of starting one."""


@dataclass(frozen=True)
class RetryPolicy:
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    attempt_timeout_s: float = 5.0
    max_attempts: int = 8


@dataclass(frozen=True)
class AttemptOutcome:
    ok: bool
    retryable: bool = False
    status: int | None = None
    error: str | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True)
class RetryReport:
    outcome: AttemptOutcome
    attempts: int
    elapsed_s: float


def backoff_delay(policy: RetryPolicy, failures: int, rand: float) -> float:
    """Full jitter (uniform in [0, cap]) keeps many senders from retrying in lockstep."""
    cap = min(policy.max_delay_s, policy.base_delay_s * (2 ** max(failures - 1, 0)))
    return float(cap * rand)


def parse_retry_after(value: str | None, now_epoch_s: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when: datetime = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now_epoch_s, 0.0)


def send_with_retries(
    attempt: Callable[[float], AttemptOutcome],
    *,
    deadline_s: float,
    policy: RetryPolicy,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> RetryReport:
    """Call ``attempt(timeout_s)`` until it succeeds, fails for good, or time runs out.

    A wait that would end past the deadline is not started: the last failure is returned
    at once, so the caller keeps its remaining time for the other channels.
    """
    started = clock()
    attempts = 0
    outcome = AttemptOutcome(ok=False, error="deadline reached before the first attempt")
    while attempts < policy.max_attempts:
        remaining = deadline_s - clock()
        if remaining < MIN_ATTEMPT_S:
            break
        attempts += 1
        outcome = attempt(min(policy.attempt_timeout_s, remaining))
        if outcome.ok or not outcome.retryable or attempts >= policy.max_attempts:
            break
        wait = outcome.retry_after_s
        if wait is None:
            wait = backoff_delay(policy, attempts, rand())
        if clock() + wait > deadline_s - MIN_ATTEMPT_S:
            outcome = _gave_up(outcome, wait)
            break
        sleep(wait)
    return RetryReport(outcome=outcome, attempts=attempts, elapsed_s=clock() - started)


def _gave_up(outcome: AttemptOutcome, wait: float) -> AttemptOutcome:
    note = f"; next retry in {wait:.2f}s would pass the deadline"
    return AttemptOutcome(
        ok=False,
        retryable=True,
        status=outcome.status,
        error=(outcome.error or "failed") + note,
        retry_after_s=outcome.retry_after_s,
    )
