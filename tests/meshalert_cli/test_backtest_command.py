"""``meshalert backtest`` over history written by the real ingest stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshalert.backends.sqlite.writer import SqliteWriter
from meshalert_cli.main import main
from tests.meshalert.scenario import T0_MS, Scenario, ingest
from tests.meshalert.test_engine_scenarios import INCIDENTS, SERVICES

RULES = """
defaults:
  latency:   {above_ms: 500, window: 2m, for: 1m}
  failures:  {rate_above: 0.05, window: 2m, for: 1m}
  endpoints: {expected_ratio_at_most: 0.7, available_ratio_below: 0.7, window: 1m, for: 1m}
  retries:   {ratio_above: 0.2, window: 2m, for: 1m}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bt") / "m.db"
    writer = SqliteWriter.open(str(path))
    ingest(Scenario(SERVICES, INCIDENTS, 900), writer)
    writer.close()
    return path


def _backtest(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], rules: str, *extra: str
) -> dict[str, object]:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(rules)
    code = main(
        [
            "backtest",
            "--store", f"sqlite:///{store}",
            "--until", str(T0_MS + 900_000),
            "--since", "15m",
            "--interval", "1m",
            "--rules", str(rules_file),
            "--report", str(tmp_path / "report.html"),
            "--json",
            *extra,
        ]
    )  # fmt: skip
    assert code == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_backtest_reports_each_incident_and_writes_a_report(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _backtest(store, tmp_path, capsys, RULES)
    alerts = {(a["class"], a["service"]): a for a in out["alerts"]}  # type: ignore[index, union-attr]
    assert set(alerts) == {
        ("latency", "checkout"),
        ("failures", "cart"),
        ("endpoints", "payments/ledger"),
        ("retries", "catalog"),
    }
    for alert in alerts.values():
        assert alert["notifications"] == 2  # FIRING then RESOLVED
        assert len(alert["firing"]) == 1
        assert alert["threshold_source"] == f"flag:--rules {tmp_path / 'rules.yaml'}"
    assert out["notifications"] == 8
    html = (tmp_path / "report.html").read_text()
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o600  # names every service
    assert html.count("<svg") == 4
    assert "checkout" in html and "threshold 500" in html


def test_a_looser_threshold_is_tried_before_it_pages(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    looser = RULES.replace("above_ms: 500", "above_ms: 5000")
    out = _backtest(store, tmp_path, capsys, looser, "--class", "latency")
    assert out["alerts"] == []
    assert out["notifications"] == 0


def test_the_html_report_escapes_names_from_data() -> None:
    from meshalert.alert_classes import AlertClass
    from meshalert.alerts.model import AlertState
    from meshalert.backtest import BacktestResult, SeriesTrace
    from meshalert.backtest_report import render_html
    from tests.meshalert.notify.conftest import notification

    name = "ns/<script>alert(1)</script>\x1b[31m\u202e"
    trace = SeriesTrace(AlertClass.LATENCY, name, threshold=1.0, threshold_source="<src>")
    trace.add(60_000, 2.0, AlertState.FIRING)
    trace.notifications.append(notification(evidence={"service": name}))
    result = BacktestResult(
        0, 120_000, 60_000, cycles=2, traces={(AlertClass.LATENCY, name): trace}
    )

    page = render_html(result)

    assert "<script>" not in page
    assert "\x1b" not in page
    assert "\u202e" not in page
    assert "ns/&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[31m\\u202e" in page
