"""The alert state machine: one (class, service) alert, one evaluation, no clock and no I/O.

``step`` turns the previous :class:`AlertRecord` (None for a service never seen) and the rule's
:class:`Verdict` on the current observation into the next record and the notifications to send.

States and transitions::

    OK --breach--> PENDING --breach held for `for_ms`--> FIRING --recovered--> OK
                   PENDING --not breached--> OK          (no notification)
    OK --breach, for_ms == 0--> FIRING                   (fires on the first breach)

* FIRING sends a FIRING notification; leaving FIRING sends RESOLVED with the same episode
  start; while FIRING a REMINDER goes out every ``renotify_ms`` (``reminder_seq`` 1, 2, ...).
* Hysteresis: FIRING leaves only on ``verdict.recovered``. Between the two thresholds
  (``breached`` False, ``recovered`` False) a FIRING alert holds; a PENDING one returns to OK.
* No data (``verdict.breached is None``): ``keep`` leaves the state as it is (a FIRING alert
  keeps firing and reminding, a PENDING one neither advances nor resets), ``alert`` counts it
  as a breach, ``ok`` counts it as recovered.

Flap damping. An episode that fires within ``flap_window_ms`` of the previous RESOLVED is a
re-fire and increments ``record.flaps``; one that fires later resets it to 0. Once
``flaps >= max_flaps`` the alert is *flapping*: it still fires (the re-fire is paged), but it
resolves only after ``recovered`` has held continuously for ``max(for_ms, flap_hold_ms)``
instead of on the first healthy evaluation. A service that keeps bouncing therefore stays
FIRING (one page, then reminders at the usual cadence) instead of paging FIRING/RESOLVED every
cycle; with the defaults a pure flapper pages at most ``max_flaps + 1`` FIRING notifications
per burst. We damp the exit rather than doubling ``for`` on entry because a doubled ``for`` is
still 0 for ``for_ms == 0`` rules and does not bound breaches that outlast it.

Dedup keys depend only on (class, service, episode start, kind, reminder seq), all of which
come from the previous record and ``now_ms``; running the same cycle twice, from the same
record or from the record the first run saved, yields the same keys or no notification.
Callers should pass a ``now_ms`` aligned to the evaluation cycle (e.g. the scheduled time) so
that a duplicated scheduler run computes the same episode start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple, Protocol

from meshalert.alerts.model import (
    AlertRecord,
    AlertState,
    Evidence,
    NoDataPolicy,
    Notification,
    NotificationKind,
    Observation,
    Severity,
    ThresholdInForce,
    Verdict,
)


@dataclass(frozen=True)
class StepPolicy:
    """How one rule drives the state machine.

    ``flap_window_ms``: a re-fire this soon after a RESOLVED counts as a flap (1 h).
    ``max_flaps``: consecutive flaps before the exit is damped (3: a service may bounce three
    times in an hour before we stop believing its recoveries).
    ``flap_hold_ms``: floor of the recovery a flapping alert needs before it resolves (15 min;
    the hold is ``max(for_ms, flap_hold_ms)`` so ``for_ms == 0`` rules are damped too).
    ``renotify_ms <= 0`` disables reminders.
    """

    for_ms: int
    renotify_ms: int
    no_data: NoDataPolicy
    severity: Severity
    flap_window_ms: int = 3_600_000
    max_flaps: int = 3
    flap_hold_ms: int = 900_000

    def __post_init__(self) -> None:
        for name in ("for_ms", "flap_window_ms", "max_flaps", "flap_hold_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"StepPolicy.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def damped_hold_ms(self) -> int:
        return max(self.for_ms, self.flap_hold_ms)


class EvidenceSource(Protocol):
    """One evaluation's evidence, built only when a step needs it.

    Most steps neither change state nor notify, and building an :class:`Evidence` (replay
    command, window text, a copy of the detail) for each of the 40,000 (class, service)
    pairs of a 10,000-service cycle was a fifth of the cycle. ``threshold`` is read by every
    step (the record keeps it); ``build`` must be a pure function of the source's values.
    """

    @property
    def threshold(self) -> ThresholdInForce: ...

    @property
    def observed(self) -> float | None:
        """The value judged against ``threshold`` (a retry count against ``exhausted_above``,
        not the retry ratio): the record keeps it so status shows the pair that decided."""
        ...

    def build(self, previous_state: AlertState) -> Evidence: ...


class _Given:
    """An :class:`EvidenceSource` over evidence built by the caller."""

    __slots__ = ("_evidence",)

    def __init__(self, evidence: Evidence) -> None:
        self._evidence = evidence

    @property
    def threshold(self) -> ThresholdInForce:
        return self._evidence.threshold

    @property
    def observed(self) -> float | None:
        return self._evidence.observed

    def build(self, previous_state: AlertState) -> Evidence:
        return self._evidence


class DeferredEvidence:
    """The evidence of one step, built once on first use, ``previous_state`` set."""

    __slots__ = ("_built", "_previous_state", "_source", "threshold")

    def __init__(self, source: EvidenceSource, previous_state: AlertState) -> None:
        self._source = source
        self._previous_state = previous_state
        self._built: Evidence | None = None
        self.threshold = source.threshold

    def get(self) -> Evidence:
        if self._built is None:
            built = self._source.build(self._previous_state)
            if built.previous_state is not self._previous_state:
                built = replace(built, previous_state=self._previous_state)
            self._built = built
        return self._built

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeferredEvidence) and self.get() == other.get()

    __hash__ = None  # type: ignore[assignment]  # Evidence.detail is a dict: never hashable


class StepResult(NamedTuple):
    """The next record, what to send, the (from, to) states if the state changed, and the
    evidence of this evaluation (with ``previous_state`` set), for the history. The evidence
    is built on first read when ``step`` was given an :class:`EvidenceSource`.

    A named tuple rather than a frozen dataclass: one is built per step (40,000 a cycle at
    10,000 services) and a tuple is immutable without a ``__setattr__`` call per field."""

    record: AlertRecord
    notifications: tuple[Notification, ...]
    transition: tuple[AlertState, AlertState] | None
    deferred_evidence: DeferredEvidence

    @property
    def evidence(self) -> Evidence:
        return self.deferred_evidence.get()


@dataclass(frozen=True)
class _Condition:
    breached: bool
    recovered: bool
    hold: bool
    """No data under ``keep``: leave the state alone."""


_BREACHED = _Condition(breached=True, recovered=False, hold=False)
_RECOVERED = _Condition(breached=False, recovered=True, hold=False)
_HOLD = _Condition(breached=False, recovered=False, hold=True)
_NEITHER = _Condition(breached=False, recovered=False, hold=False)


def _condition(verdict: Verdict, policy: NoDataPolicy) -> _Condition:
    # Four shared values: a frozen dataclass costs a microsecond to build, 40,000 times a cycle.
    if verdict.breached is None:
        if policy is NoDataPolicy.ALERT:
            return _BREACHED
        if policy is NoDataPolicy.OK:
            return _RECOVERED
        return _HOLD
    # A breach wins over a contradictory "recovered".
    if verdict.breached:
        return _BREACHED
    return _RECOVERED if verdict.recovered else _NEITHER


def step(  # noqa: PLR0917 -- the engine's agreed call shape is positional
    previous: AlertRecord | None,
    observation: Observation,
    verdict: Verdict,
    evidence: Evidence | EvidenceSource,
    policy: StepPolicy,
    now_ms: int,
) -> StepResult:
    """Advance one alert by one evaluation at ``now_ms``; see the module docstring.

    ``evidence`` may be an :class:`EvidenceSource`: it is then built only if a notification
    or ``StepResult.evidence`` asks for it, with ``previous_state`` set either way."""
    if previous is not None and (
        previous.alert_class is not observation.alert_class
        or previous.service != observation.service
    ):
        raise ValueError(
            f"previous record is {previous.alert_class.value}/{previous.service}, observation is "
            f"{observation.alert_class.value}/{observation.service}"
        )
    prev = previous or AlertRecord(
        alert_class=observation.alert_class,
        service=observation.service,
        state=AlertState.OK,
        since_ms=now_ms,
    )
    source = _Given(evidence) if isinstance(evidence, Evidence) else evidence
    deferred = DeferredEvidence(source, prev.state)
    base = _observed(prev, source.observed, now_ms, deferred.threshold)
    cond = _condition(verdict, policy.no_data)
    if prev.state is AlertState.FIRING:
        record, notes = _from_firing(base, cond, deferred, policy, now_ms)
    elif prev.state is AlertState.PENDING:
        record, notes = _from_pending(base, cond, deferred, policy, now_ms)
    else:
        record, notes = _from_ok(base, cond, deferred, policy, now_ms)
    transition = (prev.state, record.state) if record.state is not prev.state else None
    return StepResult(record, notes, transition, deferred)


_Out = tuple[AlertRecord, tuple[Notification, ...]]


def _observed(
    record: AlertRecord, value: float | None, now_ms: int, threshold: ThresholdInForce
) -> AlertRecord:
    """``record`` with this evaluation's value, time and threshold: the one record every step
    builds (most steps change nothing else). Spelled out rather than ``dataclasses.replace``,
    whose per-call field introspection was a tenth of a 10,000-service cycle."""
    return AlertRecord(
        alert_class=record.alert_class,
        service=record.service,
        state=record.state,
        since_ms=record.since_ms,
        episode_start_ms=record.episode_start_ms,
        last_notified_ms=record.last_notified_ms,
        last_value=value,
        last_evaluated_ms=now_ms,
        threshold=threshold,
        flaps=record.flaps,
        reminder_seq=record.reminder_seq,
        recovering_since_ms=record.recovering_since_ms,
        last_resolved_ms=record.last_resolved_ms,
    )


def _from_ok(
    rec: AlertRecord, cond: _Condition, evidence: DeferredEvidence, policy: StepPolicy, now_ms: int
) -> _Out:
    if cond.hold or not cond.breached:
        return rec, ()
    pending = replace(rec, state=AlertState.PENDING, since_ms=now_ms, episode_start_ms=now_ms)
    if policy.for_ms <= 0:
        return _fire(pending, now_ms, evidence, policy, now_ms)
    return pending, ()


def _from_pending(
    rec: AlertRecord, cond: _Condition, evidence: DeferredEvidence, policy: StepPolicy, now_ms: int
) -> _Out:
    if cond.hold:
        return rec, ()
    if not cond.breached:
        return replace(rec, state=AlertState.OK, since_ms=now_ms, episode_start_ms=None), ()
    start = rec.episode_start_ms if rec.episode_start_ms is not None else now_ms
    if now_ms - start >= policy.for_ms:
        return _fire(rec, start, evidence, policy, now_ms)
    return replace(rec, episode_start_ms=start), ()


def _fire(
    rec: AlertRecord, start: int, evidence: DeferredEvidence, policy: StepPolicy, now_ms: int
) -> _Out:
    refire = rec.last_resolved_ms is not None and start - rec.last_resolved_ms <= (
        policy.flap_window_ms
    )
    fired = replace(
        rec,
        state=AlertState.FIRING,
        since_ms=now_ms,
        episode_start_ms=start,
        last_notified_ms=now_ms,
        reminder_seq=0,
        recovering_since_ms=None,
        flaps=rec.flaps + 1 if refire else 0,
    )
    return fired, (_notification(fired, NotificationKind.FIRING, evidence, policy, now_ms),)


def _from_firing(
    rec: AlertRecord, cond: _Condition, evidence: DeferredEvidence, policy: StepPolicy, now_ms: int
) -> _Out:
    if not cond.hold:
        if cond.recovered:
            since = rec.recovering_since_ms if rec.recovering_since_ms is not None else now_ms
            damped = rec.flaps >= policy.max_flaps
            if not damped or now_ms - since >= policy.damped_hold_ms:
                return _resolve(rec, evidence, policy, now_ms)
            rec = replace(rec, recovering_since_ms=since)
        elif rec.recovering_since_ms is not None:
            rec = replace(rec, recovering_since_ms=None)
    return _remind_if_due(rec, evidence, policy, now_ms)


def _resolve(rec: AlertRecord, evidence: DeferredEvidence, policy: StepPolicy, now_ms: int) -> _Out:
    note = _notification(rec, NotificationKind.RESOLVED, evidence, policy, now_ms)
    resolved = replace(
        rec,
        state=AlertState.OK,
        since_ms=now_ms,
        episode_start_ms=None,
        last_notified_ms=now_ms,
        last_resolved_ms=now_ms,
        reminder_seq=0,
        recovering_since_ms=None,
    )
    return resolved, (note,)


def _remind_if_due(
    rec: AlertRecord, evidence: DeferredEvidence, policy: StepPolicy, now_ms: int
) -> _Out:
    last = rec.last_notified_ms if rec.last_notified_ms is not None else rec.since_ms
    if policy.renotify_ms <= 0 or now_ms - last < policy.renotify_ms:
        return rec, ()
    reminded = replace(rec, last_notified_ms=now_ms, reminder_seq=rec.reminder_seq + 1)
    return reminded, (_notification(reminded, NotificationKind.REMINDER, evidence, policy, now_ms),)


def _notification(
    rec: AlertRecord,
    kind: NotificationKind,
    evidence: DeferredEvidence,
    policy: StepPolicy,
    now_ms: int,
) -> Notification:
    start = rec.episode_start_ms if rec.episode_start_ms is not None else rec.since_ms
    return Notification(
        kind=kind,
        alert_class=rec.alert_class,
        service=rec.service,
        severity=policy.severity,
        at_ms=now_ms,
        episode_start_ms=start,
        evidence=evidence.get(),
        reminder_seq=rec.reminder_seq if kind is NotificationKind.REMINDER else 0,
    )
