"""The retries anomaly test (``anomaly_factor``) on synthetic traffic through the real stages.

Simulator -> parser -> mapper -> aggregator -> SqliteWriter -> SQLite window and baseline
queries -> rules -> state machine. Two hours of history stand in for "the previous day"
(the baseline reads whatever part of the day holds data).

- ``jumpy`` retries 8% of its requests, jumps to 35% for ten minutes, then returns to 8%;
- ``steady`` retries 35% all along (its own normal);
- ``young`` appears with the jump, at 35%, and so has no history and no baseline.

``ratio_above`` is 0.5, so only the anomaly test (3x the baseline) can fire on 35%.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.alerts.baseline import BaselineCache
from meshalert.alerts.model import NotificationKind
from meshalert.backends.memory.state import MemoryStateStore
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.writer import SqliteWriter, open_database
from meshalert.engine import CycleReport, Engine
from meshalert.evaluation import evaluate_class
from meshalert.rules import load_rules
from meshalert.simulator.traffic import ServiceSpec
from tests.meshalert.scenario import T0_MS, Scenario, ingest
from tests.meshalert.test_engine_scenarios import Recorder

ANOMALY_RULES = """
defaults:
  retries: {exhausted_above: 0, ratio_above: 0.5, window: 2m, for: 1m, anomaly_factor: 3}
"""
PLAIN_RULES = """
defaults:
  retries: {exhausted_above: 0, ratio_above: 0.5, window: 2m, for: 1m}
"""
HISTORY_S = 7200
JUMP_S = 600
RECOVERY_S = 360
JUMP_START_MS = T0_MS + HISTORY_S * 1000
RECOVERY_START_MS = JUMP_START_MS + JUMP_S * 1000
END_MS = RECOVERY_START_MS + RECOVERY_S * 1000
FIRST_CYCLE_MS = T0_MS + 30 * 60_000


def _spec(name: str, retry_rate: float) -> ServiceSpec:
    return ServiceSpec("production", name, rps=30.0, retry_rate=retry_rate, failure_rate=0.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("baseline") / "meshalert.db"
    writer = SqliteWriter.open(str(path))
    phases = [  # (start, seconds, {service: retry rate})
        (T0_MS, HISTORY_S, {"jumpy": 0.08, "steady": 0.35}),
        (JUMP_START_MS, JUMP_S, {"jumpy": 0.35, "steady": 0.35, "young": 0.35}),
        (RECOVERY_START_MS, RECOVERY_S, {"jumpy": 0.08, "steady": 0.35, "young": 0.35}),
    ]
    for seed, (t0_ms, duration_s, rates) in enumerate(phases):
        services = tuple(_spec(name, rate) for name, rate in rates.items())
        ingest(Scenario(services, (), duration_s), writer, seed=seed, t0_ms=t0_ms)
    writer.close()
    return path


def _run(store: Path, rules_text: str) -> tuple[Recorder, list[CycleReport]]:
    rules = load_rules({"MESHALERT_RULES": rules_text}, now_s=0.0)
    reader = SqliteWindowReader(open_database(str(store), readonly=True))
    recorder = Recorder()
    engine = Engine(reader, MemoryStateStore(), recorder, baselines=BaselineCache(reader))
    reports = [
        evaluate_class(engine, rules, AlertClass.RETRIES, cycle_ms)
        for cycle_ms in range(FIRST_CYCLE_MS, END_MS + 1, 60_000)
    ]
    return recorder, reports


@pytest.fixture(scope="module")
def anomaly_run(store: Path) -> tuple[Recorder, list[CycleReport]]:
    return _run(store, ANOMALY_RULES)


def _at(reports: list[CycleReport], cycle_ms: int) -> CycleReport:
    return next(r for r in reports if r.cycle_ms == cycle_ms)


def test_a_jump_to_several_times_the_usual_rate_fires_and_resolves(
    anomaly_run: tuple[Recorder, list[CycleReport]],
) -> None:
    recorder, _ = anomaly_run
    kinds = Counter((n.service, n.kind) for n in recorder.sent)
    assert kinds == Counter(
        {("jumpy", NotificationKind.FIRING): 1, ("jumpy", NotificationKind.RESOLVED): 1}
    )
    firing, resolved = recorder.sent
    assert JUMP_START_MS < firing.at_ms <= JUMP_START_MS + 4 * 60_000
    assert RECOVERY_START_MS < resolved.at_ms <= RECOVERY_START_MS + 4 * 60_000
    detail = firing.evidence.detail
    baseline = detail["baseline"]
    assert isinstance(baseline, float) and 0.06 < baseline < 0.10
    assert firing.evidence.observed is not None and firing.evidence.observed > 3 * baseline
    assert firing.evidence.threshold.name == "retries.anomaly_factor x baseline"
    assert firing.evidence.threshold.value == pytest.approx(3 * baseline)
    assert isinstance(detail["baseline_buckets"], float) and detail["baseline_buckets"] >= 12
    assert str(detail["baseline_span"]).startswith("[")


def test_a_service_steadily_at_that_rate_has_it_as_its_baseline_and_stays_quiet(
    anomaly_run: tuple[Recorder, list[CycleReport]],
) -> None:
    recorder, reports = anomaly_run
    assert all(n.service != "steady" for n in recorder.sent)
    obs = _at(reports, JUMP_START_MS + 5 * 60_000).observations["steady"]
    baseline = obs.detail["baseline"]
    assert isinstance(baseline, float) and 0.32 < baseline < 0.38
    assert obs.value is not None and 0.28 < obs.value < 0.42


def test_a_service_without_history_has_no_baseline_and_the_anomaly_test_stays_silent(
    anomaly_run: tuple[Recorder, list[CycleReport]],
) -> None:
    recorder, reports = anomaly_run
    assert all(n.service != "young" for n in recorder.sent)
    # The cache refreshes at the jump's start and 15 minutes later: by then "young" has
    # its own first 7 two-minute buckets, still fewer than the 12 a baseline needs.
    for minutes, buckets in ((5, 0.0), (15, 7.0)):
        obs = _at(reports, JUMP_START_MS + minutes * 60_000).observations["young"]
        assert obs.detail["baseline"] is None
        assert obs.detail["baseline_buckets"] == buckets
        assert obs.value is not None and obs.value > 0.25


def test_the_baseline_query_runs_once_per_cache_period_not_every_cycle(
    anomaly_run: tuple[Recorder, list[CycleReport]],
) -> None:
    _, reports = anomaly_run
    extra = [r.queries_issued - 1 for r in reports]  # one window query per cycle
    assert extra[:16] == [1] + [0] * 14 + [1]
    assert sum(extra) == -(-len(reports) // 15)


def test_without_anomaly_factor_no_baseline_is_queried_and_nothing_fires(store: Path) -> None:
    recorder, reports = _run(store, PLAIN_RULES)
    assert recorder.sent == []
    assert {r.queries_issued for r in reports} == {1}
    obs = _at(reports, JUMP_START_MS + 5 * 60_000).observations["jumpy"]
    assert "baseline" not in obs.detail
    assert obs.value is not None and obs.value > 0.25
