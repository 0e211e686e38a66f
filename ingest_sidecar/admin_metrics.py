"""Pull mode, pure part: Linkerd's ``/admin/metrics.json?tree=1`` -> the sidecar's points.

Linkerd 1.x serves its MetricsTree on the admin port. With ``tree=1`` every scope element is
its own JSON key and each leaf says what it is (``AdminMetricsExportTelemeter``):
``{"counter": n}`` (cumulative since the counter was created), ``{"gauge": x}`` (current
value), or ``{"stat.count": n, "stat.p50": .., ..}`` (a summary of the histogram's last
snapshot interval, one minute by default; the histogram is reset at each snapshot). The flat
form (no ``tree``) loses which leaf is a counter and which a gauge, so pull mode reads the
tree.

Names: the scope elements joined with ``/`` are exactly what Linkerd's statsd telemeter
sanitises into a statsd name (``StatsDStatsReceiver.mkName``), so :func:`statsd_name` applies
that rule and the sidecar's one :class:`~ingest_sidecar.linkerd_names.NameMapper` gives the
same measurement and tags for either source.

What a poll writes, per series (timestamp = the flush interval it completes):

* counter: ``count`` = the increase since the previous poll, ``samples`` = the same number
  (every increment is observed: nothing is sampled), only when the increase is non-zero.
  The first poll only sets the baseline. A counter that first appears later counts in full
  (it was created after the previous poll). A counter that goes down, or any counter after
  ``jvm/start_time`` changed or ``jvm/uptime`` went down, means Linkerd restarted: its new
  value is the delta, and the reset is counted. (The JVM gauges catch counters that grew
  back past their old value before the poll.)
* gauge: ``value`` as served.
* stat (histogram): when a new snapshot is served (its summary differs from the previous
  one, or one snapshot interval passed), ``count``, ``sum``, ``min``, ``max``, ``mean`` and
  ``p50``..``p999`` (Linkerd's ``p9990``) like the statsd timer point, and the mergeable
  ``<name>_bucket`` points rebuilt from the quantiles (:func:`summary_buckets`): exact total
  count, each quantile in the bucket that holds it.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ingest_sidecar.aggregate import BUCKET_SUFFIX
from ingest_sidecar.linkerd_names import NameMapper
from ingest_sidecar.model import SeriesKey
from meshalert.histogram import BOUNDS, LE_LABELS, bucket_index
from meshalert.lineprotocol import FieldValue, Point

START_TIME_PATH = "jvm/start_time"
"""util-jvm's JVM start time gauge (epoch ms): it changes when Linkerd restarts. Finagle
gauges are 32-bit floats, so it moves in steps of about two minutes; ``jvm/uptime`` going
down catches a restart within one step."""
UPTIME_PATH = "jvm/uptime"
DEFAULT_SNAPSHOT_INTERVAL_MS = 60_000
"""Linkerd's ``-io.buoyant.telemetry.admin.histogramSnapshotInterval`` default."""

STAT_KEYS: tuple[str, ...] = (
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "p50",
    "p90",
    "p95",
    "p99",
    "p9990",
    "p9999",
)
# Quantile knots of a Finagle summary: (fraction of samples at or below, summary key).
_KNOTS: tuple[tuple[float, str], ...] = (
    (0.0, "min"),
    (0.5, "p50"),
    (0.9, "p90"),
    (0.95, "p95"),
    (0.99, "p99"),
    (0.999, "p9990"),
    (0.9999, "p9999"),
    (1.0, "max"),
)
_STATSD_UNSAFE = re.compile(r"[^/A-Za-z0-9]")


class AdminMetricsError(ValueError):
    """The admin endpoint's answer is not a metrics tree; the message says what it is."""


