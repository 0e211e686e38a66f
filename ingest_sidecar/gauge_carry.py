"""Gauges outliving an interval when every interval gets a fresh aggregator.

The receive thread swaps in a new :class:`~ingest_sidecar.aggregate.IntervalAggregator` at
each boundary (so flushing never blocks it), which loses the aggregator's own gauge memory.
This restores the same contract downstream of the flush: a gauge unseen in an interval is
written again with its last value, and at its ``expiry_intervals``-th consecutive unseen
interval it is dropped and forgotten. Gauge points are recognised by their schema shape: a
single field named ``value`` (counters, timers and sets never have it).
"""

from __future__ import annotations

from dataclasses import dataclass

from meshalert.lineprotocol import Point

_GaugeKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class CarryResult:
    points: list[Point]
    """The carried (unseen this interval) gauges, at the interval's timestamp."""
    expired: int


def is_gauge_point(point: Point) -> bool:
    fields = point.fields
    return len(fields) == 1 and fields[0][0] == "value"


class GaugeCarry:
    def __init__(self, expiry_intervals: int = 3, max_held: int | None = None) -> None:
        """``max_held`` bounds the gauges remembered: beyond it the longest unseen are
        forgotten first (counted as expired), so new names every interval cannot pile up
        ``expiry_intervals`` times the cardinality guard's limit."""
        if expiry_intervals < 1:
            raise ValueError(f"expiry_intervals must be >= 1, got {expiry_intervals}")
        if max_held is not None and max_held < 1:
            raise ValueError(f"max_held must be >= 1, got {max_held}")
        self._expiry = expiry_intervals
        self._max_held = max_held
        self._last: dict[_GaugeKey, tuple[float, int]] = {}  # key -> (value, unseen intervals)

    @property
    def held(self) -> int:
        return len(self._last)

    def carry(self, flushed: list[Point], interval_start_ms: int) -> CarryResult:
        """Remember the gauges in ``flushed`` (seen this interval); return the others."""
        seen: set[_GaugeKey] = set()
        for point in flushed:
            if is_gauge_point(point):
                key = (point.measurement, point.tags)
                seen.add(key)
                self._last[key] = (float(point.fields[0][1]), 0)
        carried: list[Point] = []
        expired = 0
        for key, (value, before) in list(self._last.items()):
            if key in seen:
                continue
            unseen = before + 1
            if unseen >= self._expiry:
                del self._last[key]
                expired += 1
                continue
            self._last[key] = (value, unseen)
            carried.append(Point(key[0], key[1], (("value", value),), interval_start_ms))
        if self._max_held is not None and len(self._last) > self._max_held:
            excess = len(self._last) - self._max_held
            stale = sorted(self._last.items(), key=lambda item: -item[1][1])[:excess]
            for key, _ in stale:
                del self._last[key]
            gone = {key for key, _ in stale}
            carried = [p for p in carried if (p.measurement, p.tags) not in gone]
            expired += excess
        return CarryResult(carried, expired)
