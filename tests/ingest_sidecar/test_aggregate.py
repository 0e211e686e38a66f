"""IntervalAggregator against straightforward reference computations (numpy, plain sums)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest_sidecar.aggregate import (
    PERCENTILES,
    FlushResult,
    IntervalAggregator,
    KindRegistry,
    align_interval,
    percentile_linear,
)
from ingest_sidecar.model import MetricKind, SeriesKey
from meshalert.histogram import (
    BOUNDS,
    LE_LABELS,
    RELATIVE_WIDTH,
    bucket_index,
    parse_le,
    percentile_from_buckets,
)
from meshalert.lineprotocol import Point, decode, encode

HOST = "node-a"
T0 = 1_700_000_000_000
LATENCY = SeriesKey("linkerd_request_latency_ms", (("scope", "service"), ("service", "nginx")))
REQUESTS = SeriesKey("linkerd_requests", (("scope", "service"), ("service", "nginx")))
KEYS = [SeriesKey(f"linkerd_m{i}", (("service", f"svc{i % 3}"),)) for i in range(5)]

RATES = st.sampled_from([1.0, 0.5, 0.25, 0.1, 0.01, 0.3])
LATENCIES = st.one_of(
    st.integers(min_value=0, max_value=600_000).map(float),  # Linkerd sends truncated ints
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
)
FAST = settings(max_examples=150, deadline=None)


def main_points(result: FlushResult, measurement: str) -> list[Point]:
    return [p for p in result.points if p.measurement == measurement]


def only_point(result: FlushResult, measurement: str) -> Point:
    points = main_points(result, measurement)
    assert len(points) == 1, points
    return points[0]


def bucket_counts(result: FlushResult, measurement: str) -> dict[float, float]:
    """Per-bucket counts of one interval keyed by the parsed ``le`` bound."""
    counts: dict[float, float] = {}
    for point in main_points(result, measurement + "_bucket"):
        le = parse_le(point.tag_dict()["le"])
        assert le not in counts, "one point per bucket"
        counts[le] = float(point.field_dict()["count"])
    return counts


# --- counters -----------------------------------------------------------------------------


@FAST
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(KEYS) - 1),
            st.one_of(st.integers(0, 10**6).map(float), st.floats(0.0, 1e6)),
            RATES,
        ),
        min_size=1,
        max_size=60,
    )
)
def test_counter_count_and_samples_match_reference(
    samples: list[tuple[int, float, float]],
) -> None:
    agg = IntervalAggregator()
    expected_terms: dict[SeriesKey, list[float]] = defaultdict(list)
    for idx, delta, rate in samples:
        assert agg.add(KEYS[idx], MetricKind.COUNTER, delta, rate)
        expected_terms[KEYS[idx]].append(delta / rate)

    result = agg.flush(T0, HOST)

    assert result.series == len(expected_terms)
    for key, terms in expected_terms.items():
        fields = only_point(result, key.measurement).field_dict()
        assert fields["samples"] == len(terms)
        assert isinstance(fields["samples"], int)
        assert isinstance(fields["count"], float)
        assert fields["count"] == pytest.approx(math.fsum(terms), rel=1e-12, abs=1e-9)


def test_counter_mixed_rates_in_one_series() -> None:
    agg = IntervalAggregator()
    agg.add(REQUESTS, MetricKind.COUNTER, 1, 0.01)
    agg.add(REQUESTS, MetricKind.COUNTER, 3, 0.5)
    agg.add(REQUESTS, MetricKind.COUNTER, 2, 1.0)
    fields = only_point(agg.flush(T0, HOST), "linkerd_requests").field_dict()
    assert fields["count"] == pytest.approx(100 + 6 + 2)
    assert fields["samples"] == 3


def test_counters_and_timers_are_only_written_for_the_interval_they_were_seen_in() -> None:
    agg = IntervalAggregator()
    agg.add(REQUESTS, MetricKind.COUNTER, 1)
    agg.add(LATENCY, MetricKind.TIMER, 12)
    first = agg.flush(T0, HOST)
    assert {p.measurement for p in first.points} >= {"linkerd_requests", LATENCY.measurement}

    second = agg.flush(T0 + 10_000, HOST)
    assert second.points == []
    assert second.series == 0
    assert agg.held_series == 0


# --- timers: per-interval fields -----------------------------------------------------------


@FAST
@given(
    st.lists(st.tuples(LATENCIES, RATES), min_size=1, max_size=80),
    st.sampled_from([MetricKind.TIMER, MetricKind.HISTOGRAM]),
)
def test_timer_fields_match_numpy(samples: list[tuple[float, float]], kind: MetricKind) -> None:
    agg = IntervalAggregator()
    for value, rate in samples:
        assert agg.add(LATENCY, kind, value, rate)
    fields = only_point(agg.flush(T0, HOST), LATENCY.measurement).field_dict()

    raw = np.array([v for v, _ in samples])
    weights = np.array([1.0 / r for _, r in samples])
    assert fields["count"] == pytest.approx(weights.sum(), rel=1e-12)
    # `sum` is scaled by 1/rate like `count`, so mean == sum / count (rate-weighted mean).
    assert fields["sum"] == pytest.approx(float((raw * weights).sum()), rel=1e-9, abs=1e-9)
    assert fields["mean"] == pytest.approx(float(np.average(raw, weights=weights)), rel=1e-9)
    assert fields["mean"] == pytest.approx(float(fields["sum"]) / float(fields["count"]))
    assert fields["min"] == raw.min()
    assert fields["max"] == raw.max()
    # Percentiles: unweighted over the kept raw samples, numpy's default linear method.
    for name, q in PERCENTILES:
        assert fields[name] == pytest.approx(float(np.percentile(raw, q)), rel=1e-9, abs=1e-9)
    assert all(isinstance(v, float) for v in fields.values())


@FAST
@given(st.lists(st.tuples(LATENCIES, RATES), min_size=1, max_size=80))
def test_bucket_points_are_per_bucket_scaled_counts_for_non_empty_buckets(
    samples: list[tuple[float, float]],
) -> None:
    agg = IntervalAggregator()
    for value, rate in samples:
        agg.add(LATENCY, MetricKind.TIMER, value, rate)
    result = agg.flush(T0, HOST)

    expected: dict[str, float] = defaultdict(float)
    for value, rate in samples:
        expected[LE_LABELS[bucket_index(value)]] += 1.0 / rate
    buckets = main_points(result, LATENCY.measurement + "_bucket")
    got = {p.tag_dict()["le"]: p.field_dict()["count"] for p in buckets}
    assert got.keys() == expected.keys()  # non-empty buckets only, each once
    for label, count in expected.items():
        assert got[label] == pytest.approx(count, rel=1e-12)
    total = only_point(result, LATENCY.measurement).field_dict()["count"]
    assert math.fsum(float(c) for c in got.values()) == pytest.approx(total, rel=1e-12)
    for point in buckets:
        assert point.tag_dict() == {
            **dict(LATENCY.tags),
            "host": HOST,
            "le": point.tag_dict()["le"],
        }
        assert list(point.tags) == sorted(point.tags)
        assert point.timestamp_ms == T0


# --- timers: percentiles from merged buckets ------------------------------------------------

SIDECAR_RATES = st.sampled_from([1.0, 0.5, 0.25, 0.125])  # 1/rate exact: weights are integers


def reference_candidates(expanded: np.ndarray, q: float) -> list[float]:
    """The order statistic a bucket estimate must land near: numpy's inverted CDF at ``q``.

    Linear interpolation between two order statistics in different buckets can land anywhere
    between them, so the bucket estimator is held to the order statistic it targets. When
    ``q * n / 100`` is an exact integer k, float rounding of the summed counts may pick the
    (k+1)-th sample instead; both are accepted then.
    """
    ordered = np.sort(expanded)
    n = len(ordered)
    rank = Fraction(str(q)) * n / 100
    candidates = [float(np.percentile(expanded, q, method="inverted_cdf"))]
    if rank.denominator == 1 and int(rank) < n:
        candidates.append(float(ordered[int(rank)]))
    return candidates


def within_bucket_width(estimate: float, truth: float) -> bool:
    # truth lies in (upper * (1 - RELATIVE_WIDTH), upper]; so does a correct estimate, hence
    # |estimate - truth| < RELATIVE_WIDTH * upper <= RELATIVE_WIDTH * truth / (1 - RW).
    # The first bucket (0, 1] is a whole unit wide: that is the absolute slack.
    if truth <= 1.0:
        return bool(abs(estimate - truth) <= 1.0 + 1e-9)
    upper = truth / (1.0 - RELATIVE_WIDTH)
    return bool(abs(estimate - truth) <= RELATIVE_WIDTH * upper * (1 + 1e-9))


@FAST
@given(
    st.lists(  # sidecars
        st.tuples(
            SIDECAR_RATES,
            st.lists(st.lists(LATENCIES, max_size=25), min_size=1, max_size=4),  # intervals
        ),
        min_size=1,
        max_size=4,
    ).filter(lambda hosts: any(any(iv) for _, ivs in hosts for iv in ivs))
)
def test_percentile_from_merged_buckets_across_hosts_and_intervals(
    hosts: list[tuple[float, list[list[float]]]],
) -> None:
    merged: dict[float, float] = defaultdict(float)
    expanded: list[float] = []  # each raw sample repeated 1/rate times: the weighted truth
    for host_no, (rate, intervals) in enumerate(hosts):
        agg = IntervalAggregator()
        for i, values in enumerate(intervals):
            for value in values:
                agg.add(LATENCY, MetricKind.TIMER, value, rate)
                expanded.extend([value] * round(1.0 / rate))
            result = agg.flush(T0 + i * 10_000, f"host{host_no}")
            for le, count in bucket_counts(result, LATENCY.measurement).items():
                merged[le] += count

    assert math.fsum(merged.values()) == pytest.approx(len(expanded))
    data = np.array(expanded)
    for _, q in PERCENTILES:
        estimate = percentile_from_buckets(merged, q)
        assert estimate is not None
        truths = reference_candidates(data, q)
        assert any(within_bucket_width(estimate, t) for t in truths), (q, estimate, truths)


def test_merged_percentile_on_a_realistic_latency_distribution() -> None:
    rng = np.random.default_rng(7)
    merged: dict[float, float] = defaultdict(float)
    raw: list[float] = []
    for host in range(3):
        agg = IntervalAggregator()
        for interval in range(6):
            values = np.floor(rng.lognormal(mean=3.0, sigma=0.8, size=400))
            for v in values:
                agg.add(LATENCY, MetricKind.TIMER, float(v), 0.01)
            raw.extend(values.tolist())
            result = agg.flush(T0 + interval * 10_000, f"h{host}")
            for le, count in bucket_counts(result, LATENCY.measurement).items():
                merged[le] += count
    for _, q in PERCENTILES:
        estimate = percentile_from_buckets(merged, q)
        assert estimate is not None
        truth = float(np.percentile(raw, q))
        assert abs(estimate - truth) <= RELATIVE_WIDTH / (1 - RELATIVE_WIDTH) * truth + 1.0


# --- timers: bounded memory ---------------------------------------------------------------


@FAST
@given(st.lists(st.tuples(LATENCIES, RATES), min_size=1, max_size=120), st.integers(1, 20))
def test_timer_beyond_sample_cap_keeps_exact_aggregates(
    samples: list[tuple[float, float]], cap: int
) -> None:
    agg = IntervalAggregator(max_samples_per_series=cap)
    for value, rate in samples:
        agg.add(LATENCY, MetricKind.TIMER, value, rate)
    result = agg.flush(T0, HOST)
    fields = only_point(result, LATENCY.measurement).field_dict()

    raw = [v for v, _ in samples]
    assert fields["count"] == pytest.approx(math.fsum(1 / r for _, r in samples), rel=1e-9)
    assert fields["sum"] == pytest.approx(math.fsum(v / r for v, r in samples), rel=1e-9, abs=1e-9)
    assert (fields["min"], fields["max"]) == (min(raw), max(raw))
    expected: dict[float, float] = defaultdict(float)
    for value, rate in samples:
        expected[parse_le(LE_LABELS[bucket_index(value)])] += 1 / rate
    got = bucket_counts(result, LATENCY.measurement)
    assert got.keys() == expected.keys()
    for le, count in expected.items():
        assert got[le] == pytest.approx(count, rel=1e-9)
    for name, _ in PERCENTILES:
        assert min(raw) <= float(fields[name]) <= max(raw)


def test_reservoir_is_reproducible_and_samples_the_whole_interval() -> None:
    def run(seed: int) -> dict[str, object]:
        agg = IntervalAggregator(max_samples_per_series=100, seed=seed)
        for v in range(10_000):  # a late-biased cap would report p50 ~ 50
            agg.add(LATENCY, MetricKind.TIMER, float(v))
        return dict(only_point(agg.flush(T0, HOST), LATENCY.measurement).fields)

    first = run(1)
    assert first == run(1)
    assert first["count"] == 10_000.0
    assert 3_000 < float(first["p50"]) < 7_000  # type: ignore[arg-type]


# --- gauges -------------------------------------------------------------------------------


@FAST
@given(
    st.lists(
        st.one_of(st.none(), st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=3)),
        min_size=1,
        max_size=12,
    ),
    st.integers(1, 5),
)
def test_gauge_last_value_carry_forward_and_expiry(
    schedule: list[list[float] | None], expiry: int
) -> None:
    key = SeriesKey("linkerd_loadbalancer_available", (("client", "nginx"),))
    agg = IntervalAggregator(gauge_expiry_intervals=expiry)
    last: float | None = None
    unseen = 0
    for i, values in enumerate(schedule):
        for v in values or []:
            agg.add(key, MetricKind.GAUGE, v)
        if values:
            last, unseen = values[-1], 0
        elif last is not None:
            unseen += 1
            if unseen >= expiry:  # dropped at the flush of its expiry-th unseen interval
                last = None
        result = agg.flush(T0 + i * 10_000, HOST)
        points = main_points(result, key.measurement)
        if last is None:
            assert points == []
            assert agg.held_series == 0  # forgotten, not just hidden
        else:
            assert [p.field_dict() for p in points] == [{"value": last}]
            assert points[0].timestamp_ms == T0 + i * 10_000
            assert agg.held_series == 1


def test_gauge_default_expiry_is_three_unseen_intervals() -> None:
    key = SeriesKey("linkerd_retries_budget", ())
    agg = IntervalAggregator()
    agg.add(key, MetricKind.GAUGE, 5)
    agg.add(key, MetricKind.GAUGE, 7)
    emitted = [
        bool(main_points(agg.flush(T0 + i * 10_000, HOST), key.measurement)) for i in range(5)
    ]
    assert emitted == [True, True, True, False, False]
    agg.add(key, MetricKind.GAUGE, 1)
    assert only_point(agg.flush(T0 + 50_000, HOST), key.measurement).field_dict() == {"value": 1.0}


# --- sets ---------------------------------------------------------------------------------


@FAST
@given(st.lists(st.text(max_size=4), max_size=40))
def test_set_counts_distinct_members_per_interval(members: list[str]) -> None:
    key = SeriesKey("linkerd_users", ())
    agg = IntervalAggregator()
    for m in members:
        agg.add(key, MetricKind.SET, 0.0, set_member=m)
    points = main_points(agg.flush(T0, HOST), key.measurement)
    if members:
        assert [p.field_dict() for p in points] == [{"count": float(len(set(members)))}]
    else:
        assert points == []
    assert main_points(agg.flush(T0 + 1, HOST), key.measurement) == []


# --- cardinality guard --------------------------------------------------------------------


@FAST
@given(st.integers(0, 8), st.lists(st.integers(0, 15), min_size=1, max_size=60))
def test_cardinality_guard(limit: int, key_ids: list[int]) -> None:
    keys = [SeriesKey(f"linkerd_k{i}", ()) for i in range(16)]
    agg = IntervalAggregator(max_series=limit)
    admitted: list[int] = []
    refused_samples = 0
    for i in key_ids:
        accepted = agg.add(keys[i], MetricKind.COUNTER, 1)
        if i in admitted:
            assert accepted  # an existing series is always accepted
        elif len(admitted) < limit:
            assert accepted
            admitted.append(i)
        else:
            assert not accepted
            refused_samples += 1
    result = agg.flush(T0, HOST)
    assert result.series == len(admitted)
    assert {p.measurement for p in result.points} == {keys[i].measurement for i in admitted}
    assert result.rejected_samples == refused_samples
    assert result.rejected_series == len(set(key_ids) - set(admitted))
    for i in admitted:
        assert only_point(result, keys[i].measurement).field_dict()["samples"] == key_ids.count(i)
    # Counters are forgotten at flush: the next interval starts with an empty guard.
    assert agg.held_series == 0
    nxt = agg.flush(T0 + 1, HOST)
    assert (nxt.rejected_samples, nxt.rejected_series) == (0, 0)


def test_live_gauges_count_against_the_guard_until_they_expire() -> None:
    agg = IntervalAggregator(max_series=1, gauge_expiry_intervals=1)
    gauge, counter = SeriesKey("g", ()), SeriesKey("c", ())
    assert agg.add(gauge, MetricKind.GAUGE, 1)
    assert not agg.add(counter, MetricKind.COUNTER, 1)
    assert agg.add(gauge, MetricKind.GAUGE, 2)
    agg.flush(T0, HOST)
    assert agg.held_series == 1
    assert not agg.add(counter, MetricKind.COUNTER, 1)
    result = agg.flush(T0 + 1, HOST)  # gauge unseen for 1 interval: expires
    assert result.expired_gauges == 1
    assert agg.held_series == 0
    assert agg.add(counter, MetricKind.COUNTER, 1)


# --- odd values ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MetricKind))
@pytest.mark.parametrize(
    ("value", "rate"),
    [
        (math.nan, 1.0),
        (math.inf, 1.0),
        (-math.inf, 0.5),
        (1.0, 0.0),
        (1.0, -0.5),
        (1.0, 1.5),
        (1.0, math.nan),
        (1.0, math.inf),
    ],
)
def test_unusable_samples_are_skipped_and_counted(
    kind: MetricKind, value: float, rate: float
) -> None:
    agg = IntervalAggregator()
    assert not agg.add(REQUESTS, kind, value, rate)
    assert agg.add(LATENCY, MetricKind.TIMER, 5.0)
    result = agg.flush(T0, HOST)
    assert result.invalid_samples == 1
    assert {p.measurement for p in result.points} == {
        LATENCY.measurement,
        LATENCY.measurement + "_bucket",
    }
    assert agg.flush(T0 + 1, HOST).invalid_samples == 0


def test_an_overflowing_sample_is_refused_and_the_real_requests_kept() -> None:
    """``requests:1|c|@1e-320`` (1e320 requests) amid 100 real ones: the 100 stay."""
    agg = IntervalAggregator()
    for _ in range(100):
        assert agg.add(REQUESTS, MetricKind.COUNTER, 1.0)
    assert not agg.add(REQUESTS, MetricKind.COUNTER, 1.0, 1e-320)
    result = agg.flush(T0, HOST)
    fields = only_point(result, REQUESTS.measurement).field_dict()
    assert fields == {"count": 100.0, "samples": 100}
    assert result.nonfinite_samples == 1 and result.nonfinite_series == 0


def test_two_huge_counter_lines_keep_the_first_and_count_the_second() -> None:
    agg = IntervalAggregator()
    assert agg.add(REQUESTS, MetricKind.COUNTER, 1e308)
    assert not agg.add(REQUESTS, MetricKind.COUNTER, 1e308)
    assert agg.add(REQUESTS, MetricKind.COUNTER, 5.0)
    result = agg.flush(T0, HOST)
    assert only_point(result, REQUESTS.measurement).field_dict()["count"] == 1e308 + 5.0
    assert result.nonfinite_samples == 1


def test_timer_overflow_keeps_the_finite_fields_and_reports_the_series() -> None:
    agg = IntervalAggregator()
    assert agg.add(LATENCY, MetricKind.TIMER, 1e308)
    assert not agg.add(LATENCY, MetricKind.TIMER, 1e308)  # sum would overflow
    assert agg.add(LATENCY, MetricKind.TIMER, -1e308)
    assert agg.add(LATENCY, MetricKind.TIMER, 1e308)  # sum back to 1e308: fine
    result = agg.flush(T0, HOST)
    fields = only_point(result, LATENCY.measurement).field_dict()
    assert fields["count"] == 3.0 and fields["max"] == 1e308 and fields["min"] == -1e308
    assert all(math.isfinite(v) for v in fields.values())  # type: ignore[arg-type]
    assert result.nonfinite_samples == 1
    for point in result.points:
        encode(point)


def test_timer_spanning_the_whole_float_range_stays_finite() -> None:
    agg = IntervalAggregator()
    # Percentiles between -1.7e308 and 1.7e308: their difference overflows, the blend not.
    for value in (1.7e308, -1.7e308, 1.7e308):
        agg.add(LATENCY, MetricKind.TIMER, value)
    result = agg.flush(T0, HOST)
    fields = only_point(result, LATENCY.measurement).field_dict()
    assert fields["count"] == 3.0
    assert all(math.isfinite(v) for v in fields.values())  # type: ignore[arg-type]
    assert fields["p50"] == 1.7e308 and fields["p90"] == 1.7e308


@FAST
@given(
    st.lists(
        st.tuples(
            st.floats(allow_nan=False, allow_infinity=False),
            st.floats(min_value=1e-320, max_value=1.0, exclude_min=False),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_any_finite_samples_give_finite_encodable_points_and_count_what_is_refused(
    samples: list[tuple[float, float]],
) -> None:
    """Whatever finite values and rates arrive, every point is finite and encodable, and
    every sample is either aggregated or counted."""
    agg = IntervalAggregator()
    kept_counter = kept_timer = 0
    for value, rate in samples:
        kept_counter += agg.add(REQUESTS, MetricKind.COUNTER, value, rate)
        kept_timer += agg.add(LATENCY, MetricKind.TIMER, value, rate)
    result = agg.flush(T0, HOST)
    assert kept_counter + kept_timer + result.nonfinite_samples == 2 * len(samples)
    for point in result.points:
        encode(point)
        for name, value in point.fields:
            assert math.isfinite(value), (point.measurement, name)  # type: ignore[arg-type]
    if kept_counter:
        assert only_point(result, REQUESTS.measurement).field_dict()["samples"] == kept_counter
    if kept_timer:
        timer = only_point(result, LATENCY.measurement).field_dict()
        assert timer["min"] <= timer["max"]  # type: ignore[operator]
        for name, _ in PERCENTILES:
            if name in timer:
                assert timer["min"] <= timer[name] <= timer["max"]  # type: ignore[operator]


@FAST
@example([-1.7e308, 1.7e308], 50.0)
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=30),
    st.floats(0, 100),
)
def test_percentile_is_finite_and_within_the_range(values: list[float], q: float) -> None:
    ordered = sorted(values)
    p = percentile_linear(ordered, q)
    assert math.isfinite(p) and ordered[0] <= p <= ordered[-1]


@pytest.mark.parametrize("other", [MetricKind.SET, MetricKind.TIMER, MetricKind.GAUGE])
def test_another_type_under_a_counters_name_is_refused_not_merged(other: MetricKind) -> None:
    agg = IntervalAggregator()
    for _ in range(100):
        agg.add(REQUESTS, MetricKind.COUNTER, 1.0)
    assert not agg.add(REQUESTS, other, 7.0, set_member="x" if other is MetricKind.SET else None)
    result = agg.flush(T0, HOST)
    assert only_point(result, REQUESTS.measurement).field_dict() == {"count": 100.0, "samples": 100}
    assert result.type_clash_samples == 1


def test_the_first_type_seen_keeps_the_name_across_intervals() -> None:
    kinds = KindRegistry(100)
    first = IntervalAggregator(kinds=kinds)
    first.add(REQUESTS, MetricKind.COUNTER, 1.0)
    first.flush(T0, HOST)
    # A later interval where the set line arrives before the real counter.
    later = IntervalAggregator(kinds=kinds)
    assert not later.add(REQUESTS, MetricKind.SET, 0.0, set_member="evil")
    assert later.add(REQUESTS, MetricKind.COUNTER, 3.0)
    result = later.flush(T0 + 10_000, HOST)
    assert only_point(result, REQUESTS.measurement).field_dict()["count"] == 3.0
    assert result.type_clash_samples == 1


def test_histogram_and_timer_share_a_name() -> None:
    agg = IntervalAggregator()
    assert agg.add(LATENCY, MetricKind.TIMER, 5.0)
    assert agg.add(LATENCY, MetricKind.HISTOGRAM, 7.0)
    assert agg.flush(T0, HOST).type_clash_samples == 0


def test_kind_registry_is_bounded() -> None:
    kinds = KindRegistry(10)
    for i in range(1000):
        kinds.claim(SeriesKey(f"m{i}", ()), MetricKind.COUNTER)
    assert len(kinds) == 10


def test_plain_string_kind_is_normalised() -> None:
    agg = IntervalAggregator()
    assert agg.add(REQUESTS, "c", 2)  # type: ignore[arg-type]
    assert only_point(agg.flush(T0, HOST), REQUESTS.measurement).field_dict()["count"] == 2.0
    with pytest.raises(ValueError):
        agg.add(REQUESTS, "x", 2)  # type: ignore[arg-type]


# --- points: tags, timestamps, encoding -----------------------------------------------------


@FAST
@given(
    st.dictionaries(
        st.sampled_from(["router", "scope", "service", "namespace", "le_x", "a", "zz", "host"]),
        st.text(alphabet="abc-_ =,", max_size=5),
        max_size=6,
    ),
    st.integers(-(2**40), 2**42),
)
def test_points_carry_host_tag_interval_timestamp_and_round_trip(
    tags: dict[str, str], start: int
) -> None:
    key = SeriesKey("linkerd_x", tuple(sorted(tags.items())))
    agg = IntervalAggregator()
    agg.add(key, MetricKind.COUNTER, 1)
    agg.add(SeriesKey("linkerd_t", key.tags), MetricKind.TIMER, 3)
    agg.add(SeriesKey("linkerd_g", key.tags), MetricKind.GAUGE, 0.5)
    agg.add(SeriesKey("linkerd_s", key.tags), MetricKind.SET, 0, set_member="m")
    result = agg.flush(start, HOST)
    expected = {k: v for k, v in tags.items() if v != "" and k != "host"} | {"host": HOST}
    assert result.series == 4
    for point in result.points:
        assert point.timestamp_ms == start
        extra = {"le"} if point.measurement.endswith("_bucket") else set()
        assert {k: v for k, v in point.tag_dict().items() if k not in extra} == expected
        assert point == Point.make(point.measurement, point.tag_dict(), point.field_dict(), start)
        assert decode(encode(point)) == point


# --- align_interval -----------------------------------------------------------------------


@FAST
@given(st.integers(-(2**45), 2**45), st.integers(1, 10**8))
def test_align_interval(now: int, interval: int) -> None:
    start = align_interval(now, interval)
    assert start % interval == 0
    assert start <= now < start + interval
    assert align_interval(start, interval) == start
    assert align_interval(start + interval, interval) == start + interval


@pytest.mark.parametrize("interval", [0, -10_000])
def test_align_interval_rejects_non_positive_intervals(interval: int) -> None:
    with pytest.raises(ValueError, match="interval_ms"):
        align_interval(1, interval)


def test_bucket_bounds_cover_test_values() -> None:
    # The merged-percentile tolerance assumes test values stay below the +Inf bucket.
    assert BOUNDS[-1] > 1e6


# --- pinned by the mutation run (python -m benchmarks.mutation aggregate) -------------------


def test_an_ordinary_timer_is_not_reported_as_overflowing() -> None:
    agg = IntervalAggregator()
    for value in (1.0, 2.0, 30.0):
        agg.add(LATENCY, MetricKind.TIMER, value)
    result = agg.flush(T0, HOST)
    assert result.nonfinite_series == 0
    assert set(only_point(result, LATENCY.measurement).field_dict()) == {
        "count", "sum", "min", "max", "mean", *(name for name, _ in PERCENTILES)
    }  # fmt: skip


def test_a_sum_that_overflows_only_at_flush_drops_sum_and_mean_and_counts_the_series() -> None:
    # Accepted one by one (the running sum stays finite: 1e308, 0, 1e308), but the rate-1
    # group alone sums to 2e308 at flush: sum and mean are left out, the rest written.
    agg = IntervalAggregator()
    for value, rate in [(1e308, 1.0), (-5e307, 0.5), (1e308, 1.0)]:
        assert agg.add(LATENCY, MetricKind.TIMER, value, rate)
    result = agg.flush(T0, HOST)
    assert result.nonfinite_series == 1
    fields = only_point(result, LATENCY.measurement).field_dict()
    assert "sum" not in fields and "mean" not in fields
    assert (fields["count"], fields["min"], fields["max"]) == (4.0, -5e307, 1e308)


def test_a_timer_sample_whose_count_would_overflow_is_refused() -> None:
    # Each sample at rate 1e-308 stands for 1e308 observations: the second would make the
    # series' count infinite, so it is refused and counted; the first stays.
    agg = IntervalAggregator()
    assert agg.add(LATENCY, MetricKind.TIMER, 0.0, 1e-308)
    assert not agg.add(LATENCY, MetricKind.TIMER, 0.0, 1e-308)
    result = agg.flush(T0, HOST)
    assert result.nonfinite_samples == 1 and result.nonfinite_series == 0
    assert only_point(result, LATENCY.measurement).field_dict()["count"] == pytest.approx(1e308)


@pytest.mark.parametrize(
    "samples",
    [
        [(1e308, 0.5)],  # the first sample alone: 2e308
        [(1e308, 1.0), (1e308, 0.6)],  # the second on top of the first: 1e308 + 1.67e308
    ],
)
def test_a_timer_sample_whose_sum_would_overflow_is_refused(
    samples: list[tuple[float, float]],
) -> None:
    agg = IntervalAggregator()
    *kept, (value, rate) = samples
    for v, r in kept:
        assert agg.add(LATENCY, MetricKind.TIMER, v, r)
    assert not agg.add(LATENCY, MetricKind.TIMER, value, rate)
    result = agg.flush(T0, HOST)
    assert result.nonfinite_samples == 1 and result.nonfinite_series == 0
    assert len(main_points(result, LATENCY.measurement)) == len(kept)


def test_samples_beyond_the_cap_are_accepted_and_percentiles_come_from_the_reservoir() -> None:
    # A reservoir of one sample: every percentile is that one kept value, whatever the spread.
    agg = IntervalAggregator(max_samples_per_series=1)
    assert all(agg.add(LATENCY, MetricKind.TIMER, v) for v in (1.0, 100.0, 1000.0, 5.0))
    fields = only_point(agg.flush(T0, HOST), LATENCY.measurement).field_dict()
    assert fields["count"] == 4.0 and (fields["min"], fields["max"]) == (1.0, 1000.0)
    assert len({fields[name] for name, _ in PERCENTILES}) == 1
    assert fields["p50"] in (1.0, 100.0, 1000.0, 5.0)


def test_the_reservoir_keeps_each_sample_of_the_interval_with_equal_odds() -> None:
    # Algorithm R with a reservoir of one over three samples: each ends up kept about a
    # third of the time over many seeds (an off-by-one in the count of samples seen skews
    # this towards the first).
    runs = 3000
    kept: Counter[float] = Counter()
    for seed in range(runs):
        agg = IntervalAggregator(max_samples_per_series=1, seed=seed)
        for value in (1.0, 2.0, 3.0):
            agg.add(LATENCY, MetricKind.TIMER, value)
        kept[float(only_point(agg.flush(T0, HOST), LATENCY.measurement).field_dict()["p50"])] += 1
    assert set(kept) == {1.0, 2.0, 3.0}
    for value in (1.0, 2.0, 3.0):
        assert abs(kept[value] / runs - 1 / 3) < 0.04, kept


@pytest.mark.parametrize(
    ("values", "q"),
    [
        # Where a + (b - a) * t and b - (b - a) * (1 - t) round differently, numpy takes the
        # second from t = 0.5 up: the same value here, not one ulp off.
        ([1.3436424411240122, 9.81797981049634], 50.0),
        ([0.254458609934608, 5.668583337869574], 50.0),
        ([2.187810373376886, 6.783845030754222], 90.0),
    ],
)
def test_percentile_is_numpys_two_sided_blend_exactly(values: list[float], q: float) -> None:
    assert percentile_linear(values, q) == float(np.percentile(values, q))


@FAST
@given(st.floats(-1e6, 1e6), st.floats(0.0, 1e6))
def test_percentile_of_two_values_at_the_midpoint_is_numpys(a: float, gap: float) -> None:
    values = [a, a + gap]
    assert percentile_linear(values, 50.0) == float(np.percentile(values, 50.0))


def test_percentile_across_the_whole_float_range_is_the_exact_blend() -> None:
    # b - a overflows, so the blend weights each end: -1e308 and 1e308 meet at 0.
    assert percentile_linear([-1e308, 1e308], 50.0) == 0.0
    assert percentile_linear([-1e308, 1e308], 25.0) == -5e307


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_series": -1}, "max_series must be >= 0, got -1"),
        ({"gauge_expiry_intervals": 0}, "gauge_expiry_intervals must be >= 1, got 0"),
        ({"max_samples_per_series": 0}, "max_samples_per_series must be >= 1, got 0"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        IntervalAggregator(**kwargs)


def test_kind_registry_refuses_a_capacity_below_one_naming_it() -> None:
    with pytest.raises(ValueError, match="capacity must be >= 1, got 0"):
        KindRegistry(0)
    assert KindRegistry(1).claim(REQUESTS, MetricKind.COUNTER)


def test_default_guard_holds_100_000_series() -> None:
    agg = IntervalAggregator()
    keys = [SeriesKey("linkerd_requests", (("service", f"s{i}"),)) for i in range(100_001)]
    assert all(agg.add(key, MetricKind.COUNTER, 1.0) for key in keys[:100_000])
    assert not agg.add(keys[-1], MetricKind.COUNTER, 1.0)
    assert agg.flush(T0, HOST).rejected_samples == 1


def test_default_sample_cap_is_10_000_per_series() -> None:
    def p50(samples: int) -> float:
        agg = IntervalAggregator()
        for v in range(samples):
            agg.add(LATENCY, MetricKind.TIMER, float(v))
        return float(only_point(agg.flush(T0, HOST), LATENCY.measurement).field_dict()["p50"])

    assert p50(10_000) == 4999.5  # every sample kept: the exact median
    assert p50(10_001) != 5000.0  # one of 10,001 left out of the reservoir: not the exact one


def _distinct(n: int) -> list[SeriesKey]:
    return [SeriesKey("linkerd_m", (("i", str(i)),)) for i in range(n)]


@pytest.mark.parametrize(
    ("max_series", "refused", "counted"),
    [(0, 2000, 1024), (1100, 1900, 1100), (5, 10, 10)],
)
def test_refused_keys_are_counted_up_to_the_larger_of_max_series_and_1024(
    max_series: int, refused: int, counted: int
) -> None:
    agg = IntervalAggregator(max_series=max_series)
    for key in _distinct(max_series + refused):
        agg.add(key, MetricKind.COUNTER, 1.0)
    result = agg.flush(T0, HOST)
    assert (result.rejected_samples, result.rejected_series) == (refused, counted)


@pytest.mark.parametrize(
    ("max_series", "capacity"),
    [(0, 1024), (1000, 2000)],  # the larger of twice max_series and 1024 keys
)
def test_own_kind_registry_remembers_the_larger_of_twice_max_series_and_1024_keys(
    max_series: int, capacity: int
) -> None:
    def clashes_after(distinct: int) -> int:
        agg = IntervalAggregator(max_series=max_series)
        for key in _distinct(distinct):
            agg.add(key, MetricKind.COUNTER, 1.0)  # claimed even when the guard refuses it
        agg.add(_distinct(1)[0], MetricKind.GAUGE, 1.0)
        return agg.flush(T0, HOST).type_clash_samples

    assert clashes_after(capacity) == 1  # the first key is still known as a counter
    assert clashes_after(capacity + 1) == 0  # forgotten: the least recently seen goes first


def test_a_plain_string_set_kind_keeps_its_members() -> None:
    members = SeriesKey("linkerd_members", ())
    agg = IntervalAggregator()
    for member in ("a", "b", "a"):
        assert agg.add(members, "s", 0.0, set_member=member)  # type: ignore[arg-type]
    assert only_point(agg.flush(T0, HOST), "linkerd_members").field_dict() == {"count": 2.0}


def test_every_unusable_sample_is_counted() -> None:
    agg = IntervalAggregator()
    for value, rate in [(math.nan, 1.0), (1.0, 0.0), (math.inf, 1.0), (1.0, 2.0)]:
        assert not agg.add(REQUESTS, MetricKind.COUNTER, value, rate)
    assert agg.flush(T0, HOST).invalid_samples == 4


def test_every_type_clash_is_counted() -> None:
    agg = IntervalAggregator()
    assert agg.add(REQUESTS, MetricKind.COUNTER, 1.0)
    assert agg.flush(T0, HOST).type_clash_samples == 0
    for kind in (MetricKind.GAUGE, MetricKind.SET, MetricKind.TIMER):
        assert not agg.add(REQUESTS, kind, 1.0)
    assert agg.flush(T0, HOST).type_clash_samples == 3


def test_set_members_given_only_as_values_count_by_value() -> None:
    members = SeriesKey("linkerd_members", ())
    agg = IntervalAggregator()
    for value in (1.0, 2.0, 1.0, 3.0):
        assert agg.add(members, MetricKind.SET, value)
    assert only_point(agg.flush(T0, HOST), "linkerd_members").field_dict() == {"count": 3.0}


def test_each_series_that_overflows_at_flush_is_counted() -> None:
    agg = IntervalAggregator()
    for key in (LATENCY, SeriesKey("linkerd_other_latency_ms", ())):
        for value, rate in [(1e308, 1.0), (-5e307, 0.5), (1e308, 1.0)]:
            assert agg.add(key, MetricKind.TIMER, value, rate)
    agg.add(REQUESTS, MetricKind.TIMER, 1.0)
    assert agg.flush(T0, HOST).nonfinite_series == 2


def test_every_per_interval_count_starts_again_after_a_flush() -> None:
    def counts(result: FlushResult) -> tuple[int, ...]:
        return (
            result.rejected_samples,
            result.rejected_series,
            result.invalid_samples,
            result.nonfinite_samples,
            result.type_clash_samples,
        )

    def one_of_each(agg: IntervalAggregator, n: int) -> None:
        agg.add(SeriesKey("linkerd_new", (("n", str(n)),)), MetricKind.COUNTER, 1.0)  # guard
        agg.add(REQUESTS, MetricKind.COUNTER, math.nan)  # invalid
        agg.add(REQUESTS, MetricKind.COUNTER, 1e308)  # nonfinite: 1e308 is already held
        agg.add(REQUESTS, MetricKind.GAUGE, 1.0)  # type clash

    agg = IntervalAggregator(max_series=1)
    agg.add(REQUESTS, MetricKind.COUNTER, 1e308)
    one_of_each(agg, 1)
    assert counts(agg.flush(T0, HOST)) == (1, 1, 1, 1, 1)
    assert counts(agg.flush(T0 + 1, HOST)) == (0, 0, 0, 0, 0)
    agg.add(REQUESTS, MetricKind.COUNTER, 1e308)
    one_of_each(agg, 2)
    assert counts(agg.flush(T0 + 2, HOST)) == (1, 1, 1, 1, 1)


def test_kind_registry_forgets_the_least_recently_seen_key() -> None:
    kinds = KindRegistry(2)
    a, b, c = _distinct(3)
    assert kinds.claim(a, MetricKind.COUNTER) and kinds.claim(b, MetricKind.COUNTER)
    assert kinds.claim(a, MetricKind.COUNTER)  # a seen again: b is now the oldest
    assert kinds.claim(c, MetricKind.COUNTER)
    assert not kinds.claim(a, MetricKind.GAUGE)  # still known as a counter
    assert kinds.claim(b, MetricKind.GAUGE)  # forgotten, so free to take another type


def test_no_host_tag_when_the_sidecar_has_no_host_name() -> None:
    agg = IntervalAggregator()
    agg.add(SeriesKey("linkerd_x", (("host", "theirs"), ("service", "web"))), MetricKind.GAUGE, 1)
    (point,) = agg.flush(T0, "").points
    assert point.tags == (("service", "web"),)
