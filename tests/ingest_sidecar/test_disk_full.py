"""The real sidecar with its spool on a real, tiny filesystem that runs full, then frees up.

The sidecar runs as a subprocess in a private mount namespace (``unshare --mount``, with
``--map-root-user`` when not root) holding a 1 MiB tmpfs at the spool directory: the mount
disappears with the process, and this test reaches it through ``/proc/<pid>/root``. It
fills the tmpfs with a ballast file until ENOSPC, sends statsd traffic, then removes the
ballast. The store (SQLite) lives outside the tmpfs and keeps working throughout.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.influxd import free_port
from tests.ingest_sidecar.sidecar_helpers import Sent, send_rounds

REPO = Path(__file__).resolve().parents[2]
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"


class NamespacedSidecar:
    """``python -m ingest_sidecar`` with a private tmpfs of ``size`` at ``spool``."""

    def __init__(self, spool: Path, store: Path, port: int, size: str = "1m") -> None:
        spool.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "MESHALERT_STATSD_LISTEN": f"127.0.0.1:{port}",
            "MESHALERT_FLUSH_INTERVAL": "200ms",
            "MESHALERT_STORE": f"sqlite:///{store}",
            "MESHALERT_SPOOL_DIR": str(spool),
            "MESHALERT_HOST": "node-full",
        }
        flags = ["--mount"] if os.geteuid() == 0 else ["--mount", "--map-root-user"]
        script = 'mount -t tmpfs -o "size=$1" tmpfs "$2" && exec "$3" -m ingest_sidecar'
        self.events: list[dict[str, Any]] = []
        self.spool = spool
        self._proc = subprocess.Popen(
            [UNSHARE, *flags, "sh", "-c", script, "sh", size, str(spool), sys.executable],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for("sidecar_started")

    @property
    def inside(self) -> Path:
        """The spool directory as the sidecar sees it (its own tmpfs)."""
        return Path(f"/proc/{self._proc.pid}/root") / self.spool.relative_to("/")

    def _read(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                self.events.append({"event": "raw", "text": line})

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("event") == event]

    def alive(self) -> bool:
        return self._proc.poll() is None

    def wait_for(self, event: str, count: int = 1, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.named(event)) < count:
            if self._proc.poll() is not None:
                self._reader.join(2)
                raise AssertionError(f"sidecar exited early: {self.events[-10:]}")
            assert time.monotonic() < deadline, f"no {event}: {self.events[-5:]}"
            time.sleep(0.02)

    def stop(self) -> int:
        self._proc.send_signal(signal.SIGTERM)
        code = self._proc.wait(timeout=60)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)


def _fill(directory: Path) -> Path:
    """Write a ballast file until the filesystem is full (ENOSPC)."""
    ballast = directory / "ballast"
    with open(ballast, "wb", buffering=0) as handle:
        while True:
            try:
                handle.write(b"\0" * 4096)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
                return ballast


def _health(db: Path) -> list[dict[str, float]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT p.ts, p.field, p.value FROM points p JOIN series s ON s.id = p.series_id "
            "WHERE s.measurement = 'meshalert_sidecar' ORDER BY p.ts"
        ).fetchall()
    by_ts: dict[int, dict[str, float]] = {}
    for ts, name, value in rows:
        by_ts.setdefault(int(ts), {"ts": float(ts)})[str(name)] = float(value)
    return [by_ts[ts] for ts in sorted(by_ts)]


def _distinct_points(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        query = "SELECT count(*) FROM (SELECT DISTINCT series_id, ts FROM points)"
        return int(conn.execute(query).fetchone()[0])


def test_full_disk_is_counted_survived_and_recovered_from(tmp_path: Path) -> None:
    db = tmp_path / "store" / "m.db"
    address = ("127.0.0.1", free_port())
    sidecar = NamespacedSidecar(tmp_path / "spool", db, address[1])
    try:
        send_rounds(address, range(0, 100), Sent())
        sidecar.wait_for("sidecar_flush", count=3)
        ballast = _fill(sidecar.inside)
        full_since = len(sidecar.named("sidecar_flush"))
        send_rounds(address, range(100, 400), Sent())
        sidecar.wait_for("sidecar_flush", count=full_since + 6)
        assert sidecar.alive()
        assert sidecar.named("spool_append_failed_batch_dropped"), "the full disk is logged"
        segments = list(sidecar.inside.rglob("segment-*.spool"))  # one spool per store
        assert all(p.stat().st_size > 0 for p in segments), "no empty segment is left behind"
        ballast.unlink()
        freed_at_ms = time.time() * 1000
        send_rounds(address, range(400, 500), Sent())
        freed_since = len(sidecar.named("sidecar_flush"))
        sidecar.wait_for("sidecar_flush", count=freed_since + 4)
    finally:
        code = sidecar.stop() if sidecar.alive() else -1
        sidecar.kill()
    assert code == 0
    totals = sidecar.named("sidecar_stopped")[-1]["totals"]
    assert totals["spool_write_failures"] >= 3
    assert totals["spool_dropped_lines"] > 0
    # Conservation: every line a flush produced was stored or counted as dropped.
    produced = sum(e["points"] for e in sidecar.named("sidecar_flush"))
    assert produced == totals["written_lines"] + totals["spool_dropped_lines"]
    assert _distinct_points(db) == totals["written_lines"]
    # Ingestion resumed by itself, and the health series tells the whole story: the first
    # point stored after the disk freed up already counts the lines lost meanwhile.
    health = _health(db)
    after = [h for h in health if h["ts"] >= freed_at_ms - 200]
    assert after, "health points are written again once there is room"
    assert after[-1]["spool_dropped_lines_total"] == totals["spool_dropped_lines"]
    assert after[-1]["dropped_total"] >= totals["spool_dropped_lines"]
    assert sum(h.get("spool_dropped_lines", 0) for h in health) <= totals["spool_dropped_lines"]


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_spool_and_store_files_are_private(tmp_path: Path, umask: int) -> None:
    """Item 13 on the real program: whatever the umask, 0700 directory and 0600 files."""
    db = tmp_path / "store" / "m.db"
    spool = tmp_path / "spool"
    address = ("127.0.0.1", free_port())
    old = os.umask(umask)
    try:
        sidecar = NamespacedSidecar(spool, db, address[1])
    finally:
        os.umask(old)
    try:
        send_rounds(address, range(0, 20), Sent())
        sidecar.wait_for("sidecar_flush", count=2)
        inside = sidecar.inside
        assert inside.stat().st_mode & 0o777 == 0o700
        for directory in (p for p in inside.rglob("*") if p.is_dir()):  # the per-store spool
            assert directory.stat().st_mode & 0o777 == 0o700, directory.name
        files = [p for p in inside.rglob("*") if p.is_file()]
        assert any(p.name.startswith("segment-") for p in files)
        for path in files:
            assert path.stat().st_mode & 0o777 == 0o600, path.name
    finally:
        assert sidecar.stop() == 0
    for path in db.parent.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path.name
