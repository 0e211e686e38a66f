from __future__ import annotations

from pathlib import Path

import pytest

from meshalert.backends.influxdb1.writer import InfluxDB1Writer
from meshalert.backends.influxdb2.writer import InfluxDB2Writer
from meshalert.backends.sqlite.writer import SqliteWriter, open_database
from meshalert.backends.urls import parse_store_url
from meshalert.wiring import open_writer
from tests.fixtures.http_server import RecordingHttpServer
from tests.fixtures.influxd import InfluxdServer


def test_sqlite_url_opens_a_working_sqlite_writer(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    writer = open_writer(parse_store_url(f"sqlite:///{path}"))
    assert isinstance(writer, SqliteWriter)
    writer.write(["m v=1 1"])
    writer.close()
    assert open_database(str(path), readonly=True).execute(
        "SELECT value FROM points"
    ).fetchall() == [(1.0,)]


def test_influxdb2_url_writes_through_v2_api(http_server: RecordingHttpServer) -> None:
    host = http_server.url.removeprefix("http://")
    writer = open_writer(parse_store_url(f"influxdb2://{host}?org=o&bucket=b", token="t"))
    assert isinstance(writer, InfluxDB2Writer)
    writer.write(["m v=1 1"])
    assert http_server.requests[0].path == "/api/v2/write"


@pytest.mark.influxd
def test_influxdb1_url_writes_to_real_influxd(influxd: InfluxdServer, influx_db: str) -> None:
    writer = open_writer(parse_store_url(influxd.store_url(influx_db)))
    assert isinstance(writer, InfluxDB1Writer)
    writer.write(["m v=4 1"])
    assert influxd.rows("SELECT v FROM m", influx_db)[0]["v"] == 4.0
