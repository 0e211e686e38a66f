"""The pure suppression logic: matchers, silences, weekly windows (DST included), inhibition,
and what a FIRING alert is owed when its suppression ends."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertRecord, AlertState, Notification, NotificationKind, Severity
from meshalert.suppression import (
    DEFAULT_INHIBIT_RULES,
    MaintenanceWindow,
    NoRules,
    Silence,
    Suppressed,
    Suppressor,
    catch_up,
    decide,
    service_matches,
)
from tests.meshalert.state._build import evidence

T0 = 1_700_000_000_000
MIN = 60_000
HOUR = 60 * MIN

name_part = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=12)
service_key = st.builds(lambda ns, svc: f"{ns}/{svc}", name_part, name_part)


@given(service_key)
def test_an_exact_key_matches_only_itself(key: str) -> None:
    assert service_matches(key, key)
    assert not service_matches(key, key + "x")
    assert not service_matches(key, "x" + key)


@given(name_part, name_part, name_part)
def test_a_namespace_glob_matches_its_namespace_only(ns: str, svc: str, other: str) -> None:
    assert service_matches(f"{ns}/*", f"{ns}/{svc}")
    if other != ns:
        assert not service_matches(f"{ns}/*", f"{other}/{svc}")
    assert service_matches("*", f"{ns}/{svc}")
    assert service_matches(f"*/{svc}", f"{ns}/{svc}")


def test_globs_are_case_sensitive_and_whole_key() -> None:
    assert not service_matches("production/*", "Production/checkout")
    assert not service_matches("checkout", "production/checkout")
    assert service_matches("*checkout", "production/checkout")
    assert service_matches("production/check?ut", "production/checkout")


@given(
    start=st.integers(0, 10**13),
    length=st.integers(1, 10**9),
    offset=st.integers(-(10**9), 2 * 10**9),
)
def test_a_silence_is_active_on_start_inclusive_end_exclusive(
    start: int, length: int, offset: int
) -> None:
    s = Silence("id", "a/b", None, start, start + length, "r", "me", start)
    now = start + offset
    assert s.active(now) == (start <= now < start + length)


@given(
    start=st.integers(0, 10**12),
    length=st.integers(2, 10**9),
    cut=st.integers(1, 10**9),
)
def test_expiry_ends_a_silence_early_never_late(start: int, length: int, cut: int) -> None:
    s = Silence("id", "a/b", None, start, start + length, "r", "me", start)
    expired = replace(s, expired_ms=start + cut, expired_by="bob")
    assert expired.ends_ms == min(start + length, start + cut)
    assert not expired.active(expired.ends_ms)
    assert expired.active(start) == (cut > 0)


def test_a_silence_without_class_matches_every_class() -> None:
    s = Silence("id", "production/*", None, T0, T0 + HOUR, "r", "me", T0)
    assert all(s.matches(c, "production/x") for c in AlertClass)
    only = replace(s, alert_class=AlertClass.LATENCY)
    assert only.matches(AlertClass.LATENCY, "production/x")
    assert not only.matches(AlertClass.FAILURES, "production/x")


def test_an_empty_or_backwards_silence_is_refused() -> None:
    with pytest.raises(ValueError, match="end must be after start"):
        Silence("id", "a/b", None, T0, T0, "r", "me", T0)
    with pytest.raises(ValueError, match="service"):
        Silence("id", "", None, T0, T0 + 1, "r", "me", T0)


# --- weekly windows -----------------------------------------------------------------------


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]


@given(
    zone=st.sampled_from(ZONES),
    day=st.integers(0, 6),
    minute=st.integers(0, 24 * 60 - 1),
    duration_min=st.integers(1, 7 * 24 * 60),
    week=st.integers(0, 200),
    into=st.floats(0, 1, exclude_max=True),
)
def test_weekly_window_holds_from_its_local_start_for_its_duration(  # noqa: PLR0917
    zone: str, day: int, minute: int, duration_min: int, week: int, into: float
) -> None:
    window = MaintenanceWindow(
        "w",
        "*",
        frozenset(),
        timezone=zone,
        days=frozenset({day}),
        start_minute=minute,
        duration_ms=duration_min * MIN,
    )
    tz = ZoneInfo(zone)
    # The week's occurrence: that weekday at that wall-clock time in the zone (fold=0).
    monday = datetime(2024, 1, 1) + timedelta(weeks=week)
    local = monday + timedelta(days=day, minutes=minute)
    start = _ms(local.replace(tzinfo=tz))
    inside = start + int(into * duration_min * MIN)
    assert window.active(inside)
    assert window.occurrence(inside) == (start, start + duration_min * MIN)
    if duration_min < 7 * 24 * 60 - 180:  # not touching the next week's (DST shifts 3h max)
        assert not window.active(start + duration_min * MIN)
        assert not window.active(start - 1)


def test_weekly_window_across_the_spring_dst_change_is_two_real_hours() -> None:
    # Europe/Berlin skips 02:00-03:00 on Sunday 2026-03-29: a window "sun 01:30 for 2h"
    # starts at 01:30 CET (00:30 UTC) and lasts two real hours, until 02:30 UTC.
    window = MaintenanceWindow(
        "w",
        "*",
        frozenset(),
        timezone="Europe/Berlin",
        days=frozenset({6}),
        start_minute=90,
        duration_ms=2 * HOUR,
    )
    start = _ms(datetime(2026, 3, 29, 0, 30, tzinfo=UTC))
    assert window.occurrence(start + 1) == (start, start + 2 * HOUR)
    assert not window.active(start - 1)
    assert not window.active(start + 2 * HOUR)


def test_a_window_on_the_skipped_hour_still_happens() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29; fold=0 puts it at 01:30 UTC (03:30 CEST).
    window = MaintenanceWindow(
        "w",
        "*",
        frozenset(),
        timezone="Europe/Berlin",
        days=frozenset({6}),
        start_minute=150,
        duration_ms=HOUR,
    )
    assert window.active(_ms(datetime(2026, 3, 29, 1, 45, tzinfo=UTC)))


def test_a_window_crossing_midnight_and_the_week_end() -> None:
    window = MaintenanceWindow(
        "w",
        "production/*",
        frozenset({AlertClass.LATENCY}),
        timezone="UTC",
        days=frozenset({6}),  # Sunday 23:00 for 3h: into Monday 02:00
        start_minute=23 * 60,
        duration_ms=3 * HOUR,
    )
    monday_1am = _ms(datetime(2026, 11, 30, 1, 0, tzinfo=UTC))
    assert window.active(monday_1am)
    assert not window.active(monday_1am + 2 * HOUR)
    assert window.matches(AlertClass.LATENCY, "production/checkout")
    assert not window.matches(AlertClass.FAILURES, "production/checkout")


def test_one_off_window() -> None:
    window = MaintenanceWindow("m", "*", frozenset(), once_start_ms=T0, once_end_ms=T0 + HOUR)
    assert window.active(T0) and not window.active(T0 + HOUR) and not window.active(T0 - 1)


# --- the decision -------------------------------------------------------------------------


def _note(  # noqa: PLR0917 -- a test builder
    service: str = "production/checkout",
    alert_class: AlertClass = AlertClass.LATENCY,
    kind: NotificationKind = NotificationKind.FIRING,
    observed: float | None = 800.0,
    at_ms: int = T0,
    seq: int = 0,
) -> Notification:
    return Notification(
        kind,
        alert_class,
        service,
        Severity.WARNING,
        at_ms,
        T0 - 2 * MIN,
        evidence(service, observed=observed, alert_class=alert_class),
        seq,
    )


def _firing(service: str, alert_class: AlertClass) -> AlertRecord:
    return AlertRecord(alert_class, service, AlertState.FIRING, T0 - HOUR, T0 - HOUR)


def test_silence_then_maintenance_reasons_and_the_rest_is_sent() -> None:
    silence = Silence("s1", "production/checkout", None, T0 - 1, T0 + HOUR, "deploy", "me", T0)
    window = MaintenanceWindow("db", "staging/*", frozenset(), once_start_ms=T0, once_end_ms=T0 + 1)
    rules = NoRules(maintenance=(window,))
    sup = Suppressor.build(T0, [silence], rules)
    notes = [_note(), _note("staging/cart"), _note("production/cart")]
    decision = decide(notes, sup)
    assert [n.service for n in decision.send] == ["production/cart"]
    assert [(h.service, h.reason) for h in decision.suppressed] == [
        ("production/checkout", "silenced by s1: deploy"),
        ("staging/cart", "maintenance db"),
    ]
    # An ended silence or window holds nothing back.
    later = Suppressor.build(T0 + HOUR, [silence], rules)
    assert len(decide(notes, later).send) == 3


def test_default_inhibition_endpoints_over_latency_and_failures_of_the_same_service() -> None:
    sup = Suppressor.build(
        T0, [], NoRules(), [_firing("production/checkout", AlertClass.ENDPOINTS)]
    )
    latency = _note()
    failures = _note(alert_class=AlertClass.FAILURES)
    retries = _note(alert_class=AlertClass.RETRIES)
    other = _note("production/cart")
    decision = decide([latency, failures, retries, other], sup)
    assert {(n.alert_class, n.service) for n in decision.send} == {
        (AlertClass.RETRIES, "production/checkout"),
        (AlertClass.LATENCY, "production/cart"),
    }
    assert {h.reason for h in decision.suppressed} == {"inhibited by endpoints/production/checkout"}


def test_a_pending_or_ok_source_inhibits_nothing() -> None:
    pending = replace(
        _firing("production/checkout", AlertClass.ENDPOINTS), state=AlertState.PENDING
    )
    sup = Suppressor.build(T0, [], NoRules(), [pending])
    assert decide([_note()], sup).suppressed == ()


def test_pipeline_alert_inhibits_only_no_data_notifications_of_every_service() -> None:
    for key in ("meshalert/ingest", "meshalert/ingest:node-1"):
        sup = Suppressor.build(T0, [], NoRules(), [_firing(key, AlertClass.INGEST)])
        no_data = [_note(observed=None), _note("staging/x", AlertClass.ENDPOINTS, observed=None)]
        with_data = _note()
        decision = decide([*no_data, with_data], sup)
        assert decision.send == (with_data,)
        assert {h.reason for h in decision.suppressed} == {f"inhibited by ingest/{key}"}
    # The evaluation-staleness alert is not a no-data source.
    sup = Suppressor.build(
        T0, [], NoRules(), [_firing("meshalert/evaluation:latency", AlertClass.EVALUATION)]
    )
    assert decide([_note(observed=None)], sup).suppressed == ()


def test_inhibition_off_with_an_empty_rule_list() -> None:
    sup = Suppressor.build(
        T0, [], NoRules(inhibit=()), [_firing("production/checkout", AlertClass.ENDPOINTS)]
    )
    assert decide([_note()], sup).suppressed == ()
    assert DEFAULT_INHIBIT_RULES  # the defaults exist; only an explicit [] removes them


# --- catch-up -----------------------------------------------------------------------------


def _record(state: AlertState = AlertState.FIRING, seq: int = 0) -> AlertRecord:
    return AlertRecord(
        AlertClass.LATENCY,
        "production/checkout",
        state,
        T0,
        episode_start_ms=T0 - 2 * MIN,
        reminder_seq=seq,
    )


def _owed(
    record: AlertRecord, held: list[Suppressed], claims: dict[str, int]
) -> Notification | None:
    return catch_up(
        record,
        held,
        evidence=evidence(),
        severity=Severity.CRITICAL,
        now_ms=T0 + 5 * HOUR,
        claimed_at=claims.get,
    )


def test_a_held_firing_is_owed_once_under_its_own_key() -> None:
    firing = Suppressed.of(_note(), "silenced by s1: deploy")
    owed = _owed(_record(), [firing], {})
    assert owed is not None
    assert owed.dedup_key == firing.dedup_key and owed.kind is NotificationKind.FIRING
    assert owed.at_ms == T0 + 5 * HOUR and owed.severity is Severity.CRITICAL
    # Once claimed (by this cycle or a concurrent one), nothing more is owed.
    assert _owed(_record(), [firing], {firing.dedup_key: T0 + 5 * HOUR}) is None


def test_the_firing_goes_before_held_reminders_and_settles_them() -> None:
    firing = Suppressed.of(_note(), "s")
    reminder = Suppressed.of(_note(kind=NotificationKind.REMINDER, at_ms=T0 + 4 * HOUR, seq=1), "s")
    owed = _owed(_record(seq=1), [firing, reminder], {})
    assert owed is not None and owed.kind is NotificationKind.FIRING
    # After the FIRING catch-up was claimed, the older held reminder is not owed.
    assert _owed(_record(seq=1), [firing, reminder], {firing.dedup_key: T0 + 5 * HOUR}) is None


def test_only_reminders_held_after_a_sent_page_owe_the_latest_reminder() -> None:
    r1 = Suppressed.of(_note(kind=NotificationKind.REMINDER, at_ms=T0 + HOUR, seq=1), "s")
    r2 = Suppressed.of(_note(kind=NotificationKind.REMINDER, at_ms=T0 + 2 * HOUR, seq=2), "s")
    owed = _owed(_record(seq=2), [r1, r2], {})
    assert owed is not None and owed.dedup_key == r2.dedup_key
    assert _owed(_record(seq=2), [r1, r2], {r2.dedup_key: T0 + 3 * HOUR}) is None


def test_a_resolved_alert_or_another_episode_owes_nothing() -> None:
    firing = Suppressed.of(_note(), "s")
    assert _owed(_record(AlertState.OK), [firing], {}) is None
    other_episode = replace(_record(), episode_start_ms=T0 + HOUR)
    assert _owed(other_episode, [firing], {}) is None
    resolved = Suppressed.of(_note(kind=NotificationKind.RESOLVED), "s")
    assert _owed(_record(), [resolved], {}) is None
