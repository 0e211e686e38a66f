"""The retries anomaly baseline as plain values: a bucketed query and the median it yields.

The retries rule's optional ``anomaly_factor`` compares a service's retry ratio with "its
own median over the same window length during the previous day". A :class:`BucketQuery`
asks one store, in one round trip, for the ``linkerd_retries_total`` and
``linkerd_requests`` sums (``scope=service``, summed over hosts) of *every* service in
consecutive buckets of the window length, grouped by (namespace, service, router, bucket);
the number of queries never grows with the number of services. Routers stay apart, as in
the retries window: in a DaemonSet mesh the caller's ``outgoing`` router retries and the
callee's ``incoming`` router does not, so their sum would halve the ratio. Each router has
its own baseline, and an observation is compared with the baseline of the router it judged
(:func:`meshalert.alerts.baseline.with_baseline`).

The span: the current window is ``[end - w, end)``; the baseline reads the buckets that
end where it starts, ``[end - w - n*w, end - w)`` with ``n = (lookback - w) // w`` (287
five-minute buckets for a one-day lookback). Bucket edges are aligned to ``end`` (so to
``epoch + offset_ms``, which is how InfluxQL ``GROUP BY time(w, offset)`` and Flux
``aggregateWindow(offset:)`` place them), and the current window is left out so an ongoing
incident does not raise its own baseline.

The baseline is the median over a router's buckets of ``retries / requests``; buckets with
no requests are skipped. With fewer than ``min_buckets`` usable buckets (12 by default: an hour of
five-minute buckets) a service has no baseline, and the anomaly test does not fire for it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from meshalert.alert_classes import AlertClass
from meshalert.queries.model import (
    CLASS_SELECTS,
    ROUTER_GROUP,
    Aggregate,
    SeriesSelect,
    service_key,
)

LOOKBACK_MS = 86_400_000
MIN_BUCKETS = 12
NUMERATOR = "retries_total"
DENOMINATOR = "requests"

RETRY_RATIO_SELECTS: tuple[SeriesSelect, ...] = tuple(
    replace(s, group_by=ROUTER_GROUP)
    for s in CLASS_SELECTS[AlertClass.RETRIES]
    if s.name in (NUMERATOR, DENOMINATOR)
)
"""The retries class's own ratio parts, so the baseline divides what the window does, and
like the window per router (one bucket series per service and router)."""


@dataclass(frozen=True)
class BucketQuery:
    """Sums of ``selects`` per (namespace, service, router, bucket of ``window_ms``) over the
    span."""

    window_ms: int
    end_ms: int
    lookback_ms: int = LOOKBACK_MS
    selects: tuple[SeriesSelect, ...] = RETRY_RATIO_SELECTS

    def __post_init__(self) -> None:
        if self.window_ms <= 0:
            raise ValueError(f"window_ms must be positive, got {self.window_ms}")
        if self.bucket_count < 1:
            raise ValueError(
                f"lookback_ms ({self.lookback_ms}) leaves no bucket of {self.window_ms} ms "
                "before the current window"
            )
        for sel in self.selects:
            if sel.aggregate is not Aggregate.SUM or sel.group_by != ROUTER_GROUP:
                raise ValueError(f"select {sel.name!r} must sum per (namespace, service, router)")
        names = [s.name for s in self.selects]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate select names in {names}")

    @property
    def bucket_count(self) -> int:
        return (self.lookback_ms - self.window_ms) // self.window_ms

    @property
    def stop_ms(self) -> int:
        """Exclusive end of the span: the current window's start."""
        return self.end_ms - self.window_ms

    @property
    def start_ms(self) -> int:
        """Inclusive start of the span (the first bucket's start)."""
        return self.stop_ms - self.bucket_count * self.window_ms

    @property
    def offset_ms(self) -> int:
        """Where bucket edges fall relative to the epoch, in ``[0, window_ms)``."""
        return self.start_ms % self.window_ms

    def bucket_start(self, ts_ms: int) -> int | None:
        """The start of the bucket holding ``ts_ms``; None outside the span."""
        if not self.start_ms <= ts_ms < self.stop_ms:
            return None
        return ts_ms - (ts_ms - self.start_ms) % self.window_ms

    def select(self, name: str) -> SeriesSelect:
        for sel in self.selects:
            if sel.name == name:
                return sel
        raise KeyError(name)


def baseline_query(window_ms: int, end_ms: int, *, lookback_ms: int = LOOKBACK_MS) -> BucketQuery:
    return BucketQuery(window_ms, end_ms, lookback_ms)


@dataclass(frozen=True)
class BucketRow:
    """One (select, service, bucket) sum as a store returns it."""

    select: str
    namespace: str
    service: str
    bucket_ms: int
    """Any instant inside the bucket (readers return its start)."""
    value: float
    router: str = ""
    """The router label (empty for series without one: a one-router mesh's old points)."""


@dataclass(frozen=True)
class RatioBucket:
    start_ms: int
    retries: float
    requests: float


@dataclass(frozen=True)
class Baseline:
    """A service's median retry ratio; ``ratio`` is None with too few usable buckets."""

    ratio: float | None
    buckets: int
    """Buckets with requests (the ones the median is taken over)."""


RouterBuckets = Mapping[str, tuple[RatioBucket, ...]]
"""Per router label, one service's buckets in time order."""


@dataclass(frozen=True)
class BucketResult:
    """Per service key and router, its buckets in time order (only buckets holding a
    point)."""

    query: BucketQuery
    services: Mapping[str, RouterBuckets]
    query_text: str
    queries_issued: int = 1

    def baselines(self, min_buckets: int = MIN_BUCKETS) -> dict[str, dict[str, Baseline]]:
        """Per service key, per router, its baseline (routers never summed)."""
        return {
            key: {router: baseline_of(b, min_buckets) for router, b in routers.items()}
            for key, routers in self.services.items()
        }


@runtime_checkable
class BucketReader(Protocol):
    """A store that can answer a :class:`BucketQuery` (every window reader here can)."""

    def fetch_buckets(self, query: BucketQuery) -> BucketResult: ...


def assemble_buckets(
    query: BucketQuery, rows: Iterable[BucketRow], *, query_text: str, queries_issued: int = 1
) -> BucketResult:
    """Sum a store's rows into per-(service, router) ratio buckets (pure); rows outside the
    span or of a select the query does not have are left out. Rows of one router add up
    (a store may split a bucket); rows of two routers never do."""
    sums: dict[str, dict[str, dict[int, dict[str, float]]]] = {}
    wanted = {s.name for s in query.selects}
    for row in rows:
        start = query.bucket_start(row.bucket_ms)
        if start is None or row.select not in wanted or not row.service:
            continue
        routers = sums.setdefault(service_key(row.namespace, row.service), {})
        slot = routers.setdefault(row.router, {}).setdefault(start, {})
        slot[row.select] = slot.get(row.select, 0.0) + row.value
    services = {
        key: {
            router: tuple(
                RatioBucket(start, parts.get(NUMERATOR, 0.0), parts.get(DENOMINATOR, 0.0))
                for start, parts in sorted(buckets.items())
            )
            for router, buckets in sorted(routers.items())
        }
        for key, routers in sorted(sums.items())
    }
    return BucketResult(query, services, query_text, queries_issued)


def baseline_of(buckets: Iterable[RatioBucket], min_buckets: int = MIN_BUCKETS) -> Baseline:
    ratios = [b.retries / b.requests for b in buckets if b.requests > 0]
    if len(ratios) < max(1, min_buckets):
        return Baseline(None, len(ratios))
    return Baseline(statistics.median(ratios), len(ratios))