def statsd_name(path: str, prefix: str = "linkerd") -> str:
    """The statsd name Linkerd's statsd telemeter gives the metric at ``path``
    (``rt/outgoing/service/svc/web/requests`` -> ``linkerd.rt.outgoing.service.svc.web.requests``).

    Same steps as ``StatsDStatsReceiver.mkName``: every character outside ``[/A-Za-z0-9]``
    becomes ``_``, ``//`` becomes ``/`` (one pass), ``/`` becomes ``.``.
    """
    body = _STATSD_UNSAFE.sub("_", path).replace("//", "/").replace("/", ".")
    return f"{prefix}.{body}" if prefix else body


@dataclass(frozen=True)
class StatSummary:
    """One histogram's summary as served (``count`` only when the snapshot was empty)."""

    values: Mapping[str, float]

    @property
    def count(self) -> float:
        return self.values.get("count", 0.0)

    def signature(self) -> tuple[float, ...]:
        return tuple(self.values.get(k, math.nan) for k in STAT_KEYS)


@dataclass(frozen=True)
class AdminSnapshot:
    """One parsed poll: metric path (elements joined with ``/``) -> value, per kind."""

    counters: Mapping[str, float] = field(default_factory=dict)
    gauges: Mapping[str, float] = field(default_factory=dict)
    stats: Mapping[str, StatSummary] = field(default_factory=dict)
    bad_leaves: int = 0
    """Leaves with a value that is not a finite number, skipped."""


def parse_tree(document: object) -> AdminSnapshot:
    """Parse ``/admin/metrics.json?tree=1`` (already JSON-decoded).

    Never raises for wire values: a leaf whose value is not a finite number is skipped and
    counted. Only a document that is not a JSON object raises :class:`AdminMetricsError`.
    """
    if not isinstance(document, dict):
        raise AdminMetricsError(
            f"expected a JSON object from /admin/metrics.json?tree=1, got {type(document).__name__}"
        )
    counters: dict[str, float] = {}
    gauges: dict[str, float] = {}
    stats: dict[str, StatSummary] = {}
    bad = 0
    # Iterative walk: a tree is as deep as its scopes, but never trust wire depth.
    stack: list[tuple[str, dict[str, object]]] = [("", document)]
    while stack:
        path, node = stack.pop()
        summary: dict[str, float] = {}
        for key, value in node.items():
            if isinstance(value, dict):
                stack.append((f"{path}/{key}" if path else key, value))
                continue
            kind, _, stat_key = key.partition(".")
            number = _number(value)
            if kind not in ("counter", "gauge", "stat") or not path:
                continue  # a key that is no leaf field (future formats): not ours to read
            if number is None:
                bad += 1
            elif kind == "counter":
                counters[path] = number
            elif kind == "gauge":
                gauges[path] = number
            elif stat_key in STAT_KEYS:
                summary[stat_key] = number
        if "count" in summary:
            stats[path] = StatSummary(summary)
    return AdminSnapshot(counters, gauges, stats, bad)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


# --- cumulative counters -> deltas --------------------------------------------------------


@dataclass(frozen=True)
class Deltas:
    deltas: Mapping[str, float]
    """Path -> increase since the previous poll (zero increases left out)."""
    resets: int
    """Counters found reset (a restart of Linkerd, or of one counter) at this poll."""
    restarted: bool
    """``jvm/start_time`` changed or ``jvm/uptime`` went down since the previous poll."""


class CounterTracker:
    """Turns successive cumulative readings into deltas; remembers only the last poll."""

    def __init__(self) -> None:
        self._last: dict[str, float] | None = None
        self._started: float | None = None
        self._uptime: float | None = None
        self.resets_total = 0

    @property
    def primed(self) -> bool:
        return self._last is not None

    def advance(
        self,
        counters: Mapping[str, float],
        started: float | None = None,
        uptime: float | None = None,
    ) -> Deltas:
        """Deltas from the previous reading to ``counters``; the first call only primes.
        ``started`` and ``uptime``: the JVM's start time and uptime, when Linkerd serves them."""
        restarted = (
            started is not None and self._started is not None and started != self._started
        ) or (uptime is not None and self._uptime is not None and uptime < self._uptime)
        if started is not None:
            self._started = started
        if uptime is not None:
            self._uptime = uptime
        last, self._last = self._last, dict(counters)
        if last is None:
            return Deltas({}, 0, restarted=False)
        deltas: dict[str, float] = {}
        resets = 0
        for path, value in counters.items():
            before = last.get(path)
            if before is None:
                delta = value  # created after the previous poll: all of it is new
            elif restarted or value < before:
                delta = value
                resets += 1
            else:
                delta = value - before
            if delta > 0:
                deltas[path] = delta
        self.resets_total += resets
        return Deltas(deltas, resets, restarted)


