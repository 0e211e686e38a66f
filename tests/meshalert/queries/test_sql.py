from __future__ import annotations

import itertools
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.alert_classes import AlertClass
from meshalert.backends.sqlite.schema import DDL
from meshalert.backends.sqlite.writer import SqliteWriter, open_database
from meshalert.queries.model import (
    CLASS_SELECTS,
    CONNECTION_FAILED_EXCEPTION,
    SERVICE_GROUP,
    Aggregate,
    ClassQuery,
    SeriesSelect,
    ServiceRef,
    class_query,
)
from meshalert.queries.sql import (
    WindowPart,
    render_sql,
    render_sql_inline,
    result_tags,
    window_parts,
)
from meshalert.queries.sql_schema import ROLLUP_MS

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
    for cls in CLASS_SELECTS:
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


def _plan(conn: sqlite3.Connection, text: str, params: tuple[object, ...]) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + text, params)]


@pytest.mark.parametrize(
    ("window_ms", "end_ms", "sum_parts"),
    [
        (60_000, 120_000, 1),  # whole minutes: rollups only
        (300_000, 1_700_000_400_000, 1),
        (15_000, 62_000, 1),  # no whole minute inside: raw only
        (90_000, 150_000, 2),  # rollup minute + raw tail
        (150_000, 200_000, 3),  # raw head + rollup minutes + raw tail
    ],
)
def test_each_series_window_is_scanned_once_per_part_and_select(
    window_ms: int, end_ms: int, sum_parts: int
) -> None:
    # A flattened per-series subquery re-runs its correlated scan for every reference to
    # its value (the WHERE filter and the aggregate): twice the points read per cycle.
    conn = _store()
    for cls in CLASS_SELECTS:
        query = class_query(cls, window_ms=window_ms, end_ms=end_ms)
        plan = _plan(conn, *render_sql(query))
        scans = sum(1 for step in plan if step.startswith("CORRELATED SCALAR SUBQUERY"))
        per_series = sum(
            {"last": 2, "min": 1, "max": 1, "newest": 1}.get(s.aggregate.value, sum_parts)
            for s in query.selects
        )
        assert scans == per_series, plan


def test_plans_seek_primary_keys_and_the_covering_series_index() -> None:
    conn = _store()
    for cls in CLASS_SELECTS:
        query = class_query(cls, window_ms=150_000, end_ms=200_000)
        plan = _plan(conn, *render_sql(query))
        assert not [s for s in plan if s.startswith("SCAN") and s != "SCAN g"], plan
        series = [s for s in plan if s.startswith("SEARCH s ")]
        assert series and all("COVERING INDEX series_for_windows" in s for s in series), plan
        tables = [s for s in plan if s.startswith(("SEARCH p ", "SEARCH r "))]
        assert all("USING PRIMARY KEY (series_id=?" in s for s in tables), plan
        rollups = [s for s in tables if s.startswith("SEARCH r ")]
        sums = sum(1 for s in query.selects if s.aggregate.value == "sum")
        assert len(rollups) == sums, plan
        raw = _plan(conn, *render_sql(query, rollup_ms=None))
        assert not [s for s in raw if s.startswith("SEARCH r ")], raw


def test_window_parts_examples() -> None:
    assert window_parts(30_000, 200_000) == (
        WindowPart(30_000, 60_000, False),
        WindowPart(60_000, 180_000, True),
        WindowPart(180_000, 200_000, False),
    )
    assert window_parts(-60_000, 60_000) == (WindowPart(-60_000, 60_000, True),)
    assert window_parts(61_000, 119_000) == (WindowPart(61_000, 119_000, False),)
    assert window_parts(0, 120_000, rollup_ms=None) == (WindowPart(0, 120_000, False),)


