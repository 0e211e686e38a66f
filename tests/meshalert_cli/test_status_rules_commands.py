from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.alerts.model import AlertRecord, AlertState, ThresholdInForce
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert.state.protocols import HistoryEntry
from meshalert_cli.main import main

NOW_MS = 1_800_000_000_000


@pytest.fixture
def state_url(tmp_path: Path) -> str:
    store = SqliteStateStore(tmp_path / "state.db")
    threshold = ThresholdInForce("latency.above_ms", 500.0, "default")
    store.save(
        [
            AlertRecord(
                AlertClass.LATENCY, "checkout", AlertState.FIRING, NOW_MS - 60_000,
                episode_start_ms=NOW_MS - 180_000, last_value=812.0, threshold=threshold,
            ),
            AlertRecord(AlertClass.FAILURES, "cart", AlertState.OK, NOW_MS - 600_000),
        ]
    )  # fmt: skip
    store.append_history(
        [
            HistoryEntry(
                NOW_MS - 60_000, AlertClass.LATENCY, "checkout", AlertState.PENDING,
                AlertState.FIRING,
                {
                    "observed": 812.0,
                    "threshold": {"name": "latency.above_ms", "value": 500.0, "source": "default"},
                },
                "latency|checkout|1|firing",
            )
        ]
    )  # fmt: skip
    store.close()
    return f"sqlite:///{tmp_path / 'state.db'}"


def test_status_json_lists_every_alert_with_the_contract_fields(
    state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--json", "--all", "--state", state_url]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["state"] for r in rows] == ["firing", "ok"]
    first = rows[0]
    assert {"class", "service", "state", "value", "threshold", "since"} <= set(first)
    assert (first["class"], first["service"], first["value"], first["threshold"]) == (
        "latency", "checkout", 812.0, 500.0,
    )  # fmt: skip
    assert (first["value_text"], first["threshold_text"]) == ("812 ms", "above_ms 500 ms")


def test_status_json_applies_the_same_filter_as_the_table(
    state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--json", "--state", state_url]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["state"], r["service"]) for r in rows] == [("firing", "checkout")]


def test_status_says_how_many_are_ok_when_none_is_pending_or_firing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SqliteStateStore(tmp_path / "ok.db")
    store.save(
        [
            AlertRecord(cls, service, AlertState.OK, NOW_MS - 600_000, last_evaluated_ms=NOW_MS)
            for cls in SERVICE_CLASSES
            for service in ("production/checkout", "production/cart", "payments/ledger")
        ]
    )
    store.close()
    url = f"sqlite:///{tmp_path / 'ok.db'}"
    assert main(["status", "--state", url]) == 0
    assert capsys.readouterr().out == (
        "all OK: 12 alerts evaluated (3 services, 4 classes), 12 OK, none pending or firing; "
        "last evaluated 2027-01-15T08:00:00+00:00 (--all lists them)\n"
    )
    assert main(["status", "--json", "--state", url]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["status", "--json", "--all", "--state", url]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 12


def test_status_history_and_notifications_write_values_the_same_way(
    state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """812 ms against above_ms 500 ms: in the table, the history and every notification."""
    from meshalert.alerts.model import Evidence, Notification, NotificationKind, Severity
    from meshalert.notify.console import console_text

    main(["status", "--state", state_url])
    status = capsys.readouterr().out
    row = next(line for line in status.splitlines() if line.startswith("FIRING"))
    assert row.split()[3:7] == ["812", "ms", "above_ms", "500"]
    assert "2 alerts evaluated (2 services, 2 classes), 1 OK; 1 OK not shown" in status
    main(["history", "--since", "100000d", "--state", state_url])
    history = capsys.readouterr().out
    assert "812 ms" in history and "above_ms 500 ms" in history
    notification = Notification(
        kind=NotificationKind.FIRING,
        alert_class=AlertClass.LATENCY,
        service="checkout",
        severity=Severity.CRITICAL,
        at_ms=NOW_MS,
        episode_start_ms=NOW_MS,
        evidence=Evidence(
            alert_class=AlertClass.LATENCY,
            service="checkout",
            observed=812.0,
            threshold=ThresholdInForce("latency.above_ms", 500.0, "default"),
            window="5m",
            query="q",
            samples=10,
            detail={},
            previous_state=AlertState.PENDING,
            replay="",
        ),
    )
    assert "observed 812 ms vs latency.above_ms 500 ms" in console_text(notification)


def test_status_text_hides_ok_alerts_unless_asked(
    state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["status", "--state", state_url])
    text = capsys.readouterr().out
    assert "FIRING" in text and "checkout" in text and "cart" not in text
    main(["status", "--all", "--state", state_url])
    assert "cart" in capsys.readouterr().out


def test_history_json(state_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--json", "--since", "100000d", "--state", state_url]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert (entry["from"], entry["to"], entry["service"]) == ("pending", "firing", "checkout")


def test_rules_shows_each_threshold_source(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MESHALERT_RULE__LATENCY__ABOVE_MS", "300")
    monkeypatch.delenv("MESHALERT_RULES", raising=False)
    assert main(["rules", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    sources = {t["name"]: (t["value"], t["source"]) for t in out["thresholds"]}
    assert sources["latency.above_ms"] == (300.0, "env:MESHALERT_RULE__LATENCY__ABOVE_MS")
    assert sources["failures.rate_above"] == (0.05, "default")


@pytest.mark.parametrize("dialect", ["flux", "influxql", "sql"])
def test_rules_prints_one_query_per_class(dialect: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--queries", dialect]) == 0
    out = capsys.readouterr().out
    comment = "// " if dialect == "flux" else "-- "
    headings = [
        line for line in out.splitlines() if line.startswith(comment) and ", window" in line
    ]
    assert len(headings) == 4
    assert "linkerd_request_latency_ms_bucket" in out


def test_bad_rules_name_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "r.yaml"
    bad.write_text("defaults:\n  latency: {above_ms: fast}\n")
    assert main(["rules", "--rules", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "defaults.latency.above_ms" in err and str(bad) in err


def test_rules_table_writes_thresholds_with_units(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MESHALERT_RULES", raising=False)
    monkeypatch.setenv("MESHALERT_RULE__RETRIES__ANOMALY_FACTOR", "3")
    assert main(["rules"]) == 0
    rows = {line.split()[0]: line.split()[1:3] for line in capsys.readouterr().out.splitlines()[8:]}
    assert rows["latency.above_ms"] == ["500", "ms"]
    assert rows["failures.rate_above"] == ["5%", "default"]
    assert rows["endpoints.available_ratio_below"] == ["70%", "default"]
    assert rows["retries.exhausted_above"] == ["0", "retries"]
    assert rows["retries.anomaly_factor"] == ["3x", "env:MESHALERT_RULE__RETRIES__ANOMALY_FACTOR"]
