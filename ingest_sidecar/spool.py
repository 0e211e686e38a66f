"""A durable, bounded FIFO of line-protocol batches, kept on disk while the store is down.

Layout: ``segment-<n>.spool`` files in one directory, each an append-only log of records::

    magic "MSP1" | type u8 | seq u64 | nlines u32 | length u32 | crc32 u32 | payload

``type`` is BATCH (payload = the lines joined by ``\\n``) or FLOOR (no payload: every batch
with ``seq <= floor`` is gone, acknowledged or dropped). The CRC covers the header fields
and the payload, so a record torn by a crash (kill -9, power loss) is detected on the next
open, counted in :attr:`Spool.torn_records` and cut off; it never crashes the sidecar.

Durability: every append and every ack is fsynced before it returns, and the directory is
fsynced whenever a segment file is created or removed. A new process on the same directory
sees exactly the batches the old one had not acknowledged, in order.

Bound: :attr:`Spool.pending_bytes` (record bytes of unacknowledged batches, headers included)
never exceeds ``max_bytes``. To make room, the OLDEST batches are dropped and counted in
``dropped_batches``/``dropped_lines``; a batch bigger than ``max_bytes`` on its own is dropped
and counted instead of stored. Disk use can exceed ``pending_bytes`` by at most one segment
of already-acknowledged records (segments are removed whole once every batch in them is gone).
The drop and torn counters are per process (they are health figures, not persisted).
"""

from __future__ import annotations

import os
import re
import struct
import threading
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

_MAGIC = b"MSP1"
_HEADER = struct.Struct("<4sBQIII")  # magic, type, seq, nlines, length, crc32
_BATCH = 1
_FLOOR = 2
_SEGMENT_RE = re.compile(r"^segment-(\d{12})\.spool$")
_MIN_SEGMENT_BYTES = 64 * 1024
_MAX_SEGMENT_BYTES = 16 * 1024 * 1024

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


def record_size(lines: Sequence[str]) -> int:
    """Bytes one batch takes in the spool (what counts against ``max_bytes``)."""
    return _HEADER.size + len("\n".join(lines).encode("utf-8"))


