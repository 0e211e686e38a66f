"""Small time-series charts as inline SVG text (pure: values in, markup out).

Shared by the status page of ``meshalert run`` and the ``meshalert backtest`` HTML report,
so both draw a signal the same way: a y axis with units and "nice" ticks (1, 2, 2.5 or 5 times
a power of ten), a UTC time axis with round ticks, the x-range fitted to the data unless the
caller fixes it, the polyline broken wherever no data came (a missing value, or a step longer
than ``max_gap_ms``), the threshold as a dashed line with its value, and firing intervals
shaded. No scripts, no external assets: the markup works offline and inside any page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from meshalert.safe_text import html_text as escape  # control characters too

Point = tuple[int, float | None]
"""(time in epoch ms, value or None when no data came for that time)."""
Interval = tuple[int, int | None]
"""(start ms, end ms or None while still open at the end of the chart)."""


@dataclass(frozen=True)
class Unit:
    """How values are labelled: ``shown = value * scale`` followed by ``suffix``."""

    suffix: str
    scale: float = 1.0
    name: str = ""
    """Axis title, e.g. ``"p99 latency (ms)"``; empty for none."""

    def format(self, value: float, step: float | None = None) -> str:
        shown_step = None if step is None else step * self.scale
        return f"{format_number(value * self.scale, shown_step)}{self.suffix}"


MILLISECONDS = Unit(" ms", name="ms")
PERCENT = Unit("%", 100.0, name="%")
COUNT = Unit("", name="count")


def format_number(value: float, step: float | None = None) -> str:
    """``value`` with as many decimals as ``step`` needs (ticks 0.05 apart read 0.05, 0.10),
    or with 3 significant digits when there is no step."""
    if step is None or step <= 0 or not math.isfinite(step):
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    if step < 1e-6 or abs(value) >= 1e15:  # too many digits to write out: significant ones
        if value == 0:
            return "0"
        digits = math.floor(math.log10(abs(value))) - math.floor(math.log10(step)) + 2
        return f"{value:.{min(max(digits, 1), 17)}g}"
    decimals = next((d for d in range(16) if math.isclose(round(step, d), step)), 15)
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text


_NICE = (1.0, 2.0, 2.5, 5.0, 10.0)


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Evenly spaced ticks 1, 2, 2.5 or 5 x 10^k apart whose first is <= ``lo`` and last >= ``hi``
    (to a billionth of a step: 0.1 + 0.2 does not earn a tick of its own),
    at most ``max_ticks`` of them. At least 3 may be asked for: a range across zero needs a
    tick below, at and above it. A range without spread is drawn from zero to the value."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"tick range must be finite, got {lo!r}..{hi!r}")
    if max_ticks < 3:
        raise ValueError(f"max_ticks must be at least 3, got {max_ticks}")
    if lo > hi:
        lo, hi = hi, lo
    if hi - lo <= max(abs(lo), abs(hi)) * 1e-9 or hi - lo < 1e-300:
        # No spread to show (or less than float precision can space ticks over): span from
        # zero to the value instead, the honest axis for the non-negative signals charted.
        if lo > 0:
            lo = 0.0
        elif hi < 0:
            hi = 0.0
        if hi - lo < 1e-300:  # zero itself (or a subnormal): a unit axis
            lo, hi = min(lo, 0.0), max(hi, 0.0) + 1.0
    raw = (hi - lo) / (max_ticks - 1)
    exponent = math.floor(math.log10(raw))
    while True:
        for multiple in _NICE:
            step = multiple * 10.0**exponent
            first = math.floor(lo / step + 1e-9)
            last = math.ceil(hi / step - 1e-9)
            if last - first + 1 <= max_ticks:
                # Integer multiples of the step, rounded to the step's decimals, so ticks read
                # 0.3 and not 0.30000000000000004 (and compare equal to what they print).
                digits = max(0, -math.floor(math.log10(step)) + 1)
                return [round(i * step, digits) for i in range(first, last + 1)]
        exponent += 1


_TIME_STEPS_MS = tuple(
    s * 1000
    for s in (
        1, 2, 5, 10, 15, 30,
        60, 120, 300, 600, 900, 1800,
        3600, 7200, 10800, 21600, 43200,
        86400, 172800, 604800, 2592000, 31536000,
    )
)  # fmt: skip


def time_ticks(lo_ms: int, hi_ms: int, max_ticks: int = 6) -> tuple[list[int], int]:
    """Round UTC times inside ``[lo_ms, hi_ms]`` (a minute, 5 minutes, an hour, ...) and the
    step between them: at most ``max_ticks`` ticks, at least one when the range allows."""
    if hi_ms < lo_ms:
        lo_ms, hi_ms = hi_ms, lo_ms
    step = _TIME_STEPS_MS[-1]
    for candidate in _TIME_STEPS_MS:
        if (hi_ms // candidate) - (-(-lo_ms // candidate)) + 1 <= max_ticks:
            step = candidate
            break
    first = -(-lo_ms // step) * step
    return list(range(first, hi_ms + 1, step)), step


def time_label(ms: int, step_ms: int, span_ms: int) -> str:
    at = datetime.fromtimestamp(ms / 1000, UTC)
    fmt = "%H:%M:%S" if step_ms < 60_000 else "%H:%M"
    if span_ms > 86_400_000:
        fmt = "%m-%d" if step_ms >= 86_400_000 else "%m-%d %H:%M"
    return at.strftime(fmt)


def segments(
    points: Sequence[Point], max_gap_ms: int | None = None
) -> list[list[tuple[int, float]]]:
    """Runs of consecutive points with values, in time order: a None value or a step longer
    than ``max_gap_ms`` ends a run (the chart shows a gap there, never a made-up line)."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    last_x: int | None = None
    for x, value in sorted(points, key=lambda p: p[0]):
        gap = max_gap_ms is not None and last_x is not None and x - last_x > max_gap_ms
        if value is None or not math.isfinite(value) or gap:
            if current:
                runs.append(current)
            current = []
        if value is not None and math.isfinite(value):
            current.append((x, value))
        last_x = x
    if current:
        runs.append(current)
    return runs


