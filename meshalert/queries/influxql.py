"""Render a :class:`ClassQuery` to InfluxQL (InfluxDB 1.x, InfluxDB 3, InfluxDB 2's v1 API).

One ``SELECT`` per select, joined with ``;`` into one request: statement ``i`` answers
``query.selects[i]``, one series per group with the group's tags and a ``value`` column
(for a ``newest`` select, the row's ``time`` is the answer).
Strings are quoted by :mod:`meshalert.queries.escaping`; no regex is used, so tag matches
are exact. An absent tag is matched with ``= ''`` (InfluxQL's spelling of "no such tag").
"""

from __future__ import annotations

from meshalert.queries.escaping import influxql_identifier as ident
from meshalert.queries.escaping import influxql_string as string
from meshalert.queries.model import Aggregate, ClassQuery, SeriesSelect

VALUE_COLUMN = "value"


def _any_of(tag: str, values: tuple[str, ...]) -> str:
    return "(" + " OR ".join(f"{ident(tag)} = {string(v)}" for v in values) + ")"


def _services(query: ClassQuery) -> str:
    parts = [
        f"({ident('namespace')} = {string(ref.namespace)}"
        f" AND {ident('service')} = {string(ref.service)})"
        for ref in query.services
    ]
    return "(" + " OR ".join(parts) + ")"


def render_select(
    sel: SeriesSelect, query: ClassQuery, *, retention_policy: str | None = None
) -> str:
    # sum, last, min, max: InfluxQL's own function names. For newest, a lone last() selector
    # answers with the selected point's own time, which is the newest point of the group.
    func = "last" if sel.aggregate is Aggregate.NEWEST else sel.aggregate.value
    source = ident(sel.measurement)
    if retention_policy:
        source = f"{ident(retention_policy)}.{source}"
    where = [f"time >= {query.start_of(sel)}ms", f"time < {query.end_ms}ms"]
    if sel.scopes:  # none: any scope, or no scope tag at all
        where.append(_any_of("scope", sel.scopes))
    where += [f"{ident(tag)} = {string(value)}" for tag, value in sel.tag_equals]
    where += [f"{ident(tag)} = ''" for tag in sel.tags_absent]
    if query.services:
        where.append(_services(query))
    group = ", ".join(ident(tag) for tag in sel.group_by)
    return (
        f"SELECT {func}({ident(sel.field)}) AS {ident(VALUE_COLUMN)} FROM {source}"
        f" WHERE {' AND '.join(where)} GROUP BY {group}"
    )


def render_influxql(query: ClassQuery, *, retention_policy: str | None = None) -> str:
    """All of the class query's statements, ``;``-separated, one per line."""
    return ";\n".join(
        render_select(sel, query, retention_policy=retention_policy) for sel in query.selects
    )
