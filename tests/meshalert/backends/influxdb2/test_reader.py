"""InfluxDB2WindowReader against a real local HTTP server answering recorded InfluxDB 2
responses, so influxdb-client really sends the request and parses the annotated CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshalert.alert_classes import AlertClass
from meshalert.backends.influxdb2.reader import InfluxDB2WindowReader
from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.histogram import BOUNDS
from meshalert.queries.flux import render_flux
from meshalert.queries.model import (
    EndpointHost,
    EndpointsAggregate,
    FailuresAggregate,
    LatencyAggregate,
    RetriesAggregate,
    WindowQueryError,
    class_query,
)
from tests.fixtures.http_server import RecordingHttpServer

END = 1_704_067_500_000
TOKEN = "s3cret-token"
CSV_HEADERS = {"Content-Type": "text/csv; charset=utf-8"}


def crlf(text: str) -> str:
    """InfluxDB 2 ends annotated-CSV lines with CRLF."""
    return "".join(line + "\r\n" for line in text.strip("\n").split("\n"))


# Recorded shape of InfluxDB 2.7 answering the failures script: one result per yield, the
# result name only in the #default row, table ids per result, and a new annotation block
# when a table's columns differ (the series without a namespace tag).
FAILURES_RESPONSE = crlf("""
#datatype,string,long,string,string,double
#group,false,false,true,true,false
#default,requests,,,,
,result,table,namespace,service,_value
,,0,prod,web,909
,,1,prod,api,12.5

#datatype,string,long,string,double
#group,false,false,true,false
#default,requests,,,
,result,table,service,_value
,,2,legacy,40

#datatype,string,long,string,string,double
#group,false,false,true,true,false
#default,failures,,,,
,result,table,namespace,service,_value
,,0,prod,web,18

#datatype,string,long,string,string,double
#group,false,false,true,true,false
#default,connection_failures,,,,
,result,table,namespace,service,_value
,,0,prod,web,9
,,1,prod,api,0
""")

ENDPOINTS_RESPONSE = crlf("""
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string,string,string,string
#group,false,false,false,false,false,false,false,false,true,true,false,true
#default,available,,,,,,,,,,,
,result,table,_start,_stop,_time,_value,_field,_measurement,host,namespace,scope,service
,,0,2024-01-01T00:00:00Z,2024-01-01T00:05:00Z,2024-01-01T00:04:50Z,9,value,linkerd_loadbalancer_available,node-a,prod,client,api
,,1,2024-01-01T00:00:00Z,2024-01-01T00:05:00Z,2024-01-01T00:00:10Z,3,value,linkerd_loadbalancer_available,node-b,prod,client,api

