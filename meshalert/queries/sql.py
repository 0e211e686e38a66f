"""Render a :class:`ClassQuery` to one SQLite statement over the embedded store's layout.

One statement per class query: each select becomes a grouped ``SELECT`` and the parts are
joined with ``UNION ALL``, so a cycle costs one statement per class whatever the number of
services. Every value (measurement, scopes, tag values, window bounds, service filter) is a
bound ``?`` parameter; only whitelisted tag column names are written into the text.

Result columns, in order: ``sel`` (the select's name), one ``g_<tag>`` column per tag that
any select groups by (``''`` where absent or not grouped), ``value``, ``last_ts`` (the
timestamp behind a ``last`` value, NULL for sums).
"""

from __future__ import annotations

from meshalert.queries.escaping import sql_identifier, sql_literal
from meshalert.queries.model import Aggregate, ClassQuery, SeriesSelect
from meshalert.stores.sqlite_schema import TAG_COLUMNS

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


def _select_sql(
    sel: SeriesSelect, query: ClassQuery, tags: tuple[str, ...], params: list[SqlParam]
) -> str:
    # Two steps: the window is aggregated per series with a primary-key range scan of that
    # series' points (no sort of raw points), then the few per-series rows are grouped by
    # service. Grouping raw points directly made SQLite sort millions of rows.
    # ``LIMIT -1`` keeps SQLite from flattening the per-series subquery into the outer one:
    # flattened, each reference to ``g.v`` re-ran the correlated scan (twice per series).
    params.append(sel.name)
    cols = ["? AS sel"]
    for tag in tags:
        expr = f"COALESCE(g.{sql_identifier(tag)}, '')" if tag in sel.group_by else "''"
        cols.append(f"{expr} AS {sql_identifier(RESULT_PREFIX + tag)}")
    in_window = "p.series_id = s.id AND p.field = ? AND p.ts >= ? AND p.ts < ?"
    if sel.aggregate is Aggregate.SUM:
        cols += ["SUM(g.v) AS value", "NULL AS last_ts"]
        per_series = f"(SELECT SUM(p.value) FROM points AS p WHERE {in_window}) AS v"
    else:
        # SQLite fills a bare column from the row that holds MAX(): the latest point's value.
        cols += ["g.v AS value", "MAX(g.t) AS last_ts"]
        per_series = (
            f"(SELECT p.value FROM points AS p WHERE {in_window}"
            " ORDER BY p.ts DESC LIMIT 1) AS v, "
            f"(SELECT MAX(p.ts) FROM points AS p WHERE {in_window}) AS t"
        )
        params += [sel.field, query.start_ms, query.end_ms]
    params += [sel.field, query.start_ms, query.end_ms]
    group_cols = ", ".join(f"{_column(t)} AS {sql_identifier(t)}" for t in sel.group_by)
    where = ["s.measurement = ?", f"s.scope IN ({_placeholders(len(sel.scopes))})"]
    params.append(sel.measurement)
    params.extend(sel.scopes)
    for tag, value in sel.tag_equals:
        where.append(f"{_column(tag)} = ?")
        params.append(value)
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
        f"WHERE g.v IS NOT NULL\n"
        f"GROUP BY {group}"
    )


def render_sql(query: ClassQuery) -> tuple[str, tuple[SqlParam, ...]]:
    """One statement with ``?`` placeholders, and its parameters in order."""
    params: list[SqlParam] = []
    head = ""
    if query.services:
        rows = ", ".join("(?, ?)" for _ in query.services)
        head = f"WITH wanted(namespace, service) AS (VALUES {rows})\n"
        for ref in query.services:
            params += [ref.namespace, ref.service]
    tags = result_tags(query)
    parts = [_select_sql(sel, query, tags, params) for sel in query.selects]
    return head + "\nUNION ALL\n".join(parts), tuple(params)


def render_sql_inline(query: ClassQuery) -> str:
    """The statement with its parameters spelled as literals, for evidence and replay."""
    text, params = render_sql(query)
    pieces = text.split("?")
    if len(pieces) != len(params) + 1:
        raise AssertionError("placeholder count does not match parameters")
    out = [pieces[0]]
    for param, piece in zip(params, pieces[1:], strict=True):
        out += [sql_literal(param), piece]
    return "".join(out)
