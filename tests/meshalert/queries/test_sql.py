from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.alerts.model import AlertClass
from meshalert.queries.model import ServiceRef, class_query
from meshalert.queries.sql import render_sql, render_sql_inline
from meshalert.stores.sqlite_schema import DDL

MARKER = "zz'\"marker"


def test_every_value_is_bound_not_written_into_the_text() -> None:
    query = class_query(
        AlertClass.FAILURES, window_ms=60_000, end_ms=1_234_560_000, services=[f"ns/{MARKER}"]
    )
    text, params = render_sql(query)
    assert text.count("?") == len(params)
    assert MARKER in params and 1_234_560_000 in params and 1_234_500_000 in params
    assert MARKER not in text and "1234560000" not in text
    assert "'linkerd_requests'" not in text and "'service'" not in text


def test_all_selects_are_one_statement() -> None:
    for cls in AlertClass:
        text, _ = render_sql(class_query(cls, window_ms=1, end_ms=2))
        assert text.count("UNION ALL") == len(class_query(cls, window_ms=1, end_ms=2).selects) - 1
        assert ";" not in text


def _store() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    for statement in DDL:
        conn.execute(statement)
    return conn


@settings(max_examples=50)
@given(service=st.text(min_size=1, max_size=10), namespace=st.text(max_size=5))
def test_inline_text_runs_to_the_same_rows_as_the_bound_statement(
    service: str, namespace: str
) -> None:
    conn = _store()
    conn.execute(
        "INSERT INTO series (id, measurement, tagset, scope, namespace, service, tags_json)"
        " VALUES (1, 'linkerd_requests', 'x', 'service', ?, ?, '{}')",
        (namespace or None, service),
    )
    conn.execute("INSERT INTO points VALUES (1, 1500, 'count', 7.0)")
    query = class_query(
        AlertClass.FAILURES, window_ms=1000, end_ms=2000, services=[ServiceRef(namespace, service)]
    )
    bound = conn.execute(*render_sql(query)).fetchall()
    inline = conn.execute(render_sql_inline(query)).fetchall()
    assert bound == inline
    assert [(r[0], r[-2]) for r in bound] == [("requests", 7.0)]


def test_each_series_window_is_scanned_once_per_select() -> None:
    # A flattened per-series subquery re-runs its correlated scan for every reference to
    # its value (the WHERE filter and the aggregate): twice the points read per cycle.
    conn = _store()
    for cls in AlertClass:
        query = class_query(cls, window_ms=60_000, end_ms=120_000)
        text, params = render_sql(query)
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + text, params)]
        scans = sum(1 for step in plan if step.startswith("CORRELATED SCALAR SUBQUERY"))
        per_series = sum(2 if s.aggregate.value == "last" else 1 for s in query.selects)
        assert scans == per_series, plan
