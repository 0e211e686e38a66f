"""The writer thread: every batch goes through the on-disk spool, oldest first, to the store.

Write-ahead: :meth:`SpoolingWriter.submit` appends the batch to the spool (fsynced) before
returning, and the thread writes the oldest pending batch and acknowledges it only after
the store accepted it. So order is preserved through outages (new batches queue behind the
spooled ones), a restart replays whatever the previous run had not acknowledged before
anything new, and a kill -9 can only lose what was never submitted. A batch written twice
(written, then killed before the ack) overwrites itself in every store (same series and
timestamp), so replays never double count.

Failures: a retryable :class:`StoreWriteError` (or any other exception: data is never
thrown away on an unknown error) leaves the batch at the head of the spool, and the thread
probes again with exponential backoff. A non-retryable error moves the batch to a
dead-letter file (line protocol, fsynced) and logs the store's message, which names the
offending line when the store says which.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from ingest_sidecar.self_metrics import WriterCounts
from ingest_sidecar.spool import Spool, SpoolBatch
from meshalert.stores.protocols import LineWriter, StoreWriteError

DEAD_LETTER_FILE = "dead-letter.lp"

log = structlog.get_logger(__name__)


class SpoolingWriter:
    def __init__(
        self,
        spool: Spool,
        writer: LineWriter,
        *,
        dead_letter_path: Path | None = None,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self._spool = spool
        self._writer = writer
        self._dead_letter = dead_letter_path or Path(spool.directory) / DEAD_LETTER_FILE
        self._backoff_min = backoff_min_s
        self._backoff_max = backoff_max_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._lock = threading.Lock()
        self._written = 0
        self._errors = 0
        self._dead = 0
        self._write_s = 0.0
        self._failing = False

    @property
    def failing(self) -> bool:
        """True while the store refuses writes (batches wait in the spool)."""
        return self._failing

    def counts(self) -> WriterCounts:
        with self._lock:
            written, errors, dead = self._written, self._errors, self._dead
        return WriterCounts(
            written_lines=written,
            write_errors=errors,
            dead_letter_lines=dead,
            spool_dropped_lines=self._spool.dropped_lines,
            spool_bytes=self._spool.pending_bytes,
            spool_batches=self._spool.pending_batches,
        )

    def write_seconds(self) -> float:
        """Total time spent in store writes (for per-flush latency figures)."""
        with self._lock:
            return self._write_s

    def submit(self, lines: Sequence[str]) -> None:
        """Durably queue one batch (fsynced in the spool) for the writer thread."""
        self._spool.append(lines)
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Write what is pending while the store accepts it, then stop. True when the spool
        was drained; whatever is left stays spooled for the next run."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
        return not self._thread.is_alive() and self._spool.pending_batches == 0

    def _run(self) -> None:
        delay = self._backoff_min
        while True:
            self._wake.clear()
            batch = self._spool.peek()
            if batch is None:
                if self._stop.is_set():
                    return
                self._wake.wait(0.5)
                continue
            if self._deliver(batch):
                delay = self._backoff_min
                continue
            if self._stop.is_set():
                return  # leave it spooled: the next run replays it first
            self._stop.wait(delay)
            delay = min(delay * 2, self._backoff_max)

    def _deliver(self, batch: SpoolBatch) -> bool:
        """Write the spool head; True when it left the spool (stored or dead-lettered)."""
        started = time.perf_counter()
        try:
            self._writer.write(batch.lines)
        except StoreWriteError as err:
            self._count(0, started, error=True)
            if err.retryable:
                self._note_failure(str(err), batch)
                return False
            self._to_dead_letter(batch, str(err))
        except Exception as err:  # unknown failures keep the data
            self._count(0, started, error=True)
            self._note_failure(f"{type(err).__name__}: {err}", batch)
            return False
        else:
            self._count(len(batch.lines), started, error=False)
            if self._failing:
                self._failing = False
                log.info("store_recovered", spool_batches=self._spool.pending_batches - 1)
        self._spool.ack(batch.id)
        return True

    def _count(self, lines: int, started: float, *, error: bool) -> None:
        with self._lock:
            self._write_s += time.perf_counter() - started
            self._written += lines
            self._errors += int(error)

    def _note_failure(self, message: str, batch: SpoolBatch) -> None:
        if not self._failing:
            self._failing = True
            log.warning(
                "store_write_failed_spooling",
                error=message,
                batch_lines=len(batch.lines),
                spool_batches=self._spool.pending_batches,
            )

    def _to_dead_letter(self, batch: SpoolBatch, message: str) -> None:
        self._dead_letter.parent.mkdir(parents=True, exist_ok=True)
        with open(self._dead_letter, "a", encoding="utf-8") as handle:
            handle.write("\n".join(batch.lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with self._lock:
            self._dead += len(batch.lines)
        log.error(
            "store_rejected_batch_dead_lettered",
            error=message,
            batch_lines=len(batch.lines),
            dead_letter_file=str(self._dead_letter),
        )
