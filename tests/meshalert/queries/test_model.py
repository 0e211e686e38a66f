from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshalert.alert_classes import AlertClass
from meshalert.queries.model import (
    Aggregate,
    ClassQuery,
    EndpointBalancer,
    EndpointHost,
    EndpointsAggregate,
    FailuresAggregate,
    IngestAggregate,
    LatencyAggregate,
    RetriesAggregate,
    SelectRow,
    SeriesSelect,
    ServiceRef,
    assemble,
    class_query,
    cycle_queries,
    service_key,
)

names = st.text(alphabet=st.characters(blacklist_characters="/", blacklist_categories=("Cs",)))


@given(namespace=names, service=names.filter(bool))
def test_service_ref_key_round_trips(namespace: str, service: str) -> None:
    ref = ServiceRef(namespace, service)
    assert ServiceRef.parse(ref.key) == ref
    assert ref.key == (f"{namespace}/{service}" if namespace else service)


def test_service_ref_rejects_a_key_without_service() -> None:
    with pytest.raises(ValueError, match="no service"):
        ServiceRef.parse("prod/")


def test_window_is_half_open_and_positive() -> None:
    q = class_query(AlertClass.FAILURES, window_ms=60_000, end_ms=1_000_000)
    assert (q.start_ms, q.end_ms) == (940_000, 1_000_000)
    with pytest.raises(ValueError, match="window_ms"):
        class_query(AlertClass.FAILURES, window_ms=0, end_ms=1)


def test_selects_must_group_by_service_first() -> None:
    with pytest.raises(ValueError, match="namespace, service"):
        SeriesSelect("x", "m", "count", ("service",), Aggregate.SUM, ("host",))


def test_one_query_per_class_and_distinct_window() -> None:
    qs = cycle_queries(
        {AlertClass.LATENCY: [300_000, 300_000, 600_000], AlertClass.ENDPOINTS: [60_000]},
        end_ms=10**12,
    )
    assert [(q.alert_class, q.window_ms) for q in qs] == [
        (AlertClass.LATENCY, 300_000),
        (AlertClass.LATENCY, 600_000),
        (AlertClass.ENDPOINTS, 60_000),
    ]


def test_service_filter_accepts_keys_and_refs_deduplicated() -> None:
    q = class_query(
        AlertClass.RETRIES, window_ms=1, end_ms=2, services=["a/b", ServiceRef("a", "b"), "c"]
    )
    assert q.services == (ServiceRef("", "c"), ServiceRef("a", "b"))


@given(
    parts=st.lists(
        st.tuples(
            st.sampled_from(["requests", "failures"]),
            st.sampled_from([("", "web"), ("prod", "api"), ("", "db")]),
            st.floats(min_value=0, max_value=1e6),
        ),
        max_size=30,
    ),
    conn=st.lists(
        st.tuples(
            st.sampled_from([("prod", "web"), ("prod", "api"), ("stage", "api"), ("x", "zzz")]),
            st.floats(min_value=0, max_value=1e6),
        ),
        max_size=10,
    ),
)
def test_assemble_sums_rows_per_service(
    parts: list[tuple[str, tuple[str, str], float]], conn: list[tuple[tuple[str, str], float]]
) -> None:
    """Service-scope rows define the services; client-scope connection failures join them by
    service name (``prod/web`` counts for ``web``) and never create a service of their own."""
    query = class_query(AlertClass.FAILURES, window_ms=1, end_ms=2)
    rows = [SelectRow(sel, {"namespace": ns, "service": s}, v) for sel, (ns, s), v in parts]
    rows += [
        SelectRow("service_creation_failures", {"namespace": ns, "service": s}, v)
        for (ns, s), v in conn
    ]
    result = assemble(query, rows, query_text="q")
    expected: dict[str, dict[str, float]] = {}
    for sel, (ns, s), v in parts:
        bucket = expected.setdefault(service_key(ns, s), {})
        bucket[sel] = bucket.get(sel, 0.0) + v
    for (_ns, s), v in conn:
        target = next((k for k in expected if k.rpartition("/")[2] == s), None)
        if target is not None:
            bucket = expected[target]
            bucket["service_creation_failures"] = bucket.get("service_creation_failures", 0.0) + v
    assert set(result.services) == set(expected)
    for key, sums in expected.items():
        agg = result.services[key][""]
        assert isinstance(agg, FailuresAggregate)
        assert agg.requests == pytest.approx(sums.get("requests", 0.0))
        assert agg.failures == pytest.approx(sums.get("failures", 0.0))
        assert agg.service_creation_failures == pytest.approx(
            sums.get("service_creation_failures", 0.0)
        )


