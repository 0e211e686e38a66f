"""The backend's one HTTP client: the reader and the writer send the same credentials."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.backends.influxdb1.http import InfluxDB1Http, TransportError, basic_auth
from meshalert.backends.influxdb1.reader import InfluxDB1WindowReader
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb1.writer import InfluxDB1Writer
from meshalert.queries.model import WindowQueryError, class_query
from tests.fixtures.http_server import RecordingHttpServer
from tests.fixtures.influxd import free_port

SECRET = "pa:ss word"
QUERY = class_query(AlertClass.FAILURES, window_ms=60_000, end_ms=120_000)


def test_reader_and_writer_authenticate_alike(http_server: RecordingHttpServer) -> None:
    config = InfluxDB1Store(http_server.url, "metrics", "week", "alice", SECRET)
    http_server.respond(200, '{"results": [{"statement_id": 0}]}')
    InfluxDB1WindowReader(config).fetch(
        class_query(AlertClass.FAILURES, window_ms=60_000, end_ms=120_000)
    )
    InfluxDB1Writer(config).write(["m v=1 1"])
    query, write = http_server.requests
    expected = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert query.header("authorization") == write.header("authorization") == expected
    assert (query.method, query.path) == ("POST", "/query")
    form = parse_qs(query.text)
    assert form["db"] == ["metrics"] and form["epoch"] == ["ms"] and "week" in form["q"][0]


def test_no_credentials_no_header() -> None:
    assert basic_auth(None, None) == {}
    assert basic_auth("u", None) == {"Authorization": "Basic " + base64.b64encode(b"u:").decode()}


def test_non_2xx_query_answer_names_store_and_status(http_server: RecordingHttpServer) -> None:
    http_server.respond(401, '{"error":"authorization failed"}')
    reader = InfluxDB1WindowReader(InfluxDB1Store(http_server.url, "db", None, "bob", SECRET))
    with pytest.raises(WindowQueryError, match=r"answered 401: .*authorization failed") as info:
        reader.fetch(QUERY)
    assert SECRET not in str(info.value)


def test_refused_connection_is_a_transport_error_not_a_timeout() -> None:
    client = InfluxDB1Http(
        InfluxDB1Store(f"http://127.0.0.1:{free_port()}", "db", None, None, None), timeout_s=2
    )
    with pytest.raises(TransportError) as info:
        client.request("GET", "/ping", headers={})
    assert info.value.timed_out is False


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http\\(s\\)://host:port"):
        InfluxDB1Http(InfluxDB1Store("ftp://h:1", "db", None, None, None), timeout_s=1)
