from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshalert.alerts.model import AlertClass
from meshalert.alerts.observe import observe
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
    return ClassAggregates(class_query(cls, window_ms=1, end_ms=2), services, "q")


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
