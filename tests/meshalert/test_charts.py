"""The shared SVG chart: tick generation, gaps, ranges and escaping."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshalert.charts import (
    MILLISECONDS,
    PERCENT,
    Chart,
    fitted_x_range,
    format_number,
    nice_ticks,
    render_svg,
    segments,
    time_label,
    time_ticks,
)

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


def _is_nice(step: float) -> bool:
    mantissa = step / 10 ** math.floor(math.log10(step))
    return any(math.isclose(mantissa, m, rel_tol=1e-9) for m in (1, 2, 2.5, 5, 10))


@given(lo=finite, hi=finite, max_ticks=st.integers(min_value=3, max_value=12))
def test_nice_ticks_cover_the_range_evenly_with_round_steps(
    lo: float, hi: float, max_ticks: int
) -> None:
    ticks = nice_ticks(lo, hi, max_ticks)
    assert 2 <= len(ticks) <= max_ticks
    assert ticks == sorted(ticks) and len(set(ticks)) == len(ticks)
    steps = [b - a for a, b in itertools.pairwise(ticks)]
    step = steps[0]
    # covered up to float noise (a billionth of a step is not a pixel)
    assert ticks[0] <= min(lo, hi) + step * 1e-9 and ticks[-1] >= max(lo, hi) - step * 1e-9
    assert all(math.isclose(s, step, rel_tol=1e-6) for s in steps)
    assert _is_nice(step)
    # Every tick is a whole multiple of the step, so labels read 0.3, not 0.30000000000000004.
    assert all(math.isclose(t / step, round(t / step), abs_tol=1e-6) for t in ticks)
    labels = [format_number(t, step) for t in ticks]
    assert len(set(labels)) == len(labels)


@given(value=finite, max_ticks=st.integers(min_value=3, max_value=12))
def test_a_flat_series_gets_an_axis_from_zero(value: float, max_ticks: int) -> None:
    ticks = nice_ticks(value, value, max_ticks)
    step = ticks[1] - ticks[0]
    assert step > 0
    assert ticks[0] <= min(0.0, value) + step * 1e-9
    assert ticks[-1] >= max(0.0, value) - step * 1e-9


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0, 0.237, [0.0, 0.05, 0.1, 0.15, 0.2, 0.25]),
        (0, 523, [0.0, 200.0, 400.0, 600.0]),
        (0, 1, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (-3, 0.7, [-3.0, -2.0, -1.0, 0.0, 1.0]),
    ],
)
def test_nice_ticks_examples(lo: float, hi: float, expected: list[float]) -> None:
    assert nice_ticks(lo, hi, 6) == expected


def test_nice_ticks_reject_non_finite_ranges() -> None:
    with pytest.raises(ValueError, match="finite"):
        nice_ticks(0, math.inf)
    with pytest.raises(ValueError, match="max_ticks"):
        nice_ticks(-1, 1, 2)


@given(
    lo=st.integers(min_value=T0 - 10**11, max_value=T0 + 10**11),
    span=st.integers(min_value=0, max_value=10**10),
    max_ticks=st.integers(min_value=2, max_value=10),
)
def test_time_ticks_are_round_times_inside_the_range(lo: int, span: int, max_ticks: int) -> None:
    ticks, step = time_ticks(lo, lo + span, max_ticks)
    assert len(ticks) <= max_ticks
    assert all(lo <= t <= lo + span for t in ticks)
    assert all(t % step == 0 for t in ticks)
    assert all(b - a == step for a, b in itertools.pairwise(ticks))
    if span >= step:
        assert ticks


def test_an_hour_gets_ticks_every_quarter_and_reads_as_utc_clock_times() -> None:
    ticks, step = time_ticks(T0 + 7 * MIN, T0 + 67 * MIN, 5)
    assert step == 15 * MIN
    assert [time_label(t, step, 60 * MIN) for t in ticks] == ["00:15", "00:30", "00:45", "01:00"]
    assert time_label(T0 + 86_400_000, 6 * 3_600_000, 3 * 86_400_000) == "01-02 00:00"


def test_segments_break_at_missing_values_and_long_steps() -> None:
    points = [
        (T0, 1.0),
        (T0 + MIN, 2.0),
        (T0 + 2 * MIN, None),
        (T0 + 3 * MIN, 3.0),
        (T0 + 4 * MIN, 4.0),
        (T0 + 9 * MIN, 5.0),  # nothing came for 5 minutes
        (T0 + 10 * MIN, math.nan),
    ]
    assert segments(points, max_gap_ms=90_000) == [
        [(T0, 1.0), (T0 + MIN, 2.0)],
        [(T0 + 3 * MIN, 3.0), (T0 + 4 * MIN, 4.0)],
        [(T0 + 9 * MIN, 5.0)],
    ]
    assert len(segments(points)) == 2  # without a gap limit only the missing values break


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=10**6), st.none() | st.floats(-1e6, 1e6)),
        max_size=40,
    )
)
def test_segments_keep_every_value_once_in_time_order(
    points: list[tuple[int, float | None]],
) -> None:
    runs = segments(points, max_gap_ms=1000)
    flat = [p for run in runs for p in run]
    assert sorted(flat) == sorted((x, v) for x, v in points if v is not None)
    assert [x for x, _ in flat] == sorted(x for x, _ in flat)
    assert all(b[0] - a[0] <= 1000 for run in runs for a, b in itertools.pairwise(run))


def test_the_x_range_fits_the_data_not_the_requested_span() -> None:
    points = [(T0, None), (T0 + 5 * MIN, 1.0), (T0 + 20 * MIN, 2.0), (T0 + 30 * MIN, None)]
    assert fitted_x_range(points) == (T0 + 5 * MIN, T0 + 20 * MIN)
    assert fitted_x_range([(T0, None), (T0 + MIN, None)]) == (T0, T0 + MIN)
    assert fitted_x_range([], [(T0, None)]) == (T0, T0)
    assert fitted_x_range([]) is None


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _polylines(root: ET.Element) -> list[list[tuple[float, float]]]:
    out = []
    for line in root.iter(f"{SVG}polyline"):
        pairs = [p.split(",") for p in line.attrib["points"].split()]
        out.append([(float(x), float(y)) for x, y in pairs])
    return out


def test_render_draws_axes_units_threshold_firing_and_gaps() -> None:
    points = [(T0 + i * MIN, None if 20 <= i < 25 else 100.0 + i) for i in range(61)]
    svg = render_svg(
        Chart(
            points,
            MILLISECONDS,
            title="latency",
            threshold=500,
            firing=[(T0 + 40 * MIN, T0 + 50 * MIN), (T0 + 55 * MIN, None)],
            max_gap_ms=90_000,
            width=600,
            height=200,
        )
    )
    root = _parse(svg)
    lines = _polylines(root)
    assert len(lines) == 2  # the 5 minutes without data break the line
    assert len(lines[0]) == 20 and len(lines[1]) == 36
    assert lines[0][-1][0] < lines[1][0][0]
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    y_labels = [t for t in texts if t.endswith(" ms")]
    assert y_labels[:4] == ["0 ms", "200 ms", "400 ms", "600 ms"]  # nice ticks, with the unit
    assert "threshold 500 ms" in texts
    assert {"00:00", "00:10", "00:20", "00:30", "00:40", "00:50", "01:00"} <= set(texts)
    firing = [r for r in root.iter(f"{SVG}rect") if r.attrib.get("class") == "firing"]
    assert len(firing) == 2
    # the open interval runs to the end of the plot
    right = float(firing[1].attrib["x"]) + float(firing[1].attrib["width"])
    plot = next(r for r in root.iter(f"{SVG}rect") if r.attrib.get("class") == "plot")
    assert right == pytest.approx(float(plot.attrib["x"]) + float(plot.attrib["width"]), abs=0.2)
    threshold = next(ln for ln in root.iter(f"{SVG}line") if ln.attrib.get("class") == "threshold")
    # 500 is above every value: the axis reaches it and the line sits above the series
    assert float(threshold.attrib["y1"]) < min(y for line in lines for _, y in line)


def test_the_axis_fits_the_data_span_and_values_above_the_threshold() -> None:
    points = [(T0 + 10 * MIN, 0.02), (T0 + 11 * MIN, 0.4), (T0 + 12 * MIN, 0.03)]
    root = _parse(render_svg(Chart(points, PERCENT, threshold=0.05)))
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "40%" in texts  # the axis reaches the peak (0.4 as a percentage)
    (line,) = _polylines(root)
    xs = [x for x, _ in line]
    assert xs[0] == pytest.approx(58) and xs[-1] == pytest.approx(900 - 12)  # fitted span


def test_a_fixed_range_keeps_empty_stretches_and_a_lone_point_is_visible() -> None:
    points = [(T0 + 30 * MIN, 5.0)]
    root = _parse(render_svg(Chart(points, MILLISECONDS, x_range=(T0, T0 + 60 * MIN))))
    assert not _polylines(root)
    (dot,) = root.iter(f"{SVG}circle")
    assert float(dot.attrib["cx"]) == pytest.approx(58 + (900 - 58 - 12) / 2)


def test_no_data_says_so() -> None:
    for chart in (
        Chart([], MILLISECONDS),
        Chart([(T0, None)], MILLISECONDS, x_range=(T0, T0 + MIN)),
    ):
        root = _parse(render_svg(chart))
        assert "no data" in ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_titles_are_escaped() -> None:
    hostile = '<script>alert("x")</script>&'
    svg = render_svg(Chart([(T0, 1.0), (T0 + MIN, 2.0)], MILLISECONDS, title=hostile))
    assert "<script>" not in svg
    root = _parse(svg)
    assert root.attrib["aria-label"] == hostile
    assert re.search(r"&lt;script&gt;alert\(&quot;x&quot;\)&lt;/script&gt;&amp;", svg)
