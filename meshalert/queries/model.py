"""Window queries of the alert engine as plain values, independent of any store dialect.

A :class:`ClassQuery` asks one store, once per evaluation cycle, for everything one alert
class needs about *every* service over one window ``[end_ms - window_ms, end_ms)``. It is a
handful of :class:`SeriesSelect` parts (one per series the class reads), each grouped by
service, so the number of queries never grows with the number of services. Renderers turn
the same value into SQL (``meshalert.queries.sql``), InfluxQL (``meshalert.queries.influxql``)
and Flux (``meshalert.queries.flux``); readers run the text and hand the grouped rows back
as :class:`SelectRow` values, which :func:`assemble` turns into :class:`ClassAggregates`.

Which scope each class reads, and why:

* latency -- ``linkerd_request_latency_ms_bucket`` (field ``count``, per-bucket counts) at
  ``scope=service``: the logical service scope is what callers experience, including the
  time spent on retries, so it is the latency an SLO is about. Summed over hosts by
  (namespace, service, le).
* failures -- ``linkerd_requests`` and the total ``linkerd_failures`` (the series with
  neither ``exception`` nor ``failure_flag``) at ``scope=service``: a request that failed
  once and succeeded on retry is not a failure for the caller. The evidence also counts
  ``linkerd_failures`` with ``exception=com_twitter_finagle_ConnectionFailedException`` at
  ``scope=client``: connection failures happen per concrete client (endpoint set), before
  retries hide them. All summed over hosts by (namespace, service).
* endpoints -- ``linkerd_loadbalancer_available`` and ``linkerd_loadbalancer_size`` (field
  ``value``) at ``scope=client``: load balancer gauges only exist per client, and each
  node's Linkerd has its own load balancer, so the last value is taken per
  (namespace, service, host) and the worst host is judged.
* retries -- ``linkerd_retries_total`` and ``linkerd_requests`` at ``scope=service``
  (``retries.total`` only exists in the service scope: Linkerd's RetryFilter) and
  ``linkerd_retries_budget_exhausted`` in both the ``client`` scope (Finagle's requeues) and
  the ``service`` scope (Linkerd's retries), since either budget running dry means retries
  were refused. Summed over hosts by (namespace, service).

The service key is ``"namespace/service"`` when the namespace is known, else ``"service"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol

from meshalert.alerts.model import AlertClass
from meshalert.histogram import parse_le

SERVICE_SCOPE = "service"
CLIENT_SCOPE = "client"
CONNECTION_FAILED_EXCEPTION = "com_twitter_finagle_ConnectionFailedException"

SERVICE_GROUP: tuple[str, ...] = ("namespace", "service")
"""Tags that identify a service; every select groups by at least these."""


class Aggregate(StrEnum):
    SUM = "sum"
    """Sum of the field over every matching point in the window (counters, buckets)."""
    LAST = "last"
    """The value of the latest point in the window, per group (gauges)."""


@dataclass(frozen=True)
class SeriesSelect:
    """One series family read by a class query, aggregated per group over the window.

    ``name`` identifies the part inside its :class:`ClassQuery` (e.g. ``"requests"``).
    A point matches when its measurement is ``measurement``, its field is ``field``, its
    ``scope`` tag is one of ``scopes``, every ``tag_equals`` pair matches exactly and none
    of the ``tags_absent`` tags is present. Groups are keyed by the ``group_by`` tags (an
    absent tag groups as ``""``).
    """

    name: str
    measurement: str
    field: str
    scopes: tuple[str, ...]
    aggregate: Aggregate
    group_by: tuple[str, ...] = SERVICE_GROUP
    tag_equals: tuple[tuple[str, str], ...] = ()
    tags_absent: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.scopes:
            raise ValueError(f"select {self.name!r} has no scope")
        if self.group_by[:2] != SERVICE_GROUP:
            raise ValueError(f"select {self.name!r} must group by namespace, service first")


@dataclass(frozen=True, order=True)
class ServiceRef:
    """A service as configured: ``namespace`` is ``""`` when the service has none."""

    namespace: str
    service: str

    @property
    def key(self) -> str:
        return service_key(self.namespace, self.service)

    @staticmethod
    def parse(key: str) -> ServiceRef:
        """``"ns/svc"`` -> (ns, svc); ``"svc"`` -> ("", svc). Splits on the first ``/``."""
        namespace, sep, service = key.partition("/")
        if not sep:
            namespace, service = "", key
        if not service:
            raise ValueError(f"service key {key!r} has no service name")
        return ServiceRef(namespace, service)


def service_key(namespace: str, service: str) -> str:
    return f"{namespace}/{service}" if namespace else service


@dataclass(frozen=True)
class ClassQuery:
    """Everything one alert class reads for all services over ``[end_ms - window_ms, end_ms)``.

    ``services`` restricts the query to configured services (empty: every service).
    Build it with :func:`class_query`; renderers only read these fields.
    """

    alert_class: AlertClass
    window_ms: int
    end_ms: int
    selects: tuple[SeriesSelect, ...]
    services: tuple[ServiceRef, ...] = ()

    def __post_init__(self) -> None:
        if self.window_ms <= 0:
            raise ValueError(f"window_ms must be positive, got {self.window_ms}")
        names = [s.name for s in self.selects]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate select names in {names}")

    @property
    def start_ms(self) -> int:
        """Inclusive window start; ``end_ms`` is exclusive."""
        return self.end_ms - self.window_ms

    def select(self, name: str) -> SeriesSelect:
        for sel in self.selects:
            if sel.name == name:
                return sel
        raise KeyError(name)


def _sum(
    name: str,
    measurement: str,
    *scopes: str,
    group_by: tuple[str, ...] = SERVICE_GROUP,
    tag_equals: tuple[tuple[str, str], ...] = (),
    tags_absent: tuple[str, ...] = (),
) -> SeriesSelect:
    return SeriesSelect(
        name, measurement, "count", scopes, Aggregate.SUM, group_by, tag_equals, tags_absent
    )


def _last(name: str, measurement: str, *scopes: str) -> SeriesSelect:
    return SeriesSelect(
        name, measurement, "value", tuple(scopes), Aggregate.LAST, (*SERVICE_GROUP, "host")
    )


_NO_EXCEPTION = ("exception", "failure_flag")

CLASS_SELECTS: Mapping[AlertClass, tuple[SeriesSelect, ...]] = {
    AlertClass.LATENCY: (
        _sum(
            "buckets",
            "linkerd_request_latency_ms_bucket",
            SERVICE_SCOPE,
            group_by=(*SERVICE_GROUP, "le"),
        ),
    ),
    AlertClass.FAILURES: (
        _sum("requests", "linkerd_requests", SERVICE_SCOPE),
        _sum("failures", "linkerd_failures", SERVICE_SCOPE, tags_absent=_NO_EXCEPTION),
        _sum(
            "connection_failures",
            "linkerd_failures",
            CLIENT_SCOPE,
            tag_equals=(("exception", CONNECTION_FAILED_EXCEPTION),),
            tags_absent=("failure_flag",),
        ),
    ),
    AlertClass.ENDPOINTS: (
        _last("available", "linkerd_loadbalancer_available", CLIENT_SCOPE),
        _last("size", "linkerd_loadbalancer_size", CLIENT_SCOPE),
    ),
    AlertClass.RETRIES: (
        _sum("retries_total", "linkerd_retries_total", SERVICE_SCOPE),
        _sum("requests", "linkerd_requests", SERVICE_SCOPE),
        _sum("budget_exhausted", "linkerd_retries_budget_exhausted", CLIENT_SCOPE, SERVICE_SCOPE),
    ),
}
"""The series each class reads (see the module docstring for the choice of scopes)."""


def class_query(
    alert_class: AlertClass,
    *,
    window_ms: int,
    end_ms: int,
    services: Iterable[ServiceRef | str] = (),
) -> ClassQuery:
    """The query for one class and window; ``services`` are refs or keys (``"ns/svc"``)."""
    refs = tuple(
        sorted({s if isinstance(s, ServiceRef) else ServiceRef.parse(s) for s in services})
    )
    return ClassQuery(alert_class, window_ms, end_ms, CLASS_SELECTS[alert_class], refs)


def cycle_queries(
    windows: Mapping[AlertClass, Iterable[int]], *, end_ms: int
) -> tuple[ClassQuery, ...]:
    """One query per class per distinct window length, for one evaluation at ``end_ms``."""
    return tuple(
        class_query(cls, window_ms=w, end_ms=end_ms)
        for cls, lengths in windows.items()
        for w in sorted(set(lengths))
    )


# --- results --------------------------------------------------------------------------


class SelectRow(NamedTuple):
    """One group of one select as returned by a store: ``tags`` holds the select's
    ``group_by`` tags (absent tags as ``""``) and ``value`` the aggregate. A named tuple:
    a 10,000-service cycle builds ~100,000 of them."""

    select: str
    tags: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class LatencyAggregate:
    buckets: Mapping[float, float]
    """Summed per-bucket counts keyed by upper bound (``math.inf`` for ``+Inf``)."""

    @property
    def total(self) -> float:
        return sum(self.buckets.values())


@dataclass(frozen=True)
class FailuresAggregate:
    requests: float = 0.0
    failures: float = 0.0
    connection_failures: float = 0.0


@dataclass(frozen=True)
class EndpointHost:
    """Last load balancer gauges of one host; ``None`` when that gauge had no point."""

    host: str
    available: float | None
    size: float | None


@dataclass(frozen=True)
class EndpointsAggregate:
    hosts: tuple[EndpointHost, ...]
    """Sorted by host name."""


@dataclass(frozen=True)
class RetriesAggregate:
    retries_total: float = 0.0
    requests: float = 0.0
    budget_exhausted: float = 0.0


ServiceAggregate = LatencyAggregate | FailuresAggregate | EndpointsAggregate | RetriesAggregate


@dataclass(frozen=True)
class ClassAggregates:
    """A class query's answer: per service key, the class's typed aggregate.

    A service appears only when the window held at least one matching point for it.
    ``query_text`` is what was run (for evidence and replay); ``queries_issued`` counts the
    store round trips it took.
    """

    query: ClassQuery
    services: Mapping[str, ServiceAggregate]
    query_text: str
    queries_issued: int = 1


class WindowQueryError(Exception):
    """A store could not answer a window query; the message names the store and reason."""


class WindowReader(Protocol):
    """Runs a class query against one store (adapters in ``meshalert.stores``)."""

    def fetch(self, query: ClassQuery) -> ClassAggregates: ...


def assemble(
    query: ClassQuery, rows: Iterable[SelectRow], *, query_text: str, queries_issued: int = 1
) -> ClassAggregates:
    """Turn a store's grouped rows into typed per-service aggregates (pure)."""
    by_service: dict[str, list[SelectRow]] = {}
    for key, row in _attributed(query, rows):
        by_service.setdefault(key, []).append(row)
    build = _BUILDERS[query.alert_class]
    services: dict[str, ServiceAggregate] = {
        key: build(svc_rows) for key, svc_rows in sorted(by_service.items())
    }
    return ClassAggregates(query, services, query_text, queries_issued)


