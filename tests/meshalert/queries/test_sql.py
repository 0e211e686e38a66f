from __future__ import annotations

import itertools
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.alerts.model import AlertClass
from meshalert.backends.sqlite.schema import DDL
from meshalert.queries.model import CLASS_SELECTS, ServiceRef, class_query
from meshalert.queries.sql import WindowPart, render_sql, render_sql_inline, window_parts
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
