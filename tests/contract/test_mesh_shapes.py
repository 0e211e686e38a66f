"""What a real Linkerd 1.x mesh sends, on every store: two routers, several load balancers
per host, flagged and service-creation failures, sampled counters, and a window end that
races the sidecar's flush (issue 10).

The statsd lines follow Linkerd 1.7.5's names as the reference's first box lists them (a
DaemonSet mesh: the caller's ``outgoing`` router with the daemonset transformer, the
callee's ``incoming`` router with the localnode transformer). They go through the real
sidecar stages (statsd parser, Linkerd name mapper, interval aggregator) into each store,
and come back through the class queries, the observations and the rules.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from ingest_sidecar.aggregate import IntervalAggregator
from ingest_sidecar.linkerd_names import NameMapper
from ingest_sidecar.statsd import parse_datagram
from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import Observation
from meshalert.alerts.observe import observe
from meshalert.backends.memory.state import MemoryStateStore
from meshalert.backtest import backtest
from meshalert.engine import ClassRule, Engine
from meshalert.lineprotocol import Point
from meshalert.queries.model import EndpointBalancer, class_query
from meshalert.rules import load_rules
from tests.contract.backends import Backend

END = 1_700_000_400_000
WINDOW = 300_000
STEP = 10_000
LOOKBACK = 1_800_000

OUT = "linkerd.rt.outgoing"
INC = "linkerd.rt.incoming"
DS = "_.io_l5d_k8s_daemonset.linkerd.incoming.l5d._.io_l5d_k8s.prod.http.web"
LN = "_.io_l5d_k8s_localnode.10_0_0_1._.io_l5d_k8s.prod.http.web"
RICH = "com_twitter_finagle_naming_buoyant_RichConnectionFailedException"


def sidecar_points(lines: Iterable[str], ts: int, host: str = "node-a") -> list[Point]:
    """One flush interval of statsd lines as the sidecar would write it."""
    mapper = NameMapper(
        service_namespaces=dict.fromkeys(("outgoing", "incoming", "http", "h2"), "prod")
    )
    aggregator = IntervalAggregator()
    for sample in parse_datagram("\n".join(lines).encode()).samples:
        aggregator.add(mapper.map(sample.name, sample.tags), sample.kind, sample.value, sample.rate)
    return aggregator.flush(ts, host).points


def counted(name: str, times: int, rate: float = 1.0) -> list[str]:
    return [f"{name}:1|c|@{rate:f}"] * times


def rule(cls: AlertClass, text: str = "{}") -> ClassRule:
    rules = load_rules({"MESHALERT_RULES": text}, now_s=0).for_service("prod/web")
    assert rules is not None
    return rules.rule(cls)


def judged(backend: Backend, cls: AlertClass, text: str = "{}") -> tuple[Observation, bool | None]:
    """The observation of prod/web at END and whether the rule in force calls it breached."""
    the_rule = rule(cls, text)
    query = class_query(cls, window_ms=the_rule.window_ms, end_ms=END, lookback_ms=LOOKBACK)
    router = str(getattr(the_rule, "router", "auto"))
    obs = observe(backend.reader.fetch(query), router=router)["prod/web"]
    return obs, the_rule.judge(obs.value, obs.samples, obs.detail).breached


def intervals(n: int) -> list[int]:
    return [END - WINDOW + i * STEP for i in range(n)]


# --- two routers ---------------------------------------------------------------------


def test_two_routers_a_retry_storm_is_judged_on_the_caller_facing_router(
    backend: Backend,
) -> None:
    """100 requests a flush reach the caller's outgoing router, which retries 30 of them;
    the callee's incoming router sees 130 attempts, 30 of which failed. Summed, the retry
    ratio read 30 / 230 = 13 % and never fired."""
    points: list[Point] = []
    for ts in intervals(5):
        lines = counted(f"{OUT}.service.svc.web.requests", 100)
        lines += counted(f"{OUT}.service.svc.web.retries.total", 30)
        lines += counted(f"{INC}.service.svc.web.requests", 130)
        lines += counted(f"{INC}.service.svc.web.failures", 30)
        points += sidecar_points(lines, ts)
    backend.write(points)

    retries, fired = judged(backend, AlertClass.RETRIES)
    assert (retries.value, retries.detail["router"], fired) == (
        pytest.approx(0.3),
        "outgoing",
        True,
    )
    # What the caller saw: no failure (every failed attempt succeeded on retry).
    failures, fired = judged(backend, AlertClass.FAILURES)
    assert (failures.value, failures.detail["router"], fired) == (0.0, "outgoing", False)
    # The callee's own view is there for whoever asks for it, never mixed in.
    callee, fired = judged(backend, AlertClass.FAILURES, "defaults: {router: incoming}")
    assert (callee.value, fired) == (pytest.approx(30 / 130), True)


def test_one_router_mesh_keeps_routers_apart_and_reports_the_worst(backend: Backend) -> None:
    """Without an ``outgoing`` router (linker-to-service, one router per protocol) each
    router is judged alone and the worst reported."""
    points: list[Point] = []
    for ts in intervals(5):
        lines = counted("linkerd.rt.http.service.svc.web.requests", 100)
        lines += counted("linkerd.rt.h2.service.svc.web.requests", 100)
        lines += counted("linkerd.rt.h2.service.svc.web.failures", 20)
        points += sidecar_points(lines, ts)
    backend.write(points)

    obs, fired = judged(backend, AlertClass.FAILURES)
    assert (obs.value, obs.detail["router"], obs.detail["routers"], fired) == (
        pytest.approx(0.2),
        "h2",
        2.0,
        True,
    )


# --- several balancers per host --------------------------------------------------------


def _gauges(client: str, router: str, available: int, size: int) -> list[str]:
    prefix = f"linkerd.rt.{router}.client.{client}.loadbalancer"
    return [f"{prefix}.available:{available}|g", f"{prefix}.size:{size}|g"]


def test_balancers_of_one_host_are_never_mixed(backend: Backend) -> None:
    """The outgoing daemonset client (3 of 3 nodes) and the incoming localnode client (1 of
    1 local pod) share host and timestamp: "last per host" once read 1 of 3 and fired."""
    points: list[Point] = []
    for ts in intervals(30)[-6:]:  # the endpoints window is the last minute
        lines = _gauges(DS, "outgoing", 3, 3)
        lines += _gauges(LN, "incoming", 1, 1)
        points += sidecar_points(lines, ts)
    backend.write(points)

    for policy in ("auto", "*"):
        obs, fired = judged(backend, AlertClass.ENDPOINTS, f"defaults: {{router: '{policy}'}}")
        assert (obs.value, fired) == (1.0, False), policy
    every, _ = judged(backend, AlertClass.ENDPOINTS, "defaults: {router: '*'}")
    assert (every.detail["balancers"], every.detail["hosts"]) == (2.0, 1.0)
    query = class_query(AlertClass.ENDPOINTS, window_ms=60_000, end_ms=END, lookback_ms=LOOKBACK)
    routed = backend.reader.fetch(query).services["prod/web"]
    assert {r: a.balancers for r, a in routed.items()} == {  # type: ignore[union-attr]
        "incoming": (EndpointBalancer("node-a", 1.0, 1.0, 1.0, LN),),
        "outgoing": (EndpointBalancer("node-a", 3.0, 3.0, 3.0, DS),),
    }


def test_a_shrinking_endpoint_set_fires_on_the_learned_count(backend: Backend) -> None:
    """Kubernetes drops unready pods from Endpoints: size falls with available, the ratio
    stays 1.0, and only the balancer's own recent largest size shows 10 became 3."""
    early = [END - LOOKBACK + 60_000 + i * STEP for i in range(6)]
    points: list[Point] = []
    for ts in early:
        points += sidecar_points(_gauges(DS, "outgoing", 10, 10), ts)
    for ts in intervals(30)[-6:]:
        points += sidecar_points(_gauges(DS, "outgoing", 3, 3), ts)
    backend.write(points)

    obs, fired = judged(backend, AlertClass.ENDPOINTS)
    assert (obs.value, obs.detail["learned_ratio"], fired) == (1.0, pytest.approx(0.3), True)
    _, ratio_only = judged(
        backend, AlertClass.ENDPOINTS, "defaults: {endpoints: {expected_ratio_at_most: null}}"
    )
    assert ratio_only is False
    declared, fired = judged(
        backend, AlertClass.ENDPOINTS, "services: {prod/web: {endpoints: {expected: 5}}}"
    )
    assert (declared.detail["min_available"], fired) == (3.0, True)  # 3 <= 0.7 x 5


