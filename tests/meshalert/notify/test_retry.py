from __future__ import annotations

from email.utils import formatdate

from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.notify.retry import (
    AttemptOutcome,
    RetryPolicy,
    backoff_delay,
    parse_retry_after,
    send_with_retries,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@settings(max_examples=200)
@given(
    st.integers(min_value=1, max_value=60),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.01, max_value=5.0),
    st.floats(min_value=0.01, max_value=60.0),
)
def test_backoff_stays_within_its_cap(failures: int, rand: float, base: float, cap: float) -> None:
    policy = RetryPolicy(base_delay_s=base, max_delay_s=cap)
    delay = backoff_delay(policy, failures, rand)
    assert 0.0 <= delay <= min(cap, base * 2 ** (failures - 1)) + 1e-9


def test_backoff_doubles_until_capped() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=3.0)
    assert [backoff_delay(policy, n, 1.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_parse_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("1", now) == 1.0
    assert parse_retry_after(" 2.5 ", now) == 2.5
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == 30.0
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_retry_after_is_honoured_and_attempt_timeout_is_bounded() -> None:
    t = FakeTime()
    answers = iter(
        [
            AttemptOutcome(ok=False, retryable=True, status=429, retry_after_s=1.0),
            AttemptOutcome(ok=True, status=200),
        ]
    )
    timeouts: list[float] = []

    def attempt(timeout: float) -> AttemptOutcome:
        timeouts.append(timeout)
        return next(answers)

    report = send_with_retries(
        attempt,
        deadline_s=t.now + 3.0,
        policy=RetryPolicy(),
        clock=t.clock,
        sleep=t.sleep,
        rand=lambda: 0.5,
    )
    assert report.outcome.ok and report.attempts == 2
    assert t.sleeps == [1.0]
    assert timeouts == [3.0, 2.0]  # min(attempt_timeout_s=5, time left)


def test_gives_up_instead_of_waiting_past_the_deadline() -> None:
    t = FakeTime()
    calls = 0

    def attempt(_timeout: float) -> AttemptOutcome:
        nonlocal calls
        calls += 1
        return AttemptOutcome(
            ok=False, retryable=True, status=429, retry_after_s=30.0, error="HTTP 429"
        )

    report = send_with_retries(
        attempt,
        deadline_s=t.now + 10.0,
        policy=RetryPolicy(),
        clock=t.clock,
        sleep=t.sleep,
        rand=lambda: 0.5,
    )
    assert calls == 1 and t.sleeps == []
    assert not report.outcome.ok
    assert "deadline" in (report.outcome.error or "")


def test_non_retryable_failure_stops_at_once() -> None:
    t = FakeTime()
    report = send_with_retries(
        lambda _t: AttemptOutcome(ok=False, retryable=False, status=400, error="HTTP 400"),
        deadline_s=t.now + 10.0,
        policy=RetryPolicy(),
        clock=t.clock,
        sleep=t.sleep,
    )
    assert report.attempts == 1 and report.outcome.status == 400 and t.sleeps == []


def test_transient_failures_use_backoff_and_respect_max_attempts() -> None:
    t = FakeTime()
    policy = RetryPolicy(base_delay_s=0.1, max_delay_s=1.0, max_attempts=4)
    report = send_with_retries(
        lambda _t: AttemptOutcome(ok=False, retryable=True, status=503, error="HTTP 503"),
        deadline_s=t.now + 60.0,
        policy=policy,
        clock=t.clock,
        sleep=t.sleep,
        rand=lambda: 1.0,
    )
    assert report.attempts == 4
    assert t.sleeps == [0.1, 0.2, 0.4]  # no pointless wait after the last attempt
    assert not report.outcome.ok


def test_no_attempt_when_deadline_already_passed() -> None:
    t = FakeTime()
    report = send_with_retries(
        lambda _t: AttemptOutcome(ok=True),
        deadline_s=t.now - 1,
        policy=RetryPolicy(),
        clock=t.clock,
        sleep=t.sleep,
    )
    assert report.attempts == 0 and not report.outcome.ok


def test_a_retry_after_longer_than_what_is_left_ends_before_the_deadline() -> None:
    """The first Retry-After fits and is slept; the second would end past the deadline, so
    the send gives up at once and the clock never passes the deadline."""
    t = FakeTime()
    deadline = t.now + 5.0
    answers = iter([2.0, 4.0])

    def attempt(_timeout: float) -> AttemptOutcome:
        return AttemptOutcome(
            ok=False, retryable=True, status=503, retry_after_s=next(answers), error="HTTP 503"
        )

    report = send_with_retries(
        attempt, deadline_s=deadline, policy=RetryPolicy(), clock=t.clock, sleep=t.sleep
    )
    assert report.attempts == 2 and t.sleeps == [2.0]
    assert t.now <= deadline
    assert not report.outcome.ok and report.outcome.status == 503
    assert "4.00s would pass the deadline" in (report.outcome.error or "")


def test_a_sleep_that_overruns_starts_no_hopeless_attempt() -> None:
    """A real sleep can wake later than asked: with less than MIN_ATTEMPT_S left, the last
    failure is returned instead of an attempt that cannot finish."""
    t = FakeTime()
    deadline = t.now + 1.0

    def late_sleep(seconds: float) -> None:
        t.sleep(seconds + 0.5)

    report = send_with_retries(
        lambda _t: AttemptOutcome(ok=False, retryable=True, status=502, error="HTTP 502"),
        deadline_s=deadline,
        policy=RetryPolicy(),
        clock=t.clock,
        sleep=late_sleep,
        rand=lambda: 0.9,
    )
    assert report.attempts == 1 and len(t.sleeps) == 1
    assert report.outcome.status == 502 and not report.outcome.ok


def test_an_attempt_that_raises_is_not_retried() -> None:
    """Attempts report failures as outcomes; an exception is a bug and reaches the caller."""
    t = FakeTime()
    calls = 0

    def attempt(_timeout: float) -> AttemptOutcome:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    try:
        send_with_retries(
            attempt, deadline_s=t.now + 10.0, policy=RetryPolicy(), clock=t.clock, sleep=t.sleep
        )
    except RuntimeError as err:
        assert str(err) == "boom"
    else:
        raise AssertionError("the attempt's exception was swallowed")
    assert calls == 1 and t.sleeps == []
