"""Baseline query text in the three dialects: SQL parameters, InfluxQL, Flux goldens + LSP."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.backends.sqlite.schema import DDL
from meshalert.queries.baseline import BucketQuery, baseline_query
from meshalert.queries.baseline_text import (
    render_bucket_flux,
    render_bucket_influxql,
    render_bucket_sql,
    render_bucket_sql_inline,
)
from meshalert.queries.model import ROUTER_GROUP, Aggregate, SeriesSelect
from tests.meshalert.queries.fluxlsp import FluxLsp, errors_of, flux_lsp

__all__ = ["flux_lsp"]

GOLDEN = Path(__file__).parent / "golden" / "baseline"
END_MS = 1_704_067_500_000  # 2024-01-01T00:05:00Z
BUCKET = "meshalert"
GOLDEN_QUERIES: dict[str, BucketQuery] = {
    "retries_5m": baseline_query(300_000, END_MS),
    "retries_2m_offset": baseline_query(120_000, END_MS + 61_250),
}
ODD_SELECT = SeriesSelect(
    "odd's",
    'linkerd_"odd"',
    "count",
    ("client", "service"),
    Aggregate.SUM,
    group_by=ROUTER_GROUP,
    tag_equals=(("exception", 'it\'s \\ "x" ${y}'),),
    tags_absent=("failure_flag",),
)
ODD = BucketQuery(60_000, END_MS, lookback_ms=3_600_000, selects=(ODD_SELECT,))


# --- SQL ------------------------------------------------------------------------------


def test_sql_binds_every_value_and_groups_by_service_and_bucket() -> None:
    q = GOLDEN_QUERIES["retries_5m"]
    text, params = render_bucket_sql(q)
    assert text.count("?") == len(params)
    assert text.count("UNION ALL") == 2  # one in the bucket table, one between the selects
    assert "linkerd_" not in text and str(q.start_ms) not in text
    assert params[0] == q.bucket_count == 287
    w, start = q.window_ms, q.start_ms
    assert params[1:9] == (
        "retries_total",
        "count",
        start,
        w,
        start,
        w,
        "linkerd_retries_total",
        "service",
    )
    assert params[9] == "requests"
    assert text.count('GROUP BY g."g_namespace", g."g_service", g."g_router", g.i') == 2
    assert text.count("CROSS JOIN buckets AS b") == 2
    assert "p.series_id = s.id AND p.field = ? AND p.ts >= ? + b.i * ?" in text


def test_sql_tag_conditions_are_bound_too() -> None:
    text, params = render_bucket_sql(ODD)
    assert "s.scope IN (?, ?)" in text
    assert 's."exception" = ?' in text and 's."failure_flag" IS NULL' in text
    assert ODD_SELECT.tag_equals[0][1] in params and ODD_SELECT.measurement in params


def test_sql_refuses_a_tag_the_store_has_no_column_for() -> None:
    sel = SeriesSelect(
        "x", "m", "count", ("service",), Aggregate.SUM, ROUTER_GROUP, tags_absent=("nope",)
    )
    with pytest.raises(ValueError, match="not a column"):
        render_bucket_sql(BucketQuery(60_000, END_MS, selects=(sel,)))


def test_inline_sql_runs_and_answers_like_the_bound_statement() -> None:
    conn = sqlite3.connect(":memory:")
    for statement in DDL:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO series (id, measurement, tagset, scope, namespace, service, exception,"
        " tags_json) VALUES (1, ?, '', 'client', NULL, 'web', ?, '{}')",
        (ODD_SELECT.measurement, ODD_SELECT.tag_equals[0][1]),
    )
    for ts, value in ((ODD.start_ms, 1.0), (ODD.start_ms + 59_999, 2.0), (ODD.stop_ms - 1, 4.0)):
        conn.execute("INSERT INTO points VALUES (1, ?, 'count', ?)", (ts, value))
    bound = sorted(conn.execute(*render_bucket_sql(ODD)).fetchall())
    inline = sorted(conn.execute(render_bucket_sql_inline(ODD)).fetchall())
    assert bound == inline == [("odd's", "", "web", "", 0, 3.0), ("odd's", "", "web", "", 58, 4.0)]


# --- InfluxQL -------------------------------------------------------------------------


def test_influxql_one_grouped_statement_per_select() -> None:
    q = GOLDEN_QUERIES["retries_2m_offset"]
    statements = render_bucket_influxql(q).split(";\n")
    assert statements == [
        f'SELECT sum("count") AS "value" FROM "{m}" WHERE time >= {q.start_ms}ms'
        f" AND time < {q.stop_ms}ms AND (\"scope\" = 'service')"
        f' GROUP BY time(120000ms, {q.offset_ms}ms), "namespace", "service", "router"'
        " fill(none)"
        for m in ("linkerd_retries_total", "linkerd_requests")
    ]
    assert q.offset_ms == 1_250  # (end + 61.25 s) mod 2 min


def test_influxql_quotes_tags_and_qualifies_the_retention_policy() -> None:
    text = render_bucket_influxql(ODD, retention_policy="my rp")
    assert 'FROM "my rp"."linkerd_\\"odd\\""' in text
    assert "(\"scope\" = 'client' OR \"scope\" = 'service')" in text
    assert '"exception" = \'it\\\'s \\\\ "x" ${y}\'' in text
    assert "\"failure_flag\" = ''" in text


# --- Flux -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GOLDEN_QUERIES))
def test_flux_matches_golden_file(name: str) -> None:
    path = GOLDEN / f"{name}.flux"
    text = render_bucket_flux(GOLDEN_QUERIES[name], bucket=BUCKET)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"regenerate with UPDATE_GOLDEN=1: {path}"


def test_every_baseline_golden_file_is_a_rendered_query() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.flux")) == sorted(GOLDEN_QUERIES)


def test_flux_windows_are_aligned_like_the_model_and_yield_per_select() -> None:
    q = GOLDEN_QUERIES["retries_2m_offset"]
    text = render_bucket_flux(q, bucket=BUCKET)
    assert text.count("aggregateWindow(every: 120000ms, offset: 1250ms, fn: sum,") == 4
    assert text.count('timeSrc: "_start"') == 4 and "createEmpty: false" in text
    assert re.findall(r'yield\(name: "(\w+)"\)', text) == ["retries_total", "requests"]
    assert 'spanStart = time(v: "2023-12-31T00:06:01.250Z")' in text
    assert 'spanStop = time(v: "2024-01-01T00:04:01.250Z")' in text


def test_flux_windows_each_series_before_grouping_by_service() -> None:
    # InfluxDB pushes aggregateWindow into storage only when it follows range/filter
    # directly; a group() in between makes Flux read every raw point of the day. The second
    # aggregateWindow sums the hosts' per-bucket rows (grouping by _time instead made one
    # table per service and bucket: slower than not pushing down at all).
    text = render_bucket_flux(GOLDEN_QUERIES["retries_5m"], bucket=BUCKET)
    for pipeline in text.split("\n\n")[1:]:
        steps = [line.strip().removeprefix("|> ").split("(")[0] for line in pipeline.splitlines()]
        assert steps == [
            "from",
            "range",
            "filter",
            "filter",
            "aggregateWindow",
            "group",
            "aggregateWindow",
            "yield",
        ]
        assert 'group(columns: ["namespace", "service", "router"])' in pipeline


@pytest.mark.node
def test_flux_goldens_pass_the_flux_language_server(flux_lsp: FluxLsp) -> None:
    names = sorted(GOLDEN_QUERIES)
    results = flux_lsp.check([(GOLDEN / f"{n}.flux").read_text() for n in names])
    assert {n: [str(d) for d in r] for n, r in zip(names, results, strict=True)} == {
        n: [] for n in names
    }


names = st.lists(
    st.one_of(st.sampled_from(['"', "\\", "$", "${", "}", "\n", " or true or "]), st.characters()),
    min_size=1,
    max_size=10,
).map("".join)


@pytest.mark.node
@given(bucket=names, value=names)
@settings(max_examples=15, deadline=None)
def test_hostile_names_render_valid_flux_that_carries_them_verbatim(
    flux_lsp: FluxLsp, bucket: str, value: str
) -> None:
    try:
        bucket.encode()
        value.encode()
    except UnicodeEncodeError:
        return  # no UTF-8 form: flux_string refuses it (tested in test_flux_escaping)
    sel = SeriesSelect(
        "s", "m", "count", ("service",), Aggregate.SUM, ROUTER_GROUP, tag_equals=(("via", value),)
    )
    text = render_bucket_flux(BucketQuery(60_000, END_MS, selects=(sel,)), bucket=bucket)
    [diagnostics] = flux_lsp.check([text])
    assert errors_of(diagnostics) == []
    [report] = flux_lsp.strings([text])
    assert report.interpolations == 0 and report.parse_errors == ()
    assert {bucket, value} <= set(report.strings)


def test_flux_filters_every_scope_tag_and_absent_tag_of_a_select() -> None:
    # Two scopes need parentheses, or `and` would bind the tag terms to the last scope only.
    text = render_bucket_flux(ODD, bucket=BUCKET)
    assert (
        '|> filter(fn: (r) => (r.scope == "client" or r.scope == "service")'
        ' and r.exception == "it\'s \\\\ \\"x\\" \\x24{y}" and not exists r.failure_flag)\n'
    ) in text
    one_scope = render_bucket_flux(GOLDEN_QUERIES["retries_5m"], bucket=BUCKET)
    assert '|> filter(fn: (r) => r.scope == "service")\n' in one_scope


def test_sql_answers_both_selects_per_router_from_a_real_store() -> None:
    q = BucketQuery(60_000, END_MS, lookback_ms=3_600_000)
    conn = sqlite3.connect(":memory:")
    for statement in DDL:
        conn.execute(statement)
    series = [
        (1, "linkerd_retries_total", "outgoing"),
        (2, "linkerd_requests", "outgoing"),
        (3, "linkerd_requests", "incoming"),
    ]
    for sid, measurement, router in series:
        conn.execute(
            "INSERT INTO series (id, measurement, tagset, scope, namespace, service, router,"
            " tags_json) VALUES (?, ?, ?, 'service', 'ns', 'web', ?, '{}')",
            (sid, measurement, f"t{sid}", router),
        )
    for sid, value in ((1, 2.0), (2, 20.0), (3, 22.0)):
        conn.execute("INSERT INTO points VALUES (?, ?, 'count', ?)", (sid, q.start_ms + 5, value))
    rows = sorted(conn.execute(*render_bucket_sql(q)).fetchall())
    assert rows == [
        ("requests", "ns", "web", "incoming", 0, 22.0),
        ("requests", "ns", "web", "outgoing", 0, 20.0),
        ("retries_total", "ns", "web", "outgoing", 0, 2.0),
    ]
    assert sorted(conn.execute(render_bucket_sql_inline(q)).fetchall()) == rows