def test_client_rows_matching_two_logical_services_are_not_guessed() -> None:
    query = class_query(AlertClass.RETRIES, window_ms=1, end_ms=2)
    rows = [
        SelectRow("requests", {"namespace": "a", "service": "web"}, 10.0),
        SelectRow("requests", {"namespace": "b", "service": "web"}, 10.0),
        SelectRow("budget_exhausted", {"namespace": "c", "service": "web"}, 3.0),
        SelectRow("budget_exhausted", {"namespace": "a", "service": "web"}, 2.0),
    ]
    result = assemble(query, rows, query_text="q")
    assert set(result.services) == {"a/web", "b/web"}
    a, b = result.services["a/web"][""], result.services["b/web"][""]
    assert isinstance(a, RetriesAggregate) and isinstance(b, RetriesAggregate)
    assert (a.budget_exhausted, b.budget_exhausted) == (2.0, 0.0)


def test_assemble_drops_rows_without_service_or_finite_value() -> None:
    query = class_query(AlertClass.ENDPOINTS, window_ms=1, end_ms=2)
    rows = [
        SelectRow("available", {"namespace": "p", "service": "", "host": "h"}, 1.0),
        SelectRow("available", {"namespace": "p", "service": "s", "host": "h"}, math.nan),
        SelectRow("size", {"namespace": "p", "service": "s", "host": "h"}, 4.0),
    ]
    result = assemble(query, rows, query_text="q")
    assert list(result.services) == ["p/s"]
    assert result.services["p/s"][""].hosts == (EndpointHost("h", None, 4.0),)  # type: ignore[union-attr]


def test_routers_are_kept_apart_and_connection_failure_flags_are_not_summed() -> None:
    """Issue 10 item 1: one request is counted by the caller's outgoing and the callee's
    incoming router; item 4: a refused connect is counted once per failure flag."""
    query = class_query(AlertClass.FAILURES, window_ms=1, end_ms=2)
    web = {"namespace": "", "service": "web"}
    rows = [
        SelectRow("requests", {**web, "router": "outgoing"}, 100.0),
        SelectRow("requests", {**web, "router": "incoming"}, 130.0),
        SelectRow("failures", {**web, "router": "incoming"}, 30.0),
        SelectRow(
            "connection_failures", {**web, "router": "outgoing", "failure_flag": "restartable"}, 7
        ),
        SelectRow("connection_failures", {**web, "router": "outgoing", "failure_flag": ""}, 7),
        SelectRow(
            "connection_failures", {**web, "router": "outgoing", "failure_flag": "rejected"}, 6
        ),
    ]
    result = assemble(query, rows, query_text="q")
    assert result.services["web"] == {
        "incoming": FailuresAggregate(requests=130.0, failures=30.0),
        "outgoing": FailuresAggregate(requests=100.0, connection_failures=7.0),
    }


def test_endpoints_keep_each_balancer_of_a_host_apart() -> None:
    """Issue 10 item 2: the daemonset client (3/3 nodes) and the localnode client (1/1 pod)
    of one host must never read as 1 of 3."""
    query = class_query(AlertClass.ENDPOINTS, window_ms=1, end_ms=2)
    base = {"namespace": "p", "service": "s", "host": "h"}
    out = {**base, "router": "outgoing", "client": "ds"}
    inc = {**base, "router": "incoming", "client": "ln"}
    rows = [
        SelectRow("available", out, 3.0),
        SelectRow("size", out, 3.0),
        SelectRow("size_max", out, 3.0),
        SelectRow("available", inc, 1.0),
        SelectRow("size", inc, 1.0),
        SelectRow("size_max", inc, 2.0),
    ]
    result = assemble(query, rows, query_text="q")
    assert result.services["p/s"] == {
        "incoming": EndpointsAggregate((EndpointBalancer("h", 1.0, 1.0, 2.0, "ln"),)),
        "outgoing": EndpointsAggregate((EndpointBalancer("h", 3.0, 3.0, 3.0, "ds"),)),
    }