# --- histogram summaries -> new snapshots and buckets ---------------------------------------


class SnapshotTracker:
    """Says which served summaries are new snapshots (each is written once).

    Linkerd replaces every summary at once each snapshot interval, and polls come more often.
    A summary is new when it differs from the one seen before, or when a full snapshot
    interval has passed since that one was first seen (a later minute with identical
    figures).
    """

    def __init__(self, snapshot_interval_ms: int = DEFAULT_SNAPSHOT_INTERVAL_MS) -> None:
        if snapshot_interval_ms <= 0:
            raise ValueError(f"snapshot_interval_ms must be positive, got {snapshot_interval_ms}")
        self._interval = snapshot_interval_ms
        self._seen: dict[str, tuple[tuple[float, ...], int]] = {}
        self._primed = False

    def new_summaries(
        self, stats: Mapping[str, StatSummary], now_ms: int
    ) -> dict[str, StatSummary]:
        """Summaries to write now. The first call only primes: what Linkerd serves at start
        may be a snapshot of before the sidecar, and is not this sidecar's to write."""
        fresh: dict[str, StatSummary] = {}
        seen: dict[str, tuple[tuple[float, ...], int]] = {}
        for path, summary in stats.items():
            sig = summary.signature()
            before = self._seen.get(path)
            if before is not None and before[0] == sig and now_ms - before[1] < self._interval:
                seen[path] = before
                continue
            seen[path] = (sig, now_ms)
            if self._primed and (before is not None or summary.count > 0):
                fresh[path] = summary
        self._seen = seen
        self._primed = True
        return {p: s for p, s in fresh.items() if s.count > 0}


def summary_buckets(summary: StatSummary) -> dict[int, float]:
    """Per-bucket counts (index into :data:`~meshalert.histogram.LE_LABELS`) rebuilt from a
    summary's quantiles.

    Between consecutive knots (min, p50, p90, p95, p99, p9990, p9999, max) lies the share of
    samples the two quantiles say; it is spread evenly in value over that span, bucket by
    bucket. The counts add up to ``count`` and every knot's rank falls in the bucket that
    holds the knot, so a percentile read back from the buckets is within one bucket of
    Linkerd's own. Knots that are missing or out of order (a malformed summary) are
    skipped; with no usable knot the whole count goes to the bucket of ``avg`` (or ``+Inf``).
    """
    total = summary.count
    if total <= 0:
        return {}
    knots: list[tuple[float, float]] = []
    for fraction, key in _KNOTS:
        value = summary.values.get(key)
        if value is None or (knots and value < knots[-1][1]):
            continue
        knots.append((fraction, max(value, 0.0)))
    buckets: dict[int, float] = {}
    if len(knots) < 2 or knots[0][0] != 0.0 or knots[-1][0] != 1.0:
        avg = summary.values.get("avg")
        idx = bucket_index(avg) if avg is not None else len(LE_LABELS) - 1
        return {idx: total}
    for (f0, v0), (f1, v1) in itertools.pairwise(knots):
        mass = (f1 - f0) * total
        if mass > 0:
            for idx, share in _spread(v0, v1):
                buckets[idx] = buckets.get(idx, 0.0) + mass * share
    return buckets


