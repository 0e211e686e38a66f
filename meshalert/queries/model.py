"""Window queries of the alert engine as plain values, independent of any store dialect.

A :class:`ClassQuery` asks one store, once per evaluation cycle, for everything one alert
class needs about *every* service over one window ``[end_ms - window_ms, end_ms)``. It is a
handful of :class:`SeriesSelect` parts (one per series the class reads), each grouped by
service, so the number of queries never grows with the number of services. Renderers turn
the same value into SQL (``meshalert.queries.sql``), InfluxQL (``meshalert.queries.influxql``)
and Flux (``meshalert.queries.flux``); readers run the text and hand the grouped rows back
as :class:`SelectRow` values, which :func:`assemble` turns into :class:`ClassAggregates`.

Which scope each class reads, and why (README, "The four alert classes"):

* every select groups by ``router`` too: in a DaemonSet mesh one request is counted by the
  caller's ``outgoing`` and the callee's ``incoming`` router under the same service name,
  and retries exist on ``outgoing`` only, so summing routers halves a retry ratio and mixes
  per-attempt with per-request failures. Routers stay apart here; the observation picks one
  (or the worst) by the rule's ``router`` policy (:mod:`meshalert.alerts.observe`).
* latency -- ``linkerd_request_latency_ms_bucket`` (field ``count``, per-bucket counts) at
  ``scope=service``: the logical service scope is what callers experience, including the
  time spent on retries. Summed over hosts by (namespace, service, router, le).
* failures -- ``linkerd_requests`` and the total ``linkerd_failures`` (neither
  ``exception`` nor ``failure_flag``) at ``scope=service``, as estimated counts (``count``)
  and as lines received (``samples``, for the volume and confidence guards). Connection
  failures: Linkerd rewraps a refused connect as ``RichConnectionFailedExceptionWithPath``,
  which the service scope counts under its failure flags (one series per flag; the largest
  flag total is the event count, never their sum), and the client scope counts every
  failed session acquisition in ``linkerd_service_creation_failures``.
* endpoints -- ``linkerd_loadbalancer_available`` and ``linkerd_loadbalancer_size`` (last
  ``value``) and the largest ``size`` over the lookback (the learned endpoint count), at
  ``scope=client``, per load balancer: (host, router, client). One host holds several
  balancers for one service (the outgoing daemonset client counts nodes, the incoming
  localnode client counts this node's pods), so a balancer's ``available`` is only ever
  compared with its own ``size``.
* ingest (pipeline health) -- the time of the newest ``meshalert_sidecar`` (field
  ``received``, written by every sidecar flush) or ``linkerd_requests`` point per ``host``,
  any scope (:attr:`Aggregate.NEWEST`); the answer is keyed by host, not by service.
* retries -- ``linkerd_retries_total`` and ``linkerd_requests`` at ``scope=service``
  (``retries.total`` only exists in the service scope: Linkerd's RetryFilter), counts and
  lines; ``linkerd_retries_budget_exhausted`` (sampled counter) and the smallest
  ``linkerd_retries_budget`` gauge (unsampled: the budget's balance) in both the ``client``
  and ``service`` scopes, since either budget running dry means retries were refused.

The service key is ``"namespace/service"`` when the namespace is known, else ``"service"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol

from meshalert.alert_classes import AlertClass
from meshalert.histogram import parse_le

SERVICE_SCOPE = "service"
CLIENT_SCOPE = "client"
CONNECTION_FAILED_EXCEPTION = (
    "com_twitter_finagle_naming_buoyant_RichConnectionFailedExceptionWithPath"
)
"""What the service scope records for a request that no endpoint would accept: Linkerd's
``RichConnectionFailedModule`` rewraps Finagle's ``ConnectionFailedException``."""
DEFAULT_LOOKBACK_MS = 30 * 60_000
"""How far back the endpoints class looks for a balancer's largest ``size``."""

SERVICE_GROUP: tuple[str, ...] = ("namespace", "service")
"""Tags that identify a service; every select groups by at least these."""
ROUTER_GROUP: tuple[str, ...] = (*SERVICE_GROUP, "router")
BALANCER_GROUP: tuple[str, ...] = (*ROUTER_GROUP, "host", "client")
HOST_GROUP: tuple[str, ...] = ("host",)
"""The ingest class's only group: one sidecar (node) per ``host`` tag."""