@given(start=st.integers(-(10**12), 10**12), length=st.integers(1, 10**9))
def test_window_parts_tile_the_window_with_whole_rollup_minutes(start: int, length: int) -> None:
    parts = window_parts(start, start + length)
    assert parts[0].start_ms == start and parts[-1].end_ms == start + length
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(parts))
    assert all(p.start_ms < p.end_ms for p in parts)
    rollups = [p for p in parts if p.rollup]
    assert len(rollups) <= 1
    for part in rollups:
        assert part.start_ms % ROLLUP_MS == 0 and part.end_ms % ROLLUP_MS == 0
    # Raw pieces are shorter than a minute: whatever whole minute fits is read from rollups.
    assert all(p.end_ms - p.start_ms < ROLLUP_MS for p in parts if not p.rollup) or not rollups
    if not rollups:
        assert len(parts) == 1
        first_whole = -(-start // ROLLUP_MS) * ROLLUP_MS
        assert first_whole + ROLLUP_MS > start + length


# --- the statement's result on a real store (pinned by the mutation run) ---------------------

END, WINDOW = 200_000, 150_000  # [50 s, 200 s): raw head, rollup minutes 60-180 s, raw tail


def _written(lines: list[str]) -> sqlite3.Connection:
    conn = open_database(":memory:")
    writer = SqliteWriter(conn, close_connection=False)
    writer.write(lines)
    return conn


def _rows(
    conn: sqlite3.Connection, cls: AlertClass, services: list[str] | None = None
) -> tuple[list[str], set[tuple[object, ...]]]:
    query = class_query(cls, window_ms=WINDOW, end_ms=END, services=services or ())
    cursor = conn.execute(*render_sql(query))
    names = [d[0] for d in cursor.description]
    return names, set(cursor.fetchall())


def test_result_columns_are_sel_the_group_tags_value_and_last_ts() -> None:
    conn = _written([])
    for cls, rollup_ms in itertools.product(CLASS_SELECTS, (ROLLUP_MS, None)):
        query = class_query(cls, window_ms=WINDOW, end_ms=END)
        cursor = conn.execute(*render_sql(query, rollup_ms=rollup_ms))
        names = [d[0] for d in cursor.description]
        assert names == ["sel", *(f"g_{t}" for t in result_tags(query)), "value", "last_ts"]
        names, _ = _rows(conn, cls, ["prod/web"])
        assert names[0] == "sel" and names[-2:] == ["value", "last_ts"]


def test_several_services_are_each_bound_and_matched() -> None:
    conn = _written(
        [
            f"linkerd_requests,namespace=prod,scope=service,service={svc} count={n} 70000"
            for n, svc in enumerate(("web", "api", "db"), start=1)
        ]
    )
    _, rows = _rows(conn, AlertClass.FAILURES, ["prod/web", "prod/db"])
    assert rows == {
        ("requests", "prod", "db", "", "", 3.0, None),
        ("requests", "prod", "web", "", "", 1.0, None),
    }
    query = class_query(
        AlertClass.FAILURES, window_ms=WINDOW, end_ms=END, services=["prod/web", "prod/db"]
    )
    assert set(conn.execute(render_sql_inline(query)).fetchall()) == rows


def test_inline_text_follows_the_rollup_choice() -> None:
    query = class_query(AlertClass.FAILURES, window_ms=WINDOW, end_ms=END)
    assert "rollup_1m" in render_sql_inline(query)
    assert "rollup_1m" not in render_sql_inline(query, rollup_ms=None)


def test_a_tag_that_is_not_a_store_column_is_refused_naming_it() -> None:
    sel = SeriesSelect("x", "m", "count", ("service",), Aggregate.SUM, (*SERVICE_GROUP, "bogus"))
    query = ClassQuery(AlertClass.FAILURES, 1, 2, (sel,))
    with pytest.raises(ValueError, match="tag 'bogus' is not a column of the embedded store"):
        render_sql(query)


def test_sums_read_every_part_of_the_window_per_group_and_filter_services_and_tags() -> None:
    svc = "namespace=prod,router=out,scope=service,service=web"
    conn = _written(
        [
            f"linkerd_requests,host=h1,{svc} count=100 40000",  # before the window
            f"linkerd_requests,host=h1,{svc} count=1 55000",  # raw head
            f"linkerd_requests,host=h1,{svc} count=2 70000",  # rollup minute
            f"linkerd_requests,host=h2,{svc} count=8 65000",  # another host: summed
            f"linkerd_requests,host=h1,{svc} count=4 190000",  # raw tail
            f"linkerd_requests,host=h1,{svc} count=1000 200000",  # the end is exclusive
            "linkerd_requests,host=h1,namespace=prod,router=out,scope=service,service=other"
            " count=50 70000",
            "linkerd_requests,host=h1,namespace=prod,router=out,scope=client,service=web"
            " count=70 70000",  # another scope
            f"linkerd_failures,host=h1,{svc} count=3 70000",
            f"linkerd_failures,exception=Boom,host=h1,{svc} count=30 70000",  # tags_absent
            f"linkerd_failures,exception={CONNECTION_FAILED_EXCEPTION},failure_flag=a,host=h1,"
            f"{svc} count=5 70000",
            f"linkerd_failures,exception={CONNECTION_FAILED_EXCEPTION},failure_flag=b,host=h1,"
            f"{svc} count=6 190000",
        ]
    )
    group = ("prod", "web", "out")
    names, rows = _rows(conn, AlertClass.FAILURES, ["prod/web"])
    assert names[1:5] == ["g_namespace", "g_service", "g_router", "g_failure_flag"]
    assert rows == {
        ("requests", *group, "", 15.0, None),
        ("failures", *group, "", 3.0, None),
        ("connection_failures", *group, "a", 5.0, None),
        ("connection_failures", *group, "b", 6.0, None),
    }
    _, every = _rows(conn, AlertClass.FAILURES)
    assert ("requests", "prod", "other", "out", "", 50.0, None) in every
    raw_query = class_query(AlertClass.FAILURES, window_ms=WINDOW, end_ms=END)
    raw = set(conn.execute(*render_sql(raw_query, rollup_ms=None)).fetchall())
    assert raw == every


def test_gauges_take_the_latest_the_lowest_and_the_lookback_highest() -> None:
    bal = "client=c1,host=h1,namespace=prod,router=out,scope=client,service=web"
    budget = "host=h1,namespace=prod,router=out,service=web"
    conn = _written(
        [
            f"linkerd_loadbalancer_size,{bal} value=6 10000",  # lookback only
            f"linkerd_loadbalancer_size,{bal} value=3 70000",
            f"linkerd_loadbalancer_size,{bal} value=4 150000",
            f"linkerd_loadbalancer_size,{bal} value=99 210000",  # after the end
            f"linkerd_loadbalancer_available,{bal} value=2 120000",
            f"linkerd_loadbalancer_available,{bal} value=1 60000",
            f"linkerd_retries_budget,scope=client,{budget} value=1 45000",  # before the window
            f"linkerd_retries_budget,scope=client,{budget} value=9 100000",
            f"linkerd_retries_budget,scope=client,{budget} value=5 60000",
            f"linkerd_retries_budget,scope=service,{budget} value=7 150000",
        ]
    )
    balancer = ("prod", "web", "out", "h1", "c1")
    _, rows = _rows(conn, AlertClass.ENDPOINTS)
    assert rows == {
        ("available", *balancer, 2.0, 120_000),
        ("size", *balancer, 4.0, 150_000),
        ("size_max", *balancer, 6.0, None),
    }
    _, rows = _rows(conn, AlertClass.RETRIES)
    assert rows == {("budget_min", "prod", "web", "out", 5.0, None)}
