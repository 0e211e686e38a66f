"""The baseline model: span and bucket arithmetic, assembling rows, the median (pure)."""

from __future__ import annotations

import statistics
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.alert_classes import AlertClass
from meshalert.queries.baseline import (
    LOOKBACK_MS,
    MIN_BUCKETS,
    RETRY_RATIO_SELECTS,
    Baseline,
    BucketQuery,
    BucketRow,
    RatioBucket,
    assemble_buckets,
    baseline_of,
    baseline_query,
)
from meshalert.queries.model import CLASS_SELECTS, ROUTER_GROUP, SeriesSelect

END = 1_700_000_460_000
W = 300_000


def test_a_day_of_five_minute_buckets_ends_where_the_current_window_starts() -> None:
    q = baseline_query(W, END)
    assert q.bucket_count == 287
    assert q.stop_ms == END - W
    assert q.start_ms == END - LOOKBACK_MS
    assert (q.start_ms - q.offset_ms) % W == 0 and 0 <= q.offset_ms < W


def test_a_window_that_does_not_divide_the_day_keeps_whole_buckets_inside_it() -> None:
    q = baseline_query(420_000, END)
    assert q.bucket_count == (LOOKBACK_MS - 420_000) // 420_000
    assert q.start_ms >= END - LOOKBACK_MS
    assert (q.stop_ms - q.start_ms) == q.bucket_count * 420_000


def test_the_ratio_parts_are_the_retries_class_own_selects() -> None:
    assert [s.name for s in RETRY_RATIO_SELECTS] == ["retries_total", "requests"]
    own = {replace(s, group_by=ROUTER_GROUP) for s in CLASS_SELECTS[AlertClass.RETRIES]}
    assert set(RETRY_RATIO_SELECTS) <= own
    # Per router, as the retries window: a DaemonSet mesh's two routers are never summed.
    assert all(s.group_by == ("namespace", "service", "router") for s in RETRY_RATIO_SELECTS)


@given(
    window=st.integers(1, 3_600_000),
    end=st.integers(10**11, 10**13),
    ts=st.integers(0, 2 * LOOKBACK_MS),
)
@settings(max_examples=200)
def test_bucket_start_is_aligned_to_the_end_and_holds_the_instant(
    window: int, end: int, ts: int
) -> None:
    q = BucketQuery(window, end, lookback_ms=max(LOOKBACK_MS, 2 * window))
    instant = end - 2 * LOOKBACK_MS + ts
    start = q.bucket_start(instant)
    if not q.start_ms <= instant < q.stop_ms:
        assert start is None
        return
    assert start is not None and start <= instant < start + window
    assert (end - start) % window == 0
    assert start % window == q.offset_ms


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_ms": 0, "end_ms": END}, "window_ms must be positive"),
        ({"window_ms": W, "end_ms": END, "lookback_ms": W}, "leaves no bucket"),
        (
            {
                "window_ms": W,
                "end_ms": END,
                "selects": (RETRY_RATIO_SELECTS[0], RETRY_RATIO_SELECTS[0]),
            },
            "duplicate select names",
        ),
        (
            {"window_ms": W, "end_ms": END, "selects": CLASS_SELECTS[AlertClass.ENDPOINTS]},
            r"must sum per \(namespace, service, router\)",
        ),
    ],
)
def test_invalid_queries_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BucketQuery(**kwargs)  # type: ignore[arg-type]


