"""Per-service aggregates of a class query -> one :class:`Observation` per service (pure).

A service with no point in the window has no aggregate and so no observation: the caller
applies the rule's ``no_data`` policy to the services it expected. A service with points
but nothing to divide by (no requests, no latency samples, no load balancer size) gets an
observation with ``value=None`` and its counts in ``detail``.

Routers are never summed. The ``router`` policy (a rule's ``router`` field) says whose view
is judged:

* ``auto`` (default): the caller-facing router, ``outgoing`` (the DaemonSet config's name)
  when the service has data there; otherwise every router on its own, the worst reported;
* ``*``: every router on its own, the worst reported;
* any other text: that router's view alone (no data when it has none).

"Worst" is the router whose figure is most alarming: the highest latency percentile, the
highest confidence lower bound of a ratio (so a router with three lines cannot outrank one
with three thousand), the lowest retry budget, the emptiest load balancer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from meshalert.alert_classes import AlertClass
from meshalert.alerts.confidence import DEFAULT_CONFIDENCE, ratio_lower_bound
from meshalert.alerts.model import Observation
from meshalert.histogram import percentile_from_buckets
from meshalert.queries.model import (
    ClassAggregates,
    EndpointBalancer,
    EndpointsAggregate,
    FailuresAggregate,
    LatencyAggregate,
    RetriesAggregate,
    RoutedAggregates,
    ServiceAggregate,
)

ROUTER_AUTO = "auto"
ROUTER_ANY = "*"
CALLER_ROUTER = "outgoing"
"""The caller-facing router of the DaemonSet config (infra/k8s/configmap-linkerd.yaml)."""


def observe(
    aggregates: ClassAggregates, *, percentile: float = 99, router: str = ROUTER_AUTO
) -> dict[str, Observation]:
    """Observations keyed by service key; ``percentile`` only matters for latency,
    ``router`` is the router policy (module docstring)."""
    cls = aggregates.query.alert_class
    return {
        key: _observe_routed(cls, key, routed, percentile, router)
        for key, routed in aggregates.services.items()
    }


def observe_service(
    aggregates: ClassAggregates, key: str, *, percentile: float = 99, router: str = ROUTER_AUTO
) -> Observation | None:
    """One service's observation under a router policy, or None when the window held no
    point for it (for an engine that observes each service on its own)."""
    routed = aggregates.services.get(key)
    if routed is None:
        return None
    return _observe_routed(aggregates.query.alert_class, key, routed, percentile, router)


def judged_routers(routed: RoutedAggregates, policy: str) -> list[str]:
    """The routers whose views a policy judges, of those that have data."""
    if policy == ROUTER_AUTO:
        return [CALLER_ROUTER] if CALLER_ROUTER in routed else sorted(routed)
    if policy == ROUTER_ANY:
        return sorted(routed)
    return [policy] if policy in routed else []


def _observe_routed(
    cls: AlertClass, key: str, routed: RoutedAggregates, percentile: float, policy: str
) -> Observation:
    if cls is AlertClass.ENDPOINTS and policy == ROUTER_AUTO:
        # Balancers are judged one by one and never summed, so judging every router counts
        # nothing twice; and pods show only on each node's incoming (localnode) balancer: the
        # caller's outgoing daemonset balancer counts nodes and would miss a lost pod.
        policy = ROUTER_ANY
    routers = judged_routers(routed, policy)
    if not routers:
        return Observation(cls, key, None, detail={"router": policy})
    if cls is AlertClass.ENDPOINTS:
        return _endpoints(key, routed, routers)
    candidates = [_observe_one(cls, key, routed[r], percentile, r) for r in routers]
    worst = max(candidates, key=_SEVERITY[cls])
    extra: dict[str, float | str | None] = {}
    if len(routers) > 1:
        extra["routers"] = float(len(routers))
    if cls is AlertClass.FAILURES:
        extra.update(_connection_evidence(routed))
    return replace(worst, detail={**worst.detail, **extra}) if extra else worst


def _connection_evidence(routed: RoutedAggregates) -> dict[str, float | str | None]:
    """Connect failures from every router: on a real DaemonSet mesh the refused connect
    happens on the router that faces the dead endpoint (``incoming``), while the caller's
    ``outgoing`` router, whose ratio is judged, only sees the 502 it answered. The same
    failed requests are counted on each router that saw them, so the largest count stands
    for them; failed connects are distinct attempts per router, so those add up."""
    failures = [
        (a.connection_failures, r) for r, a in routed.items() if isinstance(a, FailuresAggregate)
    ]
    creation = sum(
        a.service_creation_failures for a in routed.values() if isinstance(a, FailuresAggregate)
    )
    most, router = max(failures, default=(0.0, ""))
    return {
        "connection_failures": most,
        "connection_failures_router": router if most > 0 else None,
        "service_creation_failures": creation,
    }


def _observe_one(
    cls: AlertClass, key: str, agg: ServiceAggregate, percentile: float, router: str
) -> Observation:
    if isinstance(agg, LatencyAggregate):
        return _latency(key, agg, percentile, router)
    if isinstance(agg, FailuresAggregate):
        return _failures(key, agg, router)
    if isinstance(agg, RetriesAggregate):
        return _retries(key, agg, router)
    raise TypeError(f"no observation for {cls} aggregate {type(agg).__name__}")


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def lines_or_counts(lines: float, count: float) -> float:
    """Lines received, or the count itself for a source that does not count lines (exact
    counts: pull mode, or points written without ``samples``)."""
    return lines if lines > 0 else count


def _latency(key: str, agg: LatencyAggregate, percentile: float, router: str) -> Observation:
    return Observation(
        AlertClass.LATENCY,
        key,
        percentile_from_buckets(agg.buckets, percentile),
        samples=agg.total,
        detail={"percentile": percentile, "router": router},
    )


def _failures(key: str, agg: FailuresAggregate, router: str) -> Observation:
    return Observation(
        AlertClass.FAILURES,
        key,
        _ratio(agg.failures, agg.requests),
        samples=agg.requests,
        detail={
            "router": router,
            "requests": agg.requests,
            "failures": agg.failures,
            "request_lines": lines_or_counts(agg.request_lines, agg.requests),
            "failure_lines": lines_or_counts(agg.failure_lines, agg.failures),
            "connection_failures": agg.connection_failures,
            "service_creation_failures": agg.service_creation_failures,
        },
    )


def _retries(key: str, agg: RetriesAggregate, router: str) -> Observation:
    return Observation(
        AlertClass.RETRIES,
        key,
        _ratio(agg.retries_total, agg.requests),
        samples=agg.requests,
        detail={
            "router": router,
            "retries_total": agg.retries_total,
            "requests": agg.requests,
            "retry_lines": lines_or_counts(agg.retry_lines, agg.retries_total),
            "request_lines": lines_or_counts(agg.request_lines, agg.requests),
            "budget_exhausted": agg.budget_exhausted,
            "budget_min": agg.budget_min,
        },
    )


def _number(detail: Mapping[str, float | str | None], name: str) -> float:
    value = detail.get(name)
    return float(value) if isinstance(value, int | float) else 0.0


def _ratio_rank(obs: Observation, events: str, base: str) -> tuple[float, float]:
    if obs.value is None:
        return (-1.0, -1.0)
    bound = ratio_lower_bound(
        _number(obs.detail, events), _number(obs.detail, base), DEFAULT_CONFIDENCE
    )
    return (bound, obs.value)


def _latency_rank(obs: Observation) -> tuple[float, ...]:
    return (obs.value if obs.value is not None else -1.0,)


def _failures_rank(obs: Observation) -> tuple[float, ...]:
    return _ratio_rank(obs, "failure_lines", "request_lines")


def _retries_rank(obs: Observation) -> tuple[float, ...]:
    budget = obs.detail.get("budget_min")
    dry = 1.0 if isinstance(budget, int | float) and budget < 1 else 0.0
    exhausted = _number(obs.detail, "budget_exhausted")
    return (dry, exhausted, *_ratio_rank(obs, "retry_lines", "request_lines"))


_SEVERITY: Mapping[AlertClass, Callable[[Observation], tuple[float, ...]]] = {
    AlertClass.LATENCY: _latency_rank,
    AlertClass.FAILURES: _failures_rank,
    AlertClass.RETRIES: _retries_rank,
}


def _balancer_ratio(b: EndpointBalancer) -> float | None:
    if b.available is None or b.size is None:
        return None
    # An empty load balancer has nothing available: the worst possible state, not "no data".
    return b.available / b.size if b.size > 0 else 0.0


def _learned_ratio(b: EndpointBalancer) -> float | None:
    if b.available is None or b.size_max is None or b.size_max <= 0:
        return None
    return b.available / b.size_max


def _endpoints(key: str, routed: RoutedAggregates, routers: Sequence[str]) -> Observation:
    """Each load balancer judged on its own: its ``available`` against its own ``size`` and
    its own largest ``size`` over the lookback; the worst balancer is reported."""
    balancers: list[tuple[str, EndpointBalancer]] = []
    for router in routers:
        agg = routed[router]
        if isinstance(agg, EndpointsAggregate):
            balancers.extend((router, b) for b in agg.balancers)
    detail: dict[str, float | str | None] = {
        "host": None,
        "router": None,
        "client": None,
        "available": None,
        "size": None,
        "hosts": float(len({b.host for _, b in balancers})),
        "balancers": float(len(balancers)),
    }
    judged = [(r, rb) for rb in balancers if (r := _balancer_ratio(rb[1])) is not None]
    value: float | None = None
    if judged:
        # Lowest ratio first; among equal ratios the fewest available, then by name.
        value, (router, worst) = min(
            judged, key=lambda j: (j[0], j[1][1].available or 0.0, j[1][1].host, j[1][0])
        )
        detail.update(
            host=worst.host,
            router=router,
            client=worst.client,
            available=worst.available,
            size=worst.size,
        )
    with_available = [(r, b) for r, b in balancers if b.available is not None]
    if with_available:
        # Absolute thresholds (available_below, a declared `expected`) judge the balancer
        # with the fewest available, which may not be the one with the lowest ratio.
        router, fewest = min(with_available, key=lambda rb: (rb[1].available or 0.0, rb[1].host))
        detail.update(
            min_available=fewest.available,
            min_available_host=fewest.host,
            min_available_router=router,
            min_available_size_max=fewest.size_max,
        )
    learned = [(r, rb) for rb in balancers if (r := _learned_ratio(rb[1])) is not None]
    if learned:
        ratio, (router, b) = min(learned, key=lambda j: (j[0], j[1][1].host, j[1][0]))
        detail.update(
            learned_ratio=ratio,
            learned_available=b.available,
            learned_expected=b.size_max,
            learned_host=b.host,
            learned_router=router,
        )
    return Observation(AlertClass.ENDPOINTS, key, value, samples=float(len(judged)), detail=detail)
