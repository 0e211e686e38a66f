"""Item 9: the health series reports cumulative totals that survive drops and restarts."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from ingest_sidecar.settings import SidecarSettings
from ingest_sidecar.sidecar import Sidecar
from ingest_sidecar.spool import Spool
from tests.fixtures.influxd import free_port
from tests.ingest_sidecar.sidecar_helpers import Sent, send_rounds


def _settings(tmp_path: Path, store_url: str, **extra: Any) -> SidecarSettings:
    values: dict[str, Any] = {
        "statsd_listen": "127.0.0.1:0",
        "flush_interval": "200ms",
        "store_url": store_url,
        "spool_dir": str(tmp_path / "spool"),
        "spool_max_bytes": "64KiB",
        "host": "node-h",
        **extra,
    }
    return SidecarSettings(**values)


def _health(db: Path) -> list[dict[str, float]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT p.ts, p.field, p.value FROM points p JOIN series s ON s.id = p.series_id "
            "WHERE s.measurement = 'meshalert_sidecar'"
        ).fetchall()
    by_ts: dict[int, dict[str, float]] = {}
    for ts, name, value in rows:
        by_ts.setdefault(int(ts), {})[str(name)] = float(value)
    return [by_ts[ts] for ts in sorted(by_ts)]


def test_drops_before_a_restart_are_in_every_later_health_point(tmp_path: Path) -> None:
    # Run 1: the store is down and the 64 KiB spool overflows: the oldest batches, health
    # points included, are dropped.
    dead = f"influxdb1://127.0.0.1:{free_port()}/mesh"
    first = Sidecar(_settings(tmp_path, dead), backoff_max_s=0.2)
    first.start()
    try:
        for chunk in range(10):
            send_rounds(first.address, range(chunk * 200, chunk * 200 + 200), Sent(), pause_s=0)
            time.sleep(0.25)
        time.sleep(0.3)
    finally:
        first.stop(timeout_s=2)
    dropped_before = first.spool.dropped_lines
    assert dropped_before > 0, "the spool bound was reached"

    # Run 2: the store works; the spool's survivors are replayed first.
    db = tmp_path / "m.db"
    second = Sidecar(_settings(tmp_path, f"sqlite:///{db}"))
    second.start()
    try:
        time.sleep(1.0)
    finally:
        second.stop()
    after = Spool(str(tmp_path / "spool"), 64 * 1024)
    total = after.dropped_lines
    after.close()
    assert total >= dropped_before  # persisted, not reset by the restart

    health = _health(db)
    assert len(health) >= 3, "run 2 wrote health points"
    # The points run 2 made count run 1's drops; the last one counts them all.
    assert all(h["spool_dropped_lines_total"] >= dropped_before for h in health[-3:])
    assert health[-1]["spool_dropped_lines_total"] == total
    assert health[-1]["dropped_total"] >= total
