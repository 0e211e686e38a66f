"""evaluate_class: which windows need the retries baseline, and how the engine uses it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.alerts.baseline import BaselineCache
from meshalert.alerts.model import AlertState
from meshalert.backends.memory.state import MemoryStateStore
from meshalert.engine import Engine
from meshalert.evaluation import RulesView, evaluate_class
from meshalert.queries.baseline import BucketQuery, BucketResult, RatioBucket
from meshalert.queries.model import (
    ClassAggregates,
    ClassQuery,
    RetriesAggregate,
    WindowQueryError,
)
from meshalert.rules import load_rules

MINUTE = 60_000
CYCLE = 1_700_000_040_000


def _view(text: str) -> RulesView:
    return RulesView(load_rules({"MESHALERT_RULES": text}, now_s=0.0))


@pytest.mark.parametrize(
    ("text", "windows"),
    [
        ("defaults: {retries: {ratio_above: 0.3}}", set()),
        ("defaults: {retries: {anomaly_factor: 3}}", {5 * MINUTE}),
        (
            "defaults: {retries: {anomaly_factor: 3}}\n"
            "services: {prod/web: {retries: {window: 2m}}, 'batch/*': {retries: {window: 10m}}}",
            {2 * MINUTE, 5 * MINUTE, 10 * MINUTE},
        ),
        (
            "services: {prod/web: {retries: {anomaly_factor: 4, window: 2m}}}",
            {2 * MINUTE},
        ),
        (
            "defaults: {retries: {anomaly_factor: 3}}\n"
            "services: {'staging/*': {retries: {enabled: false, window: 1m}}}",
            {5 * MINUTE},
        ),
    ],
    ids=["none-by-default", "defaults", "overrides-and-globs", "one-service", "disabled"],
)
def test_baseline_windows_are_those_of_rules_with_anomaly_factor(
    text: str, windows: set[int]
) -> None:
    view = _view(text)
    assert view.baseline_windows(AlertClass.RETRIES) == windows
    for cls in (AlertClass.LATENCY, AlertClass.FAILURES, AlertClass.ENDPOINTS):
        assert view.baseline_windows(cls) == set()


@dataclass
class _Reader:
    """Retries aggregates for one service, and day buckets at ``day_ratio`` (a unit double)."""

    now: RetriesAggregate
    day_ratio: float = 0.05
    fail_buckets: bool = False
    bucket_queries: list[BucketQuery] = field(default_factory=list)

    def fetch(self, query: ClassQuery) -> ClassAggregates:
        return ClassAggregates(query, {"prod/web": {"": self.now}}, "window-query")

    def fetch_buckets(self, query: BucketQuery) -> BucketResult:
        self.bucket_queries.append(query)
        if self.fail_buckets:
            raise WindowQueryError("influxql error: offset not supported")
        buckets = tuple(
            RatioBucket(query.start_ms + i * query.window_ms, self.day_ratio * 100, 100.0)
            for i in range(20)
        )
        return BucketResult(query, {"prod/web": {"": buckets}}, "bucket-query")

    __hash__ = object.__hash__


ANOMALY = "defaults: {retries: {ratio_above: 0.5, anomaly_factor: 3, for: 0s}}"


def test_the_engine_reads_baselines_through_the_readers_shared_cache() -> None:
    reader = _Reader(RetriesAggregate(retries_total=20.0, requests=100.0))
    rules = load_rules({"MESHALERT_RULES": ANOMALY}, now_s=0.0)
    reports = [
        evaluate_class(Engine(reader, MemoryStateStore(), None), rules, AlertClass.RETRIES, c)
        for c in (CYCLE, CYCLE + MINUTE)
    ]  # a new engine per cycle, as in Lambda: the cache still spares the second query
    assert [r.queries_issued for r in reports] == [2, 1]
    assert len(reader.bucket_queries) == 1
    obs = reports[0].observations["prod/web"]
    assert obs.detail["baseline"] == pytest.approx(0.05)
    assert reports[0].states["prod/web"] is AlertState.FIRING  # 20% > 3 x 5%


def test_a_failing_baseline_query_leaves_the_other_tests_running() -> None:
    reader = _Reader(
        RetriesAggregate(retries_total=20.0, requests=100.0, budget_exhausted=2.0),
        fail_buckets=True,
    )
    rules = load_rules({"MESHALERT_RULES": ANOMALY}, now_s=0.0)
    engine = Engine(reader, MemoryStateStore(), None, baselines=BaselineCache(reader))
    report = evaluate_class(engine, rules, AlertClass.RETRIES, CYCLE)
    detail = report.observations["prod/web"].detail
    assert detail["baseline"] is None
    assert detail["baseline_error"] == "influxql error: offset not supported"
    assert report.states["prod/web"] is AlertState.FIRING  # the exhausted budget still counts
    assert report.queries_issued == 2


def test_other_classes_and_plain_rules_never_query_a_baseline() -> None:
    reader = _Reader(RetriesAggregate(retries_total=20.0, requests=100.0))
    engine = Engine(reader, MemoryStateStore(), None, baselines=BaselineCache(reader))
    plain = load_rules({"MESHALERT_RULES": "defaults: {retries: {ratio_above: 0.5}}"}, now_s=0)
    anomaly = load_rules({"MESHALERT_RULES": ANOMALY}, now_s=0.0)
    evaluate_class(engine, plain, AlertClass.RETRIES, CYCLE)
    evaluate_class(engine, anomaly, AlertClass.FAILURES, CYCLE)
    assert reader.bucket_queries == []


def test_a_reader_without_bucket_queries_gets_no_baseline_source() -> None:
    @dataclass
    class WindowOnly:
        def fetch(self, query: ClassQuery) -> ClassAggregates:
            return ClassAggregates(query, {}, "q")

    assert Engine(WindowOnly(), MemoryStateStore(), None).baselines is None
    reader = _Reader(RetriesAggregate())
    assert Engine(reader, MemoryStateStore(), None).baselines is not None
