"""A self-contained HTML report of a backtest: per alerting (class, service), the observed
series, the threshold and the firing intervals, drawn by the shared chart module
(:mod:`meshalert.charts`, also the status page's) as inline SVG (no scripts, no assets)."""

from __future__ import annotations

from datetime import UTC, datetime

from meshalert.alerts.model import NotificationKind
from meshalert.backtest import BacktestResult, SeriesTrace
from meshalert.charts import Chart, render_svg
from meshalert.safe_text import html_text
from meshalert.signals import SIGNAL_THRESHOLDS, SIGNAL_TITLES, SIGNAL_UNITS


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _threshold(trace: SeriesTrace) -> tuple[str, float | None]:
    """The threshold the series fired on (a RESOLVED notification may carry the recovery
    threshold instead)."""
    for note in trace.notifications:
        if note.kind is NotificationKind.FIRING:
            return note.evidence.threshold.name, note.evidence.threshold.value
    return "", trace.threshold


def chart(trace: SeriesTrace, interval_ms: int) -> str:
    """The trace on the shared chart: the threshold is drawn when it is in the unit of the
    charted value (a retries alert that fired on an exhausted budget says so instead)."""
    name, value = _threshold(trace)
    on_axis = name == SIGNAL_THRESHOLDS[trace.alert_class]
    svg = render_svg(
        Chart(
            points=[(s.cycle_ms, s.value) for s in trace.samples],
            unit=SIGNAL_UNITS[trace.alert_class],
            title=f"{SIGNAL_TITLES[trace.alert_class]} · {trace.service}",
            threshold=value if on_axis else None,
            firing=trace.firing_intervals,
            max_gap_ms=interval_ms * 3 // 2,
            width=900,
            height=220,
        )
    )
    if on_axis or value is None:
        return svg
    return (
        f"{svg}<p class='note'>fired on {html_text(name)} {value:g} "
        "(another unit than the chart's value)</p>"
    )


def render_html(result: BacktestResult) -> str:
    alerting = result.alerting()
    rows = "".join(
        f"<tr><td>{html_text(t.alert_class.value)}</td><td>{html_text(t.service)}</td>"
        f"<td>{len(t.firing_intervals)}</td><td>{len(t.notifications)}</td>"
        f"<td>{html_text(t.threshold_source)}</td></tr>"
        for t in alerting
    )
    sections = "".join(
        f"<h2>{html_text(t.alert_class.value)} &middot; {html_text(t.service)}</h2>"
        f"{chart(t, result.interval_ms)}"
        for t in alerting
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>meshalert backtest</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;"
        "text-align:left}svg{max-width:100%;height:auto}.note{color:#666}</style></head><body>"
        f"<h1>meshalert backtest</h1><p>{_iso(result.since_ms)} to {_iso(result.until_ms)}, "
        f"{result.cycles} cycles, {len(result.notifications)} notifications, "
        f"{len(alerting)} alerting series.</p>"
        "<table><tr><th>class</th><th>service</th><th>firing intervals</th>"
        f"<th>notifications</th><th>threshold source</th></tr>{rows}</table>{sections}"
        "</body></html>"
    )
