"""meshalert/alerts/pipeline.py: the heartbeat's judgements of the ingest and evaluation
classes (pure)."""

from __future__ import annotations

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.alerts.model import NoDataPolicy, SkippedServices
from meshalert.alerts.pipeline import (
    INGEST_KEY,
    HeartbeatPolicy,
    evaluation_checks,
    forgotten_host,
    ingest_checks,
    ingest_key,
    skipped_checks,
)

POLICY = HeartbeatPolicy.for_interval(60_000, 4 * 3_600_000)
NOW = 1_000_000


def _checks(newest: dict[str, int], known: tuple[str, ...] = ()) -> dict[str, object]:
    checks = ingest_checks(
        newest, known_keys=known, cycle_ms=NOW, policy=POLICY, query_text="q", window="6h"
    )
    assert {c.observation.alert_class for c in checks} == {AlertClass.INGEST}
    return {c.observation.service: c.verdict.breached for c in checks}


def test_policy_for_the_interval() -> None:
    assert (POLICY.ingest_stale_ms, POLICY.evaluation_stale_ms) == (180_000, 300_000)
    assert POLICY.lookback_ms == 6 * 3_600_000


def test_ingest_judges_each_host_and_the_store() -> None:
    assert _checks({"a": NOW - 60_000, "b": NOW - 181_000}) == {
        f"{INGEST_KEY}:a": False,
        f"{INGEST_KEY}:b": True,
        INGEST_KEY: False,
    }
    # A host known from earlier runs and absent now has no data; nothing at all: no data.
    assert _checks({}, (f"{INGEST_KEY}:gone",)) == {f"{INGEST_KEY}:gone": None, INGEST_KEY: None}


def test_ingest_no_data_policies_and_a_host_without_its_tag() -> None:
    checks = ingest_checks(
        {"": NOW}, known_keys=(), cycle_ms=NOW, policy=POLICY, query_text="q", window="6h"
    )
    by_key = {c.observation.service: c for c in checks}
    assert set(by_key) == {"meshalert/ingest:(no host tag)", INGEST_KEY}
    # A host gone from the lookback is forgotten; a silent store pages.
    assert by_key["meshalert/ingest:(no host tag)"].no_data is NoDataPolicy.OK
    assert by_key[INGEST_KEY].no_data is NoDataPolicy.ALERT
    assert by_key[INGEST_KEY].threshold.name == "stale_after_ms"


def test_evaluation_checks_every_service_class() -> None:
    checks = evaluation_checks(
        {AlertClass.LATENCY: NOW - 301_000, AlertClass.FAILURES: NOW},
        cycle_ms=NOW,
        policy=POLICY,
        query_text="q",
        window="5m",
    )
    assert [c.observation.service for c in checks] == [
        f"meshalert/evaluation:{c.value}" for c in SERVICE_CLASSES
    ]
    assert {c.observation.alert_class for c in checks} == {AlertClass.EVALUATION}
    assert [c.verdict.breached for c in checks] == [True, False, None, None]


def test_skipped_checks_fire_while_a_class_skips_and_ignore_stale_summaries() -> None:
    latest = {
        AlertClass.LATENCY: SkippedServices(AlertClass.LATENCY, NOW, 2, ("a", "b")),
        AlertClass.FAILURES: SkippedServices(AlertClass.FAILURES, NOW, 0),
        AlertClass.RETRIES: SkippedServices(AlertClass.RETRIES, NOW - 301_000, 5),
    }
    checks = skipped_checks(latest, cycle_ms=NOW, policy=POLICY)
    got = {c.observation.service: (c.verdict.breached, c.observation.value) for c in checks}
    assert got == {
        "meshalert/skipped:latency": (True, 2.0),
        "meshalert/skipped:failures": (False, 0.0),
        "meshalert/skipped:endpoints": (None, None),
        "meshalert/skipped:retries": (None, None),
    }
    assert checks[0].observation.alert_class is AlertClass.EVALUATION
    assert checks[0].observation.detail["services"] == "a, b"


def test_only_a_resolved_host_without_data_is_forgotten() -> None:
    assert forgotten_host(ingest_key("a"), None, True)
    assert not forgotten_host(ingest_key("a"), None, False)
    assert not forgotten_host(ingest_key("a"), 5.0, True)
    assert not forgotten_host(INGEST_KEY, None, True)