class Aggregate(StrEnum):
    SUM = "sum"
    """Sum of the field over every matching point in the window (counters, buckets)."""
    LAST = "last"
    """The value of the latest point in the window, per group (gauges)."""
    MIN = "min"
    """The smallest value of any matching point in the window (a gauge's low point)."""
    MAX = "max"
    """The largest value of any matching point in the window (a gauge's high point)."""
    NEWEST = "newest"
    """The time (epoch ms) of the latest matching point in the window, per group: how fresh
    a series is, whatever its values (the ingest class)."""


@dataclass(frozen=True)
class SeriesSelect:
    """One series family read by a class query, aggregated per group over the window.

    ``name`` identifies the part inside its :class:`ClassQuery` (e.g. ``"requests"``).
    A point matches when its measurement is ``measurement``, its field is ``field``, its
    ``scope`` tag is one of ``scopes`` (any scope, or none, when ``scopes`` is empty), every
    ``tag_equals`` pair matches exactly and none of the ``tags_absent`` tags is present.
    Groups are keyed by the ``group_by`` tags (an absent tag groups as ``""``). ``lookback``
    selects read the query's lookback instead of its window (both end at ``end_ms``).
    """

    name: str
    measurement: str
    field: str
    scopes: tuple[str, ...]
    aggregate: Aggregate
    group_by: tuple[str, ...] = SERVICE_GROUP
    tag_equals: tuple[tuple[str, str], ...] = ()
    tags_absent: tuple[str, ...] = ()
    lookback: bool = False

    def __post_init__(self) -> None:
        if self.aggregate is Aggregate.NEWEST:
            if self.group_by != HOST_GROUP:
                raise ValueError(f"select {self.name!r}: a newest select groups by host only")
            return
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
    lookback_ms: int = DEFAULT_LOOKBACK_MS

    def __post_init__(self) -> None:
        if self.window_ms <= 0:
            raise ValueError(f"window_ms must be positive, got {self.window_ms}")
        if self.lookback_ms <= 0:
            raise ValueError(f"lookback_ms must be positive, got {self.lookback_ms}")
        names = [s.name for s in self.selects]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate select names in {names}")

    @property
    def start_ms(self) -> int:
        """Inclusive window start; ``end_ms`` is exclusive."""
        return self.end_ms - self.window_ms

    def start_of(self, sel: SeriesSelect) -> int:
        """Where ``sel`` starts reading: the window's start, or the lookback's (never later
        than the window's)."""
        if sel.lookback:
            return self.end_ms - max(self.window_ms, self.lookback_ms)
        return self.start_ms

    def select(self, name: str) -> SeriesSelect:
        for sel in self.selects:
            if sel.name == name:
                return sel
        raise KeyError(name)


def _sum(
    name: str,
    measurement: str,
    *scopes: str,
    field: str = "count",
    group_by: tuple[str, ...] = ROUTER_GROUP,
    tag_equals: tuple[tuple[str, str], ...] = (),
    tags_absent: tuple[str, ...] = (),
) -> SeriesSelect:
    return SeriesSelect(
        name, measurement, field, scopes, Aggregate.SUM, group_by, tag_equals, tags_absent
    )


def _gauge(
    name: str,
    measurement: str,
    aggregate: Aggregate,
    *scopes: str,
    group_by: tuple[str, ...] = BALANCER_GROUP,
    lookback: bool = False,
) -> SeriesSelect:
    return SeriesSelect(
        name, measurement, "value", tuple(scopes), aggregate, group_by, lookback=lookback
    )


_NO_EXCEPTION = ("exception", "failure_flag")
LINES = "samples"
"""The counter field that counts lines received (the sidecar's ``samples``)."""

