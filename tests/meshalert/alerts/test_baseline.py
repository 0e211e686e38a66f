"""BaselineCache: refreshed by cycle time per window length, failures kept out of the cache."""

from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass, field

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.alerts.baseline import (
    DETAIL_BASELINE,
    BaselineCache,
    Baselines,
    shared_cache,
    with_baseline,
)
from meshalert.alerts.model import Observation
from meshalert.queries.baseline import (
    MIN_BUCKETS,
    Baseline,
    BucketQuery,
    BucketResult,
    RatioBucket,
)
from meshalert.queries.model import WindowQueryError
from meshalert.rules import models

MINUTE = 60_000
T0 = 1_700_000_040_000


@dataclass
class _BucketReader:
    """Answers every bucket query with ``ratio`` per bucket for one service (a unit double)."""

    ratio: float = 0.1
    fail: bool = False
    queries: list[BucketQuery] = field(default_factory=list)

    def fetch_buckets(self, query: BucketQuery) -> BucketResult:
        self.queries.append(query)
        if self.fail:
            raise WindowQueryError("store down")
        buckets = tuple(
            RatioBucket(query.start_ms + i * query.window_ms, self.ratio * 100, 100.0)
            for i in range(MIN_BUCKETS)
        )
        return BucketResult(query, {"ns/web": {"outgoing": buckets}}, f"q@{query.end_ms}")


def test_one_query_per_window_per_ttl_driven_by_the_cycle_time() -> None:
    reader = _BucketReader()
    cache = BaselineCache(reader, ttl_ms=15 * MINUTE)
    issued = [cache.get(5 * MINUTE, T0 + m * MINUTE).queries_issued for m in range(31)]
    assert issued == [1] + [0] * 14 + [1] + [0] * 14 + [1]
    assert [q.end_ms for q in reader.queries] == [T0, T0 + 15 * MINUTE, T0 + 30 * MINUTE]
    cached = cache.get(5 * MINUTE, T0 + 31 * MINUTE)
    assert cached.of("ns/web", "outgoing").ratio == pytest.approx(0.1)
    assert cached.of("ns/web", "outgoing").buckets == MIN_BUCKETS
    assert cached.query_text == f"q@{T0 + 30 * MINUTE}"


def test_each_window_length_has_its_own_entry() -> None:
    reader = _BucketReader()
    cache = BaselineCache(reader)
    cache.get(5 * MINUTE, T0)
    cache.get(2 * MINUTE, T0)
    cache.get(5 * MINUTE, T0 + MINUTE)
    assert [q.window_ms for q in reader.queries] == [5 * MINUTE, 2 * MINUTE]


def test_a_cycle_before_the_cached_one_refetches() -> None:
    reader = _BucketReader()
    cache = BaselineCache(reader)
    cache.get(5 * MINUTE, T0)
    assert cache.get(5 * MINUTE, T0 - MINUTE).queries_issued == 1


def test_ttl_zero_queries_every_cycle() -> None:
    reader = _BucketReader()
    cache = BaselineCache(reader, ttl_ms=0)
    assert [cache.get(MINUTE, T0).queries_issued for _ in range(3)] == [1, 1, 1]
    with pytest.raises(ValueError, match="ttl_ms"):
        BaselineCache(reader, ttl_ms=-1)


def test_a_failure_keeps_the_last_good_baselines_and_is_retried_next_cycle() -> None:
    reader = _BucketReader(fail=True)
    cache = BaselineCache(reader, ttl_ms=15 * MINUTE)
    first = cache.get(5 * MINUTE, T0)
    assert (first.services, first.error, first.queries_issued) == ({}, "store down", 1)
    reader.fail = False
    good = cache.get(5 * MINUTE, T0 + MINUTE)  # not cached: retried at once
    assert good.error is None and good.of("ns/web", "outgoing").ratio == pytest.approx(0.1)
    reader.fail, reader.ratio = True, 0.5
    stale = cache.get(5 * MINUTE, T0 + 16 * MINUTE)
    assert stale.error == "store down" and stale.of("ns/web", "outgoing").ratio == pytest.approx(
        0.1
    )
    reader.fail = False
    assert cache.get(5 * MINUTE, T0 + 17 * MINUTE).of("ns/web", "outgoing").ratio == pytest.approx(
        0.5
    )


