"""Per-flush-interval aggregation of statsd samples into meshalert's series schema.

Pure code: values in, :class:`~meshalert.lineprotocol.Point` values out; the caller owns the
clock (see :func:`align_interval`) and the socket.

What one flush writes, per series seen (timestamp = interval start, tags = key tags + ``host``):

* counter (``c``): ``count`` = sum of ``delta / rate`` (float), ``samples`` = lines received (int).
* timer (``ms``) and histogram (``h``), aggregated alike:

  - ``count`` = sum of ``1 / rate`` (the estimated number of observations);
  - ``sum`` = sum of ``value / rate``, scaled like ``count`` so that ``mean == sum / count``
    (the rate-weighted mean of the kept samples);
  - ``min``, ``max`` of the raw kept samples;
  - ``p50``, ``p90``, ``p95``, ``p99``, ``p999``: percentiles of the raw kept samples,
    unweighted, with linear interpolation between closest ranks (numpy's default
    ``method="linear"``; Hyndman & Fan type 7). Linkerd sends every metric at one sample
    rate, so weighting would change nothing in practice;
  - the mergeable histogram: measurement ``<name>_bucket``, tag ``le`` from
    :data:`meshalert.histogram.LE_LABELS`, field ``count`` = the rate-scaled number of samples
    in that bucket, per bucket (not cumulative), only for non-empty buckets.

  Beyond ``max_samples_per_series`` samples in one interval, ``count``, ``sum``, ``min``,
  ``max`` and the buckets stay exact, and the percentile fields come from a uniform reservoir
  of that many samples (seeded, so a run is reproducible).
* gauge (``g``): ``value`` = last value received. A gauge not seen in an interval is written
  again with its last value; at the flush of its ``gauge_expiry_intervals``-th consecutive
  unseen interval it is dropped from output and forgotten (with the default 3: re-emitted
  in the first two unseen intervals, gone from the third).
* set (``s``): ``count`` = number of distinct members (a float, like every ``count``).

Counters, timers and sets are forgotten at every flush; only gauges outlive an interval. The
cardinality guard refuses a sample that would create a series when ``max_series`` series
are held (seen this interval, or a gauge not yet expired); series already held are always
accepted. A sample whose value is not finite or whose rate is not in (0, 1] is skipped and
counted, never raised.

Overflow: a sample that would make its series' ``count`` or ``sum`` infinite (``1|c|@1e-320``
is ``1e320`` requests; two ``1e308`` counters overflow) is refused and counted in
``nonfinite_samples``; the series keeps every finite sample it had. A timer field that still
overflows at flush (a sum of huge values) is left out of that point alone, and the series is
counted in ``nonfinite_series``; its other fields are written.

Types: a name keeps the metric type it was first seen with (:class:`KindRegistry`, shared by
the intervals of one sidecar, bounded). A sample of another type under the same series key
(``requests:1|s`` after ``requests:1|c``) is refused and counted in ``type_clash_samples``,
because both would write the same ``count`` field of the same point and one would
overwrite the other.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from ingest_sidecar.model import MetricKind, SeriesKey
from meshalert.histogram import LE_LABELS, bucket_index
from meshalert.lineprotocol import FieldValue, Point

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p99", 99.0),
    ("p999", 99.9),
)
BUCKET_SUFFIX = "_bucket"

Tags = tuple[tuple[str, str], ...]

_COUNTER = MetricKind.COUNTER
_TIMER = MetricKind.TIMER
_HISTOGRAM = MetricKind.HISTOGRAM
_GAUGE = MetricKind.GAUGE
_isfinite = math.isfinite


def align_interval(now_ms: int, interval_ms: int) -> int:
    """Start of the wall-clock-aligned interval of ``interval_ms`` that contains ``now_ms``."""
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    return now_ms - now_ms % interval_ms


@dataclass(frozen=True, slots=True)
class FlushResult:
    points: list[Point]
    series: int
    """Distinct series written (a timer's ``_bucket`` points do not count separately)."""
    rejected_samples: int
    """Samples refused by the cardinality guard this interval."""
    rejected_series: int
    """Distinct keys refused by the guard this interval (saturates at max(max_series, 1024))."""
    invalid_samples: int = 0
    """Samples skipped because the value was not finite or the rate not in (0, 1]."""
    nonfinite_series: int = 0
    """Series left out because an aggregate overflowed to inf (e.g. ``1e308 / 0.01``)."""
    expired_gauges: int = 0
    """Gauges dropped and forgotten at this flush."""
    nonfinite_samples: int = 0
    """Samples refused because they would have made an aggregate infinite."""
    type_clash_samples: int = 0
    """Samples refused because their series key already carries another metric type."""


_KIND_FAMILY: dict[MetricKind, MetricKind] = {
    MetricKind.COUNTER: MetricKind.COUNTER,
    MetricKind.TIMER: MetricKind.TIMER,
    MetricKind.HISTOGRAM: MetricKind.TIMER,  # aggregated alike: the same fields
    MetricKind.GAUGE: MetricKind.GAUGE,
    MetricKind.SET: MetricKind.SET,
}


class KindRegistry:
    """The metric type each series key was first seen with; an LRU of ``capacity`` keys.

    Consulted once per series per interval (when the series first appears in it), so the
    LRU upkeep stays off the per-sample path.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._kinds: OrderedDict[SeriesKey, MetricKind] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kinds)

    def claim(self, key: SeriesKey, kind: MetricKind) -> bool:
        """True when ``key`` may hold ``kind`` (first seen, or seen with that type)."""
        family = _KIND_FAMILY[kind]
        known = self._kinds.get(key)
        if known is None:
            self._kinds[key] = family
            if len(self._kinds) > self._capacity:
                self._kinds.popitem(last=False)
            return True
        self._kinds.move_to_end(key)
        return known is family


class _Counter:
    __slots__ = ("count", "samples")

    def __init__(self) -> None:
        self.count = 0.0
        self.samples = 0


class _Gauge:
    __slots__ = ("idle", "value")

    def __init__(self, value: float) -> None:
        self.value = value
        self.idle = 0
        """Flushes since the gauge was last seen (0: seen in the current interval)."""


class _Overflow:
    """Exact running aggregates for a timer that outgrew its sample list."""

    __slots__ = ("buckets", "count", "maximum", "minimum", "seen", "total")

    def __init__(self) -> None:
        self.count = 0.0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.buckets: dict[int, float] = {}
        self.seen = 0

    def fold(self, value: float, rate: float) -> None:
        weight = 1.0 / rate
        self.count += weight
        self.total += value * weight
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        idx = bucket_index(value)
        self.buckets[idx] = self.buckets.get(idx, 0.0) + weight
        self.seen += 1


class _Timer:
    """Raw samples grouped by sample rate (one group in practice: Linkerd uses one rate)."""

    __slots__ = ("groups", "kept", "overflow", "reservoir", "weight", "weighted")

    def __init__(self) -> None:
        self.weight = 0.0  # running count and sum: a sample that would overflow is refused
        self.weighted = 0.0
        self.groups: dict[float, list[float]] = {}
        self.kept = 0
        self.overflow: _Overflow | None = None
        self.reservoir: list[float] = []

    def start_overflow(self) -> _Overflow:
        acc = _Overflow()
        for rate, values in self.groups.items():
            for value in values:
                acc.fold(value, rate)
            self.reservoir.extend(values)
        self.groups = {}
        self.overflow = acc
        return acc


@dataclass(frozen=True, slots=True)
class _TimerStats:
    fields: dict[str, FieldValue]
    buckets: dict[int, float]
    left_out: bool
    """True when a field overflowed and was left out."""


class IntervalAggregator:
    """Accumulates one flush interval of samples; :meth:`flush` turns them into points."""

    def __init__(
        self,
        *,
        max_series: int = 100_000,
        gauge_expiry_intervals: int = 3,
        max_samples_per_series: int = 10_000,
        seed: int = 0,
        kinds: KindRegistry | None = None,
    ) -> None:
        if max_series < 0:
            raise ValueError(f"max_series must be >= 0, got {max_series}")
        if gauge_expiry_intervals < 1:
            raise ValueError(f"gauge_expiry_intervals must be >= 1, got {gauge_expiry_intervals}")
        if max_samples_per_series < 1:
            raise ValueError(f"max_samples_per_series must be >= 1, got {max_samples_per_series}")
        self._max_series = max_series
        self._gauge_expiry = gauge_expiry_intervals
        self._max_samples = max_samples_per_series
        # The refused keys are remembered only to count them: bounded like the series.
        self._max_rejected_tracked = max(max_series, 1024)
        self._rng = random.Random(seed)
        self._counters: dict[SeriesKey, _Counter] = {}
        self._timers: dict[SeriesKey, _Timer] = {}
        self._gauges: dict[SeriesKey, _Gauge] = {}
        self._sets: dict[SeriesKey, set[str | float]] = {}
        self._held = 0
        self._rejected_samples = 0
        self._rejected_keys: set[SeriesKey] = set()
        self._invalid_samples = 0
        self._nonfinite_samples = 0
        self._type_clash_samples = 0
        self._kinds = kinds if kinds is not None else KindRegistry(max(2 * max_series, 1024))

    @property
    def held_series(self) -> int:
        """Series currently in memory: the number the cardinality guard compares."""
        return self._held

    def add(
        self,
        key: SeriesKey,
        kind: MetricKind,
        value: float,
        rate: float = 1.0,
        set_member: str | None = None,
    ) -> bool:
        """Aggregate one sample. False when it was refused: the cardinality guard rejected a
        new series, or the value/rate was unusable (counted in :class:`FlushResult`)."""
        # `not (0 < rate <= 1)` is also true for a NaN rate.
        if not (_isfinite(value) and 0.0 < rate <= 1.0):
            self._invalid_samples += 1
            return False
        if kind is _COUNTER:
            scaled = value / rate
            counter = self._counters.get(key)
            total = scaled if counter is None else counter.count + scaled
            if not _isfinite(total):
                self._nonfinite_samples += 1
                return False
            if counter is None:
                if not self._admit(key, kind):
                    return False
                counter = self._counters[key] = _Counter()
            counter.count = total
            counter.samples += 1
            return True
        if kind is _TIMER or kind is _HISTOGRAM:
            return self._add_timer(key, kind, value, rate)
        if kind is _GAUGE:
            gauge = self._gauges.get(key)
            if gauge is None:
                if not self._admit(key, kind):
                    return False
                self._gauges[key] = _Gauge(value)
            else:
                gauge.value = value
                gauge.idle = 0
            return True
        if kind is not MetricKind.SET:
            # Not a MetricKind member (e.g. the plain string "c"): normalise, or ValueError.
            return self.add(key, MetricKind(kind), value, rate, set_member)
        members = self._sets.get(key)
        if members is None:
            if not self._admit(key, kind):
                return False
            members = self._sets[key] = set()
        members.add(set_member if set_member is not None else value)
        return True

    def _add_timer(self, key: SeriesKey, kind: MetricKind, value: float, rate: float) -> bool:
        weight = 1.0 / rate
        timer = self._timers.get(key)
        count = weight if timer is None else timer.weight + weight
        total = value * weight if timer is None else timer.weighted + value * weight
        if not (_isfinite(count) and _isfinite(total)):
            self._nonfinite_samples += 1
            return False
        if timer is None:
            if not self._admit(key, kind):
                return False
            timer = self._timers[key] = _Timer()
        timer.weight = count
        timer.weighted = total
        if timer.kept < self._max_samples:
            group = timer.groups.get(rate)
            if group is None:
                timer.groups[rate] = [value]
            else:
                group.append(value)
            timer.kept += 1
            return True
        acc = timer.overflow or timer.start_overflow()
        acc.fold(value, rate)
        # Algorithm R: every sample of the interval ends up in the reservoir with equal odds.
        slot = self._rng.randrange(acc.seen)
        if slot < self._max_samples:
            timer.reservoir[slot] = value
        return True

    def _admit(self, key: SeriesKey, kind: MetricKind) -> bool:
        if not self._kinds.claim(key, kind):
            self._type_clash_samples += 1
            return False
        if self._held < self._max_series:
            self._held += 1
            return True
        self._rejected_samples += 1
        if len(self._rejected_keys) < self._max_rejected_tracked:
            self._rejected_keys.add(key)
        return False

    def flush(self, interval_start_ms: int, host: str) -> FlushResult:
        """Points for the interval starting at ``interval_start_ms``; resets the interval."""
        points: list[Point] = []
        series = 0
        nonfinite = 0
        for key, counter in self._counters.items():
            # Finite by construction: add() refuses a sample that would overflow it.
            fields: dict[str, FieldValue] = {
                "count": float(counter.count),
                "samples": counter.samples,
            }
            points.append(_point(key.measurement, _tags(key, host), fields, interval_start_ms))
            series += 1
        for key, timer in self._timers.items():
            stats = _timer_stats(timer)
            if stats.left_out:
                nonfinite += 1
            tags = _tags(key, host)
            points.append(_point(key.measurement, tags, stats.fields, interval_start_ms))
            points.extend(_bucket_points(key.measurement, tags, stats.buckets, interval_start_ms))
            series += 1
        for key, members in self._sets.items():
            fields = {"count": float(len(members))}
            points.append(_point(key.measurement, _tags(key, host), fields, interval_start_ms))
            series += 1
        expired = self._flush_gauges(points, interval_start_ms, host)
        series += len(self._gauges)
        result = FlushResult(
            points=points,
            series=series,
            rejected_samples=self._rejected_samples,
            rejected_series=len(self._rejected_keys),
            invalid_samples=self._invalid_samples,
            nonfinite_series=nonfinite,
            expired_gauges=expired,
            nonfinite_samples=self._nonfinite_samples,
            type_clash_samples=self._type_clash_samples,
        )
        self._reset_interval()
        return result

    def _flush_gauges(self, points: list[Point], interval_start_ms: int, host: str) -> int:
        expired = [key for key, gauge in self._gauges.items() if gauge.idle >= self._gauge_expiry]
        for key in expired:
            del self._gauges[key]
        for key, gauge in self._gauges.items():
            fields: dict[str, FieldValue] = {"value": float(gauge.value)}
            points.append(_point(key.measurement, _tags(key, host), fields, interval_start_ms))
            gauge.idle += 1
        return len(expired)

    def _reset_interval(self) -> None:
        self._counters = {}
        self._timers = {}
        self._sets = {}
        self._held = len(self._gauges)
        self._rejected_samples = 0
        self._rejected_keys = set()
        self._invalid_samples = 0
        self._nonfinite_samples = 0
        self._type_clash_samples = 0


def _tags(key: SeriesKey, host: str) -> Tags:
    """Key tags plus ``host`` (the sidecar's own wins), sorted, empty values dropped: the
    same normal form :meth:`Point.make` produces."""
    tags = [(k, v) for k, v in key.tags if k != "host" and v != ""]
    if host:
        tags.append(("host", host))
    tags.sort()
    return tuple(tags)


def _point(measurement: str, tags: Tags, fields: dict[str, FieldValue], ts: int) -> Point:
    return Point(measurement, tags, tuple(fields.items()), ts)


def _bucket_points(measurement: str, tags: Tags, buckets: dict[int, float], ts: int) -> list[Point]:
    name = measurement + BUCKET_SUFFIX
    cut = bisect.bisect_left(tags, ("le",))
    head, tail = tags[:cut], tags[cut:]
    return [
        Point(name, (*head, ("le", LE_LABELS[idx]), *tail), (("count", count),), ts)
        for idx, count in sorted(buckets.items())
        if count > 0.0
    ]


def _timer_stats(timer: _Timer) -> _TimerStats:
    """Fields and bucket counts of one timer; a field that is not finite is left out."""
    acc = timer.overflow
    if acc is not None:
        values = sorted(timer.reservoir)
        count, total = acc.count, acc.total
        minimum, maximum, buckets = acc.minimum, acc.maximum, acc.buckets
    else:
        values = sorted(v for group in timer.groups.values() for v in group)
        count = _fsum(len(group) / rate for rate, group in timer.groups.items())
        total = _fsum(_fsum(group) / rate for rate, group in timer.groups.items())
        minimum, maximum = values[0], values[-1]
        buckets = _bucket_counts(timer.groups)
    # float() throughout: an int from the parser must not become an integer field, which
    # InfluxDB would then refuse for every later float value (field type conflict).
    numbers = {"count": count, "sum": total, "min": float(minimum), "max": float(maximum)}
    numbers["mean"] = total / count
    for name, q in PERCENTILES:
        numbers[name] = float(percentile_linear(values, q))
    kept: dict[str, FieldValue] = {k: v for k, v in numbers.items() if _isfinite(v)}
    return _TimerStats(kept, buckets, len(kept) < len(numbers))


def _fsum(values: Iterable[float]) -> float:
    """Exact-rounded sum; inf instead of fsum's OverflowError (the caller drops the series)."""
    try:
        return math.fsum(values)
    except OverflowError:
        return math.inf


def _bucket_counts(groups: dict[float, list[float]]) -> dict[int, float]:
    buckets: dict[int, float] = {}
    for rate, group in groups.items():
        for idx, n in Counter(map(bucket_index, group)).items():
            buckets[idx] = buckets.get(idx, 0.0) + n / rate
    return buckets


def percentile_linear(sorted_values: list[float], q: float) -> float:
    """``q``-th percentile (0..100) of non-empty sorted values, linear between closest ranks
    (numpy's default)."""
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    a, b = sorted_values[low], sorted_values[high]
    t = position - low
    span = b - a
    if not _isfinite(span):  # e.g. -1e308 .. 1e308: the difference overflows, the blend cannot
        return a * (1.0 - t) + b * t
    # numpy's two-sided lerp: exact at both ends and monotone in t.
    return a + span * t if t < 0.5 else b - span * (1.0 - t)