def fitted_x_range(
    points: Sequence[Point], firing: Sequence[Interval] = ()
) -> tuple[int, int] | None:
    """The time span of the points that have values (else of all points, else of the firing
    intervals); None when there is nothing at all."""
    valued = [x for x, v in points if v is not None and math.isfinite(v)]
    xs = valued or [x for x, _ in points] or [t for s, e in firing for t in (s, e) if t is not None]
    if not xs:
        return None
    return min(xs), max(xs)


@dataclass(frozen=True)
class Chart:
    points: Sequence[Point]
    unit: Unit
    title: str = ""
    threshold: float | None = None
    threshold_label: str = "threshold"
    firing: Sequence[Interval] = ()
    x_range: tuple[int, int] | None = None
    """Fixed time span (e.g. the last hour); None fits the span to the data."""
    max_gap_ms: int | None = None
    width: int = 900
    height: int = 200
    y_ticks: int = 5
    x_ticks: int = 7


# Margins in user units: room for the y tick labels on the left and time labels below.
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 12, 22, 24
_AXIS_TITLE_MIN_WIDTH = 500


@dataclass(frozen=True)
class _Frame:
    """Data coordinates -> SVG user units for one chart."""

    width: int
    height: int
    x_lo: int
    x_hi: int
    y_lo: float
    y_hi: float

    @property
    def plot_w(self) -> int:
        return self.width - _LEFT - _RIGHT

    @property
    def plot_h(self) -> int:
        return self.height - _TOP - _BOTTOM

    def x(self, ms: float) -> float:
        return _LEFT + (ms - self.x_lo) / (self.x_hi - self.x_lo) * self.plot_w

    def y(self, value: float) -> float:
        return _TOP + self.plot_h - (value - self.y_lo) / (self.y_hi - self.y_lo) * self.plot_h


def render_svg(chart: Chart) -> str:
    """The chart as one ``<svg>`` element; every text from data is escaped."""
    w, h = chart.width, chart.height
    title = escape(chart.title)
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" '
        f'width="{w}" height="{h}" role="img" aria-label="{title}" font-family="sans-serif" '
        f'font-size="11"><title>{title}</title>'
    ]
    if chart.title:
        parts.append(f'<text x="{_LEFT}" y="14" font-weight="bold">{title}</text>')
    x_range = chart.x_range or fitted_x_range(chart.points, chart.firing)
    if x_range is None:
        return "".join([*parts, _no_data(w, h), "</svg>"])
    x_lo, x_hi = x_range
    if x_hi <= x_lo:  # a single instant: give it a minute either side
        x_lo, x_hi = x_lo - 60_000, x_hi + 60_000
    runs = [
        shown
        for run in segments(chart.points, chart.max_gap_ms)
        if (shown := [(x, v) for x, v in run if x_lo <= x <= x_hi])
    ]
    values = [v for run in runs for _, v in run]
    lo = min([0.0, *values])
    hi = max([*values, *([chart.threshold] if chart.threshold is not None else []), lo])
    y_ticks = nice_ticks(lo, hi, chart.y_ticks)
    frame = _Frame(w, h, x_lo, x_hi, y_ticks[0], y_ticks[-1])
    parts.append(
        f'<rect class="plot" x="{_LEFT}" y="{_TOP}" width="{frame.plot_w}" '
        f'height="{frame.plot_h}" fill="#fff" stroke="#bbb"/>'
    )
    parts += _firing(frame, chart.firing)
    parts += _y_axis(frame, y_ticks, chart.unit)
    parts += _x_axis(frame, chart)
    parts += _series(frame, runs)
    if not values:
        parts.append(
            f'<text x="{_LEFT + frame.plot_w / 2:.1f}" y="{_TOP + frame.plot_h / 2:.1f}" '
            'text-anchor="middle" fill="#888">no data</text>'
        )
    if chart.threshold is not None:
        parts.append(_threshold(frame, chart.threshold, chart))
    parts.append("</svg>")
    return "".join(parts)