def test_rows_are_summed_per_service_router_and_bucket_and_strays_left_out() -> None:
    q = baseline_query(W, END)
    first = q.start_ms
    out = "outgoing"
    rows = [
        BucketRow("retries_total", "prod", "web", first, 2.0, out),
        BucketRow("retries_total", "prod", "web", first + 10, 1.0, out),  # same bucket
        BucketRow("requests", "prod", "web", first, 30.0, out),
        BucketRow("requests", "prod", "web", first + W, 10.0, out),
        BucketRow("requests", "prod", "web", first, 33.0, "incoming"),  # another router
        BucketRow("requests", "", "legacy", q.stop_ms - 1, 5.0),
        BucketRow("requests", "prod", "web", q.stop_ms, 999.0, out),  # the current window
        BucketRow("requests", "prod", "web", first - 1, 999.0, out),  # before the span
        BucketRow("budget_exhausted", "prod", "web", first, 999.0, out),  # not a select
        BucketRow("requests", "prod", "", first, 999.0, out),  # no service
    ]
    result = assemble_buckets(q, rows, query_text="q")
    assert result.services == {
        "legacy": {"": (RatioBucket(q.stop_ms - W, 0.0, 5.0),)},
        "prod/web": {
            "incoming": (RatioBucket(first, 0.0, 33.0),),
            "outgoing": (RatioBucket(first, 3.0, 30.0), RatioBucket(first + W, 0.0, 10.0)),
        },
    }
    assert result.query_text == "q" and result.queries_issued == 1


def test_the_median_skips_buckets_without_requests() -> None:
    buckets = [RatioBucket(i, float(i), 100.0) for i in range(MIN_BUCKETS)]
    buckets.append(RatioBucket(99, 50.0, 0.0))
    assert baseline_of(buckets) == Baseline(
        statistics.median(i / 100 for i in range(MIN_BUCKETS)), MIN_BUCKETS
    )


def test_too_few_usable_buckets_give_no_baseline() -> None:
    buckets = [RatioBucket(i, 1.0, 10.0) for i in range(MIN_BUCKETS - 1)]
    buckets += [RatioBucket(100 + i, 3.0, 0.0) for i in range(5)]
    assert baseline_of(buckets) == Baseline(None, MIN_BUCKETS - 1)
    assert baseline_of(buckets, min_buckets=MIN_BUCKETS - 1).ratio == pytest.approx(0.1)
    assert baseline_of([]) == Baseline(None, 0)
    assert baseline_of([], min_buckets=0) == Baseline(None, 0)


@given(
    ratios=st.lists(
        st.tuples(st.integers(0, 1000), st.integers(1, 1000)), min_size=MIN_BUCKETS, max_size=60
    )
)
@settings(max_examples=100)
def test_the_median_is_robust_to_a_minority_of_spikes(ratios: list[tuple[int, int]]) -> None:
    buckets = [RatioBucket(i, float(r), float(n)) for i, (r, n) in enumerate(ratios)]
    base = baseline_of(buckets)
    values = sorted(r / n for r, n in ratios)
    assert base.buckets == len(ratios)
    assert base.ratio is not None and values[0] <= base.ratio <= values[-1]
    below = sum(v <= base.ratio for v in values)
    above = sum(v >= base.ratio for v in values)
    assert below >= len(values) / 2 and above >= len(values) / 2


def test_baselines_per_service_and_router_from_a_result() -> None:
    q = baseline_query(W, END)
    rows = [
        BucketRow(sel, "ns", "a", q.start_ms + i * W, value, "outgoing")
        for i in range(MIN_BUCKETS)
        for sel, value in (("retries_total", 3.0 + (i == 0) * 50), ("requests", 10.0))
    ]
    # The callee's incoming router sees the same requests plus each retry as a request,
    # and retries nothing: summed, a 30 % outgoing ratio would read 3 / 23 = 13 %.
    rows += [
        BucketRow("requests", "ns", "a", q.start_ms + i * W, 13.0, "incoming")
        for i in range(MIN_BUCKETS)
    ]
    rows.append(BucketRow("requests", "ns", "b", q.start_ms, 10.0, "outgoing"))
    baselines = assemble_buckets(q, rows, query_text="").baselines()
    assert baselines == {
        "ns/a": {
            "outgoing": Baseline(pytest.approx(0.3), MIN_BUCKETS),  # type: ignore[arg-type]
            "incoming": Baseline(0.0, MIN_BUCKETS),
        },
        "ns/b": {"outgoing": Baseline(None, 1)},
    }


