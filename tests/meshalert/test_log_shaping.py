"""Log shaping: repeated warnings are rate-limited, periodic lines fold into a summary."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import structlog

from meshalert.logs import PeriodicSummary, RepeatLimiter, configure_logging
from meshalert.settings import SettingsError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_identical_errors_are_logged_once_per_window_with_a_count() -> None:
    clock = Clock()
    limiter = RepeatLimiter(window_s=300, clock=clock)
    event = {"event": "evaluation.query_failed", "level": "error", "error": "refused"}
    assert limiter(None, "error", dict(event)) == event
    for _ in range(4):
        clock.now += 60
        with pytest.raises(structlog.DropEvent):
            limiter(None, "error", dict(event))
    other = {**event, "error": "timeout"}
    assert limiter(None, "error", dict(other)) == other  # a different error is news
    clock.now += 241
    again = limiter(None, "error", dict(event))
    assert (again["repeated"], again["repeated_within"]) == (4, "5m")
    info = {"event": "sidecar_flush", "level": "info"}
    assert limiter(None, "info", dict(info)) == info  # info lines are not limited


def test_flush_and_cycle_lines_fold_into_one_summary_a_minute() -> None:
    clock = Clock()
    summary = PeriodicSummary(every_s=60, clock=clock)
    passed = []
    for second in range(0, 121, 10):
        clock.now = float(second)
        flush = {"event": "sidecar_flush", "lines": 100, "bad": 1, "points": 40}
        cycle = {
            "event": "evaluation.cycle", "alert_class": "latency", "services_evaluated": 8,
            "transitions": 1 if second == 30 else 0, "notifications": 0, "firing": 1,
        }  # fmt: skip
        for event in (flush, cycle):
            with contextlib.suppress(structlog.DropEvent):
                passed.append(summary(None, "info", event))
    assert [p["event"] for p in passed] == ["meshalert.summary", "meshalert.summary"]
    first = passed[0]
    assert first["period"] == "1m"
    assert (first["statsd_lines"], first["bad_lines"], first["points"]) == (700, 7, 280)
    assert (first["services_evaluated"], first["transitions"], first["firing"]) == (48, 1, 1)
    other = {"event": "meshalert.started", "level": "info"}
    assert summary(None, "info", other) is other


def test_configure_logging_rejects_an_unknown_level() -> None:
    with pytest.raises(SettingsError, match="MESHALERT_LOG_LEVEL: unknown level 'verbose'"):
        configure_logging(level="verbose", stream=io.StringIO())


def test_json_output_keeps_every_line() -> None:
    out = io.StringIO()
    configure_logging(json=True, stream=out, level="info")
    log = structlog.get_logger("t")
    for _ in range(3):
        log.info("sidecar_flush", lines=1)
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == [
        "sidecar_flush"
    ] * 3
