"""The page's HTML from a snapshot: what it shows, and that names from the wire stay text."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.alerts.model import AlertRecord, AlertState, ThresholdInForce
from meshalert.state.protocols import HistoryEntry
from meshalert.statuspage.model import AlertView, SignalSeries, StatusSnapshot
from meshalert.statuspage.render import render_page, threshold_unit

T0 = 1_767_225_600_000
MIN = 60_000
NOW = T0 + 60 * MIN

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "'><svg onload=alert(3)>",
    "</title><style>body{display:none}</style>",
    "a&b=<c>",
]


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Collect:
    parser = _Collect()
    parser.feed(html)
    parser.close()
    return parser


def _evidence(service: str, observed: float, name: str, value: float) -> dict[str, object]:
    return {
        "alert_class": "latency",
        "service": service,
        "observed": observed,
        "threshold": {"name": name, "value": value, "source": f"file:/etc/{service}.yaml"},
        "window": "5m",
        "query": f"SELECT * FROM x WHERE service = '{service}'",
        "samples": 4700.0,
        "detail": {"percentile": 99.0, "host": service},
        "previous_state": "pending",
        "replay": f"meshalert backtest --service '{service}'",
    }


def _snapshot(names: list[str]) -> StatusSnapshot:
    firing = tuple(
        AlertView(
            AlertRecord(
                AlertClass.LATENCY,
                name,
                AlertState.FIRING,
                T0 + 40 * MIN,
                last_value=812.5,
                last_evaluated_ms=NOW,
                threshold=ThresholdInForce("latency.above_ms", 500, f"file:/etc/{name}.yaml"),
            ),
            _evidence(name, 743.0, "latency.above_ms", 500),
        )
        for name in names
    )
    history = tuple(
        HistoryEntry(
            T0 + 40 * MIN,
            AlertClass.LATENCY,
            name,
            AlertState.PENDING,
            AlertState.FIRING,
            _evidence(name, 743.0, "latency.above_ms", 500),
        )
        for name in names
    )
    points = tuple((T0 + i * MIN, 100.0 + i * 10 if i != 30 else None) for i in range(61))
    signals = {
        name: {
            cls: SignalSeries(cls, name, points, 500.0, "x", ((T0 + 40 * MIN, None),))
            for cls in SERVICE_CLASSES
        }
        for name in names
    }
    return StatusSnapshot(
        now_ms=NOW,
        span_ms=60 * MIN,
        step_ms=MIN,
        firing=firing,
        pending=(),
        resolved=(),
        ok_counts=dict.fromkeys(AlertClass, 3),
        history=history,
        signals=signals,
        services_total=len(names) + 2,
        store="sqlite:///<meshalert>.db",
        rules_sources=("default", "file:/<rules>.yaml"),
        problems=("signals could not be read: <marquee>boom</marquee>",),
    )


def test_hostile_names_stay_text_everywhere_they_are_shown() -> None:
    html = render_page(_snapshot(HOSTILE))
    parsed = _parse(html)
    tags = {tag for tag, _ in parsed.tags}
    assert "script" not in tags and "img" not in tags and "marquee" not in tags
    assert [tag for tag, _ in parsed.tags].count("style") == 1  # only the page's own
    # the page's, and per chart its own and its firing band's
    assert [tag for tag, _ in parsed.tags].count("title") == 1 + 2 * 4 * len(HOSTILE)
    for _, attrs in parsed.tags:
        assert not [k for k, _ in attrs if k.startswith("on")]
    text = "".join(parsed.text)
    for name in HOSTILE:
        # heading, evidence host, query, replay, source, history row and chart section
        assert text.count(name) >= 6, name
    assert "<marquee>boom</marquee>" in text
    data_services = [v for tag, attrs in parsed.tags for k, v in attrs if k == "data-service"]
    assert data_services == HOSTILE


def test_the_page_shows_states_evidence_sources_signals_and_history() -> None:
    html = render_page(_snapshot(["production/checkout"]))
    text = " ".join(_parse(html).text)
    assert "firing latency · production/checkout" in " ".join(text.split())
    assert "743 ms" in text and "812 ms" in text  # observed (evidence) and last evaluated
    assert "latency.above_ms 500 ms" in text
    assert "file:/etc/production/checkout.yaml" in text
    assert "window" in text and "5m" in text and "percentile=99" in text
    assert "pending → firing" in " ".join(text.split())
    assert html.count("<svg") == 4
    assert html.count('class="series"') == 8  # one break (no data at minute 30) per chart
    assert html.count('class="firing"') == 4
    assert "2 more services with every alert OK are not charted" in text
    assert "resolved in the last 60m" in text


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("latency.above_ms", " ms"),
        ("latency.recover_below_ms", " ms"),
        ("failures.rate_above", "%"),
        ("failures.recover_below", "%"),
        ("retries.ratio_above", "%"),
        ("retries.anomaly_factor x baseline", "%"),
        ("endpoints.available_ratio_below", "%"),
        ("endpoints.available_below", ""),
        ("retries.exhausted_above", ""),
    ],
)
def test_threshold_units_follow_the_threshold_name(name: str, suffix: str) -> None:
    assert threshold_unit(name).suffix == suffix


def test_silences_are_shown_and_their_text_stays_text() -> None:
    from dataclasses import replace

    from meshalert.suppression import Silence

    active = Silence("ab12", HOSTILE[0], None, NOW - MIN, NOW + MIN, HOSTILE[1], HOSTILE[2], T0)
    scheduled = Silence(
        "cd34", "staging/*", AlertClass.LATENCY, NOW + MIN, NOW + 9 * MIN, "x", "b", T0
    )
    held = HistoryEntry(
        NOW - MIN,
        AlertClass.LATENCY,
        "production/checkout",
        AlertState.PENDING,
        AlertState.FIRING,
        {
            **_evidence("production/checkout", 743.0, "latency.above_ms", 500),
            "suppressed": "silenced by ab12: deploy",
        },
    )
    snapshot = replace(_snapshot([]), silences=(active, scheduled), history=(held,))
    parsed = _parse(render_page(snapshot))
    assert "script" not in {tag for tag, _ in parsed.tags}
    assert not [k for _, attrs in parsed.tags for k, _ in attrs if k.startswith("on")]
    text = " ".join(parsed.text)
    assert "Silences" in text
    for shown in ("ab12", HOSTILE[0], HOSTILE[1], HOSTILE[2], "every class", "active"):
        assert shown in text
    assert "cd34" in text and "scheduled" in text and "staging/*" in text
    assert "(silenced by ab12: deploy)" in text


def test_no_silences_says_none() -> None:
    text = " ".join(_parse(render_page(_snapshot([]))).text)
    assert "Silences none" in " ".join(text.split())
