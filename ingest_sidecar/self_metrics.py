"""The sidecar's own health as one ``meshalert_sidecar`` point per flush interval.

Every count is for the interval (or, for the writer, since the previous flush), so sums
over time are meaningful; ``spool_bytes``/``spool_batches`` are levels at flush time.
Fields (all integers):

* ``received`` datagrams, ``lines`` (non-empty lines), ``parsed`` lines, ``bad`` lines and
  ``bad_<reason>`` per reason seen (reasons from :mod:`ingest_sidecar.statsd`);
* ``series`` written this interval (carried gauges included), ``rejected_series`` and
  ``rejected_samples`` (cardinality guard), ``invalid_samples``;
* ``nonfinite_samples`` (a sample that would overflow its series' aggregate to infinity,
  e.g. ``1|c|@1e-320``: refused, the series keeps its finite value), ``type_clash_samples``
  (a sample whose name already carries another metric type), ``nonfinite_series`` (series
  with an aggregate field left out because it overflowed; their other fields are written);
* ``dropped``: lines lost on purpose or by fault: samples refused by the guard, invalid,
  non-finite or type-clashing, spooled lines dropped for room or because the spool could
  not store them (full disk; ``spool_dropped_lines``), damaged spool lines
  (``spool_corrupt_lines``) and dead-letter lines discarded by its bound;
* ``written`` lines stored, ``write_errors`` failed write attempts, ``dead_letter_lines``;
* ``spool_bytes``, ``spool_batches`` pending.

Cumulative totals: ``<counter>_total`` for every counter above (and ``dropped_total``,
``spool_torn_records_total``, ``spool_corrupt_records_total``, ...) count since the spool
directory was created, across restarts. Any health point may be lost with its batch (a
full disk, a full spool); the next one that is stored carries totals that include the loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ingest_sidecar.ingest import IngestCounts
from meshalert.lineprotocol import FieldValue, Point

MEASUREMENT = "meshalert_sidecar"


@dataclass(frozen=True, slots=True)
class WriterCounts:
    """Writer totals since start (monotonic); ``spool_*`` levels are current values."""

    written_lines: int = 0
    write_errors: int = 0
    dead_letter_lines: int = 0
    spool_dropped_lines: int = 0
    spool_bytes: int = 0
    spool_batches: int = 0
    dead_letter_discarded_lines: int = 0
    spool_corrupt_lines: int = 0
    spool_torn_records: int = 0

    def minus(self, earlier: WriterCounts) -> WriterCounts:
        return WriterCounts(
            written_lines=self.written_lines - earlier.written_lines,
            write_errors=self.write_errors - earlier.write_errors,
            dead_letter_lines=self.dead_letter_lines - earlier.dead_letter_lines,
            spool_dropped_lines=self.spool_dropped_lines - earlier.spool_dropped_lines,
            spool_bytes=self.spool_bytes,
            spool_batches=self.spool_batches,
            dead_letter_discarded_lines=(
                self.dead_letter_discarded_lines - earlier.dead_letter_discarded_lines
            ),
            spool_corrupt_lines=self.spool_corrupt_lines - earlier.spool_corrupt_lines,
            spool_torn_records=self.spool_torn_records - earlier.spool_torn_records,
        )

    @property
    def lost_lines(self) -> int:
        return (
            self.spool_dropped_lines + self.spool_corrupt_lines + self.dead_letter_discarded_lines
        )


@dataclass(frozen=True, slots=True)
class IntervalHealth:
    ingest: IngestCounts
    writer: WriterCounts
    series: int
    rejected_series: int
    rejected_samples: int
    invalid_samples: int
    nonfinite_samples: int = 0
    type_clash_samples: int = 0
    nonfinite_series: int = 0
    totals: Mapping[str, int] = field(default_factory=dict)
    """Cumulative counters (the ledger), reported as ``<name>_total``."""

    @property
    def refused_samples(self) -> int:
        return (
            self.rejected_samples
            + self.invalid_samples
            + self.nonfinite_samples
            + self.type_clash_samples
        )

    @property
    def dropped(self) -> int:
        return self.refused_samples + self.writer.lost_lines


DROPPED_TOTAL_PARTS = (
    "rejected_samples",
    "invalid_samples",
    "nonfinite_samples",
    "type_clash_samples",
    "spool_dropped_lines",
    "spool_corrupt_lines",
    "dead_letter_discarded_lines",
)
"""Ledger counters whose sum is ``dropped_total``."""


def health_fields(health: IntervalHealth) -> dict[str, FieldValue]:
    ingest, writer = health.ingest, health.writer
    fields: dict[str, FieldValue] = {
        "received": ingest.datagrams,
        "lines": ingest.lines,
        "parsed": ingest.parsed,
        "bad": ingest.bad_total,
    }
    for reason, count in sorted(ingest.bad.items()):
        if count:
            fields[f"bad_{reason}"] = count
    fields.update(
        series=health.series,
        rejected_series=health.rejected_series,
        rejected_samples=health.rejected_samples,
        invalid_samples=health.invalid_samples,
        nonfinite_samples=health.nonfinite_samples,
        type_clash_samples=health.type_clash_samples,
        nonfinite_series=health.nonfinite_series,
        dropped=health.dropped,
        spool_dropped_lines=writer.spool_dropped_lines,
        spool_corrupt_lines=writer.spool_corrupt_lines,
        written=writer.written_lines,
        write_errors=writer.write_errors,
        dead_letter_lines=writer.dead_letter_lines,
        dead_letter_discarded_lines=writer.dead_letter_discarded_lines,
        spool_bytes=writer.spool_bytes,
        spool_batches=writer.spool_batches,
    )
    if health.totals:
        for name, value in sorted(health.totals.items()):
            fields[f"{name}_total"] = value
        fields["dropped_total"] = sum(health.totals.get(name, 0) for name in DROPPED_TOTAL_PARTS)
    return fields


def health_point(health: IntervalHealth, interval_start_ms: int, host: str) -> Point:
    return Point.make(MEASUREMENT, {"host": host}, health_fields(health), interval_start_ms)
