"""The same points, written to every store, must give the same aggregates and observations."""

from __future__ import annotations

import math
import uuid

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from meshalert.alert_classes import AlertClass
from meshalert.alerts.observe import observe
from meshalert.histogram import BOUNDS, LE_LABELS, parse_le, percentile_from_buckets
from meshalert.lineprotocol import Point, decode, encode, sanitize
from meshalert.queries.model import (
    CLASS_SELECTS,
    EndpointHost,
    EndpointsAggregate,
    FailuresAggregate,
    LatencyAggregate,
    RetriesAggregate,
    ServiceRef,
    class_query,
)
from tests.contract.backends import Backend

END = 1_700_000_400_000
WINDOW = 300_000
START = END - WINDOW
STEP = 10_000
CONN_FAILED = "com_twitter_finagle_naming_buoyant_RichConnectionFailedExceptionWithPath"


def counter(measurement: str, ts: int, count: float, **tags: str) -> Point:
    return Point.make(measurement, tags, {"count": float(count), "samples": 1}, ts)


def gauge(measurement: str, ts: int, value: float, **tags: str) -> Point:
    return Point.make(measurement, tags, {"value": float(value)}, ts)


def svc(host: str, namespace: str = "prod", service: str = "web", scope: str = "service"):
    return {"host": host, "namespace": namespace, "service": service, "scope": scope}


def test_counters_are_summed_over_hosts_and_flagged_failures_excluded(backend: Backend) -> None:
    points = []
    for i, host in enumerate(["node-a", "node-b", "node-c"]):
        for ts in (START, START + STEP, END - STEP):
            points.append(counter("linkerd_requests", ts, 100 + i, **svc(host)))
            points.append(counter("linkerd_failures", ts, 2, **svc(host)))
            # Rolled-up detail series: counted in the total already, must not add up.
            points.append(counter("linkerd_failures", ts, 2, exception="java_Foo", **svc(host)))
            points.append(
                counter("linkerd_failures", ts, 1, failure_flag="interrupted", **svc(host))
            )
            points.append(
                counter("linkerd_service_creation_failures", ts, 1, **svc(host, scope="client"))
            )
        # The client scope's own request count is not what callers see.
        points.append(counter("linkerd_requests", START, 999, **svc(host, scope="client")))
    backend.write(points)

    result = backend.reader.fetch(class_query(AlertClass.FAILURES, window_ms=WINDOW, end_ms=END))

    assert result.queries_issued == 1
    assert result.services == {
        "prod/web": {
            "": FailuresAggregate(
                requests=3 * (100 + 101 + 102),
                failures=18.0,
                request_lines=9.0,
                failure_lines=9.0,
                service_creation_failures=9.0,
            )
        }
    }
    obs = observe(result)["prod/web"]
    assert obs.value == pytest.approx(18 / 909)
    assert obs.samples == 909
    assert obs.detail["service_creation_failures"] == 9.0


def test_latency_buckets_are_summed_over_hosts(backend: Backend) -> None:
    le_small, le_big = LE_LABELS[20], LE_LABELS[40]
    points = [
        counter("linkerd_request_latency_ms_bucket", START, 90, le=le_small, **svc("a")),
        counter("linkerd_request_latency_ms_bucket", START + STEP, 8, le=le_small, **svc("b")),
        counter("linkerd_request_latency_ms_bucket", END - STEP, 2, le=le_big, **svc("b")),
        counter("linkerd_request_latency_ms_bucket", START, 5, le="+Inf", **svc("a", service="x")),
    ]
    backend.write(points)

    result = backend.reader.fetch(class_query(AlertClass.LATENCY, window_ms=WINDOW, end_ms=END))

    assert result.services == {
        "prod/web": {"": LatencyAggregate({parse_le(le_small): 98.0, parse_le(le_big): 2.0})},
        "prod/x": {"": LatencyAggregate({math.inf: 5.0})},
    }
    obs = observe(result, percentile=99)
    p99 = obs["prod/web"].value
    assert p99 is not None and parse_le(le_small) < p99 <= parse_le(le_big)
    assert observe(result, percentile=50)["prod/web"].value == pytest.approx(
        percentile_from_buckets({parse_le(le_small): 98.0, parse_le(le_big): 2.0}, 50)
    )
    assert obs["prod/web"].samples == 100.0