# --- connection failures ---------------------------------------------------------------


def _refused(attempts: int) -> list[str]:
    """Linkerd 1.7.5 on one request whose endpoints all refuse the connection (the
    reference's first box): per attempt at client scope, one request at service scope,
    a 502 at the server."""
    client = f"{OUT}.client.{DS}"
    lines = []
    for _ in range(attempts):
        lines += [
            f"{client}.failed_connect_latency_ms:1|ms|@1.000000",
            f"{client}.service_creation.failures:1|c|@1.000000",
            f"{client}.service_creation.failures.{RICH}:1|c|@1.000000",
            f"{client}.service_creation.service_acquisition_latency_ms:1|ms|@1.000000",
            f"{client}.retries.requeues:1|c|@1.000000",
        ]
    svc = f"{OUT}.service.svc.web"
    lines += [
        f"{client}.retries.not_open:1|c|@1.000000",
        f"{svc}.requests:1|c|@1.000000",
        f"{svc}.failures:1|c|@1.000000",
        f"{svc}.failures.restartable:1|c|@1.000000",
        f"{svc}.failures.restartable.{RICH}WithPath:1|c|@1.000000",
        f"{OUT}.server.0_0_0_0.4140.status.502:1|c|@1.000000",
    ]
    return lines


def test_refused_connections_fire_the_failures_class(backend: Backend) -> None:
    """No client-scope ``failures.ConnectionFailedException`` ever appears: the refused
    connect is a service-creation failure at client scope and a flagged failure at the
    service scope. Both reach the evidence; the service scope's ratio fires."""
    points: list[Point] = []
    for ts in intervals(5):
        lines: list[str] = []
        for _ in range(10):
            lines += _refused(attempts=3)
        lines += counted(f"{OUT}.service.svc.web.requests", 10)  # healthy requests too
        # Finagle may also record the chain without its flag: a view of the same events.
        lines += counted(f"{OUT}.service.svc.web.failures.{RICH}WithPath", 10)
        points += sidecar_points(lines, ts)
    backend.write(points)

    obs, fired = judged(backend, AlertClass.FAILURES)
    assert fired is True
    assert obs.value == pytest.approx(0.5)
    assert obs.detail["connection_failures"] == 50.0  # once per request, not per flag
    assert obs.detail["service_creation_failures"] == 150.0  # once per attempt
    query = class_query(AlertClass.FAILURES, window_ms=WINDOW, end_ms=END)
    assert set(backend.reader.fetch(query).services) == {"prod/web"}  # no "service_creation"


