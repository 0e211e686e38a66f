"""The status page's signals on every store: the same traffic gives the same charted series
(read with the engine's class queries through each store's ``WindowReader``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.writer import SqliteWriter, open_database
from meshalert.rules import load_rules
from meshalert.simulator.traffic import Incident, IncidentKind, ServiceSpec
from meshalert.statuspage.collect import SignalSampler
from tests.contract.backends import Backend
from tests.meshalert.scenario import T0_MS, Scenario, ingest

MIN = 60_000
DURATION_S = 900
SCENARIO = Scenario(
    (
        ServiceSpec("production", "checkout", rps=30.0, latency_ms=20.0),
        ServiceSpec("production", "cart", rps=30.0, latency_ms=20.0),
    ),
    (Incident(IncidentKind.LATENCY, "checkout", 300, 600),),
    DURATION_S,
)
RULES = load_rules(
    {"MESHALERT_RULES": "defaults: {latency: {above_ms: 500, window: 2m}}"}, now_s=0.0
)
KEYS = ["checkout", "cart", "production/checkout", "production/cart"]
END_MS = T0_MS + DURATION_S * 1000


def _series(sampler: SignalSampler) -> dict[tuple[AlertClass, str], list[float | None]]:
    sampled = sampler.sample(RULES, KEYS, END_MS)
    return {key: [v for _, v in points] for key, points in sampled.items()}


def test_every_store_charts_the_same_signals(backend: Backend, tmp_path: Path) -> None:
    ingest(SCENARIO, backend.writer)
    reference_path = str(tmp_path / "reference.db")
    writer = SqliteWriter.open(reference_path)
    ingest(SCENARIO, writer)
    writer.close()
    conn = open_database(reference_path, readonly=True)
    try:
        expected = _series(SignalSampler(SqliteWindowReader(conn), span_ms=DURATION_S * 1000))
    finally:
        conn.close()
    got = _series(SignalSampler(backend.reader, span_ms=DURATION_S * 1000))
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        assert [v is None for v in got[key]] == [v is None for v in values], key
        assert [v for v in got[key] if v is not None] == pytest.approx(
            [v for v in values if v is not None], rel=1e-9
        ), key
    latency = got[(AlertClass.LATENCY, "checkout")]
    assert latency[0] is None  # the window before any traffic
    during = latency[(300 + 120) // 60 : 600 // 60]
    assert during and all(v is not None and v > 500 for v in during)
    assert all(v is not None and v < 500 for v in latency[2 : 300 // 60])
    endpoints = got[(AlertClass.ENDPOINTS, "production/checkout")]
    assert [v for v in endpoints[1:] if v is not None] and endpoints[-1] == 1.0
