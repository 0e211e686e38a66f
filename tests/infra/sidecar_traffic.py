"""Simulated Linkerd traffic written by the real sidecar stages into a real store.

The dashboards must read the schema the sidecar really writes, so nothing here writes a
line by hand: simulator datagrams -> :class:`IngestCore` (statsd parser, Linkerd name
mapping, interval aggregation) -> :class:`Flusher` (gauge carry, the ``meshalert_sidecar``
health point) -> :class:`SpoolingWriter` (the fsynced spool) -> the store's own writer.
Only the clock is explicit: each interval is flushed as soon as its datagrams are fed, so
half an hour of traffic takes seconds, and it ends just before "now" so that the relative
time ranges dashboards use (the last hour) cover it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from ingest_sidecar.aggregate import IntervalAggregator
from ingest_sidecar.ingest import IngestCore
from ingest_sidecar.linkerd_names import NameMapper
from ingest_sidecar.pipeline import Flusher
from ingest_sidecar.spool import Spool
from ingest_sidecar.store_writer import SpoolingWriter
from meshalert.alert_classes import SERVICE_CLASSES
from meshalert.backends.memory.state import MemoryStateStore
from meshalert.engine import Engine
from meshalert.evaluation import evaluate_class
from meshalert.history_sink import StoreHistorySink
from meshalert.queries.model import WindowReader
from meshalert.rules import load_rules
from meshalert.simulator.traffic import (
    Incident,
    IncidentKind,
    LinkerdTraffic,
    ServiceSpec,
    TrafficConfig,
    pack_datagrams,
)
from meshalert.stores.protocols import LineWriter

NAMESPACE = "production"
SERVICES = (
    ServiceSpec(NAMESPACE, "checkout", rps=30.0, latency_ms=40.0),
    ServiceSpec(NAMESPACE, "cart", rps=30.0),
    ServiceSpec(NAMESPACE, "catalog", rps=30.0),
    ServiceSpec(NAMESPACE, "payments", rps=30.0),
)
DURATION_S = 1200
"""Twenty minutes: every incident below starts and ends inside it."""
INCIDENTS = (
    Incident(IncidentKind.LATENCY, "checkout", 300, 900),
    Incident(IncidentKind.FAILURES, "cart", 300, 900),
    Incident(IncidentKind.ENDPOINTS, "catalog", 300, 900),
    Incident(IncidentKind.RETRIES, "payments", 300, 900),
)
HOSTS = ("node-a", "node-b")
FLUSH_MS = 10_000


@dataclass(frozen=True)
class Fed:
    start_ms: int
    end_ms: int
    points: int


def feed_sidecars(writer: LineWriter, spool_root: Path, *, end_ms: int) -> Fed:
    """Run one sidecar per host over ``[end_ms - DURATION_S, end_ms)`` into ``writer``."""
    start_ms = (end_ms - DURATION_S * 1000) // FLUSH_MS * FLUSH_MS
    points = 0
    for h, host in enumerate(HOSTS):
        traffic = LinkerdTraffic(
            TrafficConfig(SERVICES, INCIDENTS, sample_rate=0.2, hosts=len(HOSTS)),
            random.Random(11 + h),
        )
        # Both routers name services ``svc/<name>``; the namespace comes from settings, as
        # MESHALERT_SERVICE_NAMESPACE gives it in a real deployment.
        mapper = NameMapper(
            "linkerd", service_namespaces={"outgoing": NAMESPACE, "incoming": NAMESPACE}
        )
        core = IngestCore(mapper, IntervalAggregator)
        spooled = SpoolingWriter(Spool(str(spool_root / host), 64 << 20), writer)
        spooled.start()
        flusher = Flusher(
            core, spooled, interval_ms=FLUSH_MS, host=host, batch_lines=5000, clock_ms=lambda: 0
        )
        try:
            for offset_s in range(0, DURATION_S, FLUSH_MS // 1000):
                lines = traffic.requests_step(offset_s, FLUSH_MS / 1000, h)
                lines += traffic.gauges(offset_s, h)
                for datagram in pack_datagrams(lines):
                    core.feed(datagram)
                points += flusher.flush(start_ms + offset_s * 1000).points
        finally:
            if not spooled.stop(timeout_s=60.0):
                raise RuntimeError(f"sidecar {host}: the store did not take every batch")
    return Fed(start_ms, start_ms + DURATION_S * 1000, points)


HISTORY_RULES = """
defaults:
  latency: {window: 2m}
  failures: {window: 2m}
  endpoints: {window: 2m}
  retries: {window: 2m}
"""
"""Windows short enough that each incident (ends 300 s before the traffic) resolves before
the last cycle whatever the phase of the minute the traffic starts at; the default 5m
windows resolve right at the end, or one cycle too late."""


@dataclass(frozen=True)
class Transition:
    at_ms: int
    alert_class: str
    service: str
    from_state: str
    to_state: str


def record_alert_history(reader: WindowReader, writer: LineWriter, fed: Fed) -> list[Transition]:
    """Run the real engine once a minute over the fed traffic, with 2m windows and
    its history sink on ``writer``: the ``meshalert_alert`` points the history cells read
    are the ones the engine writes. Returns the transitions it made (cycles end at
    ``fed.end_ms``, so every point lies inside the dashboards' last hour)."""
    state = MemoryStateStore()
    sink = StoreHistorySink(writer)
    engine = Engine(reader, state, None, settle_ms=FLUSH_MS, history_sink=sink)
    rules = load_rules({"MESHALERT_RULES": HISTORY_RULES}, now_s=0)
    first = fed.start_ms - fed.start_ms % 60_000 + 60_000
    for cycle_ms in range(first, fed.end_ms + 1, 60_000):
        for alert_class in SERVICE_CLASSES:
            report = evaluate_class(engine, rules, alert_class, cycle_ms)
            if report.history_sink_failures:
                raise RuntimeError(f"history sink failed at {cycle_ms} ({alert_class})")
    return [
        Transition(e.at_ms, e.alert_class.value, e.service, e.from_state.value, e.to_state.value)
        for e in state.history(since_ms=0)
    ]
