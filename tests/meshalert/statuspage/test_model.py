"""The pure steps behind the status page: states, evidence, firing intervals, chart groups."""

from __future__ import annotations

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertRecord, AlertState
from meshalert.state.protocols import HistoryEntry
from meshalert.statuspage.model import (
    chart_groups,
    classify,
    firing_intervals,
    latest_evidence,
)

T0 = 1_767_225_600_000
MIN = 60_000
OK, PENDING, FIRING = AlertState.OK, AlertState.PENDING, AlertState.FIRING


def _rec(
    service: str,
    state: AlertState,
    cls: AlertClass = AlertClass.LATENCY,
    *,
    since: int = T0,
    resolved: int | None = None,
) -> AlertRecord:
    return AlertRecord(cls, service, state, since, last_resolved_ms=resolved)


def _entry(
    at: int, frm: AlertState, to: AlertState, service: str = "checkout", **evidence: object
) -> HistoryEntry:
    return HistoryEntry(at, AlertClass.LATENCY, service, frm, to, dict(evidence))


def test_firing_intervals_follow_the_transitions() -> None:
    entries = [
        _entry(T0 + 5 * MIN, OK, PENDING),
        _entry(T0 + 6 * MIN, PENDING, FIRING),
        _entry(T0 + 20 * MIN, FIRING, OK),
        _entry(T0 + 30 * MIN, OK, PENDING),
        _entry(T0 + 31 * MIN, PENDING, FIRING),
    ]
    assert firing_intervals(entries, FIRING, since_ms=T0) == (
        (T0 + 6 * MIN, T0 + 20 * MIN),
        (T0 + 31 * MIN, None),
    )


def test_an_alert_firing_since_before_the_span_is_shaded_from_its_start() -> None:
    assert firing_intervals([], FIRING, since_ms=T0) == ((T0, None),)
    assert firing_intervals([_entry(T0 + MIN, FIRING, OK)], OK, since_ms=T0) == ((T0, T0 + MIN),)
    assert firing_intervals([], OK, since_ms=T0) == ()


def test_evidence_is_the_newest_transition_into_the_current_state() -> None:
    history = [
        _entry(T0, PENDING, FIRING, observed=900.0),
        _entry(T0 + MIN, FIRING, OK, observed=100.0),
        _entry(T0 + 2 * MIN, PENDING, FIRING, observed=1200.0),
        _entry(T0 + 3 * MIN, PENDING, FIRING, service="cart", observed=7.0),
    ]
    evidence = latest_evidence(_rec("checkout", FIRING), history)
    assert evidence is not None and evidence["observed"] == 1200.0
    assert latest_evidence(_rec("users", FIRING), history) is None


def test_classify_sorts_alerts_by_state_and_counts_ok() -> None:
    records = [
        _rec("checkout", FIRING),
        _rec("cart", PENDING, AlertClass.FAILURES),
        _rec("users", OK, resolved=T0 + 50 * MIN),
        _rec("search", OK, AlertClass.RETRIES, resolved=T0 - 10 * MIN),
        _rec("ledger", OK, AlertClass.ENDPOINTS),
    ]
    firing, pending, resolved, ok = classify(records, [], resolved_since_ms=T0)
    assert [v.record.service for v in firing] == ["checkout"]
    assert [v.record.service for v in pending] == ["cart"]
    assert [v.record.service for v in resolved] == ["users"]  # search resolved before
    assert ok == {
        AlertClass.LATENCY: 1,
        AlertClass.FAILURES: 0,
        AlertClass.ENDPOINTS: 1,
        AlertClass.RETRIES: 1,
        AlertClass.INGEST: 0,  # the heartbeat's classes are counted under their own names
        AlertClass.EVALUATION: 0,
    }


def test_chart_groups_put_the_worst_first_and_join_client_scope_endpoints() -> None:
    records = [
        *(_rec("checkout", OK, c) for c in AlertClass if c is not AlertClass.ENDPOINTS),
        _rec("production/checkout", FIRING, AlertClass.ENDPOINTS),
        *(_rec("cart", OK, c) for c in AlertClass if c is not AlertClass.ENDPOINTS),
        _rec("production/cart", OK, AlertClass.ENDPOINTS),
        _rec("zeta", PENDING, AlertClass.LATENCY),
        # two logical services share the name: the endpoints key stays on its own
        _rec("a/dup", OK, AlertClass.LATENCY),
        _rec("b/dup", OK, AlertClass.LATENCY),
        _rec("c/dup", OK, AlertClass.ENDPOINTS),
    ]
    groups = chart_groups(records)
    assert [g.name for g in groups] == ["checkout", "zeta", "a/dup", "b/dup", "c/dup", "cart"]
    checkout = groups[0]
    assert checkout.keys[AlertClass.ENDPOINTS] == "production/checkout"
    assert checkout.keys[AlertClass.LATENCY] == "checkout"
    assert groups[-1].keys[AlertClass.ENDPOINTS] == "production/cart"
    assert set(groups[4].keys.values()) == {"c/dup"}
