"""The status page as one HTML document (pure: a snapshot in, text out).

Server-rendered with inline CSS and inline SVG charts: no script, no external asset, so it
works offline and under a ``default-src 'none'`` content security policy. Service names,
hosts, queries and every other text from the wire are HTML-escaped where they are placed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from meshalert.charts import MILLISECONDS, PERCENT, Chart, Unit, render_svg
from meshalert.durations import format_duration_ms
from meshalert.safe_text import html_text as escape  # control characters too
from meshalert.signals import SIGNAL_TITLES, SIGNAL_UNITS
from meshalert.state.protocols import HistoryEntry
from meshalert.statuspage.model import AlertView, SignalSeries, StatusSnapshot
from meshalert.suppression import Silence

TITLES = SIGNAL_TITLES
UNITS = SIGNAL_UNITS

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;
background:#f4f5f7}
header{background:#1f2a37;color:#fff;padding:12px 24px}
header h1{margin:0;font-size:20px}header p{margin:4px 0 0;font-size:13px;color:#cbd5e1}
main{max-width:1280px;margin:0 auto;padding:12px 24px 40px}
h2{font-size:17px;margin:24px 0 8px}
.summary{display:flex;gap:12px;flex-wrap:wrap;margin-top:12px}
.count{background:#fff;border-radius:6px;padding:8px 14px;border-left:5px solid #9ca3af;
min-width:110px}
.count b{display:block;font-size:24px}.count span{font-size:12px;color:#555}
.count.firing{border-color:#c0392b}.count.pending{border-color:#e6a23c}
.count.resolved{border-color:#2e7d32}.count.ok{border-color:#9ca3af}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}
th{background:#eef0f3;font-weight:600}
.state{font-weight:700;text-transform:uppercase;font-size:12px}
.state.firing{color:#c0392b}.state.pending{color:#b7791f}.state.ok{color:#2e7d32}
.alert{background:#fff;border-radius:6px;margin:8px 0;padding:10px 14px;
border-left:5px solid #c0392b}
.alert.pending{border-color:#e6a23c}
.alert h3{margin:0 0 6px;font-size:15px;word-break:break-all}
.alert dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0;
font-size:13px}
.alert dt{color:#555}.alert dd{margin:0;word-break:break-all}
pre{white-space:pre-wrap;word-break:break-all;background:#f6f8fa;padding:6px;margin:4px 0;
font-size:12px}
details summary{cursor:pointer;color:#1f4e79;font-size:13px}
.service{background:#fff;border-radius:6px;margin:10px 0;padding:8px 12px}
.service h3{margin:0 0 4px;font-size:15px;word-break:break-all}
.charts{display:grid;grid-template-columns:repeat(4,1fr);gap:8px}
.charts svg{width:100%;height:auto}
@media (max-width:900px){.charts{grid-template-columns:repeat(2,1fr)}}
.problems{background:#fdecea;border:1px solid #f5c6cb;padding:8px 12px;border-radius:6px}
.muted{color:#666;font-size:13px}
code{font-size:12px}
table.narrow{width:auto;min-width:320px}
"""


def iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def ago(ms: int | None, now_ms: int) -> str:
    if ms is None:
        return "-"
    seconds = max(0, (now_ms - ms) // 1000)
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m ago"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h ago"


def threshold_unit(name: str) -> Unit:
    """The unit of a threshold (and of the observed value shown against it) by its name."""
    if name.endswith("_ms"):
        return MILLISECONDS
    if any(part in name for part in ("rate", "ratio", "recover_below", "baseline")):
        return PERCENT
    return Unit("")


def _num(value: Any, unit: Unit) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else escape(str(value))
    return escape(unit.format(float(value)))


def _e(value: object) -> str:
    return escape(str(value))


def _evidence(evidence: Mapping[str, Any] | None) -> str:
    if evidence is None:
        return '<dt>evidence</dt><dd class="muted">older than the stored history</dd>'
    detail = evidence.get("detail")
    rows = [
        f"<dt>window</dt><dd>{_e(evidence.get('window', '-'))}</dd>",
        f"<dt>samples</dt><dd>{_num(evidence.get('samples'), Unit(''))}</dd>",
    ]
    if isinstance(detail, Mapping) and detail:
        items = ", ".join(
            f"{_e(k)}={_num(v, Unit('')) if not isinstance(v, str) else _e(v)}"
            for k, v in detail.items()
        )
        rows.append(f'<dt>detail</dt><dd class="detail">{items}</dd>')
    query = evidence.get("query")
    replay = evidence.get("replay")
    extra = ""
    if query:
        extra += f"<details><summary>query</summary><pre>{_e(query)}</pre></details>"
    if replay:
        extra += f"<details><summary>replay</summary><pre>{_e(replay)}</pre></details>"
    if extra:
        rows.append(f"<dt></dt><dd>{extra}</dd>")
    return "".join(rows)


def _alert(view: AlertView, now_ms: int) -> str:
    record = view.record
    evidence = view.evidence or {}
    threshold = (
        evidence.get("threshold") if isinstance(evidence.get("threshold"), Mapping) else None
    )
    if threshold is None and record.threshold is not None:
        threshold = {
            "name": record.threshold.name,
            "value": record.threshold.value,
            "source": record.threshold.source,
        }
    name = str(threshold.get("name", "")) if threshold else ""
    unit = threshold_unit(name)
    observed = evidence.get("observed", record.last_value) if evidence else record.last_value
    state = record.state.value
    threshold_text = (
        f"{_e(name)} {_num(threshold.get('value'), unit)}" if threshold is not None else "-"
    )
    source = _e(threshold.get("source", "-")) if threshold is not None else "-"
    return (
        f'<article class="alert {state}" data-class="{_e(record.alert_class.value)}">'
        f'<h3><span class="state {state}">{state}</span> {_e(record.alert_class.value)} '
        f"&middot; {_e(record.service)}</h3><dl>"
        f"<dt>since</dt><dd>{iso(record.since_ms)} ({ago(record.since_ms, now_ms)})</dd>"
        f'<dt>observed</dt><dd class="observed">{_num(observed, unit)}'
        f" (last evaluated: {_num(record.last_value, unit)} at "
        f"{iso(record.last_evaluated_ms)})</dd>"
        f'<dt>threshold</dt><dd class="threshold">{threshold_text}</dd>'
        f'<dt>source</dt><dd class="source">{source}</dd>'
        f"{_evidence(view.evidence)}</dl></article>"
    )


def _record_unit(view: AlertView) -> Unit:
    threshold = view.record.threshold
    return threshold_unit(threshold.name if threshold is not None else "")


def _resolved(views: Sequence[AlertView], now_ms: int) -> str:
    if not views:
        return '<p class="muted">none in the last hour</p>'
    rows = "".join(
        f"<tr><td>{_e(v.record.alert_class.value)}</td><td>{_e(v.record.service)}</td>"
        f"<td>{iso(v.record.last_resolved_ms)} ({ago(v.record.last_resolved_ms, now_ms)})</td>"
        f"<td>{_num(v.record.last_value, _record_unit(v))}</td></tr>"
        for v in views
    )
    return (
        "<table><tr><th>class</th><th>service</th><th>resolved</th><th>last value</th></tr>"
        f"{rows}</table>"
    )


def _history(entries: Sequence[HistoryEntry]) -> str:
    if not entries:
        return '<p class="muted">no transitions in the last day</p>'
    rows = []
    for e in entries:
        threshold = e.evidence.get("threshold")
        name = str(threshold.get("name", "")) if isinstance(threshold, Mapping) else ""
        unit = threshold_unit(name)
        value = threshold.get("value") if isinstance(threshold, Mapping) else None
        rows.append(
            f"<tr><td>{iso(e.at_ms)}</td><td>{_e(e.alert_class.value)}</td>"
            f"<td>{_e(e.service)}</td><td><span class='state {e.from_state.value}'>"
            f"{e.from_state.value}</span> &rarr; <span class='state {e.to_state.value}'>"
            f"{e.to_state.value}</span>{_held(e)}</td>"
            f"<td>{_num(e.evidence.get('observed'), unit)}</td>"
            f"<td>{_e(name)} {_num(value, unit) if value is not None else ''}</td></tr>"
        )
    return (
        "<table><tr><th>at</th><th>class</th><th>service</th><th>transition</th>"
        f"<th>observed</th><th>threshold</th></tr>{''.join(rows)}</table>"
    )


def _held(entry: HistoryEntry) -> str:
    """Why the transition's notification was held back (meshalert.suppression), if it was."""
    reason = entry.evidence.get("suppressed")
    if not isinstance(reason, str) or not reason:
        return ""
    return f' <span class="muted held">({_e(reason)})</span>'


def _silences(silences: Sequence[Silence], now_ms: int) -> str:
    if not silences:
        return '<p class="muted">none</p>'
    rows = "".join(
        f"<tr><td>{_e(s.id)}</td><td>{_e(s.service)}</td>"
        f"<td>{_e(s.alert_class.value if s.alert_class else 'every class')}</td>"
        f"<td>{'active' if s.active(now_ms) else 'scheduled'}</td>"
        f"<td>{iso(s.start_ms)}</td><td>{iso(s.ends_ms)}</td>"
        f"<td>{_e(s.author)}</td><td>{_e(s.reason)}</td></tr>"
        for s in silences
    )
    return (
        "<table><tr><th>id</th><th>service</th><th>class</th><th>status</th><th>from</th>"
        f"<th>until</th><th>by</th><th>reason</th></tr>{rows}</table>"
    )


def signal_chart(series: SignalSeries, *, now_ms: int, span_ms: int, step_ms: int) -> str:
    return render_svg(
        Chart(
            points=series.points,
            unit=UNITS[series.alert_class],
            title=TITLES[series.alert_class]
            + (f" p{series.percentile:g}" if series.percentile is not None else ""),
            threshold=series.threshold,
            firing=series.firing,
            x_range=(now_ms - span_ms, now_ms),
            max_gap_ms=step_ms * 3 // 2,
            width=320,
            height=160,
            y_ticks=5,
            x_ticks=4,
        )
    )


def _signals(snapshot: StatusSnapshot) -> str:
    if not snapshot.signals:
        return '<p class="muted">no services evaluated yet</p>'
    sections = []
    now, span = snapshot.now_ms, snapshot.span_ms
    for service, per_class in snapshot.signals.items():
        charts = "".join(
            f'<figure class="signal" data-class="{_e(cls.value)}" style="margin:0">'
            f"{signal_chart(series, now_ms=now, span_ms=span, step_ms=snapshot.step_ms)}"
            "</figure>"
            for cls, series in per_class.items()
        )
        aliases = sorted({s.service for s in per_class.values()} - {service})
        also = (
            f' <span class="muted">(and {", ".join(_e(a) for a in aliases)} for endpoints)</span>'
            if aliases
            else ""
        )
        sections.append(
            f'<section class="service" data-service="{_e(service)}"><h3>{_e(service)}{also}</h3>'
            f'<div class="charts">{charts}</div></section>'
        )
    hidden = snapshot.services_total - len(snapshot.signals)
    more = (
        f'<p class="muted">{hidden} more services with every alert OK are not charted.</p>'
        if hidden > 0
        else ""
    )
    return "".join(sections) + more


def render_page(snapshot: StatusSnapshot, *, refresh_s: int = 30) -> str:
    now = snapshot.now_ms
    ok_total = sum(snapshot.ok_counts.values())
    ok_rows = "".join(
        f"<tr><td>{_e(cls.value)}</td><td>{count}</td></tr>"
        for cls, count in snapshot.ok_counts.items()
    )
    problems = (
        '<div class="problems">' + "".join(f"<p>{_e(p)}</p>" for p in snapshot.problems) + "</div>"
        if snapshot.problems
        else ""
    )
    firing = "".join(_alert(v, now) for v in snapshot.firing) or '<p class="muted">none</p>'
    pending = "".join(_alert(v, now) for v in snapshot.pending) or '<p class="muted">none</p>'
    sources = ", ".join(_e(s) for s in snapshot.rules_sources) or "-"
    minutes = snapshot.span_ms // 60_000
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{int(refresh_s)}'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>meshalert status ({len(snapshot.firing)} firing)</title>"
        f"<style>{CSS}</style></head><body>"
        "<header><h1>meshalert status</h1>"
        f"<p>as of {iso(now)} &middot; store {_e(snapshot.store or '-')} &middot; "
        f"rules from {sources}</p></header><main>"
        f"{problems}"
        '<div class="summary">'
        f'<div class="count firing"><b>{len(snapshot.firing)}</b><span>firing</span></div>'
        f'<div class="count pending"><b>{len(snapshot.pending)}</b><span>pending</span></div>'
        f'<div class="count resolved"><b>{len(snapshot.resolved)}</b>'
        f"<span>resolved in the last {minutes}m</span></div>"
        f'<div class="count ok"><b>{ok_total}</b><span>ok</span></div></div>'
        f'<h2 id="firing">Firing</h2>{firing}'
        f'<h2 id="pending">Pending</h2>{pending}'
        f'<h2 id="silences">Silences</h2>{_silences(snapshot.silences, now)}'
        f'<h2 id="resolved">Resolved in the last {minutes}m</h2>'
        f"{_resolved(snapshot.resolved, now)}"
        '<h2 id="ok">OK by class</h2><table class="narrow">'
        f"<tr><th>class</th><th>alerts ok</th></tr>"
        f"{ok_rows}</table>"
        f'<h2 id="signals">Signals over the last {minutes}m</h2>'
        f'<p class="muted">a point every {format_duration_ms(snapshot.step_ms)}: the value '
        "the engine computes at that time (its window ending then); times in UTC; dashed line: "
        "threshold; shaded: firing; breaks: no data.</p>"
        f"{_signals(snapshot)}"
        f'<h2 id="history">Recent transitions</h2>{_history(snapshot.history)}'
        "</main></body></html>"
    )


def render_starting() -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='refresh' content='5'><title>meshalert status</title></head>"
        "<body><p>meshalert is reading its state; this page refreshes in 5 seconds.</p>"
        "</body></html>"
    )