def _spread(low: float, high: float) -> Iterator[tuple[int, float]]:
    """(bucket index, fraction) of a uniform spread over ``(low, high]``."""
    first, last = bucket_index(low), bucket_index(high)
    if first == last or high <= low:
        yield last, 1.0
        return
    span = high - low
    for idx in range(first, last + 1):
        lower = BOUNDS[idx - 1] if idx > 0 else 0.0
        upper = BOUNDS[idx] if idx < len(BOUNDS) else math.inf
        overlap = min(upper, high) - max(lower, low)
        if overlap > 0:
            yield idx, overlap / span


# --- the whole conversion --------------------------------------------------------------------


@dataclass(frozen=True)
class PullResult:
    points: list[Point]
    series: int
    resets: int
    restarted: bool
    bad_leaves: int
    rejected_series: int


class AdminConverter:
    """Successive snapshots -> points in the statsd pipeline's schema (pure, stateful)."""

    def __init__(
        self,
        mapper: NameMapper,
        *,
        prefix: str = "linkerd",
        max_series: int = 100_000,
        snapshot_interval_ms: int = DEFAULT_SNAPSHOT_INTERVAL_MS,
    ) -> None:
        self._mapper = mapper
        self._prefix = prefix
        self._max_series = max_series
        self._counters = CounterTracker()
        self._snapshots = SnapshotTracker(snapshot_interval_ms)

    @property
    def resets_total(self) -> int:
        return self._counters.resets_total

    def convert(self, snapshot: AdminSnapshot, interval_start_ms: int, host: str) -> PullResult:
        deltas = self._counters.advance(
            snapshot.counters,
            snapshot.gauges.get(START_TIME_PATH),
            snapshot.gauges.get(UPTIME_PATH),
        )
        summaries = self._snapshots.new_summaries(snapshot.stats, interval_start_ms)
        points: list[Point] = []
        series = rejected = 0

        def admit() -> bool:
            nonlocal series, rejected
            if series >= self._max_series:
                rejected += 1
                return False
            series += 1
            return True

        for path, delta in sorted(deltas.deltas.items()):
            if admit():
                fields: dict[str, FieldValue] = {"count": delta, "samples": round(delta)}
                points.append(self._point(path, fields, interval_start_ms, host))
        for path, value in sorted(snapshot.gauges.items()):
            if admit():
                points.append(self._point(path, {"value": value}, interval_start_ms, host))
        for path, summary in sorted(summaries.items()):
            if admit():
                points.extend(self._stat_points(path, summary, interval_start_ms, host))
        return PullResult(
            points, series, deltas.resets, deltas.restarted, snapshot.bad_leaves, rejected
        )

    def _key(self, path: str) -> SeriesKey:
        return self._mapper.map(statsd_name(path, self._prefix))

    def _point(self, path: str, fields: dict[str, FieldValue], ts: int, host: str) -> Point:
        key = self._key(path)
        return Point(key.measurement, _tags(key, host), tuple(fields.items()), ts)

    def _stat_points(self, path: str, summary: StatSummary, ts: int, host: str) -> list[Point]:
        key = self._key(path)
        tags = _tags(key, host)
        v = summary.values
        fields: dict[str, FieldValue] = {"count": summary.count}
        for ours, theirs in (
            ("sum", "sum"),
            ("min", "min"),
            ("max", "max"),
            ("mean", "avg"),
            ("p50", "p50"),
            ("p90", "p90"),
            ("p95", "p95"),
            ("p99", "p99"),
            ("p999", "p9990"),
            ("p9999", "p9999"),
        ):
            if theirs in v:
                fields[ours] = v[theirs]
        out = [Point(key.measurement, tags, tuple(fields.items()), ts)]
        name = key.measurement + BUCKET_SUFFIX
        for idx, count in sorted(summary_buckets(summary).items()):
            if count > 0:
                bucket_tags = tuple(sorted((*tags, ("le", LE_LABELS[idx]))))
                out.append(Point(name, bucket_tags, (("count", count),), ts))
        return out


def _tags(key: SeriesKey, host: str) -> tuple[tuple[str, str], ...]:
    tags = [(k, v) for k, v in key.tags if k != "host" and v != ""]
    if host:
        tags.append(("host", host))
    return tuple(sorted(tags))
