"""Retries baselines for the engine: fetched through a store, cached per window length.

Baselines move slowly (a median over a day), so :class:`BaselineCache` runs the bucketed
query (:mod:`meshalert.queries.baseline`) at most once per ``ttl_ms`` per window length and
answers every cycle in between from memory: a one-minute cycle does not scan a day of data
every minute. The cache is driven by the *cycle time* the engine passes in, not by a wall
clock, so tests step it without sleeping and a backtest refreshes on the same schedule as a
live run. A cycle earlier than the cached one (a backtest starting over) refetches.

A failed baseline query does not fail the cycle: the threshold and budget tests still run,
the cache keeps its last good answer (or has none), and the failure shows in the evidence
as ``baseline_error``. It is retried on the next cycle.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from meshalert.alerts.model import Observation
from meshalert.queries.baseline import (
    LOOKBACK_MS,
    MIN_BUCKETS,
    Baseline,
    BucketQuery,
    BucketReader,
    BucketResult,
)
from meshalert.queries.flux import flux_time
from meshalert.queries.model import WindowQueryError

DEFAULT_TTL_MS = 900_000
DETAIL_BASELINE = "baseline"
"""The detail key ``RetriesRule.judge`` reads (``meshalert.rules.models.DETAIL_BASELINE``;
not imported, so the engine does not load the rules document's dependencies)."""
NO_BASELINE = Baseline(None, 0)


@dataclass(frozen=True)
class Baselines:
    """Every service's baselines, one per router, for one window length, as of one query."""

    window_ms: int
    services: Mapping[str, Mapping[str, Baseline]] = field(default_factory=dict)
    span: str = ""
    """The buckets' span, ``[start, stop)`` in RFC 3339 (empty when nothing was fetched)."""
    query_text: str = ""
    queries_issued: int = 0
    """Store round trips this answer cost (0 when it came from the cache)."""
    error: str | None = None

    def of(self, key: str, router: str) -> Baseline:
        """``key``'s baseline on ``router``: never another router's, never their sum."""
        return self.services.get(key, {}).get(router, NO_BASELINE)


class BaselineSource(Protocol):
    """What the engine asks: the baselines for a window length at a cycle."""

    def get(self, window_ms: int, cycle_ms: int) -> Baselines: ...


@dataclass
class _Entry:
    at_ms: int
    baselines: Baselines


class BaselineCache:
    """A :class:`BaselineSource` over a :class:`BucketReader`, one entry per window length."""

    def __init__(
        self,
        reader: BucketReader,
        *,
        ttl_ms: int = DEFAULT_TTL_MS,
        lookback_ms: int = LOOKBACK_MS,
        min_buckets: int = MIN_BUCKETS,
    ) -> None:
        if ttl_ms < 0:
            raise ValueError(f"ttl_ms must not be negative, got {ttl_ms}")
        self._reader = reader
        self._ttl_ms = ttl_ms
        self._lookback_ms = lookback_ms
        self._min_buckets = min_buckets
        self._entries: dict[int, _Entry] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BaselineCache({self._reader!r}, ttl_ms={self._ttl_ms})"

    def get(self, window_ms: int, cycle_ms: int) -> Baselines:
        with self._lock:
            entry = self._entries.get(window_ms)
            if entry is not None and 0 <= cycle_ms - entry.at_ms < self._ttl_ms:
                return replace(entry.baselines, queries_issued=0)
            fresh = self._fetch(window_ms, cycle_ms)
            if fresh.error is None:
                self._entries[window_ms] = _Entry(cycle_ms, fresh)
                return fresh
            if entry is not None:  # keep answering from the last good baselines
                return replace(entry.baselines, queries_issued=1, error=fresh.error)
            return fresh

    def _fetch(self, window_ms: int, cycle_ms: int) -> Baselines:
        try:
            query = BucketQuery(window_ms, cycle_ms, self._lookback_ms)
        except ValueError as exc:  # a window too long for the lookback: never a baseline
            return Baselines(window_ms, error=str(exc))
        try:
            result = self._reader.fetch_buckets(query)
        except WindowQueryError as exc:
            return Baselines(window_ms, queries_issued=1, error=str(exc))
        return Baselines(
            window_ms,
            result.baselines(self._min_buckets),
            span=f"[{flux_time(query.start_ms)}, {flux_time(query.stop_ms)})",
            query_text=result.query_text,
            queries_issued=result.queries_issued,
        )


class _WeakReader:
    """Forwards to a reader without keeping it alive (the shared cache must not)."""

    def __init__(self, reader: BucketReader) -> None:
        self._ref = weakref.ref(reader)

    def __repr__(self) -> str:
        return repr(self._ref())

    def fetch_buckets(self, query: BucketQuery) -> BucketResult:
        reader = self._ref()
        if reader is None:
            raise WindowQueryError("the store reader of this baseline cache is gone")
        return reader.fetch_buckets(query)


_SHARED: weakref.WeakKeyDictionary[BucketReader, BaselineCache] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def shared_cache(reader: BucketReader) -> BaselineCache:
    """The one cache of ``reader``: engines built per invocation around a long-lived reader
    (a Lambda container) share it, so the cache outlives each engine but not the reader.
    A reader that cannot be a weak dictionary key gets a cache of its own."""
    with _SHARED_LOCK:
        try:
            cache = _SHARED.get(reader)
            if cache is None:
                cache = _SHARED[reader] = BaselineCache(_WeakReader(reader))
        except TypeError:  # unhashable or not weakly referenceable
            return BaselineCache(reader)
        return cache


def with_baseline(obs: Observation, baselines: Baselines) -> Observation:
    """``obs`` with its service's baseline in ``detail`` (pure); the rule reads
    ``detail["baseline"]`` and the evidence shows how it was obtained.

    The baseline is that of the router whose view ``obs`` judged (``detail["router"]``, set
    by the router policy in :mod:`meshalert.alerts.observe`), so the anomaly test compares
    one router's ratio with the same router's median. An observation without a judged
    router (no data under the policy) gets no baseline."""
    router = obs.detail.get("router")
    baseline = baselines.of(obs.service, router) if isinstance(router, str) else NO_BASELINE
    detail: dict[str, float | str | None] = dict(obs.detail)
    detail[DETAIL_BASELINE] = baseline.ratio
    detail["baseline_buckets"] = float(baseline.buckets)
    detail["baseline_span"] = baselines.span
    if baselines.error is not None:
        detail["baseline_error"] = baselines.error
    return replace(obs, detail=detail)
