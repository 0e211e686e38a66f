"""Storm protection in ``meshalert run``'s composition (the same LocalStack the command
builds from the environment): twelve services slowing at once in a real SQLite store reach
the webhook (a real HTTP server on 127.0.0.1) and the console as one message per severity;
running a cycle again sends nothing more."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshalert.backends.sqlite.writer import SqliteWriter
from meshalert.simulator.traffic import Incident, IncidentKind, ServiceSpec
from meshalert_cli.local_stack import build_stack
from tests.fixtures.http_server import RecordingHttpServer
from tests.meshalert.scenario import T0_MS, Scenario, ingest

RULES = """
defaults:
  latency: {percentile: 99, above_ms: 500, window: 2m, for: 1m}
services:
  "warn-*": {severity: warning}
"""
NAMES = tuple(f"svc-{i:02d}" for i in range(8)) + tuple(f"warn-{i:02d}" for i in range(4))


@pytest.fixture
def webhook() -> Iterator[RecordingHttpServer]:
    server = RecordingHttpServer()
    server.start()
    yield server
    server.close()


def test_run_groups_a_storm_per_severity_and_a_rerun_cycle_sends_nothing(
    tmp_path: Path, webhook: RecordingHttpServer
) -> None:
    store = tmp_path / "meshalert.db"
    writer = SqliteWriter.open(str(store))
    services = tuple(ServiceSpec("production", n, rps=10.0, latency_ms=20.0) for n in NAMES)
    incidents = tuple(Incident(IncidentKind.LATENCY, n, 240, 480) for n in NAMES)
    ingest(Scenario(services, incidents, 780), writer)
    writer.close()
    env = {
        "MESHALERT_STORE": f"sqlite:///{store}",
        "MESHALERT_STATE": f"sqlite:///{tmp_path / 'state.db'}",
        "MESHALERT_SPOOL_DIR": str(tmp_path / "spool"),
        "MESHALERT_RULES": RULES,
        "MESHALERT_WEBHOOK_URL": webhook.url + "/hook",
        "MESHALERT_STATUS_URL": "https://status.example/meshalert",
    }
    console = io.StringIO()
    stack = build_stack(env, console=console, sidecar_overrides={"statsd_listen": "127.0.0.1:0"})
    stack.warmup = False
    stack.start()
    try:
        assert stack.loop is not None
        for minute in range(2, 13):
            stack.loop.run_once(T0_MS + minute * 60_000)
            if minute == 6:  # the cycle that fired all twelve, run again
                stack.loop.run_once(T0_MS + minute * 60_000)
    finally:
        stack.stop()

    hooks = [json.loads(r.text) for r in webhook.requests]
    assert sorted((h["severity"], sorted(h["by_state"].items()), h["count"]) for h in hooks) == [
        ("critical", [("firing", 8)], 8),
        ("critical", [("resolved", 8)], 8),
        ("warning", [("firing", 4)], 4),
        ("warning", [("resolved", 4)], 4),
    ]
    assert all(h["see_all"] == "https://status.example/meshalert" for h in hooks)
    keys = [m["dedup_key"] for h in hooks for m in h["members"]]
    assert len(keys) == len(set(keys)) == 24
    headlines = [line for line in console.getvalue().splitlines() if not line.startswith(" ")]
    assert sorted(headlines) == [
        "[critical] 8 critical alerts: 8 FIRING",
        "[critical] 8 critical alerts: 8 RESOLVED",
        "[warning] 4 warning alerts: 4 FIRING",
        "[warning] 4 warning alerts: 4 RESOLVED",
    ]


CROSS_CLASS_RULES = """
defaults:
  latency: {percentile: 99, above_ms: 500, window: 2m, for: 1m}
  failures: {rate_above: 0.05, window: 2m, for: 1m}
"""


def test_run_groups_one_storm_across_classes_into_one_message_per_severity(
    tmp_path: Path, webhook: RecordingHttpServer
) -> None:
    """A node dying slows some services and fails others in the same cycle: run delivers
    every class of the cycle together, so the channel gets one FIRING message, not one per
    class."""
    store = tmp_path / "meshalert.db"
    writer = SqliteWriter.open(str(store))
    names = tuple(f"svc-{i:02d}" for i in range(12))
    services = tuple(ServiceSpec("production", n, rps=10.0, latency_ms=20.0) for n in names)
    kinds = (IncidentKind.LATENCY, IncidentKind.FAILURES)
    incidents = tuple(Incident(kinds[i % 2], n, 240, 480) for i, n in enumerate(names))
    ingest(Scenario(services, incidents, 780), writer)
    writer.close()
    env = {
        "MESHALERT_STORE": f"sqlite:///{store}",
        "MESHALERT_STATE": f"sqlite:///{tmp_path / 'state.db'}",
        "MESHALERT_SPOOL_DIR": str(tmp_path / "spool"),
        "MESHALERT_RULES": CROSS_CLASS_RULES,
        "MESHALERT_WEBHOOK_URL": webhook.url + "/hook",
    }
    stack = build_stack(
        env, console=io.StringIO(), sidecar_overrides={"statsd_listen": "127.0.0.1:0"}
    )
    stack.warmup = False
    stack.start()
    per_cycle: list[tuple[int, int]] = []  # (notifications, webhook messages)
    try:
        assert stack.loop is not None
        for minute in range(2, 13):
            before = len(webhook.requests)
            reports = stack.loop.run_once(T0_MS + minute * 60_000)
            assert {r.alert_class.value for r in reports} >= {"latency", "failures"}
            notes = sum(len(r.notifications) for r in reports)
            per_cycle.append((notes, len(webhook.requests) - before))
    finally:
        stack.stop()

    hooks = [json.loads(r.text) for r in webhook.requests]
    firing = [h for h in hooks if h.get("by_state", {}).get("firing")]
    assert len(firing) == 1, hooks
    assert firing[0]["by_class"] == {"failures": 6, "latency": 6}
    # Above the threshold (5) a cycle's notifications of every class make one message;
    # at or below it each goes alone.
    assert per_cycle.count((12, 1)) == 1
    assert all(sent == (1 if notes > 5 else notes) for notes, sent in per_cycle), per_cycle
    keys = [m["dedup_key"] for h in hooks for m in h.get("members", [h])]
    assert len(keys) == len(set(keys)) == 24