def _attributed(query: ClassQuery, rows: Iterable[SelectRow]) -> list[tuple[str, SelectRow]]:
    """Each usable row with the service key it counts for.

    A class that reads the logical (service) scope and also a client-scope series names its
    services the way the service scope does. The two scopes name one service differently
    when the identifier carries no namespace (``svc/checkout`` at the service scope,
    ``production/checkout`` from the k8s client id), so a client-scope row is attributed to
    the service-scope key with the same service name; one that matches none, or several, is
    left out rather than invented as a service of its own.
    """
    primary = {s.name for s in query.selects if s.scopes == (SERVICE_SCOPE,)}
    mixed = bool(primary) and len(primary) < len(query.selects)
    keyed: list[tuple[str, str, SelectRow]] = []
    append, isfinite = keyed.append, math.isfinite  # ~100,000 rows per 10k-service cycle
    for row in rows:
        tags = row.tags
        service = tags.get("service", "")
        if not service or not isfinite(row.value):
            continue  # series without a service tag cannot be attributed
        namespace = tags.get("namespace", "")
        append((f"{namespace}/{service}" if namespace else service, service, row))
    if not mixed:
        return [(key, row) for key, _, row in keyed]
    logical: set[str] = set()
    by_name: dict[str, set[str]] = {}
    for key, service, row in keyed:
        if row.select in primary:
            logical.add(key)
            by_name.setdefault(service, set()).add(key)
    out: list[tuple[str, SelectRow]] = []
    for key, service, row in keyed:
        if row.select in primary or key in logical:
            out.append((key, row))
        elif len(candidates := by_name.get(service, set())) == 1:
            out.append((next(iter(candidates)), row))
    return out


