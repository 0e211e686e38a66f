"""Per-service aggregates of a class query -> one :class:`Observation` per service (pure).

A service with no point in the window has no aggregate and so no observation: the caller
applies the rule's ``no_data`` policy to the services it expected. A service with points
but nothing to divide by (no requests, no latency samples, no load balancer size) gets an
observation with ``value=None`` and its counts in ``detail``.
"""

from __future__ import annotations

from meshalert.alerts.model import AlertClass, Observation
from meshalert.histogram import percentile_from_buckets
from meshalert.queries.model import (
    ClassAggregates,
    EndpointHost,
    EndpointsAggregate,
    FailuresAggregate,
    LatencyAggregate,
    RetriesAggregate,
    ServiceAggregate,
)


def observe(aggregates: ClassAggregates, *, percentile: float = 99) -> dict[str, Observation]:
    """Observations keyed by service key; ``percentile`` only matters for latency."""
    cls = aggregates.query.alert_class
    return {
        key: _observe_one(cls, key, agg, percentile) for key, agg in aggregates.services.items()
    }


def observe_service(
    aggregates: ClassAggregates, key: str, *, percentile: float = 99
) -> Observation | None:
    """One service's observation, or None when the window held no point for it."""
    agg = aggregates.services.get(key)
    if agg is None:
        return None
    return _observe_one(aggregates.query.alert_class, key, agg, percentile)


def _observe_one(
    cls: AlertClass, key: str, agg: ServiceAggregate, percentile: float
) -> Observation:
    if isinstance(agg, LatencyAggregate):
        return _latency(key, agg, percentile)
    if isinstance(agg, FailuresAggregate):
        return _failures(key, agg)
    if isinstance(agg, EndpointsAggregate):
        return _endpoints(key, agg)
    if isinstance(agg, RetriesAggregate):
        return _retries(key, agg)
    raise TypeError(f"no observation for {cls} aggregate {type(agg).__name__}")


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _latency(key: str, agg: LatencyAggregate, percentile: float) -> Observation:
    return Observation(
        AlertClass.LATENCY,
        key,
        percentile_from_buckets(agg.buckets, percentile),
        samples=agg.total,
        detail={"percentile": percentile},
    )


def _failures(key: str, agg: FailuresAggregate) -> Observation:
    return Observation(
        AlertClass.FAILURES,
        key,
        _ratio(agg.failures, agg.requests),
        samples=agg.requests,
        detail={
            "requests": agg.requests,
            "failures": agg.failures,
            "connection_failures": agg.connection_failures,
        },
    )


def _host_ratio(h: EndpointHost) -> float | None:
    if h.available is None or h.size is None:
        return None
    # An empty load balancer has nothing available: the worst possible state, not "no data".
    return h.available / h.size if h.size > 0 else 0.0


def _endpoints(key: str, agg: EndpointsAggregate) -> Observation:
    judged = [(r, h) for h in agg.hosts if (r := _host_ratio(h)) is not None]
    with_available = [h for h in agg.hosts if h.available is not None]
    detail: dict[str, float | str | None] = {
        "host": None,
        "available": None,
        "size": None,
        "hosts": float(len(agg.hosts)),
    }
    value: float | None = None
    if judged:
        # Lowest ratio first; among equal ratios the fewest available, then host name.
        value, worst = min(judged, key=lambda rh: (rh[0], rh[1].available or 0.0, rh[1].host))
        detail.update(host=worst.host, available=worst.available, size=worst.size)
    if with_available:
        # An absolute threshold (available_below) may single out another host than the ratio.
        fewest = min(with_available, key=lambda h: (h.available or 0.0, h.host))
        detail.update(min_available=fewest.available, min_available_host=fewest.host)
    return Observation(AlertClass.ENDPOINTS, key, value, samples=float(len(judged)), detail=detail)


def _retries(key: str, agg: RetriesAggregate) -> Observation:
    return Observation(
        AlertClass.RETRIES,
        key,
        _ratio(agg.retries_total, agg.requests),
        samples=agg.requests,
        detail={
            "retries_total": agg.retries_total,
            "requests": agg.requests,
            "budget_exhausted": agg.budget_exhausted,
        },
    )
