"""InfluxDB2WindowReader.fetch_buckets against a local HTTP server answering annotated CSV in
the shape ``aggregateWindow(timeSrc: "_start")`` returns, so influxdb-client really sends the
script and parses the answer (no InfluxDB 2 server can run here)."""

from __future__ import annotations

import json

import pytest

from meshalert.backends.influxdb2.reader import InfluxDB2WindowReader
from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.queries.baseline import BucketReader, RatioBucket, baseline_query
from meshalert.queries.baseline_text import render_bucket_flux
from meshalert.queries.model import WindowQueryError
from tests.fixtures.http_server import RecordingHttpServer

END = 1_704_067_500_000  # 2024-01-01T00:05:00Z
QUERY = baseline_query(300_000, END)  # buckets from 2023-12-31T00:05Z to 2024-01-01T00:00Z
CSV_HEADERS = {"Content-Type": "text/csv; charset=utf-8"}


def crlf(text: str) -> str:
    return "".join(line + "\r\n" for line in text.strip("\n").split("\n"))


RESPONSE = crlf("""
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string
#group,false,false,true,true,false,false,true,true
#default,retries_total,,,,,,,
,result,table,_start,_stop,_time,_value,namespace,service
,,0,2023-12-31T00:05:00Z,2024-01-01T00:00:00Z,2023-12-31T00:05:00Z,6,prod,web
,,0,2023-12-31T00:05:00Z,2024-01-01T00:00:00Z,2023-12-31T23:55:00Z,4,prod,web

#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string
#group,false,false,true,true,false,false,true,true
#default,requests,,,,,,,
,result,table,_start,_stop,_time,_value,namespace,service
,,0,2023-12-31T00:05:00Z,2024-01-01T00:00:00Z,2023-12-31T00:05:00Z,100,prod,web
,,0,2023-12-31T00:05:00Z,2024-01-01T00:00:00Z,2023-12-31T23:55:00Z,40,prod,web

#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string
#group,false,false,true,true,false,false,true
#default,requests,,,,,,
,result,table,_start,_stop,_time,_value,service
,,1,2023-12-31T00:05:00Z,2024-01-01T00:00:00Z,2023-12-31T12:00:00.000Z,7.5,legacy
""")


def store(server: RecordingHttpServer) -> InfluxDB2Store:
    return InfluxDB2Store(base_url=server.url, org="o", bucket="meshalert", token="t0ken")


def test_bucket_rows_come_back_per_service_at_their_start(http_server: RecordingHttpServer) -> None:
    http_server.respond(200, RESPONSE, CSV_HEADERS)
    with InfluxDB2WindowReader(store(http_server)) as reader:
        assert isinstance(reader, BucketReader)
        result = reader.fetch_buckets(QUERY)

    first, last = QUERY.start_ms, QUERY.stop_ms - 300_000
    assert result.services == {
        "legacy": {"": (RatioBucket(QUERY.start_ms + 143 * 300_000, 0.0, 7.5),)},
        "prod/web": {"": (RatioBucket(first, 6.0, 100.0), RatioBucket(last, 4.0, 40.0))},
    }
    text = render_bucket_flux(QUERY, bucket="meshalert")
    assert result.query_text == text and result.queries_issued == 1
    [request] = http_server.requests
    assert json.loads(request.text)["query"] == text


def test_a_result_naming_no_select_is_refused(http_server: RecordingHttpServer) -> None:
    http_server.respond(200, RESPONSE.replace("#default,requests", "#default,other"), CSV_HEADERS)
    with (
        InfluxDB2WindowReader(store(http_server)) as reader,
        pytest.raises(WindowQueryError, match="'other' names no select of the baseline query"),
    ):
        reader.fetch_buckets(QUERY)


def test_server_errors_name_the_store(http_server: RecordingHttpServer) -> None:
    http_server.respond(400, '{"code":"invalid","message":"bad offset"}', {})
    with (
        InfluxDB2WindowReader(store(http_server)) as reader,
        pytest.raises(WindowQueryError, match=r"InfluxDB 2 query at .* answered 400: bad offset"),
    ):
        reader.fetch_buckets(QUERY)