def _sums(rows: list[SelectRow]) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in rows:
        out[row.select] = out.get(row.select, 0.0) + row.value
    return out


def _latency(rows: list[SelectRow]) -> LatencyAggregate:
    buckets: dict[float, float] = {}
    for row in rows:
        le = parse_le(row.tags["le"])
        buckets[le] = buckets.get(le, 0.0) + row.value
    return LatencyAggregate(dict(sorted(buckets.items())))


def _failures(rows: list[SelectRow]) -> FailuresAggregate:
    s = _sums(rows)
    return FailuresAggregate(
        s.get("requests", 0.0), s.get("failures", 0.0), s.get("connection_failures", 0.0)
    )


def _endpoints(rows: list[SelectRow]) -> EndpointsAggregate:
    gauges: dict[str, dict[str, float]] = {}
    for row in rows:
        gauges.setdefault(row.tags.get("host", ""), {})[row.select] = row.value
    return EndpointsAggregate(
        tuple(
            EndpointHost(host, g.get("available"), g.get("size"))
            for host, g in sorted(gauges.items())
        )
    )


def _retries(rows: list[SelectRow]) -> RetriesAggregate:
    s = _sums(rows)
    return RetriesAggregate(
        s.get("retries_total", 0.0), s.get("requests", 0.0), s.get("budget_exhausted", 0.0)
    )


_BUILDERS: Mapping[AlertClass, Callable[[list[SelectRow]], ServiceAggregate]] = {
    AlertClass.LATENCY: _latency,
    AlertClass.FAILURES: _failures,
    AlertClass.ENDPOINTS: _endpoints,
    AlertClass.RETRIES: _retries,
}