#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string,string,string,string
#group,false,false,false,false,false,false,false,false,true,true,false,true
#default,size,,,,,,,,,,,
,result,table,_start,_stop,_time,_value,_field,_measurement,host,namespace,scope,service
,,0,2024-01-01T00:00:00Z,2024-01-01T00:05:00Z,2024-01-01T00:04:50Z,10,value,linkerd_loadbalancer_size,node-a,prod,client,api
""")

LATENCY_RESPONSE = crlf('''
#datatype,string,long,string,string,string,double
#group,false,false,true,true,true,false
#default,buckets,,,,,
,result,table,le,namespace,service,_value
,,0,1.18921,prod,web,98
,,1,2,prod,web,2
,,2,+Inf,prod,"svc,with ""comma""",5
''')

STREAM_ERROR_RESPONSE = crlf("""
#datatype,string,string
#group,true,true
#default,,
,error,reference
,"runtime error @9:8-9:14: sum: schema collision: cannot group integer and float types together",
""")


def store(server: RecordingHttpServer, token: str | None = TOKEN) -> InfluxDB2Store:
    return InfluxDB2Store(base_url=server.url, org="team org", bucket="meshalert", token=token)


def test_failures_query_request_and_multi_table_result(http_server: RecordingHttpServer) -> None:
    http_server.respond(200, FAILURES_RESPONSE, CSV_HEADERS)
    query = class_query(AlertClass.FAILURES, window_ms=300_000, end_ms=END)
    with InfluxDB2WindowReader(store(http_server)) as reader:
        result = reader.fetch(query)

    assert result.services == {
        "prod/web": {"": FailuresAggregate(requests=909, failures=18, connection_failures=9)},
        "prod/api": {"": FailuresAggregate(requests=12.5, failures=0, connection_failures=0)},
        "legacy": {"": FailuresAggregate(requests=40)},
    }
    text, _ = render_flux(query, bucket="meshalert")
    assert result.query_text == text
    assert result.queries_issued == 1
    [request] = http_server.requests
    assert (request.method, request.path) == ("POST", "/api/v2/query")
    assert request.query_lists == {"org": ["team org"]}
    assert request.header("Authorization") == f"Token {TOKEN}"
    assert request.header("Content-Type") == "application/json"
    body = json.loads(request.text)
    assert body["query"] == text
    assert body.get("type", "flux") == "flux"  # the API's default language
    assert body["dialect"]["annotations"] == ["datatype", "group", "default"]
    assert "params" not in body


def test_gauges_come_back_per_host(http_server: RecordingHttpServer) -> None:
    http_server.respond(200, ENDPOINTS_RESPONSE, CSV_HEADERS)
    query = class_query(AlertClass.ENDPOINTS, window_ms=300_000, end_ms=END)
    with InfluxDB2WindowReader(store(http_server)) as reader:
        result = reader.fetch(query)
    assert result.services == {
        "prod/api": {
            "": EndpointsAggregate(
                (EndpointHost("node-a", 9.0, 10.0), EndpointHost("node-b", 3.0, None))
            )
        }
    }


def test_latency_buckets_with_inf_and_quoted_csv_fields(http_server: RecordingHttpServer) -> None:
    http_server.respond(200, LATENCY_RESPONSE, CSV_HEADERS)
    query = class_query(AlertClass.LATENCY, window_ms=300_000, end_ms=END)
    with InfluxDB2WindowReader(store(http_server)) as reader:
        result = reader.fetch(query)
    assert result.services == {
        # The label "1.18921" names the bound 2**0.25 exactly, not the number it spells.
        "prod/web": {"": LatencyAggregate({BOUNDS[2]: 98.0, 2.0: 2.0})},
        'prod/svc,with "comma"': {"": LatencyAggregate({math.inf: 5.0})},
    }


@pytest.mark.parametrize("body", ["", "\r\n"], ids=["empty", "blank-line"])
def test_empty_result(http_server: RecordingHttpServer, body: str) -> None:
    http_server.respond(200, body, CSV_HEADERS)
    query = class_query(AlertClass.RETRIES, window_ms=300_000, end_ms=END)
    with InfluxDB2WindowReader(store(http_server)) as reader:
        result = reader.fetch(query)
    assert result.services == {}
    assert len(http_server.requests) == 1


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            '{"code":"invalid",'
            '"message":"compilation failed: error @3:5-3:9: undefined identifier summ"}',
            "answered 400: compilation failed: error @3:5-3:9: undefined identifier summ",
        ),
        (401, '{"code":"unauthorized","message":"unauthorized access"}', "answered 401"),
        (404, '{"code":"not found","message":"failed to find bucket"}', "failed to find bucket"),
        (500, "upstream exploded", "answered 500: upstream exploded"),
    ],
)
def test_http_errors_name_the_store_and_reason(
    http_server: RecordingHttpServer, status: int, body: str, expected: str
) -> None:
    http_server.respond(status, body, {"Content-Type": "application/json"})
    query = class_query(AlertClass.FAILURES, window_ms=300_000, end_ms=END)
    with (
        InfluxDB2WindowReader(store(http_server)) as reader,
        pytest.raises(WindowQueryError, match=r"InfluxDB 2 query at http://127\.0\.0\.1") as info,
    ):
        reader.fetch(query)
    assert expected in str(info.value)
    assert TOKEN not in str(info.value)


def test_error_inside_the_csv_stream(http_server: RecordingHttpServer) -> None:
    http_server.respond(200, STREAM_ERROR_RESPONSE, CSV_HEADERS)
    query = class_query(AlertClass.FAILURES, window_ms=300_000, end_ms=END)
    with (
        InfluxDB2WindowReader(store(http_server)) as reader,
        pytest.raises(WindowQueryError, match="schema collision"),
    ):
        reader.fetch(query)


def test_result_that_names_no_select_is_refused(http_server: RecordingHttpServer) -> None:
    http_server.respond(200, LATENCY_RESPONSE, CSV_HEADERS)
    query = class_query(AlertClass.FAILURES, window_ms=300_000, end_ms=END)
    with (
        InfluxDB2WindowReader(store(http_server)) as reader,
        pytest.raises(WindowQueryError, match="'buckets' names no select of the failures"),
    ):
        reader.fetch(query)


def test_non_numeric_value_is_refused(http_server: RecordingHttpServer) -> None:
    body = crlf("""
#datatype,string,long,string,string,string
#group,false,false,true,true,false
#default,requests,,,,
,result,table,namespace,service,_value
,,0,prod,web,lots
""")
    http_server.respond(200, body, CSV_HEADERS)
    query = class_query(AlertClass.FAILURES, window_ms=300_000, end_ms=END)
    with (
        InfluxDB2WindowReader(store(http_server)) as reader,
        pytest.raises(WindowQueryError, match="non-numeric value 'lots'"),
    ):
        reader.fetch(query)


def test_unreachable_store() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = InfluxDB2Store(f"http://127.0.0.1:{port}", "org", "bucket", TOKEN)
    query = class_query(AlertClass.FAILURES, window_ms=300_000, end_ms=END)
    with (
        InfluxDB2WindowReader(config, timeout_s=2) as reader,
        pytest.raises(WindowQueryError, match="unreachable"),
    ):
        reader.fetch(query)


def test_hung_store_times_out(http_server: RecordingHttpServer) -> None:
    http_server.respond(200, FAILURES_RESPONSE, CSV_HEADERS, delay=5)
    query = class_query(AlertClass.FAILURES, window_ms=300_000, end_ms=END)
    with (
        InfluxDB2WindowReader(store(http_server), timeout_s=0.3) as reader,
        pytest.raises(WindowQueryError, match=r"timed out: .*(?i:timeout|timed out)"),
    ):
        reader.fetch(query)


def test_token_is_required_and_never_shown(http_server: RecordingHttpServer) -> None:
    with pytest.raises(ValueError, match="MESHALERT_INFLUXDB_TOKEN"):
        InfluxDB2WindowReader(store(http_server, token=None))
    with InfluxDB2WindowReader(store(http_server)) as reader:
        assert TOKEN not in repr(reader)


# --- property: whatever groups the server sends, the sums come back per service ---------


def annotated_csv(result: str, rows: list[tuple[str | None, str, float]]) -> str:
    """Encode one result the way InfluxDB does: a block per column set, CSV quoting."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    with_ns = [(ns, svc, v) for ns, svc, v in rows if ns is not None]
    without_ns = [(svc, v) for ns, svc, v in rows if ns is None]
    table = 0
    if with_ns:
        writer.writerow(["#datatype", "string", "long", "string", "string", "double"])
        writer.writerow(["#group", "false", "false", "true", "true", "false"])
        writer.writerow(["#default", result, "", "", "", ""])
        writer.writerow(["", "result", "table", "namespace", "service", "_value"])
        for ns, svc, value in with_ns:
            writer.writerow(["", "", table, ns, svc, repr(value)])
            table += 1
        out.write("\r\n")
    if without_ns:
        writer.writerow(["#datatype", "string", "long", "string", "double"])
        writer.writerow(["#group", "false", "false", "true", "false"])
        writer.writerow(["#default", result, "", "", ""])
        writer.writerow(["", "result", "table", "service", "_value"])
        for svc, value in without_ns:
            writer.writerow(["", "", table, svc, repr(value)])
            table += 1
        out.write("\r\n")
    return out.getvalue()


# Tag values cannot hold line breaks (line protocol); "/" would make "ns/svc" and an
# unnamespaced "ns/svc" the same key, which assemble() rightly merges.
tag_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n/"), min_size=1, max_size=8
)
group = st.tuples(st.one_of(st.none(), tag_text), tag_text)
values = st.floats(min_value=0, max_value=1e9, allow_nan=False)


@given(groups=st.dictionaries(group, st.tuples(values, values, values), min_size=0, max_size=6))
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_grouping_round_trips_through_the_client(
    http_server: RecordingHttpServer,
    groups: dict[tuple[str | None, str], tuple[float, float, float]],
) -> None:
    names = ("retries_total", "requests", "budget_exhausted")
    body = "".join(
        annotated_csv(name, [(ns, svc, v[i]) for (ns, svc), v in groups.items()])
        for i, name in enumerate(names)
    )
    http_server.respond(200, body, CSV_HEADERS)
    query = class_query(AlertClass.RETRIES, window_ms=300_000, end_ms=END)
    with InfluxDB2WindowReader(store(http_server)) as reader:
        result = reader.fetch(query)
    expected: dict[str, dict[str, RetriesAggregate]] = {}
    for (ns, svc), (retries, requests, exhausted) in groups.items():
        key = f"{ns}/{svc}" if ns else svc
        expected[key] = {"": RetriesAggregate(retries, requests, exhausted)}
    assert result.services == expected
