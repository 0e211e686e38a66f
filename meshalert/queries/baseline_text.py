"""Render a :class:`BucketQuery` to SQL (embedded store), InfluxQL and Flux.

Each renderer answers the whole query in one request, one part per select, every part
grouped by (namespace, service, router, bucket of ``window_ms``) over ``[start_ms,
stop_ms)`` (each select's ``group_by``: routers are never summed):

* SQL: ``UNION ALL`` of grouped selects over a recursive ``buckets(i)`` table of bucket
  indexes; each (series, bucket) is a primary-key range sum, and the reader turns the index
  back into the bucket's start. Every value is a bound parameter.
* InfluxQL: one statement per select, ``GROUP BY time(<w>ms, <offset>ms), namespace,
  service, router fill(none)``; InfluxDB stamps each row with its bucket's start.
* Flux: one pipeline per select: ``aggregateWindow(every:, offset:, fn: sum, createEmpty:
  false, timeSrc: "_start")`` straight after ``range`` and ``filter``, so InfluxDB computes
  it per series inside the storage engine (the window-aggregate pushdown,
  ``ReadWindowAggregateByTime`` in the plan) and returns one row per series and bucket
  instead of every raw point; then ``group`` by (namespace, service, router) and the same
  ``aggregateWindow`` again, which sums the hosts' rows of each bucket (each row's ``_time``
  is its bucket's start, so it falls in the same window); ``yield(name: <select>)``.
  A ``group`` before the first window (the earlier form) disables the pushdown, and
  grouping by ``_time`` instead of windowing again makes one Flux table per service and
  bucket (both several times slower on a day of data: benchmarks/baseline_query.py).

Empty buckets are not returned by any of them: a bucket without requests carries no ratio.
"""

from __future__ import annotations

from meshalert.queries.baseline import BucketQuery
from meshalert.queries.escaping import influxql_identifier as ident
from meshalert.queries.escaping import influxql_string, sql_identifier, sql_literal
from meshalert.queries.flux import flux_time, record_member
from meshalert.queries.flux_escaping import flux_string
from meshalert.queries.model import SeriesSelect
from meshalert.queries.sql import RESULT_PREFIX, SqlParam
from meshalert.queries.sql_schema import TAG_COLUMNS

BUCKET_COLUMN = "bucket"
VALUE_COLUMN = "value"
_INDENT = "    |> "


# --- SQL ------------------------------------------------------------------------------


def _sql_column(tag: str) -> str:
    if tag not in TAG_COLUMNS:
        raise ValueError(f"tag {tag!r} is not a column of the embedded store's series table")
    return "s." + sql_identifier(tag)


def _sql_part(sel: SeriesSelect, query: BucketQuery, params: list[SqlParam]) -> str:
    # Per (series, bucket), a correlated primary-key range sum; only those few rows are then
    # grouped by service. Grouping the raw points by a computed bucket instead made SQLite
    # sort every point of the day (3-4x slower at 100 services). ``LIMIT -1`` keeps the
    # subquery from being flattened into the outer one (which re-ran the scan per use).
    params.append(sel.name)
    where = ["s.measurement = ?", f"s.scope IN ({', '.join('?' * len(sel.scopes))})"]
    in_bucket = (
        "p.series_id = s.id AND p.field = ? AND p.ts >= ? + b.i * ? AND p.ts < ? + (b.i + 1) * ?"
    )
    params += [sel.field, query.start_ms, query.window_ms, query.start_ms, query.window_ms]
    params += [sel.measurement, *sel.scopes]
    for tag, value in sel.tag_equals:
        where.append(f"{_sql_column(tag)} = ?")
        params.append(value)
    where += [f"{_sql_column(tag)} IS NULL" for tag in sel.tags_absent]
    inner = ", ".join(
        f"COALESCE({_sql_column(tag)}, '') AS {sql_identifier(RESULT_PREFIX + tag)}"
        for tag in sel.group_by
    )
    group = ", ".join(f"g.{sql_identifier(RESULT_PREFIX + tag)}" for tag in sel.group_by)
    return (
        f"SELECT ? AS sel, {group}, g.i AS {BUCKET_COLUMN}, SUM(g.v) AS {VALUE_COLUMN}\n"
        f"FROM (SELECT {inner}, b.i AS i,\n"
        f"        (SELECT SUM(p.value) FROM points AS p WHERE {in_bucket}) AS v\n"
        f"      FROM series AS s CROSS JOIN buckets AS b\n"
        f"      WHERE {' AND '.join(where)} LIMIT -1) AS g\n"
        f"WHERE g.v IS NOT NULL\n"
        f"GROUP BY {group}, g.i"
    )


