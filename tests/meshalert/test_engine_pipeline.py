"""Engine.evaluate_pipeline: the heartbeat's ingest and evaluation classes on the shared
engine, over a real SQLite metrics store and every state store (SQLite, DynamoDB in moto,
memory)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertRecord, AlertState, SkippedServices
from meshalert.alerts.pipeline import HeartbeatPolicy
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.writer import SqliteWriter, open_database
from meshalert.engine import CycleReport, Engine
from meshalert.lineprotocol import Point, encode
from meshalert.notify.console import ConsoleNotifier
from meshalert.notify.router import Router
from meshalert.state.protocols import StateStore
from meshalert.suppression import Silence
from tests.meshalert.state.conftest import aws_env, dynamodb_client, store  # noqa: F401

MIN = 60_000
T0 = 1_699_999_980_000
"""A minute boundary within the retention of the DynamoDB fixture's clock."""
POLICY = HeartbeatPolicy(
    ingest_stale_ms=3 * MIN, evaluation_stale_ms=5 * MIN, lookback_ms=10 * MIN, renotify_ms=0
)
"""A short lookback, so a removed host leaves it within the test."""


class Stack:
    def __init__(self, tmp_path: Path, state: StateStore) -> None:
        path = str(tmp_path / "metrics.db")
        self.writer = SqliteWriter.open(path)
        self.console = io.StringIO()
        self.state = state
        self.engine = Engine(
            SqliteWindowReader(open_database(path)),
            state,
            Router({"console": ConsoleNotifier(self.console)}),
        )

    def sidecar(self, host: str, minutes: Iterable[int]) -> None:
        self.writer.write(
            [
                encode(Point.make("meshalert_sidecar", {"host": host}, {"received": 1}, ts))
                for m in minutes
                for ts in range(T0 + m * MIN, T0 + (m + 1) * MIN, 10_000)
            ]
        )

    def beat(self, alert_class: AlertClass, minute: int) -> CycleReport:
        cycle = T0 + minute * MIN
        return self.engine.evaluate_pipeline(
            alert_class,
            POLICY,
            cycle,
            query_end_ms=cycle + MIN,
            deadline_s=time.monotonic() + 10,
        )

    def said(self) -> list[str]:
        lines = self.console.getvalue().splitlines()
        self.console.seek(0)
        self.console.truncate()
        return [line.split(": ")[0] for line in lines if line and not line[0].isspace()]


@pytest.fixture
def stack(tmp_path: Path, store: StateStore) -> Iterator[Stack]:  # noqa: F811
    stack = Stack(tmp_path, store)
    yield stack
    stack.writer.close()


def test_a_stopped_host_fires_resolves_when_gone_and_its_record_is_forgotten(
    stack: Stack,
) -> None:
    stack.sidecar("node-a", range(0, 30))
    stack.sidecar("node-b", range(0, 3))  # last point 2:50
    for minute in range(1, 7):
        report = stack.beat(AlertClass.INGEST, minute)
    assert report.queries_issued == 1
    assert report.observations["meshalert/ingest"].samples == 2.0  # hosts seen
    fired = stack.said()
    assert len(fired) == 1 and "ingest meshalert/ingest:node-b" in fired[0], fired
    records = stack.state.load(AlertClass.INGEST)
    assert records["meshalert/ingest:node-b"].state is AlertState.FIRING
    assert records["meshalert/ingest"].state is AlertState.OK
    assert stack.state.load(AlertClass.FAILURES) == {}
    history = stack.state.history(since_ms=0, alert_class=AlertClass.INGEST)
    assert [(e.service, e.to_state) for e in history] == [
        ("meshalert/ingest:node-b", AlertState.FIRING)
    ]
    assert "meshalert_sidecar" in history[0].evidence["query"]

    # node-b leaves the 10 min lookback at 12:50: no data resolves it, and its record goes.
    for minute in range(7, 14):
        stack.beat(AlertClass.INGEST, minute)
    resolved = stack.said()
    assert len(resolved) == 1 and "RESOLVED" in resolved[0] and "node-b" in resolved[0]
    assert set(stack.state.load(AlertClass.INGEST)) == {
        "meshalert/ingest",
        "meshalert/ingest:node-a",
    }


def test_the_whole_store_silent_pages_and_a_silence_does_not_hold_it(stack: Stack) -> None:
    stack.state.add_silence(Silence("s1", "*", None, T0, T0 + 600 * MIN, "deploy", "ann", T0))
    report = stack.beat(AlertClass.INGEST, 1)
    assert report.states == {"meshalert/ingest": AlertState.FIRING}
    assert report.suppressed == {}
    [line] = stack.said()
    assert "ingest meshalert/ingest" in line


def test_evaluation_class_reads_the_state_store(stack: Stack) -> None:
    stack.state.save(
        [
            AlertRecord(
                AlertClass.LATENCY, "web", AlertState.OK, T0, last_evaluated_ms=T0 + 1 * MIN
            ),
            AlertRecord(
                AlertClass.FAILURES, "web", AlertState.OK, T0, last_evaluated_ms=T0 + 9 * MIN
            ),
        ]
    )
    stack.state.note_skipped(SkippedServices(AlertClass.FAILURES, T0 + 9 * MIN, 1, ("bad",)))
    report = stack.beat(AlertClass.EVALUATION, 10)
    firing = sorted(k for k, s in report.states.items() if s is AlertState.FIRING)
    assert firing == ["meshalert/evaluation:latency", "meshalert/skipped:failures"]
    assert report.queries_issued == 0  # the metrics store is not asked
    assert set(stack.state.load(AlertClass.EVALUATION)) == {
        f"meshalert/{check}:{c}"
        for check in ("evaluation", "skipped")
        for c in ("latency", "failures", "endpoints", "retries")
    }
    assert sorted(stack.said()) == sorted(
        [
            "[critical] FIRING evaluation meshalert/evaluation:latency",
            "[critical] FIRING evaluation meshalert/skipped:failures",
        ]
    )


def test_a_service_class_is_not_a_pipeline_class(stack: Stack) -> None:
    with pytest.raises(ValueError, match="latency is not a pipeline class"):
        stack.beat(AlertClass.LATENCY, 1)
