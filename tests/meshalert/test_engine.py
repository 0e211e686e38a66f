from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from meshalert.alerts.model import AlertClass
from meshalert.alerts.observe import observe
from meshalert.engine import ClassRule, Engine
from meshalert.queries.model import ClassAggregates, ClassQuery, LatencyAggregate
from meshalert.rules import load_rules
from meshalert.state.memory_state import MemoryStateStore

SLOW = LatencyAggregate({10.0: 50.0, 100.0: 40.0, 1000.0: 9.0, math.inf: 1.0})
FAST = LatencyAggregate({10.0: 99.0, math.inf: 1.0})


@dataclass
class _Reader:
    """Answers every query with the latency aggregates it holds (a unit's test double)."""

    services: Mapping[str, LatencyAggregate]

    def fetch(self, query: ClassQuery) -> ClassAggregates:
        return ClassAggregates(query, dict(self.services), "q")


def test_each_service_is_observed_at_its_own_percentile() -> None:
    rules = load_rules({}, now_s=0)
    percentiles = {"ns/a": 50.0, "ns/b": 99.9, "ns/gone": 99.0}
    window = rules.document.defaults.rule(AlertClass.LATENCY).window_ms

    def rule(cls: AlertClass, key: str) -> ClassRule | None:
        resolved = rules.for_service(key)
        return resolved.rule(cls) if resolved is not None else None

    reader = _Reader({"ns/a": SLOW, "ns/b": FAST, "ns/gone": SLOW})
    engine = Engine(reader, MemoryStateStore(), None)
    engine.evaluate(AlertClass.LATENCY, rule, window, 60_000, percentile_of=percentiles.__getitem__)
    # Known from the previous cycle but absent from this window: judged without a value.
    reader.services = {"ns/a": SLOW, "ns/b": FAST}
    report = engine.evaluate(
        AlertClass.LATENCY, rule, window, 120_000, percentile_of=percentiles.__getitem__
    )

    aggs = reader.fetch(ClassQuery(AlertClass.LATENCY, window, 120_000, ()))
    for key in ("ns/a", "ns/b"):
        assert report.observations[key] == observe(aggs, percentile=percentiles[key])[key]
    assert report.observations["ns/a"].value != report.observations["ns/b"].value
    assert report.observations["ns/gone"].value is None
    assert report.services_evaluated == 3
