"""The local evaluation loop of ``meshalert run``: every aligned interval, all four classes.

Lambda does not use this: EventBridge is its scheduler and each class is its own function.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.engine import CycleReport, Engine, align_cycle
from meshalert.evaluation import RulesView, evaluate_class
from meshalert.queries.model import WindowQueryError
from meshalert.rules import LoadedRules, RulesProvider
from meshalert.state.protocols import StateUnavailableError

log = structlog.get_logger("meshalert.scheduler")

EVALUATION_ORDER = (
    AlertClass.ENDPOINTS,
    AlertClass.LATENCY,
    AlertClass.FAILURES,
    AlertClass.RETRIES,
)
"""Endpoints first: its firing alerts inhibit the same service's latency and failures
notifications of the same cycle (meshalert.suppression), which reads the saved records."""


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


@dataclass
class EvaluationLoop:
    engine: Engine
    rules: RulesProvider
    interval_ms: int
    wall_clock: Callable[[], float] = time.time
    on_cycle: Callable[[int, list[CycleReport]], None] | None = None
    maintenance: Callable[[int], None] | None = None
    """Called after each cycle with the cycle time (retention pruning)."""
    warmup_from_ms: int | None = None
    """Start-up time. A class is judged only once its longest window fits after it: a
    window reaching back before start-up would judge a few seconds of data (and set a
    service pending on them). None: judge from the first cycle (backtests, tests)."""
    cycles: int = field(default=0, init=False)
    _warming: tuple[str, ...] = field(default=(), init=False)

    def run_once(self, cycle_ms: int) -> list[CycleReport]:
        snapshot = self.rules.current(cycle_ms / 1000)
        if snapshot.stale:
            log.warning(
                "rules.reload_failed_using_last_good",
                error=str(snapshot.error),
                loaded_at_s=snapshot.loaded_at_s,
            )
        reports: list[CycleReport] = []
        deadline = time.monotonic() + self.interval_ms / 1000 * 0.8
        warming = self._warming_up(snapshot.rules, cycle_ms)
        durations: list[float] = []
        for alert_class in EVALUATION_ORDER:
            if alert_class in warming:
                continue
            started = time.monotonic()
            try:
                # Delivered below with the other classes: a storm across classes (a node
                # dies: endpoints, latency and failures at once) groups into one message.
                report = evaluate_class(
                    self.engine,
                    snapshot.rules,
                    alert_class,
                    cycle_ms,
                    deadline_s=deadline,
                    deliver=False,
                )
            except WindowQueryError as err:
                log.error("evaluation.query_failed", alert_class=alert_class.value, error=str(err))
                continue
            except StateUnavailableError as err:  # expected (a lock held too long): one line
                log.error(
                    "evaluation.state_unavailable", alert_class=alert_class.value, error=str(err)
                )
                continue
            except Exception as err:  # one class's failure must not end run
                # Services are isolated inside a cycle; this is a store or state failure,
                # logged with its traceback (it is not expected) and retried next cycle.
                log.exception(
                    "evaluation.class_failed",
                    alert_class=alert_class.value,
                    error=f"{type(err).__name__}: {err}",
                )
                continue
            durations.append(time.monotonic() - started)
            reports.append(report)
        self._deliver(reports, deadline)
        for report, duration_s in zip(reports, durations, strict=True):
            log.info("evaluation.cycle", duration_ms=round(duration_s * 1000, 1), **report.as_log())
        self.cycles += 1
        if self.on_cycle is not None:
            self.on_cycle(cycle_ms, reports)
        if self.maintenance is not None:
            self.maintenance(cycle_ms)
        return reports

    def _deliver(self, reports: list[CycleReport], deadline: float) -> None:
        try:
            self.engine.deliver(reports, deadline)
        except StateUnavailableError as err:  # retried next cycle: claims stay open
            log.error("evaluation.delivery_state_unavailable", error=str(err))
        except Exception as err:  # a delivery failure must not end run either
            log.exception("evaluation.delivery_failed", error=f"{type(err).__name__}: {err}")

    def _warming_up(self, rules: LoadedRules, cycle_ms: int) -> dict[AlertClass, int]:
        """Classes whose longest window still reaches back before start-up -> ready time."""
        if self.warmup_from_ms is None:
            return {}
        warming = {}
        for alert_class in SERVICE_CLASSES:
            default, extra = RulesView(rules).windows(alert_class)
            ready_ms = self.warmup_from_ms + max({default, *extra})
            if cycle_ms < ready_ms:
                warming[alert_class] = ready_ms
        names = tuple(c.value for c in warming)
        if names != self._warming:  # one line when it starts and each time a class is ready
            self._warming = names
            if warming:
                log.info(
                    "evaluation.warming_up",
                    classes=list(names),
                    ready_at={c.value: _utc(t) for c, t in warming.items()},
                )
            else:
                log.info("evaluation.warmed_up")
        return warming

    def run(self, stop: threading.Event) -> None:
        """Evaluate at every interval boundary until ``stop`` is set."""
        while not stop.is_set():
            now_ms = int(self.wall_clock() * 1000)
            next_cycle = align_cycle(now_ms, self.interval_ms) + self.interval_ms
            if stop.wait((next_cycle - now_ms) / 1000):
                return
            self.run_once(next_cycle)
