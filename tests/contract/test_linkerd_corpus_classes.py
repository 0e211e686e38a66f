"""The four alert classes on what real Linkerd 1.7.5 sent (issue 10 items 1-5), on every store.

Each situation of the recorded corpus (``tests/data/linkerd_corpus``, h9-linkerd's capture:
two routers, ``outgoing`` with a node-level transformer and ``incoming`` with the backends)
is replayed datagram by datagram through the sidecar's real parse -> map -> aggregate path,
in 10 s flush intervals by the recorded arrival time, written to the store, and read back
through the class queries, the observations and the default rules.
"""

from __future__ import annotations

import pytest

from ingest_sidecar.aggregate import IntervalAggregator
from ingest_sidecar.ingest import IngestCore
from ingest_sidecar.linkerd_names import NameMapper
from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import Observation
from meshalert.alerts.observe import observe
from meshalert.lineprotocol import Point
from meshalert.queries.model import EndpointBalancer, EndpointsAggregate, class_query
from meshalert.rules import FailuresRule, load_rules
from tests.contract.backends import Backend
from tests.ingest_sidecar.linkerd_corpus import SERVICE, datagrams, metrics_json

T0 = 1_700_000_000_000
FLUSH = 10_000


def replay_into(backend: Backend, situation: str, flush_ms: int = FLUSH) -> int:
    """Write the situation as the sidecar would have; returns the window end after it."""
    by_interval: dict[int, IngestCore] = {}
    for d in datagrams(situation):
        start = T0 + int(d.t_s * 1000) // flush_ms * flush_ms
        core = by_interval.setdefault(
            start, IngestCore(NameMapper(), lambda: IntervalAggregator(seed=1))
        )
        core.feed(d.data)
    points: list[Point] = []
    for start, core in sorted(by_interval.items()):
        aggregator, counts = core.rollover()
        assert counts.bad_total == 0, counts.bad
        points += aggregator.flush(start, "node-a").points
    backend.write(points)
    return max(by_interval) + flush_ms


def judge(
    backend: Backend, cls: AlertClass, situation: str, end: int, rules: str = "{}"
) -> tuple[Observation, bool | None]:
    rule = load_rules({"MESHALERT_RULES": rules}, now_s=0).for_service(SERVICE[situation])
    assert rule is not None
    the_rule = rule.rule(cls)
    window = max(end - T0, 60_000)
    query = class_query(cls, window_ms=window, end_ms=end)
    obs = observe(backend.reader.fetch(query), router=the_rule.router)[SERVICE[situation]]
    return obs, the_rule.judge(obs.value, obs.samples, obs.detail).breached


def test_item1_retries_are_judged_on_the_router_that_retries(backend: Backend) -> None:
    """``retries_exhausted``: outgoing 60 requests and 16 retries, incoming 76 requests (60 +
    the 16 retries). Summed, the ratio read 16 / 136 = 0.12."""
    end = replay_into(backend, "retries_exhausted")
    obs, fired = judge(backend, AlertClass.RETRIES, "retries_exhausted", end)
    exact = metrics_json("retries_exhausted")
    retries = exact["rt/outgoing/service/svc/billing/retries/total"]
    requests = exact["rt/outgoing/service/svc/billing/requests"]
    assert (obs.detail["router"], obs.value) == ("outgoing", pytest.approx(retries / requests))
    assert (retries, requests) == (16, 60)
    # The budget ran dry (the unsampled gauge read 0) and exhaustions were counted.
    assert obs.detail["budget_min"] == 0.0
    assert fired is True
    summed = observe(
        backend.reader.fetch(class_query(AlertClass.RETRIES, window_ms=end - T0, end_ms=end)),
        router="incoming",
    )["billing"]
    assert summed.detail["retries_total"] == 0.0  # incoming never retries


def test_item2_each_balancer_of_the_host_is_judged_alone(backend: Backend) -> None:
    """``one_backend_down``: outgoing's node-level client holds 1 endpoint, incoming's
    holds the 3 backends, one closed: 1/1 and 2/3, never 2/1 or 1/3."""
    end = replay_into(backend, "one_backend_down")
    query = class_query(AlertClass.ENDPOINTS, window_ms=end - T0, end_ms=end)
    routed = backend.reader.fetch(query).services["orders"]
    assert set(routed) == {"outgoing", "incoming"}
    gauges = {}
    for router, agg in routed.items():
        assert isinstance(agg, EndpointsAggregate)
        assert len(agg.balancers) == 1
        (b,) = agg.balancers
        gauges[router] = (b.available, b.size)
    assert gauges == {"outgoing": (1.0, 1.0), "incoming": (2.0, 3.0)}
    # auto judges every balancer for endpoints: the lost pod shows on incoming only.
    auto, fired = judge(backend, AlertClass.ENDPOINTS, "one_backend_down", end)
    assert (auto.detail["router"], auto.value, fired) == ("incoming", pytest.approx(2 / 3), True)
    caller, fired = judge(
        backend, AlertClass.ENDPOINTS, "one_backend_down", end, "defaults: {router: outgoing}"
    )
    assert (caller.detail["router"], caller.value, fired) == ("outgoing", 1.0, False)
    every, fired = judge(
        backend, AlertClass.ENDPOINTS, "one_backend_down", end, "defaults: {router: '*'}"
    )
    assert (every.detail["router"], every.value, fired) == (
        "incoming",
        pytest.approx(2 / 3),
        True,
    )


