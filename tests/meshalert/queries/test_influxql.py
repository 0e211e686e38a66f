from __future__ import annotations

from meshalert.alerts.model import AlertClass
from meshalert.queries.escaping import influxql_string
from meshalert.queries.influxql import render_influxql
from meshalert.queries.model import class_query


def test_one_statement_per_select_with_the_half_open_window() -> None:
    query = class_query(AlertClass.RETRIES, window_ms=300_000, end_ms=1_700_000_400_000)
    statements = render_influxql(query).split(";\n")
    assert len(statements) == len(query.selects)
    for stmt in statements:
        assert "time >= 1700000100000ms AND time < 1700000400000ms" in stmt
        assert stmt.endswith('GROUP BY "namespace", "service"')
    assert "(\"scope\" = 'client' OR \"scope\" = 'service')" in statements[2]


def test_absent_tags_exact_tags_and_service_filter_are_quoted() -> None:
    query = class_query(AlertClass.FAILURES, window_ms=1, end_ms=2, services=["it's/a\\b", "plain"])
    text = render_influxql(query)
    assert "\"exception\" = '' AND \"failure_flag\" = ''" in text
    assert "\"exception\" = 'com_twitter_finagle_ConnectionFailedException'" in text
    assert f'("namespace" = {influxql_string("it" + chr(39) + "s")}' in text
    assert f'"service" = {influxql_string("a" + chr(92) + "b")})' in text
    assert "(\"namespace\" = '' AND \"service\" = 'plain')" in text


def test_retention_policy_qualifies_the_measurement() -> None:
    query = class_query(AlertClass.ENDPOINTS, window_ms=1, end_ms=2)
    text = render_influxql(query, retention_policy='my "rp"')
    assert 'FROM "my \\"rp\\""."linkerd_loadbalancer_available"' in text
    assert 'SELECT last("value") AS "value"' in text
