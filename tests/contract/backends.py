"""Store backends the contract suite runs against: a small registry, one entry per store.

Each entry is a function ``(request) -> Backend``: it may use pytest fixtures through
``request.getfixturevalue`` and calls ``pytest.skip`` when its store is unavailable.
Adding a store is one function and one line in :data:`BACKENDS`. Points go in through the
production writers (the same line protocol every store receives).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from meshalert.backends.influxdb1.reader import InfluxDB1WindowReader
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb1.writer import InfluxDB1Writer
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.writer import SqliteWriter, open_database
from meshalert.backends.urls import parse_store_url
from meshalert.lineprotocol import Point, encode
from meshalert.queries.model import WindowReader
from meshalert.stores.protocols import LineWriter


@dataclass
class Backend:
    name: str
    writer: LineWriter
    reader: WindowReader

    def write(self, points: Sequence[Point]) -> None:
        self.writer.write([encode(p) for p in points])


def sqlite_backend(request: pytest.FixtureRequest) -> Backend:
    path = str(request.getfixturevalue("tmp_path") / "store.db")
    writer = SqliteWriter.open(path)
    reader_conn = open_database(path, readonly=True)  # as `status`/the engine would read
    request.addfinalizer(writer.close)
    request.addfinalizer(reader_conn.close)
    return Backend("sqlite", writer, SqliteWindowReader(reader_conn))


def influxdb1_backend(request: pytest.FixtureRequest) -> Backend:
    server = request.getfixturevalue("influxd")
    database = request.getfixturevalue("influx_db")
    config = parse_store_url(server.store_url(database))
    assert isinstance(config, InfluxDB1Store)
    writer = InfluxDB1Writer(config)
    request.addfinalizer(writer.close)
    return Backend("influxdb1", writer, InfluxDB1WindowReader(config))


from tests.contract.backend_influxdb2 import influxdb2_backend  # noqa: E402 -- it imports Backend lazily

BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Backend]] = {
    "sqlite": sqlite_backend,
    "influxdb1": influxdb1_backend,
    "influxdb2": influxdb2_backend,
}