def test_item3_removed_endpoints_fire_on_the_learned_count_only(backend: Backend) -> None:
    """``endpoints_removed``: discovery goes from 3 backends to 1; size falls with
    available (3/3, then 1/1), so the ratio never moves; the balancer's largest recent
    size (3) says 1 of 3 are left."""
    # The capture lasted 10 s with gauges every 2 s: flushed every 2 s (MESHALERT_FLUSH_INTERVAL)
    # the sidecar keeps both sizes; one 10 s flush would keep only the last gauge value.
    end = replay_into(backend, "endpoints_removed", flush_ms=2_000)
    auto = "defaults: {endpoints: {window: 2s}}"
    obs, fired = judge(backend, AlertClass.ENDPOINTS, "endpoints_removed", end, auto)
    assert (obs.value, obs.detail["learned_ratio"], fired) == (1.0, pytest.approx(1 / 3), True)
    ratio_only = (
        "defaults: {router: incoming, endpoints: {window: 2s, expected_ratio_at_most: null}}"
    )
    _, fired = judge(backend, AlertClass.ENDPOINTS, "endpoints_removed", end, ratio_only)
    assert fired is False
    query = class_query(AlertClass.ENDPOINTS, window_ms=2_000, end_ms=end)
    inc = backend.reader.fetch(query).services["catalog"]["incoming"]
    assert isinstance(inc, EndpointsAggregate)
    (b,) = inc.balancers
    assert (b.available, b.size, b.size_max) == (1.0, 1.0, 3.0)
    assert isinstance(b, EndpointBalancer)


def test_item4_refused_connections_fire_the_failures_class(backend: Backend) -> None:
    """``connection_refused``: every request answered 502. The caller's router fails every
    request; the connect failures are on the router facing the dead endpoint (incoming),
    never as a client-scope ``failures.ConnectionFailedException``."""
    end = replay_into(backend, "connection_refused")
    obs, fired = judge(backend, AlertClass.FAILURES, "connection_refused", end)
    assert (obs.detail["router"], obs.value, fired) == ("outgoing", 1.0, True)
    assert obs.detail["requests"] == 40.0
    assert obs.detail["connection_failures"] == 54.0  # incoming service scope, restartable
    assert obs.detail["connection_failures_router"] == "incoming"
    assert obs.detail["service_creation_failures"] == 58.0  # incoming client, per attempt


def test_item5_sampled_lines_are_what_the_guards_count(backend: Backend) -> None:
    """``sampled_0_01``: 3000 requests (exact in metrics.json) at sampleRate 0.01; the
    window holds the lines Linkerd kept, each counting 100."""
    end = replay_into(backend, "sampled_0_01")
    obs, fired = judge(backend, AlertClass.FAILURES, "sampled_0_01", end)
    exact = metrics_json("sampled_0_01")["rt/outgoing/service/svc/web/requests"]
    lines = obs.detail["request_lines"]
    assert isinstance(lines, float) and 20 <= lines < 60
    assert obs.samples == pytest.approx(lines * 100)
    assert abs(obs.samples - exact) < 0.5 * exact
    assert (obs.value, fired) == (0.0, False)
    # A 10 s slice holds a line or two: min_requests (20) passes on the estimate, the lines
    # received do not, so nothing is judged on them.
    slices = [
        observe(backend.reader.fetch(class_query(AlertClass.FAILURES, window_ms=10_000, end_ms=t)))
        for t in range(T0 + 10_000, end + 1, 10_000)
    ]
    slice_obs = next(o["web"] for o in slices if "web" in o)
    few = slice_obs.detail["request_lines"]
    assert isinstance(few, float) and few < 20 <= slice_obs.samples
    # Even if every one of them had failed, the default rule would not judge them.
    all_failed = {**slice_obs.detail, "failure_lines": few}
    assert FailuresRule().judge(1.0, slice_obs.samples, all_failed).breached is False
