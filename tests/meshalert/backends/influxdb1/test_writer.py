from __future__ import annotations

import base64
import socket
import time

import pytest

from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb1.writer import InfluxDB1Writer
from meshalert.backends.urls import parse_store_url
from meshalert.lineprotocol import Point, encode, sanitize
from meshalert.stores.protocols import StoreWriteError
from tests.fixtures.http_server import RecordingHttpServer
from tests.fixtures.influxd import InfluxdServer, free_port

SECRET = "s3cr3t-pass"


def _writer_for(url: str, db: str = "db", **kw: str | None) -> InfluxDB1Writer:
    host_port = url.removeprefix("http://")
    config = parse_store_url(f"influxdb1://{host_port}/{db}", **kw)
    assert isinstance(config, InfluxDB1Store)
    return InfluxDB1Writer(config, timeout_s=2)


# --- against the real influxd -------------------------------------------------------------


@pytest.mark.influxd
def test_write_and_read_back(influxd: InfluxdServer, influx_db: str) -> None:
    writer = _writer_for(influxd.url, influx_db)
    writer.write(
        [
            "linkerd_requests,host=n1,service=web count=12.5,samples=3i 60000",
            "linkerd_requests,host=n2,service=web count=1.0,samples=1i 60000",
            "linkerd_requests,host=n1,service=web count=4.0,samples=2i 70000",
        ]
    )
    rows = influxd.rows("SELECT count, samples, host FROM linkerd_requests", influx_db)
    assert sorted((r["time"], r["host"], r["count"], r["samples"]) for r in rows) == [
        (60000, "n1", 12.5, 3),
        (60000, "n2", 1.0, 1),
        (70000, "n1", 4.0, 2),
    ]
    assert writer.ping().startswith("1.")
    writer.close()


@pytest.mark.influxd
def test_tag_escaping_round_trips_exactly(influxd: InfluxdServer, influx_db: str) -> None:
    values = ["a b", "c,d", "e=f", "g\\h", "all of ,= \\ together", 'q"t', "ünï", "end\\"]
    lines = [
        encode(Point.make("m x", {"service": v, "idx": str(i)}, {"v": float(i)}, 1000))
        for i, v in enumerate(values)
    ]
    writer = _writer_for(influxd.url, influx_db)
    writer.write(lines)
    got = {
        int(r["idx"]): r["service"]
        for r in influxd.rows('SELECT v, service, idx FROM "m x" GROUP BY *', influx_db)
    }
    # Backslashes are sanitized to "/" by lineprotocol so 1.x and 2.x store the same text.
    assert got == {i: sanitize(v) for i, v in enumerate(values)}


@pytest.mark.influxd
def test_bad_line_is_not_retryable_and_named(influxd: InfluxdServer, influx_db: str) -> None:
    writer = _writer_for(influxd.url, influx_db)
    with pytest.raises(StoreWriteError) as info:
        writer.write(["m v=1 1000", "m v=notanumber 2000"])
    assert info.value.retryable is False
    assert "400" in str(info.value) and "notanumber" in str(info.value)


@pytest.mark.influxd
def test_missing_database_is_retryable_and_says_create(influxd: InfluxdServer) -> None:
    writer = _writer_for(influxd.url, "no_such_db")
    with pytest.raises(StoreWriteError) as info:
        writer.write(["m v=1 1000"])
    assert info.value.retryable is True
    assert "404" in str(info.value) and 'CREATE DATABASE "no_such_db"' in str(info.value)


@pytest.mark.influxd
def test_outage_is_retryable_and_writer_recovers(influxd: InfluxdServer, influx_db: str) -> None:
    writer = _writer_for(influxd.url, influx_db)
    writer.write(["m v=1 1000"])  # leaves a kept-alive connection behind
    influxd.stop()
    try:
        with pytest.raises(StoreWriteError) as info:
            writer.write(["m v=2 2000"])
        assert info.value.retryable is True
        with pytest.raises(StoreWriteError):
            writer.ping()
    finally:
        influxd.start()
    writer.write(["m v=3 3000"])
    assert [r["v"] for r in influxd.rows("SELECT v FROM m", influx_db)] == [1.0, 3.0]


# --- exact requests and status mapping, against the recording server -----------------------


def test_request_shape_gzip_and_basic_auth(http_server: RecordingHttpServer) -> None:
    config = InfluxDB1Store(http_server.url, "metrics", "week", "alice", SECRET)
    writer = InfluxDB1Writer(config)
    writer.write(["m v=1 1", "m v=2 2"])
    (req,) = http_server.requests
    assert (req.method, req.path) == ("POST", "/write")
    assert req.query == {"db": "metrics", "rp": "week", "precision": "ms"}
    assert req.header("content-encoding") == "gzip"
    assert req.body == b"m v=1 1\nm v=2 2"
    expected = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert req.header("authorization") == f"Basic {expected}"
    assert SECRET not in repr(writer)


def test_no_auth_header_without_credentials(http_server: RecordingHttpServer) -> None:
    _writer_for(http_server.url).write(["m v=1 1"])
    assert http_server.requests[0].header("authorization") is None
    assert "rp" not in http_server.requests[0].query


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, True),
        (413, False),
        (429, True),
        (500, True),
        (503, True),
        (418, False),
    ],
)
def test_status_mapping(http_server: RecordingHttpServer, status: int, retryable: bool) -> None:
    http_server.respond(status, b'{"error":"the reason"}')
    writer = InfluxDB1Writer(InfluxDB1Store(http_server.url, "db", None, "bob", SECRET))
    with pytest.raises(StoreWriteError) as info:
        writer.write(["m v=1 1"])
    assert info.value.retryable is retryable
    assert "the reason" in str(info.value) and str(status) in str(info.value)
    assert SECRET not in str(info.value)


def test_no_answer_is_a_retryable_timeout(http_server: RecordingHttpServer) -> None:
    http_server.respond(204, delay=3)
    writer = InfluxDB1Writer(InfluxDB1Store(http_server.url, "db", None, None, None), 0.3)
    started = time.monotonic()
    with pytest.raises(StoreWriteError) as info:
        writer.write(["m v=1 1"])
    assert time.monotonic() - started < 2
    assert info.value.retryable is True and "timed out" in str(info.value)


def test_refused_connection_is_retryable() -> None:
    port = free_port()  # nothing listens there
    writer = _writer_for(f"http://127.0.0.1:{port}")
    with pytest.raises(StoreWriteError) as info:
        writer.write(["m v=1 1"])
    assert info.value.retryable is True


def test_stale_keepalive_connection_is_reopened_once(http_server: RecordingHttpServer) -> None:
    writer = _writer_for(http_server.url)
    writer.write(["m v=1 1"])
    # Close the kept-alive socket behind the writer's back (urllib3's pool holds it).
    (conn,) = [c for c in writer._http._pool.pool.queue if c is not None]  # type: ignore[union-attr]
    assert conn.sock is not None
    conn.sock.shutdown(socket.SHUT_RDWR)
    writer.write(["m v=2 2"])
    assert [r.body for r in http_server.requests] == [b"m v=1 1", b"m v=2 2"]


def test_empty_batch_sends_nothing(http_server: RecordingHttpServer) -> None:
    _writer_for(http_server.url).write([])
    assert http_server.requests == []
