"""Datagram bytes -> the current interval's aggregator: the receive thread's hot path.

Lines are recognised by their *shape*: ``<name>:<value>|<rest>`` where ``rest`` holds the
type, rate and tags. Everything but the value depends only on ``(name, rest)``, so the first
line of a shape goes through the reference parser (:func:`ingest_sidecar.statsd.parse_line`)
and the name mapper, and later lines of the same shape only run ``float()`` on the value
(on bytes, never decoded). Anything unusual (a set, a bad value, invalid UTF-8, a shape not
seen yet) takes the reference path, so both paths accept and reject exactly the same lines.

Handoff: the aggregator is swapped under a lock at each interval boundary (:meth:`rollover`);
the lock is held for one datagram at a time, and the flusher holds it only for the swap, so
the receive thread never waits on flushing, encoding or I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ingest_sidecar.aggregate import IntervalAggregator
from ingest_sidecar.linkerd_names import NameMapper
from ingest_sidecar.model import MetricKind, SeriesKey
from ingest_sidecar.statsd import BAD_UTF8, BadLine, parse_line

_SET = MetricKind.SET
UNMAPPABLE = "unmappable"
"""Bad-line reason for a name the Linkerd name mapper failed on (a mapper bug)."""
_SHAPE_CACHE_MAX = 200_000

_Shape = tuple[SeriesKey, MetricKind, float]


@dataclass(frozen=True, slots=True)
class IngestCounts:
    """Counts since start (monotonic); subtract two snapshots for one interval."""

    datagrams: int = 0
    lines: int = 0
    parsed: int = 0
    bad: dict[str, int] = field(default_factory=dict)

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())

    def minus(self, earlier: IngestCounts) -> IngestCounts:
        reasons = set(self.bad) | set(earlier.bad)
        return IngestCounts(
            datagrams=self.datagrams - earlier.datagrams,
            lines=self.lines - earlier.lines,
            parsed=self.parsed - earlier.parsed,
            bad={r: self.bad.get(r, 0) - earlier.bad.get(r, 0) for r in sorted(reasons)},
        )


class IngestCore:
    """Feeds datagrams into an :class:`IntervalAggregator`, swapped per interval."""

    def __init__(
        self,
        mapper: NameMapper,
        make_aggregator: Callable[[], IntervalAggregator],
        *,
        shape_cache_max: int = _SHAPE_CACHE_MAX,
    ) -> None:
        self._mapper = mapper
        self._make_aggregator = make_aggregator
        self._aggregator = make_aggregator()
        self._lock = threading.Lock()
        # rest -> name -> shape: `rest` has few distinct values, so two small lookups beat
        # building a tuple key per line.
        self._shapes: dict[bytes, dict[bytes, _Shape]] = {}
        self._shape_count = 0
        self._shape_cache_max = shape_cache_max
        self._datagrams = 0
        self._lines = 0
        self._parsed = 0
        self._bad: dict[str, int] = {}

    def cached_names(self) -> tuple[int, int]:
        """(names in the mapper's cache, line shapes cached): both bounded, see __init__."""
        with self._lock:
            return self._mapper.cached, self._shape_count

    def counts(self) -> IngestCounts:
        with self._lock:
            return self._counts_locked()

    def rollover(self) -> tuple[IntervalAggregator, IngestCounts]:
        """Swap in a fresh aggregator; returns the old one and the counts at the swap."""
        fresh = self._make_aggregator()
        with self._lock:
            old, self._aggregator = self._aggregator, fresh
            return old, self._counts_locked()

    def _counts_locked(self) -> IngestCounts:
        return IngestCounts(self._datagrams, self._lines, self._parsed, dict(self._bad))

    def feed(self, data: bytes) -> None:
        """Parse, map and aggregate one datagram. Never raises on bad input."""
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        shapes = self._shapes
        lines = 0
        parsed = 0
        with self._lock:
            add = self._aggregator.add
            for line in data.split(b"\n"):
                if not line:
                    continue
                lines += 1
                head, _, rest = line.partition(b"|")
                name, _, raw = head.rpartition(b":")
                by_name = shapes.get(rest)
                shape = by_name.get(name) if by_name is not None else None
                if shape is not None:
                    try:
                        value = float(raw)
                    except ValueError:
                        value = None
                    # `v - v == 0` is false for NaN and infinities; statsd has no `1_000`.
                    if value is not None and value - value == 0.0 and b"_" not in raw:
                        add(shape[0], shape[1], value, shape[2])
                        parsed += 1
                        continue
                if self._reference_path(line, name, rest, add):
                    parsed += 1
            self._datagrams += 1
            self._lines += lines
            self._parsed += parsed

    def _reference_path(
        self,
        line: bytes,
        name: bytes,
        rest: bytes,
        add: Callable[[SeriesKey, MetricKind, float, float, str | None], bool],
    ) -> bool:
        try:
            sample = parse_line(line.decode("utf-8"))
        except UnicodeDecodeError:
            self._bad[BAD_UTF8] = self._bad.get(BAD_UTF8, 0) + 1
            return False
        except BadLine as exc:
            self._bad[exc.reason] = self._bad.get(exc.reason, 0) + 1
            return False
        try:
            key = self._mapper.map(sample.name, sample.tags)
        except Exception:  # a mapper bug must cost one line, counted, never the receiver
            self._bad[UNMAPPABLE] = self._bad.get(UNMAPPABLE, 0) + 1
            return False
        add(key, sample.kind, sample.value, sample.rate, sample.set_member)
        if sample.kind is not _SET:
            self._remember(rest, name, (key, sample.kind, sample.rate))
        return True

    def _remember(self, rest: bytes, name: bytes, shape: _Shape) -> None:
        if self._shape_count >= self._shape_cache_max:
            # Clearing beats LRU bookkeeping on the hot path; live shapes refill at once.
            self._shapes = {}
            self._shape_count = 0
        self._shapes.setdefault(rest, {})[name] = shape
        self._shape_count += 1
