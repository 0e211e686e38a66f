"""The alert state machine: examples per transition, then properties over random streams."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.alert_classes import AlertClass
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
from meshalert.alerts.state_machine import StepPolicy, StepResult, step
from meshalert.backends.sqlite.state import SqliteStateStore

SERVICE = "production/checkout"
MIN = 60_000
HOUR = 60 * MIN
T0 = 1_700_000_000_000

BREACH = Verdict(breached=True, recovered=False)
HEALTHY = Verdict(breached=False, recovered=True)
BETWEEN = Verdict(breached=False, recovered=False)  # past recovery, not yet healthy
NO_DATA = Verdict(breached=None, recovered=False)


def policy(**overrides: object) -> StepPolicy:
    base = StepPolicy(
        for_ms=2 * MIN, renotify_ms=4 * HOUR, no_data=NoDataPolicy.KEEP, severity=Severity.CRITICAL
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def _observation(value: float | None) -> Observation:
    return Observation(alert_class=AlertClass.LATENCY, service=SERVICE, value=value, samples=10)


def _evidence(value: float | None) -> Evidence:
    return Evidence(
        alert_class=AlertClass.LATENCY,
        service=SERVICE,
        observed=value,
        threshold=ThresholdInForce("above_ms", 500.0, "default"),
        window="5m",
        query="q",
        samples=10,
        detail={},
        previous_state=AlertState.OK,  # deliberately stale: step must rebuild it
        replay="r",
    )


def _value(verdict: Verdict) -> float | None:
    if verdict.breached is None:
        return None
    return 900.0 if verdict.breached else (300.0 if verdict.recovered else 450.0)


def advance(prev: AlertRecord | None, verdict: Verdict, pol: StepPolicy, now: int) -> StepResult:
    value = _value(verdict)
    return step(prev, _observation(value), verdict, _evidence(value), pol, now)


@dataclass
class Run:
    results: list[StepResult]

    @property
    def notes(self) -> list[Notification]:
        return [n for r in self.results for n in r.notifications]

    def kinds(self) -> list[NotificationKind]:
        return [n.kind for n in self.notes]

    @property
    def record(self) -> AlertRecord:
        return self.results[-1].record


def run(
    stream: Iterable[tuple[int, Verdict]], pol: StepPolicy, prev: AlertRecord | None = None
) -> Run:
    results: list[StepResult] = []
    for now, verdict in stream:
        result = advance(prev, verdict, pol, now)
        results.append(result)
        prev = result.record
    return Run(results)


def every_minute(verdicts: Sequence[Verdict], start: int = T0) -> list[tuple[int, Verdict]]:
    return [(start + i * MIN, v) for i, v in enumerate(verdicts)]


# --- transitions, one by one ---------------------------------------------------------------


def test_first_healthy_evaluation_creates_an_ok_record() -> None:
    result = advance(None, HEALTHY, policy(), T0)
    assert result.record.state is AlertState.OK
    assert result.record.since_ms == T0
    assert result.record.last_value == 300.0
    assert result.notifications == ()
    assert result.transition is None


def test_breach_enters_pending_with_the_episode_start() -> None:
    result = advance(None, BREACH, policy(), T0)
    assert result.record.state is AlertState.PENDING
    assert result.record.episode_start_ms == T0
    assert result.notifications == ()
    assert result.transition == (AlertState.OK, AlertState.PENDING)


def test_pending_fires_after_for_and_not_before() -> None:
    r = run(every_minute([BREACH, BREACH, BREACH]), policy(for_ms=2 * MIN))
    assert [x.record.state for x in r.results] == [
        AlertState.PENDING,
        AlertState.PENDING,
        AlertState.FIRING,
    ]
    (firing,) = r.notes
    assert firing.kind is NotificationKind.FIRING
    assert firing.episode_start_ms == T0
    assert firing.at_ms == T0 + 2 * MIN
    assert firing.dedup_key == f"latency|{SERVICE}|{T0}|firing"
    assert firing.severity is Severity.CRITICAL
    assert firing.evidence.previous_state is AlertState.PENDING
    assert r.results[-1].transition == (AlertState.PENDING, AlertState.FIRING)


def test_for_zero_fires_on_the_first_breach() -> None:
    result = advance(None, BREACH, policy(for_ms=0), T0)
    assert result.record.state is AlertState.FIRING
    assert [n.kind for n in result.notifications] == [NotificationKind.FIRING]
    assert result.transition == (AlertState.OK, AlertState.FIRING)


@pytest.mark.parametrize("verdict", [HEALTHY, BETWEEN])
def test_pending_returns_to_ok_quietly(verdict: Verdict) -> None:
    r = run(every_minute([BREACH, verdict]), policy())
    assert r.record.state is AlertState.OK
    assert r.record.episode_start_ms is None
    assert r.notes == []
    assert r.results[-1].transition == (AlertState.PENDING, AlertState.OK)


def test_interrupted_breach_restarts_the_for_clock() -> None:
    r = run(every_minute([BREACH, HEALTHY, BREACH, BREACH, BREACH]), policy(for_ms=2 * MIN))
    (firing,) = r.notes
    assert firing.episode_start_ms == T0 + 2 * MIN
    assert firing.at_ms == T0 + 4 * MIN


def test_hysteresis_firing_holds_between_thresholds_then_resolves() -> None:
    r = run(every_minute([BREACH, BETWEEN, BETWEEN, HEALTHY]), policy(for_ms=0))
    assert [x.record.state for x in r.results] == [
        AlertState.FIRING,
        AlertState.FIRING,
        AlertState.FIRING,
        AlertState.OK,
    ]
    firing, resolved = r.notes
    assert resolved.kind is NotificationKind.RESOLVED
    assert resolved.episode_start_ms == firing.episode_start_ms == T0
    assert resolved.dedup_key == f"latency|{SERVICE}|{T0}|resolved"
    assert resolved.evidence.observed == 300.0
    assert resolved.evidence.previous_state is AlertState.FIRING
    assert r.results[-1].transition == (AlertState.FIRING, AlertState.OK)
    assert r.record.last_resolved_ms == T0 + 3 * MIN


def test_breach_wins_over_a_contradictory_recovered() -> None:
    r = run(every_minute([BREACH, Verdict(breached=True, recovered=True)]), policy(for_ms=0))
    assert r.record.state is AlertState.FIRING
    assert r.kinds() == [NotificationKind.FIRING]


def test_reminders_every_renotify_with_increasing_sequence() -> None:
    pol = policy(for_ms=0, renotify_ms=30 * MIN)
    r = run(every_minute([BREACH] * 75), pol)
    reminders = [n for n in r.notes if n.kind is NotificationKind.REMINDER]
    assert [n.at_ms - T0 for n in reminders] == [30 * MIN, 60 * MIN]
    assert [n.reminder_seq for n in reminders] == [1, 2]
    assert [n.dedup_key for n in reminders] == [
        f"latency|{SERVICE}|{T0}|reminder#1",
        f"latency|{SERVICE}|{T0}|reminder#2",
    ]
    assert r.record.reminder_seq == 2


def test_reminders_disabled_with_zero_renotify() -> None:
    r = run(every_minute([BREACH] * 30), policy(for_ms=0, renotify_ms=0))
    assert r.kinds() == [NotificationKind.FIRING]


def test_a_new_episode_restarts_reminder_numbering() -> None:
    pol = policy(for_ms=0, renotify_ms=2 * MIN)
    r = run(every_minute([BREACH, BREACH, BREACH, HEALTHY, BREACH, BREACH, BREACH]), pol)
    reminders = [n for n in r.notes if n.kind is NotificationKind.REMINDER]
    assert [(n.episode_start_ms - T0, n.reminder_seq) for n in reminders] == [
        (0, 1),
        (4 * MIN, 1),
    ]


def test_no_data_keep_holds_every_state() -> None:
    pol = policy(for_ms=2 * MIN, no_data=NoDataPolicy.KEEP, renotify_ms=3 * MIN)
    pending = run(every_minute([BREACH, NO_DATA, NO_DATA, NO_DATA]), pol)
    assert [x.record.state for x in pending.results] == [AlertState.PENDING] * 4
    assert pending.notes == []
    assert pending.record.episode_start_ms == T0
    assert pending.record.last_value is None

    firing = run(every_minute([BREACH, BREACH, BREACH, NO_DATA, NO_DATA, NO_DATA]), pol)
    assert firing.record.state is AlertState.FIRING
    assert firing.kinds() == [NotificationKind.FIRING, NotificationKind.REMINDER]

    ok = run(every_minute([HEALTHY, NO_DATA, NO_DATA]), pol)
    assert ok.record.state is AlertState.OK
    assert ok.notes == []


def test_no_data_alert_counts_as_breach() -> None:
    r = run(every_minute([NO_DATA, NO_DATA, NO_DATA]), policy(no_data=NoDataPolicy.ALERT))
    assert r.record.state is AlertState.FIRING
    assert r.kinds() == [NotificationKind.FIRING]
    assert r.notes[0].evidence.observed is None


def test_no_data_ok_counts_as_recovered() -> None:
    pol = policy(for_ms=0, no_data=NoDataPolicy.OK)
    r = run(every_minute([BREACH, NO_DATA]), pol)
    assert r.record.state is AlertState.OK
    assert r.kinds() == [NotificationKind.FIRING, NotificationKind.RESOLVED]
    assert run(every_minute([BREACH]), replace(pol, for_ms=MIN)).record.state is (
        AlertState.PENDING
    )
    pending_then_gap = run(every_minute([BREACH, NO_DATA]), replace(pol, for_ms=MIN))
    assert pending_then_gap.record.state is AlertState.OK


def test_evidence_previous_state_is_the_state_before_the_step() -> None:
    r = run(every_minute([BREACH, BREACH, BREACH, HEALTHY]), policy())
    assert [x.evidence.previous_state for x in r.results] == [
        AlertState.OK,
        AlertState.PENDING,
        AlertState.PENDING,
        AlertState.FIRING,
    ]


def test_record_carries_threshold_and_evaluation_time() -> None:
    result = advance(None, BREACH, policy(), T0)
    assert result.record.threshold == ThresholdInForce("above_ms", 500.0, "default")
    assert result.record.last_evaluated_ms == T0


def test_rejects_a_record_of_another_alert() -> None:
    other = AlertRecord(AlertClass.LATENCY, "staging/cart", AlertState.OK, since_ms=T0)
    with pytest.raises(ValueError, match="staging/cart"):
        advance(other, BREACH, policy(), T0)


def test_policy_rejects_negative_durations() -> None:
    with pytest.raises(ValueError, match="for_ms"):
        policy(for_ms=-1)


# --- flap damping ---------------------------------------------------------------------------


def test_flapping_service_stops_paging_every_cycle() -> None:
    pol = policy(for_ms=0, renotify_ms=4 * HOUR, max_flaps=3, flap_hold_ms=15 * MIN)
    r = run(every_minute([BREACH, HEALTHY] * 60), pol)  # two hours of bouncing
    counts = Counter(r.kinds())
    assert counts[NotificationKind.FIRING] == 4  # the first and max_flaps re-fires
    assert counts[NotificationKind.RESOLVED] == 3
    assert r.record.state is AlertState.FIRING
    assert r.record.flaps == 3


def test_damped_alert_resolves_after_recovery_holds_for_the_hold() -> None:
    pol = policy(for_ms=0, max_flaps=1, flap_hold_ms=5 * MIN)
    flapping = run(every_minute([BREACH, HEALTHY, BREACH]), pol)
    assert flapping.record.flaps == 1
    recovering = run(
        every_minute([HEALTHY] * 5 + [BETWEEN] + [HEALTHY] * 6, start=T0 + 3 * MIN),
        pol,
        prev=flapping.record,
    )
    states = [x.record.state for x in recovering.results]
    # Five healthy minutes, interrupted: the hold restarts at minute 6 and ends at minute 11.
    assert states == [AlertState.FIRING] * 11 + [AlertState.OK]
    assert recovering.kinds() == [NotificationKind.RESOLVED]
    assert recovering.notes[0].episode_start_ms == T0 + 2 * MIN


def test_hold_uses_for_when_for_is_longer() -> None:
    pol = policy(for_ms=10 * MIN, max_flaps=0, flap_hold_ms=MIN)
    firing = run(every_minute([BREACH] * 11), pol)
    assert firing.record.state is AlertState.FIRING
    healing = run(every_minute([HEALTHY] * 11, start=T0 + 11 * MIN), pol, prev=firing.record)
    assert [x.record.state for x in healing.results].index(AlertState.OK) == 10


def test_flap_count_resets_after_a_quiet_window() -> None:
    pol = policy(for_ms=0, max_flaps=2, flap_window_ms=HOUR)
    bouncy = run(every_minute([BREACH, HEALTHY, BREACH, HEALTHY]), pol)
    assert bouncy.record.flaps == 1
    later = run([(T0 + 2 * HOUR, BREACH)], pol, prev=bouncy.record)
    assert later.record.flaps == 0
    assert later.kinds() == [NotificationKind.FIRING]


# --- properties over random streams ---------------------------------------------------------

verdicts = st.sampled_from([BREACH, HEALTHY, BETWEEN, NO_DATA])
gaps = st.sampled_from([30_000, MIN, 90_000, 5 * MIN, 20 * MIN])
streams = st.lists(st.tuples(gaps, verdicts), min_size=1, max_size=60).map(
    lambda steps: [(T0 + sum(g for g, _ in steps[: i + 1]), v) for i, (_, v) in enumerate(steps)]
)
policies = st.builds(
    StepPolicy,
    for_ms=st.sampled_from([0, MIN, 2 * MIN, 5 * MIN]),
    renotify_ms=st.sampled_from([0, 10 * MIN, HOUR]),
    no_data=st.sampled_from(NoDataPolicy),
    severity=st.sampled_from(Severity),
    flap_window_ms=st.sampled_from([10 * MIN, HOUR]),
    max_flaps=st.integers(0, 4),
    flap_hold_ms=st.sampled_from([MIN, 5 * MIN, 15 * MIN]),
)


@settings(max_examples=150, deadline=None)
@given(streams, policies)
def test_same_inputs_same_outputs(stream: list[tuple[int, Verdict]], pol: StepPolicy) -> None:
    assert run(stream, pol).results == run(stream, pol).results


@settings(max_examples=100, deadline=None)
@given(st.lists(gaps, min_size=1, max_size=60), policies)
def test_an_all_healthy_stream_never_notifies(gap_list: list[int], pol: StepPolicy) -> None:
    times = [T0 + sum(gap_list[: i + 1]) for i in range(len(gap_list))]
    r = run([(t, HEALTHY) for t in times], pol)
    assert r.notes == []
    assert all(x.record.state is AlertState.OK for x in r.results)


@settings(max_examples=200, deadline=None)
@given(streams, policies)
def test_episode_invariants(stream: list[tuple[int, Verdict]], pol: StepPolicy) -> None:
    r = run(stream, pol)
    keys = [n.dedup_key for n in r.notes]
    assert len(keys) == len(set(keys))  # so at most one FIRING per episode
    open_episode: int | None = None
    for note in r.notes:
        if note.kind is NotificationKind.FIRING:
            assert open_episode is None
            open_episode = note.episode_start_ms
        else:  # RESOLVED and REMINDER belong to the firing episode
            assert note.episode_start_ms == open_episode
            if note.kind is NotificationKind.RESOLVED:
                open_episode = None
    for result in r.results:
        if result.record.state is not AlertState.OK:
            assert result.record.episode_start_ms is not None
        if result.transition == (AlertState.FIRING, AlertState.OK):
            assert [n.kind for n in result.notifications] == [NotificationKind.RESOLVED]


@settings(max_examples=200, deadline=None)
@given(streams, policies)
def test_pages_are_bounded_while_flapping(
    stream: list[tuple[int, Verdict]], pol: StepPolicy
) -> None:
    fires = run(stream, pol).kinds().count(NotificationKind.FIRING)
    duration = stream[-1][0] - stream[0][0]
    runs = 1 + duration // max(pol.flap_window_ms, 1)
    assert fires <= (pol.max_flaps + 1) * runs + duration // pol.damped_hold_ms


@settings(max_examples=40, deadline=None)
@given(streams, policies, st.booleans())
def test_a_duplicated_cycle_never_sends_twice(
    stream: list[tuple[int, Verdict]], pol: StepPolicy, retry_sees_saved_record: bool
) -> None:
    """Each cycle runs twice, as a retried or doubled scheduler run would: the second run
    starts either from the same record (concurrent) or from the one the first saved."""
    expected = [n.dedup_key for n in run(stream, pol).notes]
    sent: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStateStore(Path(tmp) / "state.db")
        prev: AlertRecord | None = None
        for now, verdict in stream:
            first = advance(prev, verdict, pol, now)
            second = advance(first.record if retry_sees_saved_record else prev, verdict, pol, now)
            for note in (*first.notifications, *second.notifications):
                if store.claim(note, now_ms=now, lease_ms=5 * MIN):
                    sent.append(note.dedup_key)
                    store.mark_sent(note.dedup_key, "console", ok=True, detail="", now_ms=now)
            prev = second.record
    assert sent == expected


# --- what the mutation run (python -m benchmarks.mutation state_machine) found unpinned ------


def test_a_refire_restarts_the_reminder_clock_from_the_new_firing() -> None:
    pol = policy(for_ms=0, renotify_ms=10 * MIN, flap_window_ms=0)
    first = run(every_minute([BREACH, HEALTHY]), pol)
    assert first.record.last_notified_ms == T0 + MIN  # the RESOLVED
    refire = run(every_minute([BREACH] * 12, start=T0 + 2 * MIN), pol, prev=first.record)
    assert refire.results[0].record.last_notified_ms == T0 + 2 * MIN
    reminders = [n for n in refire.notes if n.kind is NotificationKind.REMINDER]
    # Ten minutes after the re-fire, not ten minutes after the RESOLVED before it.
    assert [n.at_ms for n in reminders] == [T0 + 12 * MIN]


def test_firing_and_resolved_carry_sequence_zero_and_reset_the_record() -> None:
    pol = policy(for_ms=0, renotify_ms=2 * MIN)
    r = run(every_minute([BREACH] * 5 + [HEALTHY]), pol)
    assert r.kinds() == [
        NotificationKind.FIRING,
        NotificationKind.REMINDER,
        NotificationKind.REMINDER,
        NotificationKind.RESOLVED,
    ]
    assert [n.reminder_seq for n in r.notes] == [0, 1, 2, 0]
    assert r.results[0].record.reminder_seq == 0
    assert r.results[4].record.reminder_seq == 2
    resolved = r.record
    assert resolved.reminder_seq == 0
    assert resolved.last_notified_ms == resolved.last_resolved_ms == T0 + 5 * MIN
    assert resolved.recovering_since_ms is None
    again = run([(T0 + 6 * MIN, BREACH)], pol, prev=resolved)
    assert again.record.reminder_seq == 0
    assert again.notes[0].reminder_seq == 0


def test_resolved_is_sent_at_the_evaluation_that_recovers() -> None:
    r = run(every_minute([BREACH, BETWEEN, HEALTHY]), policy(for_ms=0))
    resolved = r.notes[-1]
    assert resolved.kind is NotificationKind.RESOLVED
    assert resolved.at_ms == T0 + 2 * MIN
    assert resolved.episode_start_ms == T0


def test_since_is_the_time_of_each_transition() -> None:
    pol = policy(for_ms=2 * MIN, renotify_ms=HOUR)
    r = run(every_minute([HEALTHY, BREACH, BREACH, BREACH, BREACH, HEALTHY, BREACH, BETWEEN]), pol)
    states = [(x.record.state, x.record.since_ms - T0) for x in r.results]
    assert states == [
        (AlertState.OK, 0),
        (AlertState.PENDING, 1 * MIN),
        (AlertState.PENDING, 1 * MIN),
        (AlertState.FIRING, 3 * MIN),
        (AlertState.FIRING, 3 * MIN),
        (AlertState.OK, 5 * MIN),
        (AlertState.PENDING, 6 * MIN),
        (AlertState.OK, 7 * MIN),
    ]
    assert r.results[3].record.recovering_since_ms is None


@pytest.mark.parametrize(("gap", "flaps"), [(HOUR - 1, 1), (HOUR, 1), (HOUR + 1, 0)])
def test_a_refire_exactly_one_flap_window_after_resolved_is_a_flap(gap: int, flaps: int) -> None:
    pol = policy(for_ms=0, flap_window_ms=HOUR)
    first = run(every_minute([BREACH, HEALTHY]), pol)
    resolved_at = T0 + MIN
    refire = run([(resolved_at + gap, BREACH)], pol, prev=first.record)
    assert refire.record.state is AlertState.FIRING
    assert refire.record.flaps == flaps


def test_refire_counts_from_the_episode_start_not_the_firing_time() -> None:
    # PENDING began 30 min after the RESOLVED and fired 40 min later: within a 1 h window.
    pol = policy(for_ms=40 * MIN, flap_window_ms=HOUR)
    first = run(every_minute([BREACH] * 41 + [HEALTHY]), pol)
    resolved_at = first.record.last_resolved_ms
    assert resolved_at is not None
    again = run(
        [(resolved_at + 30 * MIN + i * MIN, BREACH) for i in range(41)], pol, prev=first.record
    )
    assert again.record.state is AlertState.FIRING
    assert again.record.flaps == 1


def test_step_policy_defaults_damp_after_three_flaps_in_an_hour_for_fifteen_minutes() -> None:
    pol = StepPolicy(for_ms=0, renotify_ms=0, no_data=NoDataPolicy.KEEP, severity=Severity.WARNING)
    assert (pol.flap_window_ms, pol.max_flaps, pol.flap_hold_ms) == (HOUR, 3, 15 * MIN)
    assert pol.damped_hold_ms == 15 * MIN
    bouncing = run(every_minute([BREACH, HEALTHY] * 3 + [BREACH]), pol)
    assert bouncing.record.flaps == 3
    healing = run(every_minute([HEALTHY] * 16, start=T0 + 7 * MIN), pol, prev=bouncing.record)
    # Damped: the first 15 healthy minutes hold FIRING, the 16th resolves.
    assert [x.record.state for x in healing.results].index(AlertState.OK) == 15
    assert healing.results[0].record.recovering_since_ms == T0 + 7 * MIN
    assert healing.notes[0].severity is Severity.WARNING


@pytest.mark.parametrize("name", ["for_ms", "flap_window_ms", "max_flaps", "flap_hold_ms"])
def test_policy_names_each_negative_field(name: str) -> None:
    with pytest.raises(ValueError, match=rf"StepPolicy\.{name} must be >= 0, got -1"):
        policy(**{name: -1})
    assert getattr(policy(**{name: 0}), name) == 0


def test_damped_hold_is_the_longer_of_for_and_hold() -> None:
    assert policy(for_ms=MIN, flap_hold_ms=5 * MIN).damped_hold_ms == 5 * MIN
    assert policy(for_ms=7 * MIN, flap_hold_ms=5 * MIN).damped_hold_ms == 7 * MIN


def test_a_stored_pending_record_without_episode_start_starts_it_now() -> None:
    # Records come from storage (SQLite, DynamoDB, older versions); a missing start is now.
    stored = AlertRecord(AlertClass.LATENCY, SERVICE, AlertState.PENDING, since_ms=T0)
    held = advance(stored, BREACH, policy(for_ms=2 * MIN), T0 + 10 * MIN)
    assert held.record.state is AlertState.PENDING
    assert held.record.episode_start_ms == T0 + 10 * MIN
    fired = advance(stored, BREACH, policy(for_ms=0), T0 + 10 * MIN)
    assert fired.record.state is AlertState.FIRING
    assert fired.notifications[0].episode_start_ms == T0 + 10 * MIN


def test_a_stored_firing_record_without_last_notified_reminds_from_its_since() -> None:
    stored = AlertRecord(
        AlertClass.LATENCY, SERVICE, AlertState.FIRING, since_ms=T0, episode_start_ms=T0
    )
    pol = policy(renotify_ms=10 * MIN)
    assert advance(stored, BREACH, pol, T0 + 9 * MIN).notifications == ()
    (reminder,) = advance(stored, BREACH, pol, T0 + 10 * MIN).notifications
    assert reminder.kind is NotificationKind.REMINDER
    assert reminder.reminder_seq == 1


def test_a_one_millisecond_renotify_reminds_every_evaluation() -> None:
    r = run(every_minute([BREACH] * 4), policy(for_ms=0, renotify_ms=1))
    assert r.kinds() == [NotificationKind.FIRING] + [NotificationKind.REMINDER] * 3


def test_resolving_clears_the_episode_and_the_recovery_clock() -> None:
    pol = policy(for_ms=0, max_flaps=1, flap_hold_ms=2 * MIN)
    r = run(every_minute([BREACH, HEALTHY, BREACH, HEALTHY, HEALTHY, HEALTHY]), pol)
    assert r.results[3].record.recovering_since_ms == T0 + 3 * MIN
    assert r.kinds()[-1] is NotificationKind.RESOLVED
    assert r.record.state is AlertState.OK
    assert r.record.episode_start_ms is None
    assert r.record.recovering_since_ms is None
    assert r.record.since_ms == T0 + 5 * MIN


def test_results_with_different_evidence_are_not_equal() -> None:
    first = advance(None, BREACH, policy(for_ms=0), T0)
    same = advance(None, BREACH, policy(for_ms=0), T0)
    other = step(None, _observation(901.0), BREACH, _evidence(901.0), policy(for_ms=0), T0)
    assert first == same
    assert first != other


class _RecordingSource:
    """An EvidenceSource that remembers the state it was asked to build evidence for."""

    def __init__(self) -> None:
        self.asked: list[AlertState] = []
        self.threshold = ThresholdInForce("above_ms", 500.0, "default")
        self.observed = 900.0

    def build(self, previous_state: AlertState) -> Evidence:
        self.asked.append(previous_state)
        return replace(_evidence(900.0), previous_state=previous_state)


def test_a_deferred_source_builds_once_for_the_state_before_the_step() -> None:
    source = _RecordingSource()
    pending = advance(None, BREACH, policy(for_ms=MIN), T0).record
    result = step(pending, _observation(900.0), BREACH, source, policy(for_ms=MIN), T0 + MIN)
    assert result.record.state is AlertState.FIRING
    assert result.notifications[0].evidence.previous_state is AlertState.PENDING
    assert result.evidence.previous_state is AlertState.PENDING
    assert source.asked == [AlertState.PENDING]


def test_a_quiet_step_never_builds_evidence() -> None:
    source = _RecordingSource()
    result = step(None, _observation(300.0), HEALTHY, source, policy(), T0)
    assert result.notifications == ()
    assert source.asked == []


def test_a_stored_firing_record_without_episode_start_dates_its_notes_from_since() -> None:
    stored = AlertRecord(AlertClass.LATENCY, SERVICE, AlertState.FIRING, since_ms=T0)
    (resolved,) = advance(stored, HEALTHY, policy(), T0 + MIN).notifications
    assert resolved.kind is NotificationKind.RESOLVED
    assert resolved.episode_start_ms == T0


def test_firing_starts_a_clean_episode_whatever_the_stored_record_holds() -> None:
    stale = AlertRecord(
        AlertClass.LATENCY,
        SERVICE,
        AlertState.OK,
        since_ms=T0,
        reminder_seq=5,
        recovering_since_ms=T0,
    )
    pol = policy(for_ms=0, renotify_ms=MIN)
    r = run(every_minute([BREACH, BREACH], start=T0 + MIN), pol, prev=stale)
    assert r.results[0].record.reminder_seq == 0
    assert r.results[0].record.recovering_since_ms is None
    assert [n.reminder_seq for n in r.notes] == [0, 1]


def test_a_quiet_step_carries_every_field_of_the_record() -> None:
    # step() builds the next record field by field (the hot path skips replace()): a field
    # added to AlertRecord must be carried too. The record below sets every field away from
    # its default, so a new field fails here until it is set (and carried) as well.
    threshold = ThresholdInForce("above_ms", 500.0, "default")
    prev = AlertRecord(
        alert_class=AlertClass.LATENCY,
        service=SERVICE,
        state=AlertState.FIRING,
        since_ms=T0,
        episode_start_ms=T0 - MIN,
        last_notified_ms=T0 + MIN,
        last_value=950.0,
        last_evaluated_ms=T0 + 2 * MIN,
        threshold=ThresholdInForce("above_ms", 400.0, "file:old.yaml"),
        flaps=2,
        reminder_seq=3,
        recovering_since_ms=T0 + 2 * MIN,
        last_resolved_ms=T0 - HOUR,
    )
    unset = [
        f.name
        for f in fields(AlertRecord)
        if f.default is not MISSING and getattr(prev, f.name) == f.default
    ]
    assert unset == []
    now = T0 + 3 * MIN
    result = advance(prev, NO_DATA, policy(no_data=NoDataPolicy.KEEP), now)
    assert result.notifications == ()
    assert result.record == replace(
        prev, last_value=None, last_evaluated_ms=now, threshold=threshold
    )


def test_a_one_millisecond_for_waits_for_a_second_breach() -> None:
    r = run(every_minute([BREACH, BREACH]), policy(for_ms=1))
    assert [x.record.state for x in r.results] == [AlertState.PENDING, AlertState.FIRING]
    assert r.notes[0].at_ms == T0 + MIN


@pytest.mark.parametrize("for_ms", [0, 2 * MIN])  # with and without a notification
def test_results_differing_only_in_evidence_are_not_equal(for_ms: int) -> None:
    first = advance(None, BREACH, policy(for_ms=for_ms), T0)
    other_query = replace(_evidence(900.0), query="another query")
    other = step(None, _observation(900.0), BREACH, other_query, policy(for_ms=for_ms), T0)
    assert first.record == other.record
    assert first.notifications == () or for_ms == 0
    assert first != other


def test_a_stored_pending_record_without_start_fires_with_the_start_recorded() -> None:
    stored = AlertRecord(AlertClass.LATENCY, SERVICE, AlertState.PENDING, since_ms=T0)
    fired = advance(stored, BREACH, policy(for_ms=0), T0 + 10 * MIN)
    assert fired.record.episode_start_ms == T0 + 10 * MIN


@pytest.mark.parametrize("verdict", [BREACH, BETWEEN, HEALTHY])
def test_every_step_records_the_value_it_judged(verdict: Verdict) -> None:
    # The status page and the next notification show last_value: a step that keeps the state
    # must still replace the previous value with this evaluation's.
    prev = advance(None, BREACH, policy(for_ms=0), T0).record
    assert prev.state is AlertState.FIRING and prev.last_value == 900.0
    now = T0 + MIN
    result = advance(prev, verdict, policy(for_ms=0), now)
    assert (result.record.last_value, result.record.last_evaluated_ms) == (_value(verdict), now)
