"""Render a :class:`ClassQuery` to one SQLite statement over the embedded store's layout.

One statement per class query: each select becomes a grouped ``SELECT`` and the parts are
joined with ``UNION ALL``, so a cycle costs one statement per class whatever the number of
services. Every value (measurement, scopes, tag values, window bounds, service filter) is a
bound ``?`` parameter; only whitelisted tag column names are written into the text.

Sums read a window as up to three pieces (:func:`window_parts`): the raw points before the
first whole minute, the whole minutes from the ``rollup_1m`` table (schema version 2, kept
exact by triggers), and the raw points after the last whole minute. Evaluation cycles are
aligned to the minute, so a cycle's window is usually rollups only: about 6x fewer rows
than 10 s points.

Result columns, in order: ``sel`` (the select's name), one ``g_<tag>`` column per tag that
any select groups by (``''`` where absent or not grouped), ``value``, ``last_ts`` (the
timestamp behind a ``last`` or ``newest`` value, NULL for sums).
"""

from __future__ import annotations

from dataclasses import dataclass

from meshalert.queries.escaping import sql_identifier, sql_literal
from meshalert.queries.model import Aggregate, ClassQuery, SeriesSelect
from meshalert.queries.sql_schema import ROLLUP_MS, TAG_COLUMNS

SqlParam = str | int | float
RESULT_PREFIX = "g_"


def result_tags(query: ClassQuery) -> tuple[str, ...]:
    """The ``g_<tag>`` columns of :func:`render_sql`'s result, in order (without prefix)."""
    seen: list[str] = []
    for sel in query.selects:
        for tag in sel.group_by:
            if tag not in seen:
                seen.append(tag)
    return tuple(seen)


def _column(tag: str) -> str:
    if tag not in TAG_COLUMNS:
        raise ValueError(f"tag {tag!r} is not a column of the embedded store's series table")
    return "s." + sql_identifier(tag)


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


@dataclass(frozen=True)
class WindowPart:
    """One piece of a window: ``[start_ms, end_ms)`` read from ``points`` (``rollup`` False)
    or from ``rollup_1m`` (``rollup`` True: whole minutes, ``start_ms`` and ``end_ms`` on
    minute boundaries)."""

    start_ms: int
    end_ms: int
    rollup: bool