# --- sampled counters ------------------------------------------------------------------


def test_one_sampled_line_is_not_fifty_requests(backend: Backend) -> None:
    """At sampleRate 0.02 one request line and one failure line estimate 50 requests, all
    failed: min_requests (20) passes, the lines received (1) do not."""
    lines = counted(f"{OUT}.service.svc.web.requests", 1, 0.02)
    lines += counted(f"{OUT}.service.svc.web.failures", 1, 0.02)
    backend.write(sidecar_points(lines, END - 60_000))

    obs, fired = judged(backend, AlertClass.FAILURES)
    assert (obs.samples, obs.value, obs.detail["request_lines"], fired) == (
        pytest.approx(50.0),
        pytest.approx(1.0),
        1.0,
        False,
    )


def test_enough_sampled_lines_fire_when_the_bound_clears_the_threshold(backend: Backend) -> None:
    """400 request lines and 40 failure lines at 0.02 (20,000 requests, 10 %): fires. 20
    lines with 2 failures (also 10 %) could be 3 %: held back by the confidence guard."""
    points: list[Point] = []
    for ts in intervals(10):
        lines = counted(f"{OUT}.service.svc.web.requests", 40, 0.02)
        lines += counted(f"{OUT}.service.svc.web.failures", 4, 0.02)
        lines += counted(f"{OUT}.service.svc.api.requests", 2, 0.02)
        points += sidecar_points(lines, ts)
    points += sidecar_points(counted(f"{OUT}.service.svc.api.failures", 2, 0.02), END - STEP)
    backend.write(points)

    obs, fired = judged(backend, AlertClass.FAILURES)
    assert (obs.samples, obs.detail["request_lines"], fired) == (pytest.approx(20_000), 400.0, True)
    api = observe(
        backend.reader.fetch(class_query(AlertClass.FAILURES, window_ms=WINDOW, end_ms=END))
    )["prod/api"]
    assert (api.value, api.detail["request_lines"]) == (pytest.approx(0.1), 20.0)
    assert rule(AlertClass.FAILURES).judge(api.value, api.samples, api.detail).breached is False


