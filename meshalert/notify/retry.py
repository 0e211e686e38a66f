"""Retries bounded by an absolute deadline: backoff with full jitter, Retry-After honoured.

The loop is tenacity's (issue 11: a kept library over a hand-written loop); this module
gives it the three rules tenacity has no built-in for:

- the deadline is absolute (the delivery loop hands each notification its share of what is
  left of the cycle), and a wait that would end past it is never started: the stop check
  runs after the wait is chosen and before it is slept, against the injected clock
  (tenacity's own ``stop_before_delay`` measures from its first attempt with
  ``time.monotonic``, which tests could not drive);
- a failed attempt's ``Retry-After`` replaces the backoff;
- the jitter draws from an injected ``rand`` (``wait_random_exponential`` calls
  ``random.uniform`` itself), so tests check exact waits without sleeping.

:func:`parse_retry_after` stays: no kept library parses the header (delta-seconds or
HTTP-date); ``email.utils`` does the date part.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base

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


def _last(state: RetryCallState) -> AttemptOutcome:
    assert state.outcome is not None  # tenacity calls waits and stops after an attempt
    outcome: AttemptOutcome = state.outcome.result()
    return outcome


class _RetryAfterOrBackoff(wait_base):
    def __init__(self, policy: RetryPolicy, rand: Callable[[], float]) -> None:
        self._policy = policy
        self._rand = rand

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = _last(retry_state).retry_after_s
        if wait is None:
            wait = backoff_delay(self._policy, retry_state.attempt_number, self._rand())
        return wait


class _WaitPassesDeadline(stop_base):
    def __init__(self, deadline_s: float, clock: Callable[[], float]) -> None:
        self._deadline_s = deadline_s
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._clock() + retry_state.upcoming_sleep > self._deadline_s - MIN_ATTEMPT_S


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
    if deadline_s - started < MIN_ATTEMPT_S or policy.max_attempts < 1:
        outcome = AttemptOutcome(ok=False, error="deadline reached before the first attempt")
        return RetryReport(outcome=outcome, attempts=0, elapsed_s=clock() - started)
    made = 0
    last = AttemptOutcome(ok=False)
    out_of_time = False

    def one() -> AttemptOutcome:
        # A sleep may overrun what the stop check allowed: never start a hopeless attempt.
        nonlocal made, last, out_of_time
        remaining = deadline_s - clock()
        if remaining < MIN_ATTEMPT_S:
            out_of_time = True
            return last
        made += 1
        last = attempt(min(policy.attempt_timeout_s, remaining))
        return last

    def gave_up(state: RetryCallState) -> AttemptOutcome:
        outcome = _last(state)
        if state.attempt_number >= policy.max_attempts:
            return outcome
        return _gave_up(outcome, state.upcoming_sleep)

    retrying = Retrying(
        retry=retry_if_result(lambda o: not out_of_time and not o.ok and o.retryable),
        wait=_RetryAfterOrBackoff(policy, rand),
        stop=stop_after_attempt(policy.max_attempts) | _WaitPassesDeadline(deadline_s, clock),
        sleep=sleep,
        retry_error_callback=gave_up,
    )
    outcome = retrying(one)
    return RetryReport(outcome=outcome, attempts=made, elapsed_s=clock() - started)


def _gave_up(outcome: AttemptOutcome, wait: float) -> AttemptOutcome:
    note = f"; next retry in {wait:.2f}s would pass the deadline"
    return AttemptOutcome(
        ok=False,
        retryable=True,
        status=outcome.status,
        error=(outcome.error or "failed") + note,
        retry_after_s=outcome.retry_after_s,
    )