CLASS_SELECTS: Mapping[AlertClass, tuple[SeriesSelect, ...]] = {
    AlertClass.LATENCY: (
        _sum(
            "buckets",
            "linkerd_request_latency_ms_bucket",
            SERVICE_SCOPE,
            group_by=(*ROUTER_GROUP, "le"),
        ),
    ),
    AlertClass.FAILURES: (
        _sum("requests", "linkerd_requests", SERVICE_SCOPE),
        _sum("request_lines", "linkerd_requests", SERVICE_SCOPE, field=LINES),
        _sum("failures", "linkerd_failures", SERVICE_SCOPE, tags_absent=_NO_EXCEPTION),
        _sum(
            "failure_lines",
            "linkerd_failures",
            SERVICE_SCOPE,
            field=LINES,
            tags_absent=_NO_EXCEPTION,
        ),
        _sum(
            "connection_failures",
            "linkerd_failures",
            SERVICE_SCOPE,
            group_by=(*ROUTER_GROUP, "failure_flag"),
            tag_equals=(("exception", CONNECTION_FAILED_EXCEPTION),),
        ),
        _sum(
            "service_creation_failures",
            "linkerd_service_creation_failures",
            CLIENT_SCOPE,
            tags_absent=_NO_EXCEPTION,
        ),
    ),
    AlertClass.ENDPOINTS: (
        _gauge("available", "linkerd_loadbalancer_available", Aggregate.LAST, CLIENT_SCOPE),
        _gauge("size", "linkerd_loadbalancer_size", Aggregate.LAST, CLIENT_SCOPE),
        _gauge("size_max", "linkerd_loadbalancer_size", Aggregate.MAX, CLIENT_SCOPE, lookback=True),
    ),
    AlertClass.RETRIES: (
        _sum("retries_total", "linkerd_retries_total", SERVICE_SCOPE),
        _sum("retry_lines", "linkerd_retries_total", SERVICE_SCOPE, field=LINES),
        _sum("requests", "linkerd_requests", SERVICE_SCOPE),
        _sum("request_lines", "linkerd_requests", SERVICE_SCOPE, field=LINES),
        _sum("budget_exhausted", "linkerd_retries_budget_exhausted", CLIENT_SCOPE, SERVICE_SCOPE),
        _gauge(
            "budget_min",
            "linkerd_retries_budget",
            Aggregate.MIN,
            CLIENT_SCOPE,
            SERVICE_SCOPE,
            group_by=ROUTER_GROUP,
        ),
    ),
    AlertClass.INGEST: (
        # The sidecar writes its own point every flush even without traffic; requests show
        # that Linkerd itself is still sending. Any scope: freshness, not a reading.
        SeriesSelect("sidecar", "meshalert_sidecar", "received", (), Aggregate.NEWEST, HOST_GROUP),
        SeriesSelect("requests", "linkerd_requests", "count", (), Aggregate.NEWEST, HOST_GROUP),
    ),
}
"""The series each class reads (see the module docstring for the choice of scopes). The
evaluation class reads the state store, not the metrics store, so it has no query."""


def class_query(
    alert_class: AlertClass,
    *,
    window_ms: int,
    end_ms: int,
    services: Iterable[ServiceRef | str] = (),
    lookback_ms: int = DEFAULT_LOOKBACK_MS,
) -> ClassQuery:
    """The query for one class and window; ``services`` are refs or keys (``"ns/svc"``)."""
    refs = tuple(
        sorted({s if isinstance(s, ServiceRef) else ServiceRef.parse(s) for s in services})
    )
    return ClassQuery(alert_class, window_ms, end_ms, CLASS_SELECTS[alert_class], refs, lookback_ms)


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
    """One router's view of one service; ``*_lines`` are the statsd lines received (0 from
    a source that does not count lines)."""

    requests: float = 0.0
    failures: float = 0.0
    connection_failures: float = 0.0
    request_lines: float = 0.0
    failure_lines: float = 0.0
    service_creation_failures: float = 0.0


@dataclass(frozen=True)
class EndpointBalancer:
    """One load balancer's last gauges; ``None`` when that gauge had no point.
    ``size_max`` is its largest ``size`` over the lookback (the learned count)."""

    host: str
    available: float | None
    size: float | None
    size_max: float | None = None
    client: str = ""


EndpointHost = EndpointBalancer
"""The earlier name: every balancer is on one host."""


@dataclass(frozen=True)
class EndpointsAggregate:
    balancers: tuple[EndpointBalancer, ...]
    """Sorted by host, then client."""

    @property
    def hosts(self) -> tuple[EndpointBalancer, ...]:
        return self.balancers


@dataclass(frozen=True)
class RetriesAggregate:
    retries_total: float = 0.0
    requests: float = 0.0
    budget_exhausted: float = 0.0
    retry_lines: float = 0.0
    request_lines: float = 0.0
    budget_min: float | None = None
    """The retry budget gauge's lowest balance in the window (None: no gauge)."""


