"""The engine copies each transition to the metrics store (real SQLite state and store);
a sink that fails never fails the cycle or loses the state store's history."""

from __future__ import annotations

import math
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertState
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb1.writer import InfluxDB1Writer
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert.backends.sqlite.writer import SqliteWriter
from meshalert.engine import ClassRule, Engine
from meshalert.history_sink import StoreHistorySink
from meshalert.queries.model import ClassAggregates, ClassQuery, LatencyAggregate
from meshalert.rules import load_rules

SLOW = LatencyAggregate({10.0: 50.0, 100.0: 40.0, 1000.0: 9.0, math.inf: 1.0})
FAST = LatencyAggregate({10.0: 99.0, math.inf: 1.0})
RULES = load_rules({}, now_s=0)
WINDOW = RULES.document.defaults.rule(AlertClass.LATENCY).window_ms


@dataclass
class _Reader:
    """Window reads are not under test here: answers the latency aggregates it holds."""

    services: Mapping[str, LatencyAggregate]

    def fetch(self, query: ClassQuery) -> ClassAggregates:
        return ClassAggregates(query, {k: {"": v} for k, v in self.services.items()}, "q")


def _rule(cls: AlertClass, key: str) -> ClassRule | None:
    resolved = RULES.for_service(key)
    return resolved.rule(cls) if resolved is not None else None


def _stored(writer: SqliteWriter) -> list[tuple[int, str, float]]:
    rows = writer.connection.execute(
        "SELECT p.ts, s.tags_json, p.value FROM points p JOIN series s ON s.id = p.series_id"
        " WHERE s.measurement = 'meshalert_alert' AND p.field = 'state_code' ORDER BY p.ts"
    ).fetchall()
    return [(int(ts), str(tags), float(v)) for ts, tags, v in rows]


def _run(engine: Engine, reader: _Reader, cycles: range) -> list[int]:
    failures = []
    for cycle_ms in cycles:
        reader.services = {"shop/web": SLOW if cycle_ms < 600_000 else FAST, "shop/db": FAST}
        report = engine.evaluate(AlertClass.LATENCY, _rule, WINDOW, cycle_ms)
        failures.append(report.history_sink_failures)
    return failures


def test_every_transition_lands_in_the_store_once(tmp_path: Path) -> None:
    state = SqliteStateStore(tmp_path / "state.db")
    writer = SqliteWriter.open(str(tmp_path / "store.db"))
    reader = _Reader({})
    engine = Engine(reader, state, None, history_sink=StoreHistorySink(writer))
    cycles = range(60_000, 1_200_001, 60_000)
    assert set(_run(engine, reader, cycles)) == {0}

    history = state.history(since_ms=0)
    assert [(e.from_state, e.to_state) for e in history] == [
        (AlertState.OK, AlertState.PENDING),
        (AlertState.PENDING, AlertState.FIRING),
        (AlertState.FIRING, AlertState.OK),
    ]
    stored = _stored(writer)
    assert [(ts, code) for ts, _, code in stored] == [
        (e.at_ms, [1.0, 2.0, 0.0][i]) for i, e in enumerate(history)
    ]
    assert all('"service":"web"' in tags and '"namespace":"shop"' in tags for _, tags, _ in stored)
    # A retried cycle re-sends its transition: same tags and time, so still one point each.
    fired = history[1].at_ms
    _run(
        Engine(
            reader,
            SqliteStateStore(tmp_path / "retry.db"),
            None,
            history_sink=StoreHistorySink(writer),
        ),
        reader,
        range(60_000, fired + 1, 60_000),
    )
    assert _stored(writer) == stored


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_failing_sink_is_counted_and_the_cycle_goes_on(tmp_path: Path) -> None:
    state = SqliteStateStore(tmp_path / "state.db")
    dead = InfluxDB1Store(f"http://127.0.0.1:{_closed_port()}", "db", None, None, None)
    sink = StoreHistorySink(InfluxDB1Writer(dead, timeout_s=1))
    reader = _Reader({})
    engine = Engine(reader, state, None, history_sink=sink)
    failures = _run(engine, reader, range(60_000, 1_200_001, 60_000))

    history = state.history(since_ms=0)
    assert len(history) == 3  # the state store has every transition regardless
    assert sum(failures) == 3 and max(failures) == 1  # one per cycle that had one
    assert state.load(AlertClass.LATENCY)["shop/web"].state is AlertState.OK
