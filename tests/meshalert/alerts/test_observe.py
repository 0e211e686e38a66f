from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshalert.alert_classes import AlertClass
from meshalert.alerts.observe import observe, observe_service
from meshalert.histogram import BOUNDS, percentile_from_buckets
from meshalert.queries.model import (
    ClassAggregates,
    EndpointHost,
    EndpointsAggregate,
    FailuresAggregate,
    LatencyAggregate,
    RetriesAggregate,
    ServiceAggregate,
    class_query,
)


def _aggs(cls: AlertClass, services: dict[str, ServiceAggregate]) -> ClassAggregates:
    """One router without a name, as series without a router tag come back."""
    routed = {key: {"": agg} for key, agg in services.items()}
    return ClassAggregates(class_query(cls, window_ms=1, end_ms=2), routed, "q")


def _routed(cls: AlertClass, routers: dict[str, ServiceAggregate]) -> ClassAggregates:
    return ClassAggregates(class_query(cls, window_ms=1, end_ms=2), {"s": routers}, "q")


@given(
    counts=st.dictionaries(
        st.sampled_from((*BOUNDS[1:60], math.inf)), st.floats(0, 1e6), min_size=1
    ),
    percentile=st.sampled_from([50.0, 90.0, 99.0, 99.9]),
)
def test_latency_is_the_percentile_of_the_summed_buckets(
    counts: dict[float, float], percentile: float
) -> None:
    obs = observe(_aggs(AlertClass.LATENCY, {"s": LatencyAggregate(counts)}), percentile=percentile)
    assert obs["s"].value == percentile_from_buckets(counts, percentile)
    assert obs["s"].samples == pytest.approx(sum(counts.values()))


def test_failures_ratio_and_no_requests_is_no_value() -> None:
    obs = observe(
        _aggs(
            AlertClass.FAILURES,
            {"a": FailuresAggregate(200, 10, 3), "b": FailuresAggregate(0, 0, 4)},
        )
    )
    assert (obs["a"].value, obs["a"].samples) == (0.05, 200)
    assert obs["a"].detail["connection_failures"] == 3
    assert obs["b"].value is None and obs["b"].detail["connection_failures"] == 4


def test_endpoints_judge_the_worst_ratio_and_expose_the_fewest_available() -> None:
    hosts = (
        EndpointHost("big", 6, 20),  # ratio 0.3, worst
        EndpointHost("small", 2, 4),  # ratio 0.5 but fewest available
        EndpointHost("half", 5, None),  # no size: not judged by ratio
    )
    obs = observe(_aggs(AlertClass.ENDPOINTS, {"s": EndpointsAggregate(hosts)}))["s"]
    assert obs.value == pytest.approx(0.3)
    assert (obs.detail["host"], obs.detail["available"], obs.detail["size"]) == ("big", 6, 20)
    assert (obs.detail["min_available_host"], obs.detail["min_available"]) == ("small", 2)
    assert obs.samples == 2


def test_endpoints_empty_balancer_is_worst_not_missing() -> None:
    hosts = (EndpointHost("a", 5, 5), EndpointHost("b", 0, 0))
    obs = observe(_aggs(AlertClass.ENDPOINTS, {"s": EndpointsAggregate(hosts)}))["s"]
    assert (obs.value, obs.detail["host"]) == (0.0, "b")


def test_retries_ratio_with_budget_exhausted_in_detail() -> None:
    obs = observe(_aggs(AlertClass.RETRIES, {"s": RetriesAggregate(30, 120, 2)}))["s"]
    assert obs.value == 0.25 and obs.samples == 120
    assert obs.detail["budget_exhausted"] == 2


# --- issue 10: routers, balancers, learned endpoint counts ------------------------------


def test_auto_judges_the_caller_facing_router_and_never_sums() -> None:
    """A true 30 % retry ratio on outgoing must not read as 15 % because incoming counted
    every request (and each retry) once more."""
    aggs = _routed(
        AlertClass.RETRIES,
        {
            "outgoing": RetriesAggregate(30, 100, 0, retry_lines=30, request_lines=100),
            "incoming": RetriesAggregate(0, 130, 0, request_lines=130),
        },
    )
    obs = observe(aggs)["s"]
    assert obs.value == pytest.approx(0.3)
    assert obs.detail["router"] == "outgoing"
    assert observe(aggs, router="incoming")["s"].value == 0.0
    assert observe(aggs, router="*")["s"].detail["router"] == "outgoing"
    assert observe(aggs, router="nope")["s"].value is None


def test_without_outgoing_every_router_is_judged_and_the_worst_reported() -> None:
    """One router per linker (no DaemonSet): the worst is reported, by its confidence bound,
    so three lines at 33 % do not outrank 3,000 lines at 10 %."""
    aggs = _routed(
        AlertClass.FAILURES,
        {
            "http": FailuresAggregate(3000, 300, request_lines=3000, failure_lines=300),
            "grpc": FailuresAggregate(3, 1, request_lines=3, failure_lines=1),
        },
    )
    obs = observe(aggs)["s"]
    assert (obs.detail["router"], obs.value, obs.detail["routers"]) == ("http", 0.1, 2.0)
    latency = _routed(
        AlertClass.LATENCY,
        {"a": LatencyAggregate({10.0: 5.0}), "b": LatencyAggregate({1000.0: 5.0})},
    )
    assert observe(latency)["s"].detail["router"] == "b"


def test_exact_sources_without_line_counts_use_their_counts() -> None:
    obs = observe(_aggs(AlertClass.FAILURES, {"s": FailuresAggregate(200, 10)}))["s"]
    assert (obs.detail["request_lines"], obs.detail["failure_lines"]) == (200, 10)


def test_endpoints_learned_ratio_uses_each_balancers_own_recent_size() -> None:
    """Size falls with available when Kubernetes drops unready pods (ratio 1.0); the
    balancer's own largest size over the lookback does not."""
    aggs = _routed(
        AlertClass.ENDPOINTS,
        {
            "outgoing": EndpointsAggregate((EndpointHost("n1", 3, 3, 10, "ds"),)),
            "incoming": EndpointsAggregate((EndpointHost("n1", 1, 1, 1, "ln"),)),
        },
    )
    obs = observe(aggs)["s"]
    assert obs.value == 1.0
    assert (obs.detail["learned_ratio"], obs.detail["learned_expected"]) == (0.3, 10)
    every = observe(aggs, router="*")["s"]
    assert obs == every  # auto judges every balancer for endpoints
    assert observe(aggs, router="outgoing")["s"].detail["router"] == "outgoing"
    assert (every.detail["min_available"], every.detail["min_available_router"]) == (
        1,
        "incoming",
    )
    assert every.detail["balancers"] == 2.0


def test_one_service_alone_equals_the_whole_pass() -> None:
    aggs = _routed(
        AlertClass.FAILURES,
        {"outgoing": FailuresAggregate(100, 50), "incoming": FailuresAggregate(130, 30)},
    )
    for policy in ("auto", "*", "incoming"):
        assert observe_service(aggs, "s", router=policy) == observe(aggs, router=policy)["s"]
    assert observe_service(aggs, "missing") is None