def render_bucket_sql(query: BucketQuery) -> tuple[str, tuple[SqlParam, ...]]:
    """One statement with ``?`` placeholders (columns ``sel``, ``g_<tag>`` per group tag
    (``g_namespace, g_service, g_router``), ``bucket, value``; ``bucket`` is the bucket's
    index from ``start_ms``), and its params."""
    params: list[SqlParam] = [query.bucket_count]
    # Keyword and identifier case here and in _sql_part is free (SQLite ignores it): the
    # mutation run lists such case changes as equivalent mutants.
    head = (
        "WITH RECURSIVE buckets(i) AS"
        " (SELECT 0 UNION ALL SELECT i + 1 FROM buckets WHERE i + 1 < ?)\n"
    )
    parts = [_sql_part(sel, query, params) for sel in query.selects]
    return head + "\nUNION ALL\n".join(parts), tuple(params)


def render_bucket_sql_inline(query: BucketQuery) -> str:
    """The statement with its parameters spelled as literals, for evidence and replay."""
    text, params = render_bucket_sql(query)
    pieces = text.split("?")
    # Cannot fire while every value is bound and every identifier is a store column (no `?`
    # from data reaches the text): the guard's message and zip's `strict` are equivalent
    # mutants in the mutation run.
    if len(pieces) != len(params) + 1:
        raise AssertionError("placeholder count does not match parameters")
    out = [pieces[0]]
    for param, piece in zip(params, pieces[1:], strict=True):
        out += [sql_literal(param), piece]
    return "".join(out)


# --- InfluxQL -------------------------------------------------------------------------


def _influxql_statement(sel: SeriesSelect, query: BucketQuery, retention_policy: str | None) -> str:
    source = ident(sel.measurement)
    if retention_policy:
        source = f"{ident(retention_policy)}.{source}"
    scopes = " OR ".join(f"{ident('scope')} = {influxql_string(s)}" for s in sel.scopes)
    where = [f"time >= {query.start_ms}ms", f"time < {query.stop_ms}ms", f"({scopes})"]
    where += [f"{ident(tag)} = {influxql_string(value)}" for tag, value in sel.tag_equals]
    where += [f"{ident(tag)} = ''" for tag in sel.tags_absent]
    tags = ", ".join(ident(tag) for tag in sel.group_by)
    return (
        f"SELECT sum({ident(sel.field)}) AS {ident(VALUE_COLUMN)} FROM {source}"
        f" WHERE {' AND '.join(where)}"
        f" GROUP BY time({query.window_ms}ms, {query.offset_ms}ms), {tags} fill(none)"
    )


def render_bucket_influxql(query: BucketQuery, *, retention_policy: str | None = None) -> str:
    """One statement per select, ``;``-separated; statement ``i`` answers ``selects[i]``."""
    return ";\n".join(_influxql_statement(s, query, retention_policy) for s in query.selects)


# --- Flux -----------------------------------------------------------------------------


def _flux_pipeline(sel: SeriesSelect, query: BucketQuery, bucket: str) -> str:
    scope = record_member("scope")
    terms = [" or ".join(f"{scope} == {flux_string(s)}" for s in sel.scopes)]
    if len(sel.scopes) > 1:
        terms[0] = f"({terms[0]})"
    terms += [f"{record_member(t)} == {flux_string(v)}" for t, v in sel.tag_equals]
    terms += [f"not exists {record_member(t)}" for t in sel.tags_absent]
    columns = "[" + ", ".join(flux_string(t) for t in sel.group_by) + "]"
    window = (
        f"aggregateWindow(every: {query.window_ms}ms, offset: {query.offset_ms}ms, fn: sum,"
        ' createEmpty: false, timeSrc: "_start")'
    )
    series = (
        f"r._measurement == {flux_string(sel.measurement)} and r._field == {flux_string(sel.field)}"
    )
    steps = [
        f"from(bucket: {flux_string(bucket)})",
        "range(start: spanStart, stop: spanStop)",
        f"filter(fn: (r) => {series})",
        f"filter(fn: (r) => {' and '.join(terms)})",
        window,
        f"group(columns: {columns})",
        window,
        f"yield(name: {flux_string(sel.name)})",
    ]
    return steps[0] + "\n" + "\n".join(_INDENT + step for step in steps[1:])


def render_bucket_flux(query: BucketQuery, *, bucket: str) -> str:
    """The Flux script; each row's ``_time`` is its bucket's start."""
    header = "\n".join(
        [
            f"// meshalert retries baseline: {query.bucket_count} buckets of "
            f"{query.window_ms}ms in [{flux_time(query.start_ms)}, {flux_time(query.stop_ms)})",
            f"spanStart = time(v: {flux_string(flux_time(query.start_ms))})",
            f"spanStop = time(v: {flux_string(flux_time(query.stop_ms))})",
        ]
    )
    blocks = [header, *(_flux_pipeline(sel, query, bucket) for sel in query.selects)]
    return "\n\n".join(blocks) + "\n"
