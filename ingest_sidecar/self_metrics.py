"""The sidecar's own health as one ``meshalert_sidecar`` point per flush interval.

Every count is for the interval (or, for the writer, since the previous flush), so sums
over time are meaningful; ``spool_bytes``/``spool_batches`` are levels at flush time.
Fields (all integers):

* ``received`` datagrams, ``lines`` (non-empty lines), ``parsed`` lines, ``bad`` lines and
  ``bad_<reason>`` per reason seen (reasons from :mod:`ingest_sidecar.statsd`);
* ``series`` written this interval (carried gauges included), ``rejected_series`` and
  ``rejected_samples`` (cardinality guard), ``invalid_samples``;
* ``dropped``: lines lost on purpose: samples refused by the guard or invalid, plus spooled
  lines dropped for room (``spool_dropped_lines``);
* ``written`` lines stored, ``write_errors`` failed write attempts, ``dead_letter_lines``;
* ``spool_bytes``, ``spool_batches`` pending.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def minus(self, earlier: WriterCounts) -> WriterCounts:
        return WriterCounts(
            written_lines=self.written_lines - earlier.written_lines,
            write_errors=self.write_errors - earlier.write_errors,
            dead_letter_lines=self.dead_letter_lines - earlier.dead_letter_lines,
            spool_dropped_lines=self.spool_dropped_lines - earlier.spool_dropped_lines,
            spool_bytes=self.spool_bytes,
            spool_batches=self.spool_batches,
        )


@dataclass(frozen=True, slots=True)
class IntervalHealth:
    ingest: IngestCounts
    writer: WriterCounts
    series: int
    rejected_series: int
    rejected_samples: int
    invalid_samples: int


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
        dropped=health.rejected_samples + health.invalid_samples + writer.spool_dropped_lines,
        spool_dropped_lines=writer.spool_dropped_lines,
        written=writer.written_lines,
        write_errors=writer.write_errors,
        dead_letter_lines=writer.dead_letter_lines,
        spool_bytes=writer.spool_bytes,
        spool_batches=writer.spool_batches,
    )
    return fields


def health_point(health: IntervalHealth, interval_start_ms: int, host: str) -> Point:
    return Point.make(MEASUREMENT, {"host": host}, health_fields(health), interval_start_ms)