class Spool:
    """Durable FIFO of batches; thread-safe (one appender and one sender may share it)."""

    def __init__(self, directory: str, max_bytes: int) -> None:
        if max_bytes <= _HEADER.size:
            raise ValueError(f"spool max_bytes must exceed {_HEADER.size}, got {max_bytes}")
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_bytes
        self._segment_limit = min(_MAX_SEGMENT_BYTES, max(_MIN_SEGMENT_BYTES, max_bytes // 8))
        self._lock = threading.Lock()
        self._pending: deque[_Entry] = deque()
        self._pending_bytes = 0
        self._segments: list[int] = []  # numbers of segment files on disk, ascending
        self._active: int | None = None  # the segment appended to by this process
        self._active_fd: int | None = None
        self._active_size = 0
        self._floor = 0
        self._next_seq = 1
        self.dropped_batches = 0
        self.dropped_lines = 0
        self.torn_records = 0
        self._recover()

    # --- public API ---------------------------------------------------------------------

    @property
    def directory(self) -> str:
        return str(self._dir)

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

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

    def append(self, lines: Sequence[str]) -> None:
        """Store one batch durably (fsynced) before returning; empty batches are ignored."""
        if not lines:
            return
        for index, line in enumerate(lines):
            if "\n" in line:
                raise ValueError(f"spool line {index} contains a newline: {line[:200]!r}")
        payload = "\n".join(lines).encode("utf-8")
        size = _HEADER.size + len(payload)
        with self._lock:
            if size > self._max_bytes:
                self._count_drop(len(lines))
                log.warning(
                    "spool_batch_too_large_dropped",
                    lines=len(lines),
                    bytes=size,
                    max_bytes=self._max_bytes,
                )
                return
            dropped_to = self._make_room(size)
            seq = self._next_seq
            record = b""
            if dropped_to is not None:
                record += _encode(_FLOOR, dropped_to, 0, b"")
            header_at = len(record)
            record += _encode(_BATCH, seq, len(lines), payload)
            segment, start = self._write_durably(record)
            self._next_seq += 1
            self._pending.append(_Entry(seq, segment, start + header_at, size, len(lines)))
            self._pending_bytes += size
            if dropped_to is not None:
                self._remove_dead_segments()

    def peek(self) -> SpoolBatch | None:
        """The oldest pending batch (it stays pending until :meth:`ack`)."""
        with self._lock:
            if not self._pending:
                return None
            entry = self._pending[0]
            payload = self._read_payload(entry)
        return SpoolBatch(entry.seq, payload.decode("utf-8").split("\n"))

    def ack(self, batch_id: int) -> bool:
        """Remove the oldest batch durably. Returns False (and does nothing) when that batch
        is already gone, e.g. dropped for room while it was being sent."""
        with self._lock:
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
            self._write_durably(_encode(_FLOOR, entry.seq, 0, b""))
            self._remove_dead_segments()
            return True

    def close(self) -> None:
        with self._lock:
            self._close_active()

    # --- appending ------------------------------------------------------------------------

    def _make_room(self, size: int) -> int | None:
        """Drop oldest batches until ``size`` more bytes fit; returns the new floor if any."""
        new_floor: int | None = None
        while self._pending and self._pending_bytes + size > self._max_bytes:
            entry = self._pending.popleft()
            self._pending_bytes -= entry.size
            self._count_drop(entry.nlines)
            new_floor = entry.seq
        if new_floor is not None:
            self._floor = new_floor
            log.warning(
                "spool_full_dropped_oldest",
                floor=new_floor,
                dropped_batches=self.dropped_batches,
                dropped_lines=self.dropped_lines,
            )
        return new_floor

    def _count_drop(self, nlines: int) -> None:
        self.dropped_batches += 1
        self.dropped_lines += nlines

    def _write_durably(self, record: bytes) -> tuple[int, int]:
        """Append ``record`` to the active segment and fsync; returns (segment, offset)."""
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
            # A partial record would be cut off on the next open; start a fresh segment now
            # so nothing is ever appended after it.
            self._close_active()
            raise
        self._active_size += len(record)
        return self._active, start

    def _open_new_segment(self) -> None:
        number = (self._segments[-1] + 1) if self._segments else 1
        path = self._segment_path(number)
        self._active_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self._active = number
        self._active_size = 0
        self._segments.append(number)
        _fsync_dir(self._dir)

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
        _fsync_dir(self._dir)

    # --- reading and recovery -------------------------------------------------------------

    def _segment_path(self, number: int) -> Path:
        return self._dir / f"segment-{number:012d}.spool"

    def _read_payload(self, entry: _Entry) -> bytes:
        with open(self._segment_path(entry.segment), "rb") as handle:
            handle.seek(entry.offset + _HEADER.size)
            return handle.read(entry.size - _HEADER.size)

    def _recover(self) -> None:
        numbers = sorted(
            int(m.group(1)) for p in self._dir.iterdir() if (m := _SEGMENT_RE.match(p.name))
        )
        batches: list[_Entry] = []
        highest = 0
        for number in numbers:
            self._segments.append(number)
            for kind, seq, entry in self._scan(number):
                highest = max(highest, seq)
                if kind == _FLOOR:
                    self._floor = max(self._floor, seq)
                elif entry is not None:
                    batches.append(entry)
        for entry in batches:
            if entry.seq > self._floor:
                self._pending.append(entry)
                self._pending_bytes += entry.size
        self._next_seq = highest + 1
        self._remove_dead_segments()
        if self._pending or self.torn_records:
            log.info(
                "spool_recovered",
                directory=str(self._dir),
                pending_batches=len(self._pending),
                pending_bytes=self._pending_bytes,
                torn_records=self.torn_records,
            )

    def _scan(self, number: int) -> list[tuple[int, int, _Entry | None]]:
        path = self._segment_path(number)
        data = path.read_bytes()
        out: list[tuple[int, int, _Entry | None]] = []
        offset = 0
        while offset < len(data):
            parsed = _decode_at(data, offset)
            if parsed is None:
                self._cut_torn_tail(path, offset, len(data))
                break
            kind, seq, nlines, size = parsed
            entry = _Entry(seq, number, offset, size, nlines) if kind == _BATCH else None
            out.append((kind, seq, entry))
            offset += size
        return out

    def _cut_torn_tail(self, path: Path, good: int, total: int) -> None:
        self.torn_records += 1
        log.warning(
            "spool_torn_record_skipped", segment=path.name, offset=good, bytes_cut=total - good
        )
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, good)
            os.fsync(fd)
        finally:
            os.close(fd)


def _encode(kind: int, seq: int, nlines: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(struct.pack("<BQII", kind, seq, nlines, len(payload))))
    return _HEADER.pack(_MAGIC, kind, seq, nlines, len(payload), crc) + payload


def _decode_at(data: bytes, offset: int) -> tuple[int, int, int, int] | None:
    """(type, seq, nlines, record size) of the record at ``offset``, or None if torn."""
    if offset + _HEADER.size > len(data):
        return None
    magic, kind, seq, nlines, length, crc = _HEADER.unpack_from(data, offset)
    end = offset + _HEADER.size + length
    if magic != _MAGIC or kind not in (_BATCH, _FLOOR) or end > len(data):
        return None
    payload = data[offset + _HEADER.size : end]
    if zlib.crc32(payload, zlib.crc32(struct.pack("<BQII", kind, seq, nlines, length))) != crc:
        return None
    return kind, seq, nlines, end - offset


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
