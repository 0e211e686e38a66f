"""The backtest HTML report draws each alerting series with the shared chart module."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import (
    AlertState,
    Evidence,
    Notification,
    NotificationKind,
    Severity,
    ThresholdInForce,
)
from meshalert.backtest import BacktestResult, SeriesTrace
from meshalert.backtest_report import chart, render_html

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_767_225_600_000
MIN = 60_000


def _note(kind: NotificationKind, cls: AlertClass, service: str, name: str, value: float):
    evidence = Evidence(
        cls,
        service,
        1.0,
        ThresholdInForce(name, value, "flag:--rules r.yaml"),
        "2m",
        "q",
        10.0,
        {},
        AlertState.PENDING,
        "",
    )
    return Notification(kind, cls, service, Severity.CRITICAL, T0, T0, evidence)


def _trace(cls: AlertClass, service: str, name: str, value: float) -> SeriesTrace:
    trace = SeriesTrace(cls, service)
    for i in range(30):
        # nothing came for minutes 10-13; minutes 15-20 fire
        v = None if 10 <= i < 14 else (900.0 if 15 <= i < 21 else 50.0 + i)
        state = AlertState.FIRING if 15 <= i < 21 else AlertState.OK
        trace.add(T0 + (5 + i) * MIN, v, state)
    trace.notifications += [
        _note(NotificationKind.FIRING, cls, service, name, value),
        _note(NotificationKind.RESOLVED, cls, service, name.replace("above", "recover"), 1),
    ]
    trace.threshold, trace.threshold_source = 1, "flag:--rules r.yaml"  # as the RESOLVED left it
    return trace


def test_each_series_has_axes_gaps_the_fired_threshold_and_its_firing_interval() -> None:
    svg = chart(_trace(AlertClass.LATENCY, "checkout", "latency.above_ms", 500.0), MIN)
    root = ET.fromstring(svg)
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "threshold 500 ms" in texts  # the threshold it fired on, not the recovery one
    assert [t for t in texts if t.endswith(" ms")][:2] == ["0 ms", "250 ms"]
    assert any(t.endswith("time in UTC") for t in texts)
    assert len(list(root.iter(f"{SVG}polyline"))) == 2  # broken where nothing came
    (firing,) = [r for r in root.iter(f"{SVG}rect") if r.attrib.get("class") == "firing"]
    xticks = [t for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "xtick"]
    # the time axis is fitted to the data (00:05..00:34), not to the replayed span
    assert [t.text for t in xticks] == ["00:05", "00:10", "00:15", "00:20", "00:25", "00:30"]
    assert float(xticks[0].attrib["x"]) == 58  # the first sample at the plot's left edge
    # shaded from the first FIRING sample (00:20) to the first OK one (00:26)
    minute = (900 - 58 - 12) / 29
    assert float(firing.attrib["x"]) == pytest.approx(58 + 15 * minute, abs=0.1)
    assert float(firing.attrib["width"]) == pytest.approx(6 * minute, abs=0.1)


def test_a_threshold_in_another_unit_is_named_not_drawn() -> None:
    trace = _trace(AlertClass.RETRIES, "catalog", "retries.exhausted_above", 0.0)
    html = chart(trace, MIN)
    assert 'class="threshold"' not in html
    assert "fired on retries.exhausted_above 0" in html


def test_the_report_escapes_service_names() -> None:
    result = BacktestResult(T0, T0 + 40 * MIN, MIN, cycles=40)
    hostile = "<script>alert(1)</script>"
    trace = _trace(AlertClass.LATENCY, hostile, "latency.above_ms", 500.0)
    result.traces[(AlertClass.LATENCY, hostile)] = trace
    html = render_html(result)
    assert hostile not in html and "&lt;script&gt;" in html
    assert html.count("<svg") == 1
