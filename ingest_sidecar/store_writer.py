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
probes again with exponential backoff. The thread itself survives every error, I/O errors
of the spool included (a full disk): it logs, backs off and carries on.

Partial rejection: a non-retryable error is narrowed down to the lines the store refused.
When the store names them (``StoreWriteError.rejected``: InfluxDB 1.x/2.x/3 partial-write
answers, SQLite's first bad line) the others are sent again; otherwise the batch is split in
halves until each refused line stands alone (at most :data:`MAX_SORT_WRITES` writes per
batch). Re-sending a line the store already kept overwrites it with itself, so the good
lines are stored exactly once and counted in ``written_lines``; only the refused lines go to
the dead-letter file (line protocol, fsynced, mode 0600), with the store's message logged.

Bound: the dead-letter file never exceeds half of ``dead_letter_max_bytes``; when the next
lines would not fit it is renamed to ``dead-letter.lp.1`` (replacing the older one), so at
most ``dead_letter_max_bytes`` are kept. Lines discarded that way (and lines of one batch
larger than the whole half) are counted in ``dead_letter_discarded_lines``.

Counters are cumulative across restarts (the spool's :class:`~ingest_sidecar.ledger.Ledger`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from ingest_sidecar.ledger import Ledger
from ingest_sidecar.self_metrics import WriterCounts
from ingest_sidecar.spool import Spool, SpoolBatch
from meshalert.stores.protocols import LineWriter, StoreWriteError

DEAD_LETTER_FILE = "dead-letter.lp"
DEFAULT_DEAD_LETTER_MAX_BYTES = 32 * 1024 * 1024
MAX_SORT_WRITES = 64
"""Writes spent per batch on finding the refused lines; what is left then is dead-lettered."""

WRITTEN_LINES = "written_lines"
WRITE_ERRORS = "write_errors"
DEAD_LETTER_LINES = "dead_letter_lines"
DEAD_LETTER_DISCARDED_LINES = "dead_letter_discarded_lines"

log = structlog.get_logger(__name__)


class SpoolingWriter:
    def __init__(
        self,
        spool: Spool,
        writer: LineWriter,
        *,
        dead_letter_path: Path | None = None,
        dead_letter_max_bytes: int = DEFAULT_DEAD_LETTER_MAX_BYTES,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        if dead_letter_max_bytes < 2:
            raise ValueError(f"dead_letter_max_bytes must be >= 2, got {dead_letter_max_bytes}")
        self._spool = spool
        self._ledger: Ledger = spool.ledger
        self._writer = writer
        self._dead_letter = dead_letter_path or Path(spool.directory) / DEAD_LETTER_FILE
        self._dead_letter_half = dead_letter_max_bytes // 2
        self._backoff_min = backoff_min_s
        self._backoff_max = backoff_max_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._lock = threading.Lock()
        self._write_s = 0.0
        self._failing = False

    @property
    def failing(self) -> bool:
        """True while the store refuses writes (batches wait in the spool)."""
        return self._failing

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    @property
    def dead_letter_path(self) -> Path:
        return self._dead_letter

    def counts(self) -> WriterCounts:
        ledger = self._ledger.snapshot()
        return WriterCounts(
            written_lines=ledger.get(WRITTEN_LINES, 0),
            write_errors=ledger.get(WRITE_ERRORS, 0),
            dead_letter_lines=ledger.get(DEAD_LETTER_LINES, 0),
            spool_dropped_lines=self._spool.dropped_lines,
            spool_bytes=self._spool.pending_bytes,
            spool_batches=self._spool.pending_batches,
            dead_letter_discarded_lines=ledger.get(DEAD_LETTER_DISCARDED_LINES, 0),
            spool_corrupt_lines=self._spool.corrupt_lines,
            spool_torn_records=self._spool.torn_records,
        )

    def write_seconds(self) -> float:
        """Total time spent in store writes (for per-flush latency figures)."""
        with self._lock:
            return self._write_s

    def submit(self, lines: Sequence[str]) -> bool:
        """Durably queue one batch (fsynced in the spool) for the writer thread. False when
        the spool could not keep it (full disk, too large): it is counted as dropped."""
        stored = self._spool.append(lines)
        self._wake.set()
        return stored

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Write what is pending while the store accepts it, then stop. True when the spool
        was drained; whatever is left stays spooled for the next run."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
        self._ledger.save()
        return not self._thread.is_alive() and self._spool.pending_batches == 0

    def _run(self) -> None:
        delay = self._backoff_min
        while True:
            self._wake.clear()
            try:
                batch = self._spool.peek()
                delivered = batch is not None and self._deliver(batch)
            except Exception as err:  # the thread must outlive every error (EIO, ENOSPC...)
                log.warning("store_writer_error", error=f"{type(err).__name__}: {err}")
                batch, delivered = None, False
                if self._stop.is_set():
                    return
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff_max)
                continue
            if batch is None:
                if self._stop.is_set():
                    return
                self._wake.wait(0.5)
                continue
            if delivered:
                delay = self._backoff_min
                continue
            if self._stop.is_set():
                return  # leave it spooled: the next run replays it first
            self._stop.wait(delay)
            delay = min(delay * 2, self._backoff_max)

    def _deliver(self, batch: SpoolBatch) -> bool:
        """Write the spool head; True when it left the spool (stored and/or dead-lettered)."""
        started = time.perf_counter()
        messages: list[str] = []
        try:
            written, refused = self._write_sorting(batch.lines, messages)
        except StoreWriteError as err:  # retryable: the whole batch waits
            self._count(0, started, error=True)
            self._note_failure(str(err), batch)
            return False
        except Exception as err:  # unknown failures keep the data
            self._count(0, started, error=True)
            self._note_failure(f"{type(err).__name__}: {err}", batch)
            return False
        self._count(written, started, error=bool(messages))
        if refused:
            self._to_dead_letter(refused, messages)
        if self._failing:
            self._failing = False
            log.info("store_recovered", spool_batches=self._spool.pending_batches - 1)
        self._spool.ack(batch.id)
        return True

    def _write_sorting(self, lines: list[str], messages: list[str]) -> tuple[int, list[str]]:
        """Write ``lines``; returns (lines stored, lines refused). Raises the retryable errors
        (nothing is dead-lettered then: the whole batch is tried again later)."""
        budget = [MAX_SORT_WRITES]

        def attempt(chunk: list[str]) -> tuple[int, list[str]]:
            budget[0] -= 1
            try:
                self._writer.write(chunk)
            except StoreWriteError as err:
                if err.retryable:
                    raise
                messages.append(str(err))
                if len(chunk) == 1 or budget[0] <= 0:
                    return 0, chunk
                named = sorted({i for i in err.rejected if 0 <= i < len(chunk)})
                if named:
                    bad = [chunk[i] for i in named]
                    keep = set(range(len(chunk))) - set(named)
                    rest = [line for i, line in enumerate(chunk) if i in keep]
                    if not rest:
                        return 0, bad
                    stored, refused = attempt(rest)
                    return stored, bad + refused
                half = len(chunk) // 2
                stored_a, refused_a = attempt(chunk[:half])
                stored_b, refused_b = attempt(chunk[half:])
                return stored_a + stored_b, refused_a + refused_b
            return len(chunk), []

        return attempt(list(lines))

    def _count(self, lines: int, started: float, *, error: bool) -> None:
        with self._lock:
            self._write_s += time.perf_counter() - started
        self._ledger.add(WRITTEN_LINES, lines)
        self._ledger.add(WRITE_ERRORS, int(error))

    def _note_failure(self, message: str, batch: SpoolBatch) -> None:
        if not self._failing:
            self._failing = True
            log.warning(
                "store_write_failed_spooling",
                error=message,
                batch_lines=len(batch.lines),
                spool_batches=self._spool.pending_batches,
            )

    def _to_dead_letter(self, lines: list[str], messages: list[str]) -> None:
        refused = len(lines)
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        discarded = 0
        if len(data) > self._dead_letter_half:
            kept: list[str] = []
            size = 0
            for line in lines:
                size += len(line.encode("utf-8")) + 1
                if size > self._dead_letter_half:
                    break
                kept.append(line)
            discarded = len(lines) - len(kept)
            lines = kept
            data = "".join(line + "\n" for line in lines).encode("utf-8")
        try:
            discarded += self._rotate_if_needed(len(data))
            if data:
                _append_private(self._dead_letter, data)
        except OSError as err:
            discarded += len(lines)
            lines = []
            log.error("dead_letter_write_failed", error=str(err), path=str(self._dead_letter))
        # Every refused line counts in dead_letter_lines; those no longer in the files (the
        # bound, a failed write) also count in dead_letter_discarded_lines.
        self._ledger.add(DEAD_LETTER_LINES, refused)
        self._ledger.add(DEAD_LETTER_DISCARDED_LINES, discarded)
        self._ledger.save()
        log.error(
            "store_rejected_lines_dead_lettered",
            error=messages[0] if messages else "",
            errors=len(messages),
            dead_lettered_lines=len(lines),
            discarded_lines=discarded,
            dead_letter_file=str(self._dead_letter),
        )

    def _rotate_if_needed(self, incoming: int) -> int:
        """Make room for ``incoming`` bytes; returns the lines discarded to do so."""
        try:
            size = self._dead_letter.stat().st_size
        except FileNotFoundError:
            return 0
        if size + incoming <= self._dead_letter_half:
            return 0
        older = self._dead_letter.with_name(self._dead_letter.name + ".1")
        discarded = _count_lines(older)
        os.replace(self._dead_letter, older)
        return discarded


def _append_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except FileNotFoundError:
        return 0