@dataclass(frozen=True)
class IngestAggregate:
    """One host's newest point time (epoch ms) among the ingest selects."""

    newest_ms: int


ServiceAggregate = (
    LatencyAggregate | FailuresAggregate | EndpointsAggregate | RetriesAggregate | IngestAggregate
)


RoutedAggregates = Mapping[str, ServiceAggregate]
"""One service's aggregates per router (``""``: series without a router tag)."""


@dataclass(frozen=True)
class ClassAggregates:
    """A class query's answer: per service key, the class's typed aggregate per router.

    A service appears only when the window held at least one matching point for it.
    ``query_text`` is what was run (for evidence and replay); ``queries_issued`` counts the
    store round trips it took.
    """

    query: ClassQuery
    services: Mapping[str, RoutedAggregates]
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
    """Turn a store's grouped rows into typed per-service aggregates (pure).

    The ingest class is keyed by host (a series without a host tag as ``""``) instead."""
    if query.alert_class is AlertClass.INGEST:
        return ClassAggregates(query, _hosts(rows), query_text, queries_issued)
    by_service: dict[str, list[SelectRow]] = {}
    for key, row in _attributed(query, rows):
        by_service.setdefault(key, []).append(row)
    build = _BUILDERS[query.alert_class]
    services: dict[str, RoutedAggregates] = {}
    for key, svc_rows in sorted(by_service.items()):
        by_router: dict[str, list[SelectRow]] = {}
        for row in svc_rows:
            by_router.setdefault(row.tags.get("router", ""), []).append(row)
        services[key] = {router: build(r) for router, r in sorted(by_router.items())}
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


def _hosts(rows: Iterable[SelectRow]) -> dict[str, RoutedAggregates]:
    newest: dict[str, int] = {}
    for row in rows:
        if math.isfinite(row.value):
            host = row.tags.get("host", "")
            newest[host] = max(newest.get(host, 0), int(row.value))
    return {host: {"": IngestAggregate(ms)} for host, ms in sorted(newest.items())}


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
    s = _sums([r for r in rows if r.select != "connection_failures"])
    # One connect failure is counted under each of its flags (and unflagged, if Finagle
    # records it so): the flags are views of the same events, so the largest is the count.
    by_flag: dict[str, float] = {}
    for row in rows:
        if row.select == "connection_failures":
            flag = row.tags.get("failure_flag", "")
            by_flag[flag] = by_flag.get(flag, 0.0) + row.value
    return FailuresAggregate(
        requests=s.get("requests", 0.0),
        failures=s.get("failures", 0.0),
        connection_failures=max(by_flag.values(), default=0.0),
        request_lines=s.get("request_lines", 0.0),
        failure_lines=s.get("failure_lines", 0.0),
        service_creation_failures=s.get("service_creation_failures", 0.0),
    )


def _endpoints(rows: list[SelectRow]) -> EndpointsAggregate:
    gauges: dict[tuple[str, str], dict[str, float]] = {}
    for row in rows:
        balancer = (row.tags.get("host", ""), row.tags.get("client", ""))
        gauges.setdefault(balancer, {})[row.select] = row.value
    return EndpointsAggregate(
        tuple(
            EndpointBalancer(host, g.get("available"), g.get("size"), g.get("size_max"), client)
            for (host, client), g in sorted(gauges.items())
        )
    )


def _retries(rows: list[SelectRow]) -> RetriesAggregate:
    s = _sums([r for r in rows if r.select != "budget_min"])
    budgets = [r.value for r in rows if r.select == "budget_min"]
    return RetriesAggregate(
        retries_total=s.get("retries_total", 0.0),
        requests=s.get("requests", 0.0),
        budget_exhausted=s.get("budget_exhausted", 0.0),
        retry_lines=s.get("retry_lines", 0.0),
        request_lines=s.get("request_lines", 0.0),
        budget_min=min(budgets) if budgets else None,
    )


_BUILDERS: Mapping[AlertClass, Callable[[list[SelectRow]], ServiceAggregate]] = {
    AlertClass.LATENCY: _latency,
    AlertClass.FAILURES: _failures,
    AlertClass.ENDPOINTS: _endpoints,
    AlertClass.RETRIES: _retries,
}
