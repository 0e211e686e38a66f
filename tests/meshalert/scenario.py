"""Synthetic Linkerd traffic pushed through the real ingest stages into a real store.

Shared by the engine scenario tests and the backtest tests: simulator lines -> statsd parser
-> Linkerd name mapping -> interval aggregation -> line protocol -> SqliteWriter.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ingest_sidecar.aggregate import IntervalAggregator
from ingest_sidecar.linkerd_names import NameMapper
from ingest_sidecar.statsd import parse_datagram
from meshalert.lineprotocol import encode
from meshalert.simulator.traffic import (
    Incident,
    LinkerdTraffic,
    ServiceSpec,
    TrafficConfig,
    pack_datagrams,
)
from meshalert.stores.protocols import LineWriter

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, aligned to every interval used here
FLUSH_MS = 10_000


@dataclass(frozen=True)
class Scenario:
    services: tuple[ServiceSpec, ...]
    incidents: tuple[Incident, ...]
    duration_s: int
    hosts: Sequence[str] = ("node-a",)
    sample_rate: float = 0.1
    incoming_router: str | None = None
    """One router by default: these scenarios test the engine's plumbing, and on the real
    two-router shape the current classes mis-judge (issue 10 items 1-2: the endpoints
    incident reads the outgoing balancer and stays silent, the retry storm's failed attempts
    at the incoming router fire failures; see tests/data/linkerd_corpus/README.md)."""


def ingest(scenario: Scenario, writer: LineWriter, *, seed: int = 3, t0_ms: int = T0_MS) -> int:
    """Write the scenario's series from ``t0_ms`` on; returns the number of points written."""
    mapper = NameMapper(prefix="linkerd")
    written = 0
    for h, host in enumerate(scenario.hosts):
        traffic = LinkerdTraffic(
            TrafficConfig(
                scenario.services,
                scenario.incidents,
                sample_rate=scenario.sample_rate,
                hosts=len(scenario.hosts),
                incoming_router=scenario.incoming_router,
            ),
            random.Random(seed + h),
        )
        for start_s in range(0, scenario.duration_s, FLUSH_MS // 1000):
            aggregator = IntervalAggregator()
            lines = traffic.requests_step(start_s, FLUSH_MS / 1000) + traffic.gauges(start_s)
            for datagram in pack_datagrams(lines):
                for sample in parse_datagram(datagram).samples:
                    key = mapper.map(sample.name, sample.tags)
                    aggregator.add(key, sample.kind, sample.value, sample.rate)
            points = aggregator.flush(t0_ms + start_s * 1000, host).points
            writer.write([encode(p) for p in points])
            written += len(points)
    return written