def test_every_bucket_interpolates_inside_itself_after_a_round_trip(backend: Backend) -> None:
    # One service per bucket, so one query covers every label the sidecar can write. The
    # median of a single bucket is its midpoint; a label read one bucket too high (the %.6g
    # rounding) would put it at the upper edge instead.
    points = [
        counter("linkerd_request_latency_ms_bucket", START, 4, le=le, **svc("a", service=f"b{i}"))
        for i, le in enumerate(LE_LABELS[1:-1], start=1)
    ]
    backend.write(points)

    result = backend.reader.fetch(class_query(AlertClass.LATENCY, window_ms=WINDOW, end_ms=END))
    medians = observe(result, percentile=50)

    assert len(medians) == len(BOUNDS) - 1
    for i in range(1, len(BOUNDS)):
        lower, upper = BOUNDS[i - 1], BOUNDS[i]
        assert result.services[f"prod/b{i}"] == {"": LatencyAggregate({upper: 4.0})}
        assert medians[f"prod/b{i}"].value == pytest.approx((lower + upper) / 2, rel=1e-12)


def test_gauges_take_the_last_value_per_host_and_name_the_worst(backend: Backend) -> None:
    client = {"scope": "client", "namespace": "prod", "service": "api"}
    points = [
        gauge("linkerd_loadbalancer_available", START, 1, host="a", **client),
        gauge("linkerd_loadbalancer_available", END - STEP, 9, host="a", **client),
        gauge("linkerd_loadbalancer_size", END - STEP, 10, host="a", **client),
        gauge("linkerd_loadbalancer_available", START + STEP, 3, host="b", **client),
        gauge("linkerd_loadbalancer_size", START + STEP, 4, host="b", **client),
        gauge("linkerd_loadbalancer_available", END - 2 * STEP, 4, host="c", **client),
        gauge("linkerd_loadbalancer_size", END - 2 * STEP, 10, host="c", **client),
        # A service-scope gauge of the same name would be a different thing: ignored.
        gauge("linkerd_loadbalancer_available", START, 0, **svc("d", service="api")),
    ]
    backend.write(points)

    result = backend.reader.fetch(
        class_query(AlertClass.ENDPOINTS, window_ms=WINDOW, end_ms=END, lookback_ms=WINDOW)
    )

    assert result.services == {
        "prod/api": {
            "": EndpointsAggregate(
                (
                    EndpointHost("a", 9.0, 10.0, 10.0),
                    EndpointHost("b", 3.0, 4.0, 4.0),
                    EndpointHost("c", 4.0, 10.0, 10.0),
                )
            )
        }
    }
    obs = observe(result)["prod/api"]
    assert obs.value == pytest.approx(0.4)
    assert obs.detail["host"] == "c"
    assert (obs.detail["available"], obs.detail["size"]) == (4.0, 10.0)
    assert (obs.detail["min_available"], obs.detail["min_available_host"]) == (3.0, "b")


def test_retries_budget_exhausted_counts_client_and_service_scopes(backend: Backend) -> None:
    points = [
        counter("linkerd_requests", START, 200, **svc("a", namespace="")),
        counter("linkerd_requests", START, 200, **svc("b", namespace="")),
        counter("linkerd_retries_total", START, 30, **svc("a", namespace="")),
        counter("linkerd_retries_total", END - STEP, 50, **svc("b", namespace="")),
        counter("linkerd_retries_budget_exhausted", START, 2, **svc("a", namespace="")),
        counter(
            "linkerd_retries_budget_exhausted", START, 3, **svc("b", namespace="", scope="client")
        ),
        counter(
            "linkerd_retries_budget_exhausted", START, 7, **svc("b", namespace="", scope="server")
        ),
    ]
    backend.write(points)

    result = backend.reader.fetch(class_query(AlertClass.RETRIES, window_ms=WINDOW, end_ms=END))

    assert result.services == {
        "web": {"": RetriesAggregate(80.0, 400.0, 5.0, retry_lines=2.0, request_lines=2.0)}
    }
    obs = observe(result)["web"]
    assert obs.value == pytest.approx(0.2)
    assert obs.detail["budget_exhausted"] == 5.0


