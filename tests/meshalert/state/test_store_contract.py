"""One contract, run against every StateStore (SQLite file and DynamoDB under moto)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertState, NotificationKind, SkippedServices
from meshalert.state.protocols import HistoryEntry, StateStore, UnknownClaimError
from meshalert.state.serialization import evidence_to_dict

from ._build import evidence, notification, record

T0 = 1_700_000_000_000


def test_empty_store_loads_nothing(store: StateStore) -> None:
    assert store.load(AlertClass.LATENCY) == {}
    assert store.load_all() == []
    assert store.history(since_ms=0) == []


def test_save_load_round_trip_and_upsert(store: StateStore) -> None:
    a = record("production/checkout")
    b = record("staging/cart", state=AlertState.PENDING)
    c = record("production/checkout", alert_class=AlertClass.FAILURES, state=AlertState.OK)
    store.save([a, b, c])
    assert store.load(AlertClass.LATENCY) == {a.service: a, b.service: b}
    assert store.load(AlertClass.FAILURES) == {c.service: c}
    assert sorted(store.load_all(), key=repr) == sorted([a, b, c], key=repr)

    resolved = replace(a, state=AlertState.OK, since_ms=T0 + 60_000, last_value=None)
    store.save([resolved])
    assert store.load(AlertClass.LATENCY)[a.service] == resolved
    assert len(store.load_all()) == 3


def test_save_many_records_in_one_call(store: StateStore) -> None:
    records = [record(f"ns/svc-{i:03d}") for i in range(60)]
    store.save(records)
    assert store.load(AlertClass.LATENCY) == {r.service: r for r in records}


def test_odd_floats_survive(store: StateStore) -> None:
    odd = [0.1, 1e-300, 1.7976931348623157e308, float("inf"), -0.0, 123456789.123456789]
    records = [replace(record(f"ns/f{i}"), last_value=v) for i, v in enumerate(odd)]
    store.save(records)
    loaded = store.load(AlertClass.LATENCY)
    assert [loaded[r.service].last_value for r in records] == odd


def _entry(at_ms: int, service: str, cls: AlertClass, to: AlertState) -> HistoryEntry:
    return HistoryEntry(
        at_ms=at_ms,
        alert_class=cls,
        service=service,
        from_state=AlertState.PENDING,
        to_state=to,
        evidence=evidence_to_dict(evidence(service, alert_class=cls)),
        dedup_key=f"{cls.value}|{service}|{at_ms}|firing" if to is AlertState.FIRING else None,
    )


def test_history_filters_and_order(store: StateStore) -> None:
    day = 86_400_000
    entries = [
        _entry(T0 + 2 * 60_000, "a", AlertClass.LATENCY, AlertState.FIRING),
        _entry(T0 - day, "a", AlertClass.LATENCY, AlertState.OK),  # the previous UTC day
        _entry(T0 + 60_000, "b", AlertClass.FAILURES, AlertState.FIRING),
        _entry(T0 + 3 * 60_000, "b", AlertClass.LATENCY, AlertState.OK),
    ]
    store.append_history(entries)
    assert store.history(since_ms=0) == sorted(entries, key=lambda e: e.at_ms)
    assert store.history(since_ms=T0) == [entries[2], entries[0], entries[3]]
    assert store.history(since_ms=0, service="a") == [entries[1], entries[0]]
    assert store.history(since_ms=0, alert_class=AlertClass.LATENCY) == [
        entries[1],
        entries[0],
        entries[3],
    ]
    assert store.history(since_ms=0, service="b", alert_class=AlertClass.FAILURES) == [entries[2]]
    assert store.history(since_ms=T0 + 3 * 60_000 + 1) == []


def test_history_is_idempotent_for_a_duplicated_cycle(store: StateStore) -> None:
    entry = _entry(T0, "a", AlertClass.LATENCY, AlertState.FIRING)
    store.append_history([entry])
    store.append_history([entry])
    assert store.history(since_ms=0) == [entry]


def test_history_evidence_round_trips(store: StateStore) -> None:
    entry = _entry(T0, "a", AlertClass.LATENCY, AlertState.FIRING)
    store.append_history([entry])
    (loaded,) = store.history(since_ms=0)
    assert loaded.evidence == entry.evidence
    assert loaded.evidence["detail"] == {"worst_host": "node-1", "ratio": 0.25, "missing": None}


def test_claim_exactly_once(store: StateStore) -> None:
    n = notification()
    assert store.claim(n, now_ms=T0, lease_ms=60_000) is True
    assert store.claim(n, now_ms=T0, lease_ms=60_000) is False
    assert store.claim(n, now_ms=T0 + 59_999, lease_ms=60_000) is False
    other = notification(kind=NotificationKind.RESOLVED)
    assert store.claim(other, now_ms=T0, lease_ms=60_000) is True
    info = store.claim_info(n.dedup_key)
    assert info is not None
    assert (info.claimed_ms, info.lease_until_ms, info.attempts, info.sent_ms) == (
        T0,
        T0 + 60_000,
        1,
        None,
    )
    assert store.claim_info("latency|nobody|0|firing") is None


def test_lapsed_lease_is_reclaimed_once(store: StateStore) -> None:
    n = notification()
    assert store.claim(n, now_ms=T0, lease_ms=60_000)
    # The first sender died without mark_sent; after the lease one retry may claim it.
    assert store.claim(n, now_ms=T0 + 60_000, lease_ms=60_000) is True
    assert store.claim(n, now_ms=T0 + 60_001, lease_ms=60_000) is False
    info = store.claim_info(n.dedup_key)
    assert info is not None
    assert (info.attempts, info.lease_until_ms) == (2, T0 + 120_000)


def test_finished_claim_is_final_even_after_lease(store: StateStore) -> None:
    n = notification()
    assert store.claim(n, now_ms=T0, lease_ms=60_000)
    store.mark_sent(n.dedup_key, "slack", ok=True, detail="200", now_ms=T0 + 1_000)
    store.finish(n.dedup_key, complete=True, now_ms=T0 + 1_000)
    assert store.claim(n, now_ms=T0 + 10 * 60_000, lease_ms=60_000) is False
    assert store.unsent(n.alert_class, now_ms=T0 + 10 * 60_000, since_ms=0) == []
    info = store.claim_info(n.dedup_key)
    assert info is not None
    assert info.sent_ms == T0 + 1_000


def test_one_channel_succeeding_does_not_make_the_claim_final(store: StateStore) -> None:
    # The console succeeded, Slack never got its try: Slack must still be sent.
    n = notification()
    assert store.claim(n, now_ms=T0, lease_ms=60_000)
    store.mark_sent(n.dedup_key, "console", ok=True, detail="sent", now_ms=T0)
    store.mark_sent(n.dedup_key, "slack", ok=False, detail="deadline", now_ms=T0)
    store.finish(n.dedup_key, complete=False, now_ms=T0)
    assert store.unsent(n.alert_class, now_ms=T0 + 60_000, since_ms=T0 - 1) == [n]
    assert store.unsent(AlertClass.FAILURES, now_ms=T0 + 60_000, since_ms=0) == []
    assert store.unsent(n.alert_class, now_ms=T0 + 60_000, since_ms=n.at_ms + 1) == []
    # The lease was released: the next cycle claims it again, before the lease would lapse.
    assert store.claim(n, now_ms=T0 + 1, lease_ms=60_000) is True
    assert store.unsent(n.alert_class, now_ms=T0 + 2, since_ms=0) == []  # leased again
    info = store.claim_info(n.dedup_key)
    assert info is not None
    assert (info.attempts, info.sent_ms) == (2, None)
    assert {(d.channel, d.ok) for d in info.deliveries} == {("console", True), ("slack", False)}


def test_failed_delivery_can_be_retried_after_lease(store: StateStore) -> None:
    n = notification()
    assert store.claim(n, now_ms=T0, lease_ms=60_000)
    store.mark_sent(n.dedup_key, "slack", ok=False, detail="HTTP 503", now_ms=T0 + 500)
    assert store.claim(n, now_ms=T0 + 1_000, lease_ms=60_000) is False
    assert store.claim(n, now_ms=T0 + 60_000, lease_ms=60_000) is True
    store.mark_sent(n.dedup_key, "slack", ok=True, detail="200", now_ms=T0 + 61_000)
    store.mark_sent(n.dedup_key, "sns", ok=True, detail="message id 42", now_ms=T0 + 61_500)
    store.finish(n.dedup_key, complete=True, now_ms=T0 + 61_500)
    info = store.claim_info(n.dedup_key)
    assert info is not None
    assert info.sent_ms == T0 + 61_500
    assert [(d.channel, d.ok, d.detail, d.at_ms) for d in info.deliveries] == [
        ("slack", True, "200", T0 + 61_000),
        ("sns", True, "message id 42", T0 + 61_500),
    ]


def test_finish_unknown_key(store: StateStore) -> None:
    with pytest.raises(UnknownClaimError):
        store.finish("latency|x|1|firing", complete=True, now_ms=T0)


def test_mark_sent_unknown_key(store: StateStore) -> None:
    with pytest.raises(UnknownClaimError):
        store.mark_sent("latency|x|1|firing", "slack", ok=True, detail="", now_ms=T0)


def test_claim_rejects_non_positive_lease(store: StateStore) -> None:
    with pytest.raises(ValueError, match="lease_ms"):
        store.claim(notification(), now_ms=T0, lease_ms=0)


def test_threads_claim_the_same_key_once(store: StateStore) -> None:
    keys = [notification(service=f"ns/svc-{i}") for i in range(5)]
    barrier = threading.Barrier(8)
    wins: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        for n in keys:
            if store.claim(n, now_ms=T0, lease_ms=60_000):
                with lock:
                    wins.append(n.dedup_key)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == sorted(n.dedup_key for n in keys)


def test_the_latest_skipped_services_summary_per_class(store: StateStore) -> None:
    assert store.last_skipped(AlertClass.LATENCY) is None
    first = SkippedServices(AlertClass.LATENCY, T0, 3, ("a/b", "x\\x1b"))
    store.note_skipped(first)
    store.note_skipped(SkippedServices(AlertClass.FAILURES, T0, 0))
    assert store.last_skipped(AlertClass.LATENCY) == first
    later = SkippedServices(AlertClass.LATENCY, T0 + 60_000, 0)
    store.note_skipped(later)
    assert store.last_skipped(AlertClass.LATENCY) == later
    assert store.last_skipped(AlertClass.FAILURES) == SkippedServices(AlertClass.FAILURES, T0, 0)


def test_forget_deletes_only_the_named_records_of_one_class(store: StateStore) -> None:
    host = record("meshalert/ingest:node-b", alert_class=AlertClass.INGEST)
    whole = record("meshalert/ingest", alert_class=AlertClass.INGEST)
    same_key = record("meshalert/ingest:node-b", alert_class=AlertClass.LATENCY)
    store.save([host, whole, same_key])
    assert store.load(AlertClass.INGEST) == {host.service: host, whole.service: whole}
    store.forget(AlertClass.INGEST, [host.service, host.service, "never-saved"])
    assert store.load(AlertClass.INGEST) == {whole.service: whole}
    assert store.load(AlertClass.LATENCY) == {same_key.service: same_key}
    store.forget(AlertClass.INGEST, [])
    assert sorted(store.load_all(), key=repr) == sorted([whole, same_key], key=repr)