def test_the_retry_budget_gauge_fires_where_sampled_exhaustions_were_lost(
    backend: Backend,
) -> None:
    """``retries.budget_exhausted`` is a sampled counter (at 0.01, rare events vanish);
    ``retries.budget`` is an unsampled gauge of the budget's balance."""
    points: list[Point] = []
    for i, ts in enumerate(intervals(6)):
        balance = 0 if i == 3 else 100
        lines = [f"{OUT}.service.svc.web.retries.budget:{balance}|g"]
        lines += counted(f"{OUT}.service.svc.web.requests", 1)  # too few for the ratio test
        points += sidecar_points(lines, ts)
    backend.write(points)

    obs, fired = judged(backend, AlertClass.RETRIES)
    assert (obs.detail["budget_min"], obs.detail["budget_exhausted"], fired) == (0.0, 0.0, True)


# --- the window end races the flush --------------------------------------------------------


def _racing_store(backend: Backend) -> None:
    """Healthy traffic, then the interval [END - 10 s, END): still being written when a
    cycle runs at END (here: a partial flush with failures only)."""
    points: list[Point] = []
    for ts in intervals(29):
        points += sidecar_points(counted(f"{OUT}.service.svc.web.requests", 100), ts)
    points += sidecar_points(counted(f"{OUT}.service.svc.web.failures", 40), END - STEP)
    backend.write(points)


def test_windows_end_at_a_settled_point_in_the_engine_and_in_backtest(backend: Backend) -> None:
    _racing_store(backend)
    rules = load_rules({}, now_s=0)

    def lookup(cls: AlertClass, key: str) -> ClassRule | None:
        resolved = rules.for_service(key)
        return resolved.rule(cls) if resolved is not None else None

    racing = Engine(backend.reader, MemoryStateStore(), None)
    settled = Engine(backend.reader, MemoryStateStore(), None, settle_ms=15_000)
    raw = racing.evaluate(AlertClass.FAILURES, lookup, WINDOW, END).observations["prod/web"]
    safe = settled.evaluate(AlertClass.FAILURES, lookup, WINDOW, END).observations["prod/web"]
    assert raw.value is not None and raw.value > 0.01  # the half-written interval leaks in
    assert (safe.value, safe.samples) == (0.0, 2900.0)  # [END - 315 s, END - 15 s)

    replay = backtest(
        backend.reader,
        rules,
        since_ms=END - 60_000,
        until_ms=END,
        interval_ms=60_000,
        classes=[AlertClass.FAILURES],
        settle_ms=15_000,
    )
    trace = replay.traces[(AlertClass.FAILURES, "prod/web")]
    assert [s.value for s in trace.samples] == [safe.value]
