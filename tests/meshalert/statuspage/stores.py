"""A real embedded store and SQLite state for the status page tests: an hour of synthetic
Linkerd traffic through the real ingest stages, evaluated by the real engine every minute.

At ``END_MS`` the latency incident on ``checkout`` is still firing, the failures incident on
``cart`` has resolved, and no data came for anyone for ``HOLE`` (the charts break there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from meshalert.alert_classes import SERVICE_CLASSES
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert.backends.sqlite.writer import SqliteWriter, open_database
from meshalert.engine import Engine
from meshalert.evaluation import evaluate_class
from meshalert.rules import LoadedRules, load_rules
from meshalert.simulator.traffic import Incident, IncidentKind, ServiceSpec
from tests.meshalert.scenario import T0_MS, Scenario, ingest

RULES = """
defaults:
  latency:   {percentile: 99, above_ms: 500, window: 2m, for: 1m}
  failures:  {rate_above: 0.05, min_requests: 20, window: 2m, for: 1m}
  endpoints: {available_ratio_below: 0.7, window: 1m, for: 1m}
  retries:   {exhausted_above: 0, ratio_above: 0.2, window: 2m, for: 1m}
"""

SERVICES = tuple(
    ServiceSpec(ns, name, rps=40.0, latency_ms=20.0)
    for ns, name in [("production", "checkout"), ("production", "cart"), ("search", "catalog")]
)
FIRST_S, HOLE, SECOND_S = 1800, (1800, 2100), 1500
"""Traffic for 30 minutes, 5 minutes of nothing, then 25 more minutes."""
END_MS = T0_MS + (FIRST_S + 300 + SECOND_S) * 1000
INCIDENTS_FIRST = (Incident(IncidentKind.FAILURES, "cart", 600, 1200),)
INCIDENTS_SECOND = (Incident(IncidentKind.LATENCY, "checkout", 600, 1500),)


@dataclass(frozen=True)
class PageStores:
    store: Path
    state: Path
    rules: LoadedRules
    end_ms: int


def build(directory: Path) -> PageStores:
    store, state_path = directory / "meshalert.db", directory / "state.db"
    writer = SqliteWriter.open(str(store))
    ingest(Scenario(SERVICES, INCIDENTS_FIRST, FIRST_S), writer)
    ingest(Scenario(SERVICES, INCIDENTS_SECOND, SECOND_S), writer, t0_ms=T0_MS + HOLE[1] * 1000)
    writer.close()
    rules = load_rules({"MESHALERT_RULES": RULES}, now_s=0.0)
    state = SqliteStateStore(state_path)
    conn = open_database(str(store), readonly=True)
    engine = Engine(SqliteWindowReader(conn), state, None)
    for cycle_ms in range(T0_MS + 60_000, END_MS + 1, 60_000):
        for alert_class in SERVICE_CLASSES:
            evaluate_class(engine, rules, alert_class, cycle_ms)
    state.close()
    conn.close()
    return PageStores(store, state_path, rules, END_MS)