def _firing(frame: _Frame, firing: Sequence[Interval]) -> list[str]:
    out = []
    for start, end in firing:
        x0 = frame.x(max(start, frame.x_lo))
        x1 = frame.x(min(end if end is not None else frame.x_hi, frame.x_hi))
        if x1 < _LEFT or x0 > _LEFT + frame.plot_w or x1 < x0:
            continue
        out.append(
            f'<rect class="firing" x="{x0:.1f}" y="{_TOP}" width="{max(x1 - x0, 1.5):.1f}" '
            f'height="{frame.plot_h}" fill="#f5b7b1" fill-opacity="0.55">'
            "<title>firing</title></rect>"
        )
    return out


def _y_axis(frame: _Frame, ticks: Sequence[float], unit: Unit) -> list[str]:
    step = ticks[1] - ticks[0]
    out = []
    for tick in ticks:
        y = frame.y(tick)
        out.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + frame.plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#e3e3e3"/>'
            f'<text class="ytick" x="{_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#444">'
            f"{escape(unit.format(tick, step))}</text>"
        )
    return out


def _x_axis(frame: _Frame, chart: Chart) -> list[str]:
    ticks, step = time_ticks(frame.x_lo, frame.x_hi, chart.x_ticks)
    base = _TOP + frame.plot_h
    out = []
    for tick in ticks:
        x = frame.x(tick)
        # Labels at the plot's edges are anchored inward so they are never cut off.
        anchor = "end" if x > frame.width - _RIGHT - 16 else "start" if x < _LEFT + 16 else "middle"
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" stroke="#888"/>'
            f'<text class="xtick" x="{x:.1f}" y="{frame.height - 8}" text-anchor="{anchor}" '
            f'fill="#444">{time_label(tick, step, frame.x_hi - frame.x_lo)}</text>'
        )
    if frame.width >= _AXIS_TITLE_MIN_WIDTH:  # small charts: the tick labels carry the unit
        name = escape(chart.unit.name)
        out.append(
            f'<text class="axis-title" x="{frame.width - _RIGHT}" y="14" text-anchor="end" '
            f'fill="#666">{name}{" · " if name else ""}time in UTC</text>'
        )
    return out


def _series(frame: _Frame, runs: Sequence[Sequence[tuple[int, float]]]) -> list[str]:
    out = []
    for run in runs:
        if len(run) == 1:  # a lone value between gaps: a dot, or it would not show
            x, v = run[0]
            out.append(
                f'<circle class="point" cx="{frame.x(x):.1f}" cy="{frame.y(v):.1f}" r="2" '
                'fill="#1f4e79"/>'
            )
        else:
            coords = " ".join(f"{frame.x(x):.1f},{frame.y(v):.1f}" for x, v in run)
            out.append(
                f'<polyline class="series" fill="none" stroke="#1f4e79" stroke-width="1.5" '
                f'points="{coords}"/>'
            )
    return out


def _threshold(frame: _Frame, threshold: float, chart: Chart) -> str:
    y = frame.y(threshold)
    label = f"{chart.threshold_label} {chart.unit.format(threshold)}"
    # Above the line, unless that would run into the title: then below it.
    label_y = y - 4 if y - 4 > _TOP + 10 else y + 12
    return (
        f'<line class="threshold" x1="{_LEFT}" x2="{_LEFT + frame.plot_w}" y1="{y:.1f}" '
        f'y2="{y:.1f}" stroke="#c0392b" stroke-dasharray="6 4"/>'
        f'<text class="threshold-label" x="{_LEFT + frame.plot_w - 4}" y="{label_y:.1f}" '
        f'text-anchor="end" fill="#c0392b">{escape(label)}</text>'
    )


def _no_data(w: int, h: int) -> str:
    return (
        f'<rect x="{_LEFT}" y="{_TOP}" width="{w - _LEFT - _RIGHT}" '
        f'height="{h - _TOP - _BOTTOM}" fill="#fafafa" stroke="#ddd"/>'
        f'<text x="{w / 2:.0f}" y="{h / 2:.0f}" text-anchor="middle" fill="#888">no data</text>'
    )