def test_lookback_selects_start_earlier_and_never_later_than_the_window() -> None:
    q = class_query(AlertClass.ENDPOINTS, window_ms=60_000, end_ms=10_000_000, lookback_ms=600_000)
    assert q.start_of(q.select("size")) == 9_940_000
    assert q.start_of(q.select("size_max")) == 9_400_000
    short = class_query(AlertClass.ENDPOINTS, window_ms=60_000, end_ms=10**7, lookback_ms=1000)
    assert short.start_of(short.select("size_max")) == short.start_ms


def test_ingest_query_reads_newest_per_host_and_assembles_by_host() -> None:
    query = class_query(AlertClass.INGEST, window_ms=60_000, end_ms=120_000)
    assert {s.aggregate for s in query.selects} == {Aggregate.NEWEST}
    assert {s.group_by for s in query.selects} == {("host",)}
    rows = [
        SelectRow("sidecar", {"host": "a"}, 70_000.0),
        SelectRow("requests", {"host": "a"}, 90_000.0),
        SelectRow("requests", {"host": ""}, 65_000.0),
        SelectRow("sidecar", {"host": "b"}, math.nan),
    ]
    result = assemble(query, rows, query_text="q")
    assert result.services == {
        "": {"": IngestAggregate(65_000)},
        "a": {"": IngestAggregate(90_000)},
    }


def test_a_newest_select_groups_by_host_only() -> None:
    with pytest.raises(ValueError, match="groups by host only"):
        SeriesSelect("x", "m", "f", (), Aggregate.NEWEST, ("namespace", "service"))
    with pytest.raises(ValueError, match="has no scope"):
        SeriesSelect("x", "m", "f", (), Aggregate.SUM)


# --- pinned by the mutation run (python -m benchmarks.mutation query_rendering) --------------


def test_a_select_without_scope_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="select 'x' has no scope"):
        SeriesSelect("x", "m", "count", (), Aggregate.SUM)


