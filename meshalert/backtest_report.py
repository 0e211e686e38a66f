"""A self-contained HTML report of a backtest: per alerting (class, service), the observed
series, the threshold and the firing intervals, drawn as inline SVG (no scripts, no assets)."""

from __future__ import annotations

from datetime import UTC, datetime

from meshalert.backtest import BacktestResult, SeriesTrace
from meshalert.safe_text import html_text

WIDTH, HEIGHT, PAD = 900, 180, 40


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _svg(trace: SeriesTrace, since_ms: int, until_ms: int) -> str:
    values = [s.value for s in trace.samples if s.value is not None]
    top = max([*values, trace.threshold or 0.0, 1e-9]) * 1.1
    span = max(until_ms - since_ms, 1)

    def x(ms: int) -> float:
        return PAD + (ms - since_ms) / span * (WIDTH - 2 * PAD)

    def y(v: float) -> float:
        return HEIGHT - PAD / 2 - v / top * (HEIGHT - PAD)

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">']
    for start, end in trace.firing_intervals:
        x0, x1 = x(start), x(end if end is not None else until_ms)
        parts.append(
            f'<rect x="{x0:.1f}" y="0" width="{max(x1 - x0, 1):.1f}" height="{HEIGHT}" '
            'fill="#f8d7da"><title>firing</title></rect>'
        )
    points = " ".join(
        f"{x(s.cycle_ms):.1f},{y(s.value):.1f}" for s in trace.samples if s.value is not None
    )
    if points:
        parts.append(
            f'<polyline fill="none" stroke="#1f4e79" stroke-width="1.5" points="{points}"/>'
        )
    if trace.threshold is not None:
        ty = y(trace.threshold)
        parts.append(
            f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{ty:.1f}" y2="{ty:.1f}" '
            'stroke="#c0392b" stroke-dasharray="6 4"/>'
            f'<text x="{WIDTH - PAD}" y="{ty - 4:.1f}" text-anchor="end" font-size="11">'
            f"threshold {trace.threshold:g}</text>"
        )
    parts.append(
        f'<text x="{PAD}" y="{HEIGHT - 4}" font-size="11">{_iso(since_ms)}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 4}" font-size="11" text-anchor="end">'
        f'{_iso(until_ms)}</text><text x="4" y="14" font-size="11">{top / 1.1:.3g}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


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
        f"{_svg(t, result.since_ms, result.until_ms)}"
        for t in alerting
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>meshalert backtest</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;"
        "text-align:left}</style></head><body>"
        f"<h1>meshalert backtest</h1><p>{_iso(result.since_ms)} to {_iso(result.until_ms)}, "
        f"{result.cycles} cycles, {len(result.notifications)} notifications, "
        f"{len(alerting)} alerting series.</p>"
        "<table><tr><th>class</th><th>service</th><th>firing intervals</th>"
        f"<th>notifications</th><th>threshold source</th></tr>{rows}</table>{sections}"
        "</body></html>"
    )
