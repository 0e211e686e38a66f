from __future__ import annotations

import time

import pytest

from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.backends.influxdb2.writer import InfluxDB2Writer
from meshalert.backends.urls import parse_store_url
from meshalert.stores.protocols import StoreWriteError
from tests.fixtures.http_server import RecordingHttpServer
from tests.fixtures.influxd import free_port

TOKEN = "tok-SECRET-123"


def _writer(url: str, timeout_s: float = 2) -> InfluxDB2Writer:
    config = parse_store_url(
        f"influxdb2://{url.removeprefix('http://')}?org=acme&bucket=mesh", token=TOKEN
    )
    assert isinstance(config, InfluxDB2Store)
    return InfluxDB2Writer(config, timeout_s=timeout_s)


def test_exact_request(http_server: RecordingHttpServer) -> None:
    lines = ["linkerd_requests,host=n1 count=1.0,samples=1i 60000", "m,t=a\\ b v=2i 60001"]
    writer = _writer(http_server.url)
    writer.write(lines)
    writer.close()
    (req,) = http_server.requests
    assert (req.method, req.path) == ("POST", "/api/v2/write")
    assert req.query == {"org": "acme", "bucket": "mesh", "precision": "ms"}
    assert req.header("authorization") == f"Token {TOKEN}"
    assert req.header("content-encoding") == "gzip"
    assert req.raw_body != req.body
    assert req.text == "\n".join(lines)


def test_token_is_required_and_never_shown() -> None:
    with pytest.raises(ValueError, match="MESHALERT_INFLUXDB_TOKEN"):
        InfluxDB2Writer(InfluxDB2Store("http://127.0.0.1:1", "o", "b", None))
    writer = InfluxDB2Writer(InfluxDB2Store("http://127.0.0.1:1", "o", "b", TOKEN))
    assert TOKEN not in repr(writer)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, True),
        (413, False),
        (422, False),
        (429, True),
        (500, True),
        (503, True),
    ],
)
def test_status_mapping(http_server: RecordingHttpServer, status: int, retryable: bool) -> None:
    http_server.respond(
        status,
        b'{"code":"invalid","message":"failed to parse line 2: the reason"}',
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(StoreWriteError) as info:
        _writer(http_server.url).write(["m v=1 1"])
    assert info.value.retryable is retryable
    assert str(status) in str(info.value) and "the reason" in str(info.value)
    assert TOKEN not in str(info.value)
    # One attempt only: the client library must not retry behind our back.
    assert len(http_server.requests) == 1


def test_no_answer_is_a_retryable_timeout(http_server: RecordingHttpServer) -> None:
    http_server.respond(204, delay=3)
    started = time.monotonic()
    with pytest.raises(StoreWriteError) as info:
        _writer(http_server.url, timeout_s=0.3).write(["m v=1 1"])
    assert time.monotonic() - started < 2
    assert info.value.retryable is True and "timed out" in str(info.value)
    assert len(http_server.requests) == 1


def test_refused_connection_is_retryable_without_waiting() -> None:
    started = time.monotonic()
    with pytest.raises(StoreWriteError) as info:
        _writer(f"http://127.0.0.1:{free_port()}").write(["m v=1 1"])
    assert info.value.retryable is True and TOKEN not in str(info.value)
    assert time.monotonic() - started < 2


def test_blank_batch_sends_nothing(http_server: RecordingHttpServer) -> None:
    _writer(http_server.url).write(["", "  "])
    assert http_server.requests == []