def test_a_window_too_long_for_the_lookback_has_no_baseline_and_costs_no_query() -> None:
    reader = _BucketReader()
    cache = BaselineCache(reader, lookback_ms=10 * MINUTE)
    result = cache.get(10 * MINUTE, T0)
    assert result.queries_issued == 0 and result.services == {} and result.error
    assert reader.queries == []


def test_the_minimum_bucket_count_is_configurable() -> None:
    reader = _BucketReader()
    assert BaselineCache(reader, min_buckets=MIN_BUCKETS + 1).get(MINUTE, T0).of(
        "ns/web", "outgoing"
    ) == Baseline(None, MIN_BUCKETS)


class _Hashable(_BucketReader):
    __hash__ = object.__hash__


def test_shared_cache_is_one_per_reader_and_does_not_keep_it_alive() -> None:
    a, b = _Hashable(), _Hashable()
    assert shared_cache(a) is shared_cache(a)
    assert shared_cache(a) is not shared_cache(b)
    cache = shared_cache(a)
    assert cache.get(MINUTE, T0).queries_issued == 1 and len(a.queries) == 1
    gone = weakref.ref(a)
    del a
    gc.collect()
    assert gone() is None
    assert cache.get(MINUTE, T0 - MINUTE).error == "the store reader of this baseline cache is gone"


def test_an_unhashable_reader_gets_a_cache_of_its_own() -> None:
    reader = _BucketReader()
    assert shared_cache(reader) is not shared_cache(reader)
    assert shared_cache(reader).get(MINUTE, T0).queries_issued == 1


def test_with_baseline_puts_the_rules_key_and_the_evidence_in_detail() -> None:
    assert DETAIL_BASELINE == models.DETAIL_BASELINE
    detail: dict[str, float | str | None] = {"requests": 100.0, "router": "outgoing"}
    obs = Observation(AlertClass.RETRIES, "ns/web", 0.3, 100.0, detail)
    baselines = Baselines(
        300_000,
        {"ns/web": {"outgoing": Baseline(0.08, 287), "incoming": Baseline(0.0, 287)}},
        span="[a, b)",
        query_text="q",
        queries_issued=1,
    )
    out = with_baseline(obs, baselines)
    assert out.detail == {
        "requests": 100.0,
        "router": "outgoing",
        "baseline": 0.08,
        "baseline_buckets": 287.0,
        "baseline_span": "[a, b)",
    }
    assert obs.detail == {"requests": 100.0, "router": "outgoing"}
    assert models.RetriesRule(anomaly_factor=3).judge(0.3, 100.0, out.detail).breached is True
    unknown = with_baseline(
        Observation(AlertClass.RETRIES, "ns/new", 0.3), Baselines(300_000, error="down")
    )
    assert unknown.detail == {
        "baseline": None,
        "baseline_buckets": 0.0,
        "baseline_span": "",
        "baseline_error": "down",
    }
    no_ratio_test = models.RetriesRule(ratio_above=0.5, anomaly_factor=3)
    assert no_ratio_test.judge(0.3, 1.0, unknown.detail).breached is False


def test_with_baseline_takes_the_judged_routers_baseline_never_another() -> None:
    """Issue 10 item 1 for the anomaly test: the observation judged one router (its
    ``router`` detail, from the router policy), so it is compared with that router's
    median; a router without a baseline gets none, not a neighbour's."""
    baselines = Baselines(
        300_000, {"ns/web": {"outgoing": Baseline(0.3, 287), "incoming": Baseline(0.0, 287)}}
    )

    def judged(router: str) -> Observation:
        obs = Observation(AlertClass.RETRIES, "ns/web", 0.3, 100.0, {"router": router})
        return with_baseline(obs, baselines)

    assert judged("outgoing").detail["baseline"] == 0.3
    assert judged("incoming").detail["baseline"] == 0.0
    assert judged("h2").detail["baseline"] is None
    assert (
        with_baseline(Observation(AlertClass.RETRIES, "ns/web", 0.3), baselines).detail["baseline"]
        is None
    )
