from __future__ import annotations

from pathlib import Path

from meshalert.backends.sqlite.retention import PRUNE_EVERY_MS
from meshalert.backends.sqlite.writer import SqliteWriter, open_database
from meshalert.backends.urls import parse_store_url
from meshalert.wiring import open_retention

HOUR_MS = 3_600_000


def _timestamps(path: Path) -> list[int]:
    conn = open_database(str(path), readonly=True)
    try:
        return [ts for (ts,) in conn.execute("SELECT ts FROM points ORDER BY ts")]
    finally:
        conn.close()


def test_embedded_store_prunes_old_points_at_most_once_an_hour(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    writer = SqliteWriter.open(str(path))
    writer.write([f"m v=1 {ts}" for ts in (1 * HOUR_MS, 3 * HOUR_MS, 5 * HOUR_MS)])
    writer.close()
    prune = open_retention(parse_store_url(f"sqlite:///{path}"), retention_ms=2 * HOUR_MS)
    assert prune is not None
    prune(5 * HOUR_MS)  # keeps [3h, ...)
    assert _timestamps(path) == [3 * HOUR_MS, 5 * HOUR_MS]
    prune(5 * HOUR_MS + PRUNE_EVERY_MS - 1)  # within the hour: nothing deleted
    assert _timestamps(path) == [3 * HOUR_MS, 5 * HOUR_MS]
    prune(5 * HOUR_MS + PRUNE_EVERY_MS)
    assert _timestamps(path) == [5 * HOUR_MS]


def test_influxdb_stores_keep_their_own_retention() -> None:
    assert open_retention(parse_store_url("influxdb1://h:8086/db"), HOUR_MS) is None
    assert (
        open_retention(parse_store_url("influxdb2://h?org=o&bucket=b", token="t"), HOUR_MS) is None
    )