def window_parts(
    start_ms: int, end_ms: int, *, rollup_ms: int | None = ROLLUP_MS
) -> tuple[WindowPart, ...]:
    """``[start_ms, end_ms)`` as raw head, whole rollup periods, raw tail (empty pieces
    left out); all raw when ``rollup_ms`` is None or the window holds no whole period."""
    if rollup_ms is None:
        return (WindowPart(start_ms, end_ms, False),)
    first = -(-start_ms // rollup_ms) * rollup_ms  # ceiling, also below 0
    last = (end_ms // rollup_ms) * rollup_ms
    if first >= last:
        return (WindowPart(start_ms, end_ms, False),)
    parts = [WindowPart(start_ms, first, False), WindowPart(first, last, True)]
    parts.append(WindowPart(last, end_ms, False))
    return tuple(p for p in parts if p.start_ms < p.end_ms)


def _sum_subquery(sel: SeriesSelect, part: WindowPart, params: list[SqlParam]) -> str:
    params += [sel.field, part.start_ms, part.end_ms]
    if part.rollup:
        return (
            "(SELECT SUM(r.sum) FROM rollup_1m AS r WHERE r.series_id = s.id"
            " AND r.field = ? AND r.minute_ms >= ? AND r.minute_ms < ?)"
        )
    return (
        "(SELECT SUM(p.value) FROM points AS p WHERE p.series_id = s.id"
        " AND p.field = ? AND p.ts >= ? AND p.ts < ?)"
    )


def _per_series(
    sel: SeriesSelect, query: ClassQuery, rollup_ms: int | None, params: list[SqlParam]
) -> tuple[str, str, str]:
    """(per-series columns, the group's value expression, the has-points condition)."""
    if sel.aggregate is Aggregate.LAST:
        # The latest point is one backward seek of the points primary key whatever the
        # window, so rollups would not make it cheaper (measured: same time at 10k services).
        in_window = "p.series_id = s.id AND p.field = ? AND p.ts >= ? AND p.ts < ?"
        params += [sel.field, query.start_of(sel), query.end_ms] * 2
        columns = (
            f"(SELECT p.value FROM points AS p WHERE {in_window}"
            " ORDER BY p.ts DESC LIMIT 1) AS v, "
            f"(SELECT MAX(p.ts) FROM points AS p WHERE {in_window}) AS t"
        )
        # SQLite fills a bare column from the row that holds MAX(): the latest point's value.
        return columns, "g.v AS value, MAX(g.t) AS last_ts", "g.v IS NOT NULL"
    if sel.aggregate is Aggregate.NEWEST:
        # The newest point's time: one backward seek of the points primary key per series.
        params += [sel.field, query.start_of(sel), query.end_ms]
        return (
            "(SELECT MAX(p.ts) FROM points AS p WHERE p.series_id = s.id"
            " AND p.field = ? AND p.ts >= ? AND p.ts < ?) AS v",
            "MAX(g.v) AS value, MAX(g.v) AS last_ts",
            "g.v IS NOT NULL",
        )
    if sel.aggregate in (Aggregate.MIN, Aggregate.MAX):
        # Gauge extremes: rollups keep sums and last values only, so these read raw points
        # (one primary-key range per series).
        func = "MIN" if sel.aggregate is Aggregate.MIN else "MAX"
        params += [sel.field, query.start_of(sel), query.end_ms]
        return (
            f"(SELECT {func}(p.value) FROM points AS p WHERE p.series_id = s.id"
            " AND p.field = ? AND p.ts >= ? AND p.ts < ?) AS v",
            f"{func}(g.v) AS value, NULL AS last_ts",
            "g.v IS NOT NULL",
        )
    parts = window_parts(query.start_of(sel), query.end_ms, rollup_ms=rollup_ms)
    subqueries = [_sum_subquery(sel, part, params) for part in parts]
    if len(subqueries) == 1:
        return f"{subqueries[0]} AS v", "SUM(g.v) AS value, NULL AS last_ts", "g.v IS NOT NULL"
    names = [f"g.v{i}" for i in range(len(subqueries))]
    columns = ", ".join(f"{q} AS v{i}" for i, q in enumerate(subqueries))
    total = " + ".join(f"COALESCE({n}, 0)" for n in names)
    return (
        columns,
        f"SUM({total}) AS value, NULL AS last_ts",
        f"COALESCE({', '.join(names)}) IS NOT NULL",
    )


def _select_sql(
    sel: SeriesSelect,
    query: ClassQuery,
    tags: tuple[str, ...],
    rollup_ms: int | None,
    params: list[SqlParam],
) -> str:
    # Two steps: the window is aggregated per series with primary-key range scans of that
    # series' rollup minutes and raw ends (no sort of raw points), then the few per-series
    # rows are grouped by service. Grouping raw points directly made SQLite sort millions
    # of rows. ``LIMIT -1`` keeps SQLite from flattening the per-series subquery into the
    # outer one: flattened, each reference to a per-series column re-ran its correlated scan.
    params.append(sel.name)
    cols = ["? AS sel"]
    for tag in tags:
        expr = f"COALESCE(g.{sql_identifier(tag)}, '')" if tag in sel.group_by else "''"
        cols.append(f"{expr} AS {sql_identifier(RESULT_PREFIX + tag)}")
    per_series, value, has_points = _per_series(sel, query, rollup_ms, params)
    cols.append(value)
    group_cols = ", ".join(f"{_column(t)} AS {sql_identifier(t)}" for t in sel.group_by)
    where = ["s.measurement = ?"]
    params.append(sel.measurement)
    if sel.scopes:  # none: any scope, or no scope tag at all
        where.append(f"s.scope IN ({_placeholders(len(sel.scopes))})")
        params.extend(sel.scopes)
    for tag, tag_value in sel.tag_equals:
        where.append(f"{_column(tag)} = ?")
        params.append(tag_value)
    where.extend(f"{_column(tag)} IS NULL" for tag in sel.tags_absent)
    if query.services:
        where.append(
            f"(COALESCE({_column('namespace')}, ''), {_column('service')})"
            " IN (SELECT namespace, service FROM wanted)"
        )
    group = ", ".join(f"COALESCE(g.{sql_identifier(t)}, '')" for t in sel.group_by)
    return (
        f"SELECT {', '.join(cols)}\n"
        f"FROM (SELECT {group_cols}, {per_series}\n"
        f"      FROM series AS s WHERE {' AND '.join(where)} LIMIT -1) AS g\n"
        f"WHERE {has_points}\n"
        f"GROUP BY {group}"
    )


def render_sql(
    query: ClassQuery, *, rollup_ms: int | None = ROLLUP_MS
) -> tuple[str, tuple[SqlParam, ...]]:
    """One statement with ``?`` placeholders, and its parameters in order.

    Sums read whole ``rollup_ms`` periods from ``rollup_1m`` and the rest of the window
    from ``points``; ``rollup_ms=None`` reads only ``points`` (a store older than schema
    version 2 has no rollups).
    """
    params: list[SqlParam] = []
    head = ""
    if query.services:
        rows = ", ".join("(?, ?)" for _ in query.services)
        head = f"WITH wanted(namespace, service) AS (VALUES {rows})\n"
        for ref in query.services:
            params += [ref.namespace, ref.service]
    tags = result_tags(query)
    parts = [_select_sql(sel, query, tags, rollup_ms, params) for sel in query.selects]
    return head + "\nUNION ALL\n".join(parts), tuple(params)


def render_sql_inline(query: ClassQuery, *, rollup_ms: int | None = ROLLUP_MS) -> str:
    """The statement with its parameters spelled as literals, for evidence and replay."""
    text, params = render_sql(query, rollup_ms=rollup_ms)
    pieces = text.split("?")
    if len(pieces) != len(params) + 1:
        raise AssertionError("placeholder count does not match parameters")
    out = [pieces[0]]
    for param, piece in zip(params, pieces[1:], strict=True):
        out += [sql_literal(param), piece]
    return "".join(out)
