from __future__ import annotations

from meshalert.alert_classes import AlertClass
from meshalert.queries.escaping import influxql_string
from meshalert.queries.influxql import render_influxql
from meshalert.queries.model import class_query


def test_one_statement_per_select_with_the_half_open_window() -> None:
    query = class_query(AlertClass.RETRIES, window_ms=300_000, end_ms=1_700_000_400_000)
    statements = render_influxql(query).split(";\n")
    assert len(statements) == len(query.selects)
    for stmt in statements:
        assert "time >= 1700000100000ms AND time < 1700000400000ms" in stmt
        assert stmt.endswith('GROUP BY "namespace", "service", "router"')
    assert "(\"scope\" = 'client' OR \"scope\" = 'service')" in statements[4]


def test_absent_tags_exact_tags_and_service_filter_are_quoted() -> None:
    query = class_query(AlertClass.FAILURES, window_ms=1, end_ms=2, services=["it's/a\\b", "plain"])
    text = render_influxql(query)
    assert "\"exception\" = '' AND \"failure_flag\" = ''" in text
    assert (
        "\"exception\" = 'com_twitter_finagle_naming_buoyant_RichConnectionFailedExceptionWithPath'"
        in text
    )
    assert f'("namespace" = {influxql_string("it" + chr(39) + "s")}' in text
    assert f'"service" = {influxql_string("a" + chr(92) + "b")})' in text
    assert "(\"namespace\" = '' AND \"service\" = 'plain')" in text


def test_retention_policy_qualifies_the_measurement() -> None:
    query = class_query(AlertClass.ENDPOINTS, window_ms=1, end_ms=2)
    text = render_influxql(query, retention_policy='my "rp"')
    assert 'FROM "my \\"rp\\""."linkerd_loadbalancer_available"' in text
    assert 'SELECT last("value") AS "value"' in text


def test_gauge_extremes_and_the_lookback() -> None:
    query = class_query(
        AlertClass.ENDPOINTS, window_ms=60_000, end_ms=1_700_000_400_000, lookback_ms=1_800_000
    )
    size_max = render_influxql(query).split(";\n")[2]
    assert size_max.startswith('SELECT max("value") AS "value" FROM "linkerd_loadbalancer_size"')
    assert "time >= 1699998600000ms AND time < 1700000400000ms" in size_max
    assert size_max.endswith('GROUP BY "namespace", "service", "router", "host", "client"')
    retries = render_influxql(class_query(AlertClass.RETRIES, window_ms=1, end_ms=2))
    assert 'SELECT min("value") AS "value" FROM "linkerd_retries_budget"' in retries


def test_ingest_newest_is_a_last_selector_per_host_in_any_scope() -> None:
    query = class_query(AlertClass.INGEST, window_ms=60_000, end_ms=60_000)
    statements = render_influxql(query, retention_policy='r"p').split(";\n")
    assert statements == [
        'SELECT last("received") AS "value" FROM "r\\"p"."meshalert_sidecar"'
        ' WHERE time >= 0ms AND time < 60000ms GROUP BY "host"',
        'SELECT last("count") AS "value" FROM "r\\"p"."linkerd_requests"'
        ' WHERE time >= 0ms AND time < 60000ms GROUP BY "host"',
    ]


def test_whole_statements_with_a_service_filter_and_a_retention_policy() -> None:
    # Pinned whole (the parts above only check pieces): join words, brackets and quoting.
    query = class_query(
        AlertClass.FAILURES,
        window_ms=60_000,
        end_ms=1_700_000_400_000,
        services=["prod/web", "api"],
    )
    statements = render_influxql(query, retention_policy="autogen").split(";\n")
    window = "time >= 1700000340000ms AND time < 1700000400000ms"
    services = (
        "((\"namespace\" = '' AND \"service\" = 'api')"
        " OR (\"namespace\" = 'prod' AND \"service\" = 'web'))"
    )
    assert statements[0] == (
        'SELECT sum("count") AS "value" FROM "autogen"."linkerd_requests"'
        f" WHERE {window} AND (\"scope\" = 'service') AND {services}"
        ' GROUP BY "namespace", "service", "router"'
    )
    assert statements[4] == (
        'SELECT sum("count") AS "value" FROM "autogen"."linkerd_failures"'
        f' WHERE {window} AND ("scope" = \'service\') AND "exception" = '
        "'com_twitter_finagle_naming_buoyant_RichConnectionFailedExceptionWithPath'"
        f' AND {services} GROUP BY "namespace", "service", "router", "failure_flag"'
    )
    retries = class_query(AlertClass.RETRIES, window_ms=60_000, end_ms=1_700_000_400_000)
    assert render_influxql(retries).split(";\n")[-1] == (
        'SELECT min("value") AS "value" FROM "linkerd_retries_budget"'
        f" WHERE {window} AND (\"scope\" = 'client' OR \"scope\" = 'service')"
        ' GROUP BY "namespace", "service", "router"'
    )