def test_a_select_can_be_looked_up_by_name() -> None:
    q = baseline_query(W, END)
    assert isinstance(q.select("requests"), SeriesSelect)
    with pytest.raises(KeyError):
        q.select("nope")


def test_a_stray_row_does_not_hide_the_rows_after_it() -> None:
    q = baseline_query(W, END)
    rows = [
        BucketRow("requests", "prod", "web", q.stop_ms, 999.0),  # the current window
        BucketRow("budget_exhausted", "prod", "web", q.start_ms, 999.0),  # not a select
        BucketRow("requests", "prod", "", q.start_ms, 999.0),  # no service
        BucketRow("requests", "prod", "web", q.start_ms, 7.0),
    ]
    assert assemble_buckets(q, rows, query_text="").services == {
        "prod/web": {"": (RatioBucket(q.start_ms, 0.0, 7.0),)}
    }


def test_a_bucket_with_retries_but_no_requests_row_has_zero_requests() -> None:
    # Zero, not one (a made-up ratio) nor None (a crash in the median): the bucket is skipped.
    q = baseline_query(W, END)
    result = assemble_buckets(
        q, [BucketRow("retries_total", "ns", "a", q.start_ms, 2.0)], query_text=""
    )
    assert result.services == {"ns/a": {"": (RatioBucket(q.start_ms, 2.0, 0.0),)}}
    assert result.baselines(min_buckets=0) == {"ns/a": {"": Baseline(None, 0)}}


def test_the_result_keeps_its_query_and_how_many_requests_it_took() -> None:
    q = baseline_query(W, END)
    result = assemble_buckets(q, [], query_text="t", queries_issued=2)
    assert result.query is q
    assert (result.query_text, result.queries_issued, result.services) == ("t", 2, {})


def test_one_bucket_is_enough_when_the_minimum_allows_it() -> None:
    assert baseline_of([RatioBucket(0, 1.0, 4.0)], min_buckets=1) == Baseline(0.25, 1)
    assert baseline_of([RatioBucket(0, 1.0, 4.0)], min_buckets=2) == Baseline(None, 1)


def test_baselines_pass_the_minimum_on() -> None:
    q = baseline_query(W, END)
    rows = [
        BucketRow("retries_total", "ns", "a", q.start_ms, 1.0),
        BucketRow("requests", "ns", "a", q.start_ms, 10.0),
    ]
    result = assemble_buckets(q, rows, query_text="")
    assert result.baselines() == {"ns/a": {"": Baseline(None, 1)}}
    assert result.baselines(min_buckets=1) == {"ns/a": {"": Baseline(0.1, 1)}}


def test_baseline_query_honours_the_lookback() -> None:
    q = baseline_query(W, END, lookback_ms=13 * W)
    assert q.lookback_ms == 13 * W and q.bucket_count == 12
    assert q.start_ms == END - 13 * W


def test_a_lookback_of_two_windows_leaves_exactly_one_bucket() -> None:
    q = BucketQuery(W, END, lookback_ms=2 * W)
    assert q.bucket_count == 1 and (q.start_ms, q.stop_ms) == (END - 2 * W, END - W)
    with pytest.raises(ValueError, match="leaves no bucket of 300000 ms before the current window"):
        BucketQuery(W, END, lookback_ms=2 * W - 1)


def test_a_sum_not_grouped_per_router_is_refused() -> None:
    # Summing a DaemonSet mesh's two routers would halve the retry ratio.
    per_service = replace(RETRY_RATIO_SELECTS[0], group_by=("namespace", "service"))
    assert per_service.aggregate.name == "SUM"
    with pytest.raises(ValueError, match="must sum per"):
        BucketQuery(W, END, selects=(per_service,))


def test_an_unknown_select_names_itself_in_the_error() -> None:
    with pytest.raises(KeyError) as info:
        baseline_query(W, END).select("nope")
    assert info.value.args == ("nope",)
