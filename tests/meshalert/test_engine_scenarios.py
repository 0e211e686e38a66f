"""The four alert classes on synthetic Linkerd traffic with known incidents.

Real stages end to end except the UDP hop: simulator -> parser -> mapper -> aggregator ->
SqliteWriter -> SQLite window queries -> rules -> state machine -> SQLite state store.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from meshalert.alert_classes import SERVICE_CLASSES
from meshalert.alerts.model import AlertState, Notification, NotificationKind
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert.backends.sqlite.writer import SqliteWriter, open_database
from meshalert.delivery import OneChannel
from meshalert.engine import Engine
from meshalert.evaluation import evaluate_class
from meshalert.rules import load_rules
from meshalert.simulator.traffic import Incident, IncidentKind, ServiceSpec
from tests.meshalert.scenario import T0_MS, Scenario, ingest

RULES = """
defaults:
  latency:   {percentile: 99, above_ms: 500, window: 2m, for: 1m}
  failures:  {rate_above: 0.05, min_requests: 20, window: 2m, for: 1m}
  endpoints: {expected_ratio_at_most: 0.7, available_ratio_below: 0.7, window: 1m, for: 1m}
  retries:   {exhausted_above: 0, ratio_above: 0.2, window: 2m, for: 1m}
"""

SERVICES = tuple(
    ServiceSpec(ns, name, rps=80.0, latency_ms=20.0)
    for ns, name in [
        ("production", "checkout"),
        ("production", "cart"),
        ("payments", "ledger"),
        ("search", "catalog"),
        ("search", "suggest"),
        ("production", "users"),
    ]
)
INCIDENTS = (
    Incident(IncidentKind.LATENCY, "checkout", 240, 480),
    Incident(IncidentKind.FAILURES, "cart", 240, 480),
    Incident(IncidentKind.ENDPOINTS, "ledger", 240, 480),
    Incident(IncidentKind.RETRIES, "catalog", 240, 480),
)
DURATION_S = 900


@dataclass
class Recorder(OneChannel):
    sent: list[Notification] = field(default_factory=list)

    def dispatch(self, notification: Notification, deadline_s: float) -> list[_Ok]:
        self.sent.append(notification)
        return [_Ok()]


@dataclass(frozen=True)
class _Ok:
    channel: str = "recorder"
    ok: bool = True
    error: str | None = None


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "meshalert.db"
    writer = SqliteWriter.open(str(path))
    ingest(Scenario(SERVICES, INCIDENTS, DURATION_S, hosts=("node-a", "node-b")), writer)
    writer.close()
    return path


def _run(store: Path, state_path: Path, *, repeat: int = 1) -> tuple[Recorder, SqliteStateStore]:
    rules = load_rules({"MESHALERT_RULES": RULES}, now_s=0.0)
    recorder = Recorder()
    state = SqliteStateStore(state_path)
    engine = Engine(SqliteWindowReader(open_database(str(store), readonly=True)), state, recorder)
    for minute in range(1, DURATION_S // 60 + 1):
        for cls in SERVICE_CLASSES:
            for _ in range(repeat):
                evaluate_class(engine, rules, cls, T0_MS + minute * 60_000)
    return recorder, state


def _kinds(recorder: Recorder) -> Counter[tuple[str, str, str]]:
    return Counter((n.alert_class.value, n.service, n.kind.value) for n in recorder.sent)


def test_each_incident_fires_once_and_resolves_once(store: Path, tmp_path: Path) -> None:
    recorder, _ = _run(store, tmp_path / "state.db")
    assert _kinds(recorder) == Counter(
        {
            ("latency", "checkout", "firing"): 1,
            ("latency", "checkout", "resolved"): 1,
            ("failures", "cart", "firing"): 1,
            ("failures", "cart", "resolved"): 1,
            ("endpoints", "payments/ledger", "firing"): 1,
            ("endpoints", "payments/ledger", "resolved"): 1,
            ("retries", "catalog", "firing"): 1,
            ("retries", "catalog", "resolved"): 1,
        }
    )


def test_alerts_fire_during_and_resolve_after_the_incident(store: Path, tmp_path: Path) -> None:
    recorder, _ = _run(store, tmp_path / "state.db")
    for note in recorder.sent:
        offset_s = (note.at_ms - T0_MS) / 1000
        if note.kind is NotificationKind.FIRING:
            assert 240 < offset_s <= 480, note.dedup_key
        else:
            assert 480 < offset_s <= 480 + 300, note.dedup_key
        assert note.evidence.query
        assert note.evidence.threshold.source == "env:MESHALERT_RULES"


def test_duplicated_cycles_never_notify_twice(store: Path, tmp_path: Path) -> None:
    once, _ = _run(store, tmp_path / "a.db")
    twice, state = _run(store, tmp_path / "b.db", repeat=2)
    assert _kinds(twice) == _kinds(once)
    assert {n.dedup_key for n in twice.sent} == {n.dedup_key for n in once.sent}
    assert all(r.state is AlertState.OK for r in state.load_all())
