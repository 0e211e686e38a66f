"""Cumulative counters that survive restarts and a full disk: the sidecar's loss ledger.

Health figures that reset on restart under-report exactly when it matters (a crash loop,
a full disk), so the totals behind the ``*_total`` health fields live in one small file in
the spool directory. The file is allocated once, at its full size, when the ledger is
created; afterwards every save overwrites bytes already allocated, so it keeps working when
the disk is full (tmpfs, ext4 and xfs need no new blocks to overwrite allocated ones).

Layout: two slots of :data:`SLOT_BYTES`; a save writes the slot the previous save did not,
so a save torn by a crash leaves the other, older slot intact. Each slot is
``generation u64 | length u32 | crc32 u32 | JSON object of name -> int`` padded with zeros;
the valid slot with the higher generation wins. A file that cannot be read is renamed aside
and counting restarts from zero (logged), never a crash.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from collections.abc import Mapping
from pathlib import Path

import structlog

LEDGER_FILE = "counters.ledger"
SLOT_BYTES = 2048
_SLOT_HEADER = struct.Struct("<QII")

log = structlog.get_logger(__name__)


class Ledger:
    """Named, monotonic integer counters persisted with :meth:`save`; thread-safe."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}
        self._generation = 0
        self._dirty = False
        self._fd: int | None = None
        self._open()

    @property
    def path(self) -> Path:
        return self._path

    def get(self, name: str) -> int:
        with self._lock:
            return self._values.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def add(self, name: str, amount: int = 1) -> None:
        """Count ``amount`` more (in memory; :meth:`save` persists)."""
        if amount < 0:
            raise ValueError(f"ledger counters only grow: {name} += {amount}")
        if amount == 0:
            return
        with self._lock:
            self._values[name] = self._values.get(name, 0) + amount
            self._dirty = True

    def add_all(self, amounts: Mapping[str, int]) -> None:
        for name, amount in amounts.items():
            self.add(name, amount)

    def save(self) -> bool:
        """Persist (fsynced) if anything changed; False when the write failed (the values
        stay in memory and the next save tries again)."""
        with self._lock:
            if not self._dirty or self._fd is None:
                return self._fd is not None
            payload = json.dumps(self._values, sort_keys=True, separators=(",", ":")).encode()
            if _SLOT_HEADER.size + len(payload) > SLOT_BYTES:
                log.error("ledger_too_large", counters=len(self._values), bytes=len(payload))
                return False
            generation = self._generation + 1
            slot = _SLOT_HEADER.pack(generation, len(payload), zlib.crc32(payload)) + payload
            slot = slot.ljust(SLOT_BYTES, b"\0")
            try:
                os.pwrite(self._fd, slot, (generation % 2) * SLOT_BYTES)
                os.fsync(self._fd)
            except OSError as err:
                log.warning("ledger_save_failed", path=str(self._path), error=str(err))
                return False
            self._generation = generation
            self._dirty = False
            return True

    def close(self) -> None:
        self.save()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _open(self) -> None:
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            log.error("ledger_unavailable", path=str(self._path), error=str(err))
            return
        try:
            os.fchmod(fd, 0o600)
            data = os.pread(fd, 2 * SLOT_BYTES, 0)
            if len(data) < 2 * SLOT_BYTES:
                # Allocate both slots now, while there is room, so saves never need space.
                os.pwrite(fd, data + b"\0" * (2 * SLOT_BYTES - len(data)), 0)
                os.fsync(fd)
        except OSError as err:
            os.close(fd)
            log.error("ledger_unavailable", path=str(self._path), error=str(err))
            return
        self._fd = fd
        best: tuple[int, dict[str, int]] | None = None
        for index in range(2):
            parsed = _parse_slot(data[index * SLOT_BYTES : (index + 1) * SLOT_BYTES])
            if parsed is not None and (best is None or parsed[0] > best[0]):
                best = parsed
        if best is not None:
            self._generation, self._values = best
        elif any(data):
            log.error("ledger_unreadable_counting_from_zero", path=str(self._path))


def _parse_slot(slot: bytes) -> tuple[int, dict[str, int]] | None:
    if len(slot) < _SLOT_HEADER.size:
        return None
    generation, length, crc = _SLOT_HEADER.unpack_from(slot)
    payload = slot[_SLOT_HEADER.size : _SLOT_HEADER.size + length]
    if generation == 0 or len(payload) != length or zlib.crc32(payload) != crc:
        return None
    try:
        values = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(values, dict):
        return None
    return generation, {
        str(k): int(v) for k, v in values.items() if isinstance(v, int) and not isinstance(v, bool)
    }
