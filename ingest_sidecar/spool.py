"""A durable, bounded FIFO of line-protocol batches, kept on disk while the store is down.

Layout: ``segment-<n>.spool`` files in one directory (mode 0700, files 0600 whatever the
umask: they hold service topology), each an append-only log of records::

    magic "MSP2" | type u8 | seq u64 | floor u64 | nlines u32 | length u32 |
    payload_crc u32 | header_crc u32 | payload

``type`` is BATCH (payload = the lines joined by ``\\n``) or FLOOR (no payload: every batch
with ``seq <= floor`` is gone, acknowledged or dropped). Every record also carries the floor
when it was written, so losing a FLOOR record to damage cannot resurrect acknowledged
batches once any later record survives. The header has its own CRC, so a damaged payload
still gives a trustworthy ``nlines`` and ``length``. Records of the previous
format (``MSP1``: one CRC over header fields and payload) are still read.

Recovery on open: a record cut short at the end of a segment (a crash part way through an
append, which therefore never returned) is counted in ``torn_records`` and cut off. A record
damaged anywhere else (a flipped byte) is skipped: reading re-synchronises on the next valid
record, the damaged segment is copied to ``damaged/`` first (at most
:data:`MAX_DAMAGED_COPIES` copies are kept), the segment is rewritten without the damaged
bytes, and the lost lines are counted exactly in ``corrupt_records``/``corrupt_lines`` (a
damaged batch that had been acknowledged already loses nothing and is not counted).

Durability: every append and every ack is fsynced before it returns, and the directory is
fsynced whenever a segment file is created or removed. A new process on the same directory
sees exactly the batches the old one had not acknowledged, in order.

Bound: :attr:`Spool.pending_bytes` (record bytes of unacknowledged batches, headers included)
never exceeds ``max_bytes``. To make room, the OLDEST batches are dropped and counted in
``dropped_batches``/``dropped_lines``; a batch bigger than ``max_bytes`` on its own is dropped
and counted instead of stored. Disk use can exceed ``pending_bytes`` by at most one segment
of already-acknowledged records (segments are removed whole once every batch in them is gone),
plus the damaged copies.

I/O errors (a full disk, EIO) never raise out of :meth:`Spool.append` or :meth:`Spool.ack`:
an append that cannot be stored is counted as dropped (``write_failures`` counts the failed
attempts), a half-written record is cut off again and a segment left empty is removed; an ack
whose floor record cannot be written is kept in memory and written with the next record
(until then a restart would replay that batch, which overwrites itself in every store).

Counters (dropped, torn, corrupt, write failures) are cumulative across restarts: they live
in the spool directory's :class:`~ingest_sidecar.ledger.Ledger`.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from ingest_sidecar.ledger import LEDGER_FILE, Ledger

_MAGIC = b"MSP2"
_MAGIC_V1 = b"MSP1"
# magic, type, seq, floor, nlines, length, payload_crc, header_crc
_HEADER = struct.Struct("<4sBQQIIII")
_HEADER_V1 = struct.Struct("<4sBQIII")  # magic, type, seq, nlines, length, crc32
_HEADER_CRC_SPAN = _HEADER.size - 4
_BATCH = 1
_FLOOR = 2
_SEGMENT_RE = re.compile(r"^segment-(\d{12})\.spool$")
_MIN_SEGMENT_BYTES = 64 * 1024
MAX_SEGMENT_BYTES = 16 * 1024 * 1024
DAMAGED_DIR = "damaged"
MAX_DAMAGED_COPIES = 2
"""Damaged segments kept for inspection (the oldest copy goes first)."""

# Ledger counter names (also the ``*_total`` health fields' sources).
DROPPED_BATCHES = "spool_dropped_batches"
DROPPED_LINES = "spool_dropped_lines"
TORN_RECORDS = "spool_torn_records"
CORRUPT_RECORDS = "spool_corrupt_records"
CORRUPT_LINES = "spool_corrupt_lines"
WRITE_FAILURES = "spool_write_failures"

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    id: int
    lines: list[str]


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: int
    segment: int
    offset: int  # of the record header
    size: int  # header + payload
    nlines: int
    crc: int | None = None  # payload CRC (None for records of the old format)


@dataclass(frozen=True, slots=True)
class _Record:
    kind: int
    seq: int
    nlines: int
    size: int
    crc: int | None
    floor: int = 0


@dataclass(frozen=True, slots=True)
class _Damage:
    seq: int | None  # None when the header is unreadable (found from the neighbours)
    nlines: int
    kind: int | None


def record_size(lines: Sequence[str]) -> int:
    """Bytes one batch takes in the spool (what counts against ``max_bytes``)."""
    return _HEADER.size + len("\n".join(lines).encode("utf-8"))


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) and make it 0700 whatever the umask."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.stat().st_mode & 0o777 != 0o700:
        os.chmod(directory, 0o700)


class Spool:
    """Durable FIFO of batches; thread-safe (one appender and one sender may share it)."""

    def __init__(self, directory: str, max_bytes: int) -> None:
        if max_bytes <= _HEADER.size:
            raise ValueError(f"spool max_bytes must exceed {_HEADER.size}, got {max_bytes}")
        self._dir = Path(directory)
        ensure_private_dir(self._dir)
        self._max_bytes = max_bytes
        self._segment_limit = min(MAX_SEGMENT_BYTES, max(_MIN_SEGMENT_BYTES, max_bytes // 8))
        self._lock = threading.Lock()
        self._pending: deque[_Entry] = deque()
        self._pending_bytes = 0
        self._segments: list[int] = []  # numbers of segment files on disk, ascending
        self._active: int | None = None  # the segment appended to by this process
        self._active_fd: int | None = None
        self._active_size = 0
        self._floor = 0
        self._floor_unsaved = False
        self._next_seq = 1
        self._last_io_error = 0.0
        self._last_scanned_batch: int | None = None
        # The batch handed out by peek(), and that batch if it was dropped for room while
        # being sent: it counts as dropped only if the sender does not ack it (it may well
        # have been stored, and must not be counted both written and dropped).
        self._in_flight: int | None = None
        self._in_flight_dropped: _Entry | None = None
        self.ledger = Ledger(self._dir / LEDGER_FILE)
        self._recover()
        self.ledger.save()

    # --- public API ---------------------------------------------------------------------

    @property
    def directory(self) -> str:
        return str(self._dir)

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def segment_limit(self) -> int:
        return self._segment_limit

    @property
    def pending_batches(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def pending_lines(self) -> int:
        with self._lock:
            return sum(entry.nlines for entry in self._pending)

    @property
    def dropped_batches(self) -> int:
        return self.ledger.get(DROPPED_BATCHES)

    @property
    def dropped_lines(self) -> int:
        return self.ledger.get(DROPPED_LINES)

    @property
    def torn_records(self) -> int:
        return self.ledger.get(TORN_RECORDS)

    @property
    def corrupt_records(self) -> int:
        return self.ledger.get(CORRUPT_RECORDS)

    @property
    def corrupt_lines(self) -> int:
        return self.ledger.get(CORRUPT_LINES)

    @property
    def write_failures(self) -> int:
        return self.ledger.get(WRITE_FAILURES)

    def append(self, lines: Sequence[str]) -> bool:
        """Store one batch durably (fsynced) before returning; empty batches are ignored.

        False when the batch could not be stored (too large, or an I/O error such as a
        full disk): it is then counted in ``dropped_batches``/``dropped_lines``.
        """
        if not lines:
            return True
        for index, line in enumerate(lines):
            if "\n" in line:
                raise ValueError(f"spool line {index} contains a newline: {line[:200]!r}")
        payload = "\n".join(lines).encode("utf-8")
        with self._lock:
            stored = self._append_locked(len(lines), payload)
        self.ledger.save()  # drops are saved at once (the ledger can be saved on a full disk)
        return stored

    def _append_locked(self, nlines: int, payload: bytes) -> bool:
        size = _HEADER.size + len(payload)
        if size > self._max_bytes:
            self._count_drop(1, nlines)
            log.warning(
                "spool_batch_too_large_dropped",
                lines=nlines,
                bytes=size,
                max_bytes=self._max_bytes,
            )
            return False
        victims = self._victims(size)
        new_floor = victims[-1].seq if victims else None
        record = b""
        if new_floor is not None or self._floor_unsaved:
            record += _encode(_FLOOR, max(new_floor or 0, self._floor), 0, b"")
        header_at = len(record)
        seq = self._next_seq
        floor = max(new_floor or 0, self._floor)
        record += _encode(_BATCH, seq, nlines, payload, floor)
        try:
            segment, start = self._write_durably(record)
        except OSError as err:
            self._count_drop(1, nlines)
            self.ledger.add(WRITE_FAILURES)
            self._log_io_error("spool_append_failed_batch_dropped", err, lines=nlines)
            return False
        self._floor_unsaved = False
        if victims:
            self._drop_victims(victims)
        self._next_seq += 1
        entry = _Entry(seq, segment, start + header_at, size, nlines, zlib.crc32(payload))
        self._pending.append(entry)
        self._pending_bytes += size
        if victims:
            self._remove_dead_segments()
        return True

    def peek(self) -> SpoolBatch | None:
        """The oldest pending batch (it stays pending until :meth:`ack`).

        A batch whose bytes changed on disk since it was written is dropped and counted in
        ``corrupt_records``/``corrupt_lines``, and the next one is returned.
        """
        while True:
            with self._lock:
                self._settle_in_flight()
                if not self._pending:
                    return None
                entry = self._pending[0]
                payload = self._read_payload(entry)
                if entry.crc is None or zlib.crc32(payload) == entry.crc:
                    self._in_flight = entry.seq
                    return SpoolBatch(entry.seq, payload.decode("utf-8").split("\n"))
                self._pending.popleft()
                self._pending_bytes -= entry.size
                self._floor = entry.seq
                self._floor_unsaved = True
                self.ledger.add(CORRUPT_RECORDS)
                self.ledger.add(CORRUPT_LINES, entry.nlines)
                log.error(
                    "spool_batch_corrupt_dropped",
                    segment=self._segment_path(entry.segment).name,
                    offset=entry.offset,
                    lines=entry.nlines,
                )
            self.ledger.save()

    def ack(self, batch_id: int) -> bool:
        """Remove the oldest batch durably. Returns False (and does nothing) when that batch
        is already gone, e.g. dropped for room while it was being sent.

        The batch leaves the queue even when its floor record cannot be written (full
        disk): that record goes out with the next one, and until then a restart would
        replay the batch, which overwrites itself in every store.
        """
        with self._lock:
            dropped = self._in_flight_dropped
            if dropped is not None and dropped.seq == batch_id:
                self._in_flight_dropped = None  # it was stored after all: not a loss
                return False
            if not self._pending or batch_id < self._pending[0].seq:
                return False
            if batch_id != self._pending[0].seq:
                raise ValueError(
                    f"spool ack out of order: {batch_id} given, oldest pending is "
                    f"{self._pending[0].seq}"
                )
            entry = self._pending.popleft()
            self._pending_bytes -= entry.size
            self._floor = entry.seq
            try:
                self._write_durably(_encode(_FLOOR, entry.seq, 0, b""))
                self._floor_unsaved = False
            except OSError as err:
                self._floor_unsaved = True
                self._log_io_error("spool_ack_not_persisted", err, floor=entry.seq)
            self._remove_dead_segments()
            return True

    def _settle_in_flight(self) -> None:
        """The sender moved on without acking the dropped in-flight batch: it is lost."""
        if self._in_flight_dropped is not None:
            self._count_drop(1, self._in_flight_dropped.nlines)
            self._in_flight_dropped = None
        self._in_flight = None

    def close(self) -> None:
        with self._lock:
            self._settle_in_flight()
            if self._floor_unsaved:
                try:
                    self._write_durably(_encode(_FLOOR, self._floor, 0, b""))
                    self._floor_unsaved = False
                except OSError as err:
                    self._log_io_error("spool_ack_not_persisted", err, floor=self._floor)
            self._close_active()
        self.ledger.close()

    # --- appending ------------------------------------------------------------------------

    def _victims(self, size: int) -> list[_Entry]:
        """The oldest batches to drop so ``size`` more bytes fit (not dropped yet: only once
        the record that persists the new floor is on disk)."""
        victims: list[_Entry] = []
        total = self._pending_bytes
        for entry in self._pending:
            if total + size <= self._max_bytes:
                break
            victims.append(entry)
            total -= entry.size
        return victims

    def _drop_victims(self, victims: list[_Entry]) -> None:
        for entry in victims:
            self._pending.popleft()
            self._pending_bytes -= entry.size
        self._floor = max(self._floor, victims[-1].seq)
        counted = [entry for entry in victims if entry.seq != self._in_flight]
        if len(counted) < len(victims):
            self._in_flight_dropped = victims[0]  # only the head can be in flight
        if counted:
            self._count_drop(len(counted), sum(entry.nlines for entry in counted))
        log.warning(
            "spool_full_dropped_oldest",
            floor=self._floor,
            dropped_batches=self.dropped_batches,
            dropped_lines=self.dropped_lines,
        )

    def _count_drop(self, batches: int, nlines: int) -> None:
        self.ledger.add(DROPPED_BATCHES, batches)
        self.ledger.add(DROPPED_LINES, nlines)

    def _log_io_error(self, event: str, err: OSError, **fields: object) -> None:
        # A full disk fails every flush: one warning a minute says it, the ledger counts it.
        now = time.monotonic()
        if now - self._last_io_error >= 60.0:
            self._last_io_error = now
            log.warning(
                event,
                directory=str(self._dir),
                error=str(err),
                errno=errno.errorcode.get(err.errno or 0, err.errno),
                **fields,
            )

    def _write_durably(self, record: bytes) -> tuple[int, int]:
        """Append ``record`` to the active segment and fsync; returns (segment, offset).

        On an I/O error nothing of the record stays: a partial write is cut off again, and a
        segment created for this record and left empty is removed.
        """
        if self._active_fd is not None and self._active_size >= self._segment_limit:
            self._close_active()
        if self._active_fd is None:
            self._open_new_segment()
        assert self._active is not None and self._active_fd is not None
        start = self._active_size
        try:
            _write_all(self._active_fd, record)
            os.fsync(self._active_fd)
        except OSError:
            self._undo_partial_write(start)
            raise
        self._active_size += len(record)
        return self._active, start

    def _undo_partial_write(self, start: int) -> None:
        assert self._active is not None and self._active_fd is not None
        number = self._active
        try:
            os.ftruncate(self._active_fd, start)
            os.fsync(self._active_fd)
        except OSError:
            # Cannot cut it: never append after a partial record (the next open cuts it).
            self._close_active()
            return
        if start == 0:
            self._close_active()
            self._unlink([number])

    def _open_new_segment(self) -> None:
        number = (self._segments[-1] + 1) if self._segments else 1
        path = self._segment_path(number)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self._active_fd = fd
        self._active = number
        self._active_size = 0
        self._segments.append(number)
        try:
            _fsync_dir(self._dir)
        except OSError:
            self._close_active()
            self._unlink([number])
            raise

    def _close_active(self) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)
        self._active_fd = None
        self._active = None
        self._active_size = 0

    # --- removal --------------------------------------------------------------------------

    def _remove_dead_segments(self) -> None:
        """Remove segments holding only batches that are gone.

        Kept: the segment of the oldest pending batch and everything after it, or, with
        nothing pending, the newest segment, whose last record is the floor: it keeps batch
        ids increasing across restarts.
        """
        if self._pending:
            keep_from = self._pending[0].segment
        elif self._active is not None:
            keep_from = self._active
        else:
            keep_from = self._segments[-1] if self._segments else 0
        self._unlink([n for n in self._segments if n < keep_from])

    def _unlink(self, numbers: list[int]) -> None:
        if not numbers:
            return
        for number in numbers:
            self._segment_path(number).unlink(missing_ok=True)
            self._segments.remove(number)
        try:
            _fsync_dir(self._dir)
        except OSError as err:
            self._log_io_error("spool_dir_fsync_failed", err)

    # --- reading and recovery -------------------------------------------------------------

    def _segment_path(self, number: int) -> Path:
        return self._dir / f"segment-{number:012d}.spool"

    def _read_payload(self, entry: _Entry) -> bytes:
        header = _HEADER_V1.size if entry.crc is None else _HEADER.size
        with open(self._segment_path(entry.segment), "rb") as handle:
            handle.seek(entry.offset + header)
            return handle.read(entry.size - header)

    def _recover(self) -> None:
        for path in self._dir.iterdir():
            if _SEGMENT_RE.match(path.name) and path.stat().st_mode & 0o777 != 0o600:
                os.chmod(path, 0o600)
        numbers = sorted(
            int(m.group(1)) for p in self._dir.iterdir() if (m := _SEGMENT_RE.match(p.name))
        )
        batches: list[_Entry] = []
        damaged: list[_Damage] = []
        self._last_scanned_batch = None
        highest = 0
        for number in numbers:
            self._segments.append(number)
            for kind, seq, entry in self._scan(number, damaged):
                highest = max(highest, seq)
                if kind == _FLOOR:
                    self._floor = max(self._floor, seq)
                elif entry is not None:
                    batches.append(entry)
        for entry in batches:
            if entry.seq > self._floor:
                self._pending.append(entry)
                self._pending_bytes += entry.size
        self._count_damage(damaged)
        self._next_seq = highest + 1
        self._remove_dead_segments()
        if self._pending or damaged:
            log.info(
                "spool_recovered",
                directory=str(self._dir),
                pending_batches=len(self._pending),
                pending_bytes=self._pending_bytes,
                torn_records=self.torn_records,
                corrupt_records=self.corrupt_records,
                corrupt_lines=self.corrupt_lines,
            )

    def _count_damage(self, damaged: list[_Damage]) -> None:
        """Lost lines: damaged batches the floor did not already cover. A batch whose header
        is unreadable has the seq after the batch before it (batch seqs are consecutive);
        with no batch before it, it is counted unless the floor proves it acknowledged."""
        for damage in damaged:
            self.ledger.add(CORRUPT_RECORDS)
            if damage.kind == _FLOOR or damage.nlines == 0:
                continue
            seq = self._floor + 1 if damage.seq is None else damage.seq
            if seq > self._floor:
                self.ledger.add(CORRUPT_LINES, damage.nlines)

    def _scan(self, number: int, damaged: list[_Damage]) -> list[tuple[int, int, _Entry | None]]:
        path = self._segment_path(number)
        data = path.read_bytes()
        out: list[tuple[int, int, _Entry | None]] = []
        offset = 0
        keep: list[tuple[int, int]] = []  # byte ranges of valid records
        found_damage = False
        while offset < len(data):
            record = _decode_at(data, offset)
            if record is not None:
                entry = (
                    _Entry(record.seq, number, offset, record.size, record.nlines, record.crc)
                    if record.kind == _BATCH
                    else None
                )
                out.append((record.kind, record.seq, entry))
                self._floor = max(self._floor, record.floor)
                keep.append((offset, offset + record.size))
                if record.kind == _BATCH:
                    self._last_scanned_batch = record.seq
                offset += record.size
                continue
            resync = _next_valid(data, offset + 1)
            if resync is None and _is_torn_tail(data, offset):
                self._cut_torn_tail(path, offset, len(data))
                break
            end = len(data) if resync is None else resync
            damage = _describe_damage(data[offset:end], self._last_scanned_batch)
            if damage.kind == _BATCH and damage.seq is not None:
                self._last_scanned_batch = damage.seq
            damaged.append(damage)
            found_damage = True
            log.error(
                "spool_damaged_record_skipped",
                segment=path.name,
                offset=offset,
                bytes_skipped=end - offset,
                lines=damage.nlines,
            )
            offset = end
        if found_damage:
            out = self._rewrite_without_damage(number, path, data, keep, out)
        return out

    def _rewrite_without_damage(
        self,
        number: int,
        path: Path,
        data: bytes,
        keep: list[tuple[int, int]],
        records: list[tuple[int, int, _Entry | None]],
    ) -> list[tuple[int, int, _Entry | None]]:
        """Copy the segment aside, then replace it by its valid records only (so the damage
        is counted once, not at every open); returns the records at their new offsets."""
        self._keep_damaged_copy(path)
        clean = b"".join(data[a:b] for a, b in keep)
        tmp = path.with_name(path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                _write_all(fd, clean)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            _fsync_dir(self._dir)
        except OSError as err:
            # No room to rewrite: read it in place (the damage is counted again next open).
            tmp.unlink(missing_ok=True)
            log.warning("spool_damaged_segment_not_rewritten", segment=path.name, error=str(err))
            return records
        out: list[tuple[int, int, _Entry | None]] = []
        offset = 0
        for (a, b), (kind, seq, old) in zip(keep, records, strict=True):
            moved = (
                None
                if old is None
                else _Entry(old.seq, number, offset, old.size, old.nlines, old.crc)
            )
            out.append((kind, seq, moved))
            offset += b - a
        return out

    def _keep_damaged_copy(self, path: Path) -> None:
        aside = self._dir / DAMAGED_DIR
        try:
            ensure_private_dir(aside)
            target = aside / f"{path.name}.{time.time_ns()}"
            shutil.copyfile(path, target)
            os.chmod(target, 0o600)
            copies = sorted(aside.iterdir(), key=lambda p: p.name.rsplit(".", 1)[-1])
            for old in copies[:-MAX_DAMAGED_COPIES]:
                old.unlink(missing_ok=True)
        except OSError as err:
            log.warning("spool_damaged_copy_failed", segment=path.name, error=str(err))

    def _cut_torn_tail(self, path: Path, good: int, total: int) -> None:
        self.ledger.add(TORN_RECORDS)
        log.warning(
            "spool_torn_record_skipped", segment=path.name, offset=good, bytes_cut=total - good
        )
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, good)
            os.fsync(fd)
        finally:
            os.close(fd)


def _encode(kind: int, seq: int, nlines: int, payload: bytes, floor: int | None = None) -> bytes:
    """A record; ``floor`` defaults to ``seq`` (right for FLOOR records)."""
    head = struct.pack(
        "<4sBQQIII",
        _MAGIC,
        kind,
        seq,
        seq if floor is None else floor,
        nlines,
        len(payload),
        zlib.crc32(payload),
    )
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def _header_at(data: bytes, offset: int) -> tuple[int, int, int, int, int, int] | None:
    """(type, seq, nlines, length, payload_crc, floor) of a valid current-format header."""
    if offset + _HEADER.size > len(data) or data[offset : offset + 4] != _MAGIC:
        return None
    _, kind, seq, floor, nlines, length, pcrc, hcrc = _HEADER.unpack_from(data, offset)
    if zlib.crc32(data[offset : offset + _HEADER_CRC_SPAN]) != hcrc:
        return None
    if kind not in (_BATCH, _FLOOR):
        return None
    return kind, seq, nlines, length, pcrc, floor


def _decode_at(data: bytes, offset: int) -> _Record | None:
    """The valid record at ``offset``, or None (torn, damaged, or not a record start)."""
    if data[offset : offset + 4] == _MAGIC_V1:
        return _decode_v1_at(data, offset)
    header = _header_at(data, offset)
    if header is None:
        return None
    kind, seq, nlines, length, pcrc, floor = header
    end = offset + _HEADER.size + length
    if end > len(data) or zlib.crc32(data[offset + _HEADER.size : end]) != pcrc:
        return None
    return _Record(kind, seq, nlines, end - offset, pcrc, floor)


def _decode_v1_at(data: bytes, offset: int) -> _Record | None:
    if offset + _HEADER_V1.size > len(data):
        return None
    magic, kind, seq, nlines, length, crc = _HEADER_V1.unpack_from(data, offset)
    end = offset + _HEADER_V1.size + length
    if magic != _MAGIC_V1 or kind not in (_BATCH, _FLOOR) or end > len(data):
        return None
    payload = data[offset + _HEADER_V1.size : end]
    if zlib.crc32(payload, zlib.crc32(struct.pack("<BQII", kind, seq, nlines, length))) != crc:
        return None
    return _Record(kind, seq, nlines, end - offset, None)


def _next_valid(data: bytes, start: int) -> int | None:
    """Offset of the next valid record at or after ``start`` (re-synchronisation)."""
    position = start
    while True:
        found = [i for i in (data.find(_MAGIC, position), data.find(_MAGIC_V1, position)) if i >= 0]
        if not found:
            return None
        candidate = min(found)
        if _decode_at(data, candidate) is not None:
            return candidate
        position = candidate + 1


def _is_torn_tail(data: bytes, offset: int) -> bool:
    """True for the prefix of a record a crash cut short: a header too short to check, or a
    valid header whose payload runs past the end of the file."""
    if len(data) - offset < _HEADER.size:
        return True
    if data[offset : offset + 4] == _MAGIC_V1:
        length = int(_HEADER_V1.unpack_from(data, offset)[4])
        return offset + _HEADER_V1.size + length > len(data)
    header = _header_at(data, offset)
    return header is not None and offset + _HEADER.size + header[3] > len(data)


def _describe_damage(region: bytes, last_batch_seq: int | None) -> _Damage:
    """What a damaged region held: from its header when that is valid (the header has its
    own CRC), else from its payload, checked against the payload CRC in the header."""
    header = _header_at(region, 0)
    if header is not None:
        kind, seq, nlines = header[:3]
        return _Damage(seq, nlines if kind == _BATCH else 0, kind)
    guess = None if last_batch_seq is None else last_batch_seq + 1
    if len(region) <= _HEADER.size:
        return _Damage(guess, 0, _FLOOR)  # no payload: a floor record
    # One flipped byte in a header leaves the payload intact (the region ends where the next
    # valid record starts), so its lines are exactly the payload's.
    size = _HEADER_V1.size if region[:4] == _MAGIC_V1 else _HEADER.size
    return _Damage(guess, region[size:].count(b"\n") + 1, _BATCH)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