@pytest.mark.parametrize(
    ("window_ms", "lookback_ms", "message"),
    [
        (-1, 60_000, "window_ms must be positive, got -1"),
        (60_000, 0, "lookback_ms must be positive, got 0"),
        (60_000, -5, "lookback_ms must be positive, got -5"),
    ],
)
def test_window_and_lookback_must_be_positive(
    window_ms: int, lookback_ms: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        class_query(AlertClass.ENDPOINTS, window_ms=window_ms, end_ms=1, lookback_ms=lookback_ms)
    assert class_query(AlertClass.ENDPOINTS, window_ms=1, end_ms=1, lookback_ms=1).lookback_ms == 1


def test_duplicate_select_names_are_refused() -> None:
    sel = SeriesSelect("x", "m", "count", ("service",), Aggregate.SUM)
    with pytest.raises(ValueError, match="duplicate select names in \\['x', 'x'\\]"):
        ClassQuery(AlertClass.FAILURES, 1, 2, (sel, sel))


def test_an_unknown_select_name_is_a_key_error() -> None:
    query = class_query(AlertClass.FAILURES, window_ms=1, end_ms=2)
    assert query.select("failures").measurement == "linkerd_failures"
    with pytest.raises(KeyError, match="nope"):
        query.select("nope")


def test_the_default_lookback_is_thirty_minutes() -> None:
    query = class_query(AlertClass.ENDPOINTS, window_ms=60_000, end_ms=10**7)
    assert query.start_of(query.select("size_max")) == 10**7 - 30 * 60_000
    assert query.start_of(query.select("size")) == 10**7 - 60_000


def test_service_keys_split_on_the_first_slash() -> None:
    assert ServiceRef.parse("web") == ServiceRef("", "web")
    assert ServiceRef.parse("prod/web/v2") == ServiceRef("prod", "web/v2")
    assert ServiceRef("", "web").key == "web" and ServiceRef("prod", "web").key == "prod/web"
    with pytest.raises(ValueError, match="service key '' has no service name"):
        ServiceRef.parse("")


def test_latency_total_is_the_sum_of_every_bucket() -> None:
    assert LatencyAggregate({1.0: 2.0, 5.0: 3.5, math.inf: 0.5}).total == 6.0
    assert LatencyAggregate({}).total == 0


def test_retries_sum_counts_per_router_and_take_the_lowest_budget() -> None:
    query = class_query(AlertClass.RETRIES, window_ms=1, end_ms=2)
    web = {"namespace": "prod", "service": "web", "router": "out"}
    api = {"namespace": "prod", "service": "api", "router": "out"}
    rows = [
        SelectRow("retries_total", web, 3.0),
        SelectRow("retries_total", {**web, "host": "h2"}, 2.0),
        SelectRow("requests", web, 10.0),
        SelectRow("budget_exhausted", web, 1.0),
        SelectRow("retry_lines", web, 4.0),
        SelectRow("request_lines", web, 5.0),
        SelectRow("budget_min", web, 7.0),
        SelectRow("budget_min", {**web, "host": "h2"}, 2.0),  # the lowest, never a sum
        SelectRow("requests", api, 8.0),
    ]
    result = assemble(query, rows, query_text="q")
    assert result.services == {
        "prod/web": {
            "out": RetriesAggregate(
                retries_total=5.0,
                requests=10.0,
                budget_exhausted=1.0,
                retry_lines=4.0,
                request_lines=5.0,
                budget_min=2.0,
            )
        },
        "prod/api": {"out": RetriesAggregate(requests=8.0)},  # zeros, and no budget gauge
    }


def test_latency_buckets_are_summed_per_bound_in_bound_order() -> None:
    query = class_query(AlertClass.LATENCY, window_ms=1, end_ms=2)
    web = {"namespace": "", "service": "web", "router": "in"}
    rows = [
        SelectRow("buckets", {**web, "le": "+Inf"}, 1.0),
        SelectRow("buckets", {**web, "le": "1.41421"}, 2.0),
        SelectRow("buckets", {**web, "le": "1.41421", "host": "h2"}, 3.0),
        SelectRow("buckets", {**web, "le": "0"}, 4.0),
    ]
    (aggregate,) = assemble(query, rows, query_text="q").services["web"].values()
    assert isinstance(aggregate, LatencyAggregate)
    # "1.41421" is the label of the bound 2 ** 0.5, read back as that exact bound.
    assert list(aggregate.buckets.items()) == [(0.0, 4.0), (2**0.5, 5.0), (math.inf, 1.0)]


def test_a_balancer_without_host_or_client_tags_is_keyed_by_empty_names() -> None:
    query = class_query(AlertClass.ENDPOINTS, window_ms=1, end_ms=2)
    rows = [SelectRow("size", {"namespace": "p", "service": "s"}, 4.0)]
    result = assemble(query, rows, query_text="q")
    assert result.services["p/s"][""] == EndpointsAggregate((EndpointBalancer("", None, 4.0),))


def test_cycle_queries_end_at_the_evaluation_time() -> None:
    (query,) = cycle_queries({AlertClass.FAILURES: [60_000]}, end_ms=10**12)
    assert (query.start_ms, query.end_ms) == (10**12 - 60_000, 10**12)


def test_assemble_keeps_the_query_its_text_and_round_trips() -> None:
    query = class_query(AlertClass.FAILURES, window_ms=1, end_ms=2)
    result = assemble(query, [], query_text="SELECT 1", queries_issued=3)
    assert (result.query, result.query_text, result.queries_issued) == (query, "SELECT 1", 3)
    assert assemble(query, [], query_text="q").queries_issued == 1


def test_failures_lines_and_flags_summed_over_hosts_and_rows_without_names_dropped() -> None:
    query = class_query(AlertClass.FAILURES, window_ms=1, end_ms=2)
    web = {"service": "web", "router": "out"}  # no namespace tag at all
    rows = [
        SelectRow("request_lines", web, 6.0),
        SelectRow("failure_lines", web, 2.0),
        SelectRow("connection_failures", {**web, "host": "h1"}, 4.0),  # no failure_flag tag
        SelectRow("connection_failures", {**web, "host": "h2"}, 5.0),
        SelectRow("requests", {"namespace": "prod", "router": "out"}, 9.0),  # no service tag
    ]
    result = assemble(query, rows, query_text="q")
    assert result.services == {
        "web": {
            "out": FailuresAggregate(request_lines=6.0, failure_lines=2.0, connection_failures=9.0)
        }
    }


def test_a_select_grouped_by_service_then_more_tags_is_accepted() -> None:
    sel = SeriesSelect(
        "x", "m", "count", ("service",), Aggregate.SUM, ("namespace", "service", "le")
    )
    assert sel.group_by == ("namespace", "service", "le")


def test_retries_without_request_rows_count_zero_requests() -> None:
    query = class_query(AlertClass.RETRIES, window_ms=1, end_ms=2)
    rows = [SelectRow("retries_total", {"namespace": "", "service": "web"}, 3.0)]
    assert assemble(query, rows, query_text="q").services == {
        "web": {"": RetriesAggregate(retries_total=3.0)}
    }