def test_window_includes_its_start_and_excludes_its_end(backend: Backend) -> None:
    backend.write(
        [
            counter("linkerd_requests", START - 1, 1000, **svc("a")),
            counter("linkerd_requests", START, 10, **svc("a")),
            counter("linkerd_requests", END - 1, 5, **svc("a")),
            counter("linkerd_requests", END, 1000, **svc("a")),
            gauge("linkerd_loadbalancer_available", END - 1, 2, **svc("a", scope="client")),
            gauge("linkerd_loadbalancer_available", END, 7, **svc("a", scope="client")),
            gauge("linkerd_loadbalancer_size", START, 4, **svc("a", scope="client")),
            gauge("linkerd_loadbalancer_size", START - 1, 9, **svc("a", scope="client")),
        ]
    )
    failures = backend.reader.fetch(class_query(AlertClass.FAILURES, window_ms=WINDOW, end_ms=END))
    endpoints = backend.reader.fetch(
        class_query(AlertClass.ENDPOINTS, window_ms=WINDOW, end_ms=END, lookback_ms=WINDOW)
    )

    assert failures.services == {"prod/web": {"": FailuresAggregate(15.0, request_lines=2.0)}}
    assert endpoints.services == {
        "prod/web": {"": EndpointsAggregate((EndpointHost("a", 2.0, 4.0, 4.0),))}
    }


WEIRD = [("we'ird ns", 'svc "quoted", with=eq'), ("", "back\\slash' svc"), ("a/b", "x y")]


def test_awkward_tag_values_group_and_filter_exactly(backend: Backend) -> None:
    points = []
    for n, (namespace, service) in enumerate(WEIRD):
        points.append(counter("linkerd_requests", START, 10 + n, **svc("h", namespace, service)))
    points.append(counter("linkerd_requests", START, 1, **svc("h", "prod", "other")))
    backend.write(points)
    # What a store holds is what line protocol carries; keys are built from that.
    stored = [decode(encode(p)).tag_dict() for p in points[: len(WEIRD)]]
    refs = [ServiceRef(t.get("namespace", ""), t["service"]) for t in stored]

    query = class_query(AlertClass.FAILURES, window_ms=WINDOW, end_ms=END, services=refs)
    result = backend.reader.fetch(query)

    assert result.services == {
        ref.key: {"": FailuresAggregate(requests=10.0 + n, request_lines=1.0)}
        for n, ref in enumerate(refs)
    }


def test_empty_window_gives_no_observation(backend: Backend) -> None:
    backend.write([counter("linkerd_requests", START - STEP, 10, **svc("a"))])
    for cls in CLASS_SELECTS:
        result = backend.reader.fetch(class_query(cls, window_ms=WINDOW, end_ms=END))
        assert result.services == {}
        assert observe(result) == {}
        assert result.query_text


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.text(
        alphabet=st.sampled_from(list("'\"\\\n /=,.*+?()[]{}|^$ab"))
        | st.characters(blacklist_categories=("Cs", "Cc")),
        min_size=1,
        max_size=12,
    )
)
def test_any_service_name_is_an_exact_filter_match(backend: Backend, name: str) -> None:
    namespace = "ns" + uuid.uuid4().hex[:8]  # isolates examples sharing one store
    target = counter("linkerd_requests", START, 3, **svc("h", namespace, name))
    sibling = counter("linkerd_requests", START, 5, **svc("h", namespace, name + "x"))
    stored_name = sanitize(name)
    assume(stored_name.strip() != "")
    backend.write([target, sibling])
    ref = ServiceRef(namespace, stored_name)

    result = backend.reader.fetch(
        class_query(AlertClass.FAILURES, window_ms=WINDOW, end_ms=END, services=[ref])
    )

    assert result.services == {ref.key: {"": FailuresAggregate(requests=3.0, request_lines=1.0)}}
