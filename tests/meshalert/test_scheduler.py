from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from structlog.testing import capture_logs

from meshalert.alert_classes import AlertClass
from meshalert.backends.memory.state import MemoryStateStore
from meshalert.engine import Engine
from meshalert.queries.model import ClassAggregates, ClassQuery
from meshalert.rules import RulesProvider
from meshalert.scheduler import EvaluationLoop


@dataclass
class _Reader:
    """Fails one class's query with an unexpected error (a unit's test double)."""

    broken: AlertClass

    def fetch(self, query: ClassQuery) -> ClassAggregates:
        if query.alert_class is self.broken:
            raise KeyError("an adapter bug")
        return ClassAggregates(query, {}, "q")


def test_one_class_failing_unexpectedly_does_not_stop_the_others() -> None:
    rules = RulesProvider({})
    loop = EvaluationLoop(
        Engine(_Reader(AlertClass.ENDPOINTS), MemoryStateStore(), None), rules, 60_000
    )
    with capture_logs() as logs:
        reports = loop.run_once(120_000)
        again = loop.run_once(180_000)
    assert [r.alert_class for r in reports] == [
        AlertClass.LATENCY,
        AlertClass.FAILURES,
        AlertClass.RETRIES,
    ]
    assert len(again) == 3
    failed = [e for e in logs if e["event"] == "evaluation.class_failed"]
    assert [e["alert_class"] for e in failed] == ["endpoints", "endpoints"]
    assert failed[0]["error"] == "KeyError: 'an adapter bug'"


def test_a_reload_that_raises_anything_keeps_the_last_good_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("defaults: {latency: {above_ms: 321}}\n")
    rules = RulesProvider({"MESHALERT_RULES_FILE": str(path)})
    loop = EvaluationLoop(
        Engine(_Reader(AlertClass.ENDPOINTS), MemoryStateStore(), None), rules, 60_000
    )
    loop.run_once(60_000)
    path.write_text("defaults: " + "{a: " * 30_000 + "}" * 30_000)
    with capture_logs() as logs:
        reports = loop.run_once(120_000)
    assert len(reports) == 3
    (warning,) = [e for e in logs if e["event"] == "rules.reload_failed_using_last_good"]
    assert "nested too deeply" in warning["error"]
    assert rules.last_good is not None
    latency = rules.last_good.rules.document.defaults.latency
    assert latency.above_ms == 321
