"""Render a :class:`ClassQuery` to one Flux script for InfluxDB 2.

Every select becomes one pipeline ending in ``yield(name: <select name>)``, so one request
answers the whole class query and each result row names its select in the annotated CSV
``result`` column. A pipeline reads ``[windowStart, windowStop)`` (Flux ``range`` is
start-inclusive, stop-exclusive, like the model's window), filters on measurement, field
and the ``scope`` tag, then

* SUM: ``group(columns: <group_by>) |> sum()`` -- counters and histogram buckets summed
  over hosts and intervals;
* MIN, MAX: ``group(columns: <group_by>) |> min()`` (``max()``) -- a gauge's extreme
  over the window (``lookbackStart`` instead of ``windowStart`` for lookback selects);
* LAST: ``last()`` per series, then ``group(columns: <group_by>) |> sort(_time) |> last()``
  -- the latest gauge value per group (``group()`` does not keep rows in time order, so the
  sort makes the final ``last()`` mean "latest");
* NEWEST: the same pipeline as LAST; the reader takes the row's ``_time`` (a series'
  values may be of any type, its time is what the ingest class judges).

A select without scopes has no ``scope`` filter (the sidecar's own measurement has none).

An absent tag is ``not exists r.tag``; a group whose ``group_by`` tag is absent comes back
without that column, which the reader maps to ``""`` like the model asks.

Every string from configuration or the model (bucket, service names, tag values, select
names) goes through :func:`meshalert.queries.flux_escaping.flux_string`. Flux parameters
(``params.x``) are not used: only InfluxDB Cloud accepts them, OSS 2.x does not, so the
returned parameter mapping is always empty and exists so callers need not change if that
ever does.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from meshalert.queries.flux_escaping import flux_string
from meshalert.queries.model import Aggregate, ClassQuery, SeriesSelect, ServiceRef

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEYWORDS = frozenset(
    {
        "and", "builtin", "else", "empty", "exists", "if", "import", "in", "not", "option",
        "or", "package", "return", "test", "testcase", "then",
    }
)  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INDENT = "    |> "

FluxParams = dict[str, object]


def render_flux(query: ClassQuery, *, bucket: str) -> tuple[str, FluxParams]:
    """The Flux script for ``query`` reading ``bucket``, and its (empty) parameters."""
    header = [
        f"// meshalert {query.alert_class.value} window "
        f"[{flux_time(query.start_ms)}, {flux_time(query.end_ms)})",
        f"windowStart = time(v: {flux_string(flux_time(query.start_ms))})",
        f"windowStop = time(v: {flux_string(flux_time(query.end_ms))})",
    ]
    lookback = min((query.start_of(sel) for sel in query.selects), default=query.start_ms)
    if lookback < query.start_ms:
        header.append(f"lookbackStart = time(v: {flux_string(flux_time(lookback))})")
    blocks = ["\n".join(header)]
    blocks += [_pipeline(sel, query, bucket) for sel in query.selects]
    return "\n\n".join(blocks) + "\n", {}


def flux_time(ms: int) -> str:
    """RFC 3339 UTC text of an epoch-milliseconds instant (millisecond digits only if any)."""
    try:
        moment = _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        raise ValueError(f"time {ms} ms is outside the range Flux can express") from None
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = ms % 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def record_member(tag: str) -> str:
    """``r.tag`` when ``tag`` is a plain identifier, else ``r["tag"]``."""
    if _IDENTIFIER.match(tag) and tag not in _KEYWORDS:
        return f"r.{tag}"
    return f"r[{flux_string(tag)}]"


def _pipeline(sel: SeriesSelect, query: ClassQuery, bucket: str) -> str:
    start = (
        "lookbackStart" if sel.lookback and query.start_of(sel) < query.start_ms else "windowStart"
    )
    steps = [
        f"from(bucket: {flux_string(bucket)})",
        f"range(start: {start}, stop: windowStop)",
        f"filter(fn: (r) => {_series_predicate(sel)})",
    ]
    if tags := _tag_predicate(sel):
        steps.append(f"filter(fn: (r) => {tags})")
    if query.services:
        steps.append(f"filter(fn: (r) => {_services_predicate(query.services)})")
    columns = _string_list(sel.group_by)
    if sel.aggregate is Aggregate.SUM:
        steps += [f"group(columns: {columns})", "sum()"]
    elif sel.aggregate in (Aggregate.MIN, Aggregate.MAX):
        # min()/max() keep the whole row; the group's extreme is the extreme of its series.
        steps += [f"group(columns: {columns})", f"{sel.aggregate.value}()"]
    else:  # LAST, NEWEST: the reader takes the value, or for NEWEST the row's _time
        steps += ["last()", f"group(columns: {columns})", 'sort(columns: ["_time"])', "last()"]
    steps.append(f"yield(name: {flux_string(sel.name)})")
    return steps[0] + "\n" + "\n".join(_INDENT + step for step in steps[1:])


def _series_predicate(sel: SeriesSelect) -> str:
    measurement, field = flux_string(sel.measurement), flux_string(sel.field)
    return f"r._measurement == {measurement} and r._field == {field}"


def _tag_predicate(sel: SeriesSelect) -> str:
    terms = [_any_of(record_member("scope"), sel.scopes)] if sel.scopes else []
    terms += [f"{record_member(tag)} == {flux_string(value)}" for tag, value in sel.tag_equals]
    terms += [f"not exists {record_member(tag)}" for tag in sel.tags_absent]
    return " and ".join(terms)


def _any_of(member: str, values: tuple[str, ...]) -> str:
    if len(values) == 1:
        return f"{member} == {flux_string(values[0])}"
    return "(" + " or ".join(f"{member} == {flux_string(v)}" for v in values) + ")"


def _services_predicate(services: tuple[ServiceRef, ...]) -> str:
    return " or ".join(_service_match(ref) for ref in services)


def _service_match(ref: ServiceRef) -> str:
    namespace = record_member("namespace")
    if ref.namespace:
        ns = f"{namespace} == {flux_string(ref.namespace)}"
    else:
        # The model keys a service without namespace as ""; such series have no tag.
        ns = f"not exists {namespace}"
    return f"({ns} and {record_member('service')} == {flux_string(ref.service)})"


def _string_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(flux_string(v) for v in values) + "]"
