"""Store backends the contract suite runs against: a small registry, one entry per store.

Each entry is a function ``(request) -> Backend``: it may use pytest fixtures through
``request.getfixturevalue`` and calls ``pytest.skip`` when its store is unavailable.
Adding a store is one function and one line in :data:`BACKENDS`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from meshalert.lineprotocol import Point, decode, encode, escape_key
from meshalert.queries.model import WindowReader
from meshalert.store_url import InfluxDB1Store, parse_store_url
from meshalert.stores.influxdb1_reader import InfluxDB1WindowReader
from meshalert.stores.sqlite_reader import SqliteWindowReader
from meshalert.stores.sqlite_schema import DDL, TAG_COLUMNS


@dataclass
class Backend:
    name: str
    write_lines: Callable[[Sequence[str]], None]
    reader: WindowReader

    def write(self, points: Sequence[Point]) -> None:
        self.write_lines([encode(p) for p in points])


def _sqlite_insert(conn: sqlite3.Connection, lines: Sequence[str]) -> None:
    # Minimal stand-in for the store helper's SqliteWriter (same layout, same upsert rule).
    with conn:
        for line in lines:
            point = decode(line)
            tags = dict(point.tags)
            tagset = ",".join(f"{escape_key(k)}={escape_key(v)}" for k, v in point.tags)
            conn.execute(
                "INSERT OR IGNORE INTO series (measurement, tagset, "
                + ", ".join(TAG_COLUMNS)
                + ", tags_json) VALUES ("
                + ", ".join("?" * (len(TAG_COLUMNS) + 3))
                + ")",
                (point.measurement, tagset, *(tags.get(c) for c in TAG_COLUMNS), json.dumps(tags)),
            )
            (series_id,) = conn.execute(
                "SELECT id FROM series WHERE measurement = ? AND tagset = ?",
                (point.measurement, tagset),
            ).fetchone()
            conn.executemany(
                "INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?)",
                [(series_id, point.timestamp_ms, k, float(v)) for k, v in point.fields],
            )


def sqlite_backend(request: pytest.FixtureRequest) -> Backend:
    conn = sqlite3.connect(":memory:")
    for statement in DDL:
        conn.execute(statement)
    request.addfinalizer(conn.close)
    return Backend("sqlite", lambda lines: _sqlite_insert(conn, lines), SqliteWindowReader(conn))


def _influx1_write(config: InfluxDB1Store, lines: Sequence[str]) -> None:
    query = urllib.parse.urlencode({"db": config.database, "precision": "ms"})
    req = urllib.request.Request(
        f"{config.base_url}/write?{query}", data="\n".join(lines).encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204


def influxdb1_backend(request: pytest.FixtureRequest) -> Backend:
    server = request.getfixturevalue("influxd")
    database = request.getfixturevalue("influx_db")
    config = parse_store_url(server.store_url(database))
    assert isinstance(config, InfluxDB1Store)
    return Backend(
        "influxdb1", lambda lines: _influx1_write(config, lines), InfluxDB1WindowReader(config)
    )


def influxdb2_backend(request: pytest.FixtureRequest) -> Backend:
    url = os.environ.get("MESHALERT_TEST_INFLUXDB2_URL")
    if not url:
        pytest.skip("MESHALERT_TEST_INFLUXDB2_URL not set")
    # The Flux reader plugs in here: build its writer and reader from ``url``.
    pytest.skip("InfluxDB 2 reader not wired into the contract suite yet")


BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Backend]] = {
    "sqlite": sqlite_backend,
    "influxdb1": influxdb1_backend,
    "influxdb2": influxdb2_backend,
}
