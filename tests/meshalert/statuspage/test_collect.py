"""The page's snapshot from every state store (SQLite, DynamoDB on moto, memory)."""

from __future__ import annotations

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertRecord, AlertState, ThresholdInForce
from meshalert.rules import load_rules
from meshalert.state.protocols import HistoryEntry, StateStore
from meshalert.statuspage.collect import build_snapshot
from tests.meshalert.state.conftest import aws_env, dynamodb_client, store

__all__ = ["aws_env", "dynamodb_client", "store"]  # the state store fixtures, reused

NOW = 1_700_000_000_000 + 86_400_000  # the DynamoDB fixture's clock
MIN = 60_000
DAY = 1_440 * MIN
OK, PENDING, FIRING = AlertState.OK, AlertState.PENDING, AlertState.FIRING
LAT, FAIL = AlertClass.LATENCY, AlertClass.FAILURES
RULES = load_rules({}, now_s=0.0)
THRESHOLD = ThresholdInForce("latency.above_ms", 500.0, "default")


def _entry(
    at: int, alert: tuple[AlertClass, str], frm: AlertState, to: AlertState, obs: float
) -> HistoryEntry:
    evidence = {"observed": obs, "threshold": {"name": THRESHOLD.name, "value": 500.0}}
    return HistoryEntry(at, alert[0], alert[1], frm, to, evidence)


def test_states_evidence_history_and_firing_bands_on_every_state_store(
    store: StateStore,
) -> None:
    store.save(
        [
            # fired 3 days ago and still firing: its evidence is older than the last day
            AlertRecord(LAT, "legacy", FIRING, NOW - 3 * DAY, threshold=THRESHOLD),
            AlertRecord(LAT, "checkout", FIRING, NOW - 20 * MIN, threshold=THRESHOLD),
            AlertRecord(FAIL, "cart", PENDING, NOW - 2 * MIN),
            AlertRecord(FAIL, "users", OK, NOW - 30 * MIN, last_resolved_ms=NOW - 30 * MIN),
            AlertRecord(LAT, "users", OK, NOW - 5 * DAY),
        ]
    )
    store.append_history(
        [
            _entry(NOW - 3 * DAY, (LAT, "legacy"), PENDING, FIRING, 9000.0),
            _entry(NOW - 50 * MIN, (FAIL, "users"), PENDING, FIRING, 0.3),
            _entry(NOW - 30 * MIN, (FAIL, "users"), FIRING, OK, 0.01),
            _entry(NOW - 21 * MIN, (LAT, "checkout"), PENDING, FIRING, 700.0),
            _entry(NOW - 20 * MIN, (LAT, "checkout"), FIRING, OK, 100.0),
            _entry(NOW - 15 * MIN, (LAT, "checkout"), OK, FIRING, 800.0),
            _entry(NOW - 2 * MIN, (FAIL, "cart"), OK, PENDING, 0.2),
        ]
    )
    snapshot = build_snapshot(store, None, RULES, NOW)
    assert [(v.record.service, (v.evidence or {}).get("observed")) for v in snapshot.firing] == [
        ("checkout", 800.0),
        ("legacy", 9000.0),
    ]
    assert [v.record.service for v in snapshot.pending] == ["cart"]
    assert [v.record.service for v in snapshot.resolved] == ["users"]
    assert snapshot.ok_counts[LAT] == 1 and snapshot.ok_counts[FAIL] == 1
    assert [e.at_ms for e in snapshot.history] == sorted(
        (e.at_ms for e in snapshot.history), reverse=True
    )
    assert len(snapshot.history) == 7  # the legacy transition is shown as evidence too
    assert list(snapshot.signals)[:2] == ["checkout", "legacy"]  # worst first
    assert snapshot.signals["checkout"][LAT].firing == (
        (NOW - 21 * MIN, NOW - 20 * MIN),
        (NOW - 15 * MIN, None),
    )
    assert snapshot.signals["users"][FAIL].firing == ((NOW - 50 * MIN, NOW - 30 * MIN),)
    # already firing when the hour began: shaded from the chart's start
    assert snapshot.signals["legacy"][LAT].firing == ((NOW - 60 * MIN, None),)
    assert snapshot.signals["checkout"][LAT].threshold == 500.0
    assert snapshot.signals["checkout"][LAT].percentile == 99.0
    assert "signals: no rules loaded yet" not in snapshot.problems


def test_active_and_scheduled_silences_are_listed_on_every_state_store(store: StateStore) -> None:
    from meshalert.suppression import Silence

    def silence(sid: str, start: int, end: int) -> Silence:
        return Silence(sid, "production/*", LAT, start, end, "deploy", "alice", NOW - DAY)

    active = silence("now", NOW - MIN, NOW + 60 * MIN)
    later = silence("later", NOW + 60 * MIN, NOW + 120 * MIN)
    store.add_silence(silence("over", NOW - DAY, NOW - MIN))
    store.add_silence(later)
    store.add_silence(active)
    snapshot = build_snapshot(store, None, RULES, NOW)
    assert snapshot.silences == (active, later)


def test_pipeline_alerts_are_listed_under_their_own_class_without_a_chart(
    store: StateStore,
) -> None:
    from meshalert.statuspage.render import render_page

    stale = ThresholdInForce("stale_after_ms", 180_000.0, "default")
    store.save(
        [
            AlertRecord(AlertClass.INGEST, "meshalert/ingest:node-b", FIRING, NOW - 5 * MIN),
            AlertRecord(AlertClass.INGEST, "meshalert/ingest", OK, NOW - DAY, threshold=stale),
            AlertRecord(AlertClass.EVALUATION, "meshalert/evaluation:latency", OK, NOW - DAY),
            AlertRecord(LAT, "checkout", OK, NOW - DAY),
        ]
    )
    snapshot = build_snapshot(store, None, RULES, NOW)
    assert [(v.record.alert_class, v.record.service) for v in snapshot.firing] == [
        (AlertClass.INGEST, "meshalert/ingest:node-b")
    ]
    assert snapshot.ok_counts[AlertClass.INGEST] == 1
    assert snapshot.ok_counts[AlertClass.EVALUATION] == 1
    assert list(snapshot.signals) == ["checkout"]  # pipeline keys get no service chart
    page = render_page(snapshot)
    assert 'data-class="ingest"' in page and "meshalert/ingest:node-b" in page
