from __future__ import annotations

import json
from dataclasses import replace

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
from meshalert.state.protocols import HistoryEntry
from meshalert.state.serialization import (
    SerializationError,
    evidence_from_dict,
    evidence_to_dict,
    history_entry_from_dict,
    history_entry_from_step,
    history_entry_to_dict,
    notification_from_dict,
    notification_to_dict,
    record_from_dict,
    record_to_dict,
)

from ._build import evidence, notification, record

ms = st.integers(min_value=0, max_value=2**45)
finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(max_size=20)
thresholds = st.builds(ThresholdInForce, name=text, value=finite, source=text)
details = st.dictionaries(text, st.none() | finite | text, max_size=4)
evidences = st.builds(
    Evidence,
    alert_class=st.sampled_from(AlertClass),
    service=text,
    observed=st.none() | finite,
    threshold=thresholds,
    window=text,
    query=text,
    samples=finite,
    detail=details,
    previous_state=st.sampled_from(AlertState),
    replay=text,
)
records = st.builds(
    AlertRecord,
    alert_class=st.sampled_from(AlertClass),
    service=text,
    state=st.sampled_from(AlertState),
    since_ms=ms,
    episode_start_ms=st.none() | ms,
    last_notified_ms=st.none() | ms,
    last_value=st.none() | finite,
    last_evaluated_ms=st.none() | ms,
    threshold=st.none() | thresholds,
    flaps=st.integers(0, 50),
    reminder_seq=st.integers(0, 50),
    recovering_since_ms=st.none() | ms,
    last_resolved_ms=st.none() | ms,
)
notifications = st.builds(
    Notification,
    kind=st.sampled_from(NotificationKind),
    alert_class=st.sampled_from(AlertClass),
    service=text,
    severity=st.sampled_from(Severity),
    at_ms=ms,
    episode_start_ms=ms,
    evidence=evidences,
    reminder_seq=st.integers(0, 50),
)


def _via_json(doc: dict[str, object]) -> dict[str, object]:
    return json.loads(json.dumps(doc))  # type: ignore[no-any-return]


@settings(max_examples=100)
@given(records)
def test_record_round_trip(value: AlertRecord) -> None:
    assert record_from_dict(_via_json(record_to_dict(value))) == value


@settings(max_examples=100)
@given(evidences)
def test_evidence_round_trip(value: Evidence) -> None:
    assert evidence_from_dict(_via_json(evidence_to_dict(value))) == value


@settings(max_examples=100)
@given(notifications)
def test_notification_round_trip_keeps_dedup_key(value: Notification) -> None:
    doc = _via_json(notification_to_dict(value))
    assert doc["dedup_key"] == value.dedup_key
    back = notification_from_dict(doc)
    assert back == value
    assert back.dedup_key == value.dedup_key


def test_history_entry_round_trip() -> None:
    entry = HistoryEntry(
        at_ms=5,
        alert_class=AlertClass.RETRIES,
        service="a",
        from_state=AlertState.FIRING,
        to_state=AlertState.OK,
        evidence=evidence_to_dict(evidence()),
        dedup_key="retries|a|1|resolved",
    )
    assert history_entry_from_dict(_via_json(history_entry_to_dict(entry))) == entry


def test_older_rows_without_new_fields_load_with_defaults() -> None:
    doc = record_to_dict(record())
    for key in ("flaps", "reminder_seq", "recovering_since_ms", "last_resolved_ms"):
        del doc[key]
    assert record_from_dict(doc) == replace(record(), flaps=0, reminder_seq=0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("state", "exploded", "record.state: unknown value 'exploded'"),
        ("since_ms", "soon", "record.since_ms: expected an integer"),
        ("last_value", "high", "record.last_value: expected a number"),
    ],
)
def test_bad_fields_are_named(field: str, value: object, message: str) -> None:
    doc = record_to_dict(record())
    doc[field] = value
    with pytest.raises(SerializationError, match=message):
        record_from_dict(doc)


def test_missing_field_is_named() -> None:
    doc = notification_to_dict(notification())
    del doc["evidence"]["window"]
    with pytest.raises(SerializationError, match="evidence: missing field 'window'"):
        notification_from_dict(doc)


def _step(prev: AlertRecord | None, breached: bool, now: int, for_ms: int) -> StepResult:
    value = 900.0 if breached else 100.0
    ev = evidence(observed=value)
    obs = Observation(AlertClass.LATENCY, ev.service, value)
    pol = StepPolicy(
        for_ms=for_ms, renotify_ms=0, no_data=NoDataPolicy.KEEP, severity=Severity.INFO
    )
    return step(prev, obs, Verdict(breached=breached, recovered=not breached), ev, pol, now)


def test_history_entry_from_step() -> None:
    assert history_entry_from_step(_step(None, False, 1_000, 0)) is None
    pending = _step(None, True, 1_000, 60_000)
    entry = history_entry_from_step(pending)
    assert entry is not None
    assert (entry.at_ms, entry.from_state, entry.to_state, entry.dedup_key) == (
        1_000,
        AlertState.OK,
        AlertState.PENDING,
        None,
    )
    assert entry.evidence["previous_state"] == "ok"
    fired = history_entry_from_step(_step(pending.record, True, 61_000, 60_000))
    assert fired is not None
    assert fired.dedup_key == f"latency|{evidence().service}|1000|firing"
    assert fired.evidence["observed"] == 900.0
    resolved = history_entry_from_step(_step(_step(None, True, 5, 0).record, False, 9, 0))
    assert resolved is not None
    assert resolved.dedup_key == f"latency|{evidence().service}|5|resolved"
