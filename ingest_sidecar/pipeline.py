"""The flush loop: at each wall-clock-aligned boundary, the finished interval becomes points.

Per interval (timestamp = interval start): swap the aggregator out of the receive path,
flush it, add the gauges carried over from earlier intervals and the ``meshalert_sidecar``
health point, encode to line protocol, and submit batches of ``batch_lines`` to the writer
(which spools them durably first). One structured log line per flush.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ingest_sidecar.aggregate import align_interval
from ingest_sidecar.gauge_carry import GaugeCarry
from ingest_sidecar.ingest import IngestCore, IngestCounts
from ingest_sidecar.self_metrics import IntervalHealth, WriterCounts, health_point
from ingest_sidecar.store_writer import SpoolingWriter
from meshalert.lineprotocol import LineProtocolError, Point, encode

log = structlog.get_logger(__name__)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class FlushReport:
    interval_start_ms: int
    points: int
    health: IntervalHealth


class Flusher:
    def __init__(
        self,
        core: IngestCore,
        writer: SpoolingWriter,
        *,
        interval_ms: int,
        host: str,
        batch_lines: int,
        gauge_expiry_intervals: int = 3,
        max_gauges: int | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        pull: Callable[[int, str], list[Point]] | None = None,
    ) -> None:
        self._core = core
        self._writer = writer
        self._interval_ms = interval_ms
        self._host = host
        self._batch_lines = batch_lines
        self._carry = GaugeCarry(gauge_expiry_intervals, max_held=max_gauges)
        self._clock_ms = clock_ms
        self._pull = pull
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)
        self._last_ingest = IngestCounts()
        # Writer counts are cumulative across restarts: the first interval's share starts here.
        self._last_writer: WriterCounts = writer.counts()
        self._last_write_s = 0.0
        self._current_start = align_interval(clock_ms(), interval_ms)
        self.flushes = 0

    def start(self) -> None:
        self._current_start = align_interval(self._clock_ms(), self._interval_ms)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Flush the current (partial) interval and stop. Call after the receiver stopped."""
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            boundary = self._current_start + self._interval_ms
            wait_ms = boundary - self._clock_ms()
            if self._stop.wait(max(wait_ms, 0) / 1000.0):
                self._flush_logged(self._current_start)
                return
            if self._clock_ms() < boundary:
                continue  # woke early (clock adjusted): wait for the real boundary
            start, self._current_start = (
                self._current_start,
                align_interval(self._clock_ms(), self._interval_ms),
            )
            self._flush_logged(start)

    def _flush_logged(self, interval_start_ms: int) -> None:
        try:
            self.flush(interval_start_ms)
        except Exception:  # a failed flush must not end the loop (the next one may work)
            log.exception("flush_failed", interval_start_ms=interval_start_ms)

    def flush(self, interval_start_ms: int) -> FlushReport:
        """Flush everything received since the previous flush as ``interval_start_ms``."""
        began = time.perf_counter()
        aggregator, ingest_now = self._core.rollover()
        result = aggregator.flush(interval_start_ms, self._host)
        carried = self._carry.carry(result.points, interval_start_ms)
        writer_now = self._writer.counts()
        write_s = self._writer.write_seconds()
        ingest = ingest_now.minus(self._last_ingest)
        ledger = self._writer.ledger
        ledger.add_all(
            {
                "received": ingest.datagrams,
                "lines": ingest.lines,
                "parsed": ingest.parsed,
                "bad": ingest.bad_total,
                "rejected_samples": result.rejected_samples,
                "invalid_samples": result.invalid_samples,
                "nonfinite_samples": result.nonfinite_samples,
                "type_clash_samples": result.type_clash_samples,
                "nonfinite_series": result.nonfinite_series,
            }
        )
        ledger.save()
        health = IntervalHealth(
            ingest=ingest,
            writer=writer_now.minus(self._last_writer),
            series=result.series + len(carried.points),
            rejected_series=result.rejected_series,
            rejected_samples=result.rejected_samples,
            invalid_samples=result.invalid_samples,
            nonfinite_samples=result.nonfinite_samples,
            type_clash_samples=result.type_clash_samples,
            nonfinite_series=result.nonfinite_series,
            totals=ledger.snapshot(),
        )
        points = [*result.points, *carried.points, *self._pulled(interval_start_ms)]
        points.append(health_point(health, interval_start_ms, self._host))
        lines = _encode_all(points)
        for batch in split_batches(lines, self._batch_lines, MAX_BATCH_BYTES):
            self._writer.submit(batch)
        self._last_ingest, self._last_writer = ingest_now, writer_now
        write_ms = (write_s - self._last_write_s) * 1000.0
        self._last_write_s = write_s
        self.flushes += 1
        _log_flush(health, interval_start_ms, len(lines), write_ms, time.perf_counter() - began)
        return FlushReport(interval_start_ms, len(lines), health)

    def _pulled(self, interval_start_ms: int) -> list[Point]:
        """Pull mode's points for this interval; a failing source never stops the flush."""
        if self._pull is None:
            return []
        try:
            return self._pull(interval_start_ms, self._host)
        except Exception:
            log.exception("pull_failed", interval_start_ms=interval_start_ms)
            return []


MAX_BATCH_BYTES = 4 * 1024 * 1024
"""A batch also ends at this size, so one spool record stays far below a segment (16 MiB)
even with hostile 64 KB names, and the spool directory's bound holds."""


def split_batches(lines: list[str], max_lines: int, max_bytes: int) -> list[list[str]]:
    """``lines`` in order, cut into batches of at most ``max_lines`` lines and (unless a
    single line is larger) ``max_bytes`` bytes of line protocol."""
    batches: list[list[str]] = []
    current: list[str] = []
    size = 0
    for line in lines:
        length = len(line.encode("utf-8")) + 1
        if current and (len(current) >= max_lines or size + length > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(line)
        size += length
    if current:
        batches.append(current)
    return batches


def _encode_all(points: list[Point]) -> list[str]:
    lines: list[str] = []
    for point in points:
        try:
            lines.append(encode(point))
        except LineProtocolError as err:  # aggregation keeps fields finite; never expected
            log.error("point_not_encodable", measurement=point.measurement, error=str(err))
    return lines


def _log_flush(
    health: IntervalHealth, interval_start_ms: int, lines: int, write_ms: float, took_s: float
) -> None:
    ingest, writer = health.ingest, health.writer
    log.info(
        "sidecar_flush",
        interval_start_ms=interval_start_ms,
        received=ingest.datagrams,
        lines=ingest.lines,
        parsed=ingest.parsed,
        bad=ingest.bad_total,
        bad_by_reason={reason: n for reason, n in ingest.bad.items() if n},
        series=health.series,
        rejected_series=health.rejected_series,
        points=lines,
        written=writer.written_lines,
        write_errors=writer.write_errors,
        spooled_batches=writer.spool_batches,
        spool_bytes=writer.spool_bytes,
        dropped=health.dropped,
        nonfinite_series=health.nonfinite_series,
        dead_letter_lines=writer.dead_letter_lines,
        write_latency_ms=round(write_ms, 1),
        flush_ms=round(took_s * 1000.0, 1),
    )
