"""One evaluation cycle of one alert class: query, judge, step, claim, notify, persist.

The same code runs in Lambda (one class per scheduled function), in ``meshalert run`` and in
``meshalert backtest``. Everything it touches is injected: the window reader (store), the
state store, the dispatcher (notification channels) and the rules in force.

Cycle time: callers pass ``cycle_ms``, the scheduled time of the cycle aligned to the
evaluation interval. A duplicated or retried scheduler run of the same cycle computes the same
transitions, hence the same dedup keys, and the state store's claim lets exactly one of them
send each notification.

Windows end at a settled point: ``cycle_ms - settle_ms``. The sidecar writes the interval
``[T - flush, T)`` only after ``T``, so a window ending at the cycle time would read the
newest interval half-written or not at all; ``settle_ms`` (the flush interval plus a grace)
keeps every window on intervals already in the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from meshalert.alerts.baseline import Baselines, BaselineSource, shared_cache, with_baseline
from meshalert.alerts.model import (
    AlertClass,
    AlertRecord,
    AlertState,
    Evidence,
    NoDataPolicy,
    Notification,
    Observation,
    Severity,
    ThresholdInForce,
    Verdict,
)
from meshalert.alerts.observe import ROUTER_AUTO, observe
from meshalert.alerts.state_machine import EvidenceSource, StepPolicy, StepResult, step
from meshalert.delivery import Dispatcher, deliver
from meshalert.durations import format_duration_ms
from meshalert.queries.baseline import BucketReader
from meshalert.queries.model import (
    DEFAULT_LOOKBACK_MS,
    ClassAggregates,
    WindowReader,
    class_query,
)
from meshalert.state.protocols import HistoryEntry, StateStore
from meshalert.state.serialization import history_entry_from_step


class ClassRule(Protocol):
    """What the engine needs from one class rule (``meshalert.rules.models``)."""

    @property
    def window_ms(self) -> int: ...
    @property
    def for_ms(self) -> int: ...
    @property
    def renotify_ms(self) -> int: ...
    @property
    def no_data(self) -> NoDataPolicy: ...
    @property
    def severity(self) -> Severity: ...

    def judge(
        self,
        value: float | None,
        samples: float,
        detail: Mapping[str, float | str | None] | None = None,
    ) -> Verdict: ...
    def evidence_of(
        self,
        value: float | None,
        samples: float,
        detail: Mapping[str, float | str | None] | None = None,
    ) -> tuple[float | None, ThresholdInForce]: ...


RuleLookup = Callable[[AlertClass, str], ClassRule | None]
"""(class, service key) -> the rule in force, or None when disabled for that service."""


@dataclass
class CycleReport:
    """What one cycle did; logged as the canonical line of an invocation."""

    alert_class: AlertClass
    cycle_ms: int
    services_evaluated: int = 0
    queries_issued: int = 0
    transitions: list[tuple[str, str, str]] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)
    duplicates_skipped: int = 0
    send_failures: int = 0
    states: dict[str, AlertState] = field(default_factory=dict)
    observations: dict[str, Observation] = field(default_factory=dict)

    def as_log(self) -> dict[str, object]:
        return {
            "alert_class": self.alert_class.value,
            "cycle_ms": self.cycle_ms,
            "services_evaluated": self.services_evaluated,
            "queries_issued": self.queries_issued,
            "transitions": len(self.transitions),
            "notifications": len(self.notifications),
            "duplicates_skipped": self.duplicates_skipped,
            "send_failures": self.send_failures,
            "firing": sum(1 for s in self.states.values() if s is AlertState.FIRING),
        }


def align_cycle(now_ms: int, interval_ms: int) -> int:
    return now_ms - now_ms % interval_ms


def _policy(rule: ClassRule) -> StepPolicy:
    return _policy_of(rule.for_ms, rule.renotify_ms, rule.no_data, rule.severity)


@lru_cache(maxsize=256)
def _policy_of(
    for_ms: int, renotify_ms: int, no_data: NoDataPolicy, severity: Severity
) -> StepPolicy:
    return StepPolicy(for_ms=for_ms, renotify_ms=renotify_ms, no_data=no_data, severity=severity)


def replay_command(alert_class: AlertClass, service: str, cycle_ms: int, window_ms: int) -> str:
    since = format_duration_ms(max(window_ms * 2, 3_600_000))
    return (
        f"meshalert backtest --class {alert_class.value} --service '{service}' "
        f"--until {cycle_ms} --since {since}"
    )


@dataclass
class Engine:
    reader: WindowReader
    state: StateStore
    dispatcher: Dispatcher | None
    lease_ms: int = 300_000
    clock: Callable[[], float] = time.monotonic
    baselines: BaselineSource | None = None
    """Retries baselines; by default the reader's shared cache when it can run the query."""
    settle_ms: int = 0
    """Windows end this long before the cycle time (see the module docstring)."""
    lookback_ms: int = DEFAULT_LOOKBACK_MS
    """How far back the endpoints class learns each balancer's largest size."""

    def __post_init__(self) -> None:
        if self.baselines is None and isinstance(self.reader, BucketReader):
            self.baselines = shared_cache(self.reader)

    def evaluate(
        self,
        alert_class: AlertClass,
        rules: RuleLookup,
        default_window_ms: int,
        cycle_ms: int,
        *,
        extra_windows: Iterable[int] = (),
        deadline_s: float | None = None,
        percentile_of: Callable[[str], float] | None = None,
        baseline_windows: Iterable[int] = (),
    ) -> CycleReport:
        """Evaluate every service of one class at ``cycle_ms``.

        ``extra_windows`` are the window lengths of per-service overrides: one query per
        distinct window, whatever the number of services. ``baseline_windows`` are the
        window lengths whose services' rules use a baseline (retries ``anomaly_factor``):
        each service evaluated at one of them gets ``detail["baseline"]``.
        """
        report = CycleReport(alert_class, cycle_ms)
        deadline = deadline_s if deadline_s is not None else self.clock() + 30.0
        previous = self.state.load(alert_class)
        fetched = self._fetch(alert_class, {default_window_ms, *extra_windows}, cycle_ms, report)
        baselines = self._baselines(set(baseline_windows), cycle_ms, report)
        records: list[AlertRecord] = []
        history: list[HistoryEntry] = []
        keys = sorted(set(previous) | {k for agg in fetched.values() for k in agg.services})
        observed: dict[tuple[int, float, str], dict[str, Observation]] = {}
        kits: dict[int, _RuleKit] = {}
        latency = alert_class is AlertClass.LATENCY
        for key in keys:
            rule = rules(alert_class, key)
            if rule is None:
                continue
            # Rules are shared by the services they apply to; the kit holds its rule, so the
            # id cannot be reused by another object during this call.
            kit = kits.get(id(rule))
            if kit is None:
                kit = kits[id(rule)] = _RuleKit(rule)
            aggregates = fetched.get(kit.window_ms)
            if aggregates is None:
                continue
            # Only latency observations read the percentile (see observe()).
            percentile = percentile_of(key) if percentile_of and latency else 99.0
            obs = _observation(
                aggregates, key, alert_class, percentile, router=kit.router, memo=observed
            )
            if (window_baselines := baselines.get(kit.window_ms)) is not None:
                obs = with_baseline(obs, window_baselines)
            report.observations[key] = obs
            result = self._step(kit, obs, previous.get(key), aggregates, cycle_ms)
            report.services_evaluated += 1
            report.states[key] = result.record.state
            records.append(result.record)
            if result.transition is not None and (entry := history_entry_from_step(result)):
                report.transitions.append((key, entry.from_state.value, entry.to_state.value))
                history.append(entry)
            for note in result.notifications:
                self._deliver(note, cycle_ms, deadline, report)
        self.state.save(records)
        if history:
            self.state.append_history(history)
        return report

    def _fetch(
        self, alert_class: AlertClass, windows: set[int], cycle_ms: int, report: CycleReport
    ) -> dict[int, ClassAggregates]:
        out: dict[int, ClassAggregates] = {}
        for window in sorted(windows):
            aggregates = self.reader.fetch(
                class_query(
                    alert_class,
                    window_ms=window,
                    end_ms=cycle_ms - self.settle_ms,
                    lookback_ms=self.lookback_ms,
                )
            )
            report.queries_issued += aggregates.queries_issued
            out[window] = aggregates
        return out

    def _baselines(
        self, windows: set[int], cycle_ms: int, report: CycleReport
    ) -> dict[int, Baselines]:
        out: dict[int, Baselines] = {}
        if self.baselines is None:
            return out
        for window in sorted(windows):
            out[window] = self.baselines.get(window, cycle_ms)
            report.queries_issued += out[window].queries_issued
        return out

    def _step(
        self,
        kit: _RuleKit,
        obs: Observation,
        prev: AlertRecord | None,
        aggregates: ClassAggregates,
        cycle_ms: int,
    ) -> StepResult:
        rule = kit.rule
        verdict = rule.judge(obs.value, obs.samples, obs.detail)
        observed, threshold = rule.evidence_of(obs.value, obs.samples, obs.detail)
        evidence: EvidenceSource = _EvidenceOf(
            kit, obs, observed, threshold, aggregates.query_text, cycle_ms
        )
        return step(prev, obs, verdict, evidence, kit.policy, cycle_ms)

    def _deliver(
        self, note: Notification, cycle_ms: int, deadline: float, report: CycleReport
    ) -> None:
        deliver(
            note,
            state=self.state,
            dispatcher=self.dispatcher,
            now_ms=cycle_ms,
            lease_ms=self.lease_ms,
            deadline_s=deadline,
            tally=report,
        )


class _RuleKit:
    """What the engine derives from one rule, once per cycle rather than once per service
    (durations are parsed from the rule's text on every read)."""

    __slots__ = ("policy", "router", "rule", "window", "window_ms")

    def __init__(self, rule: ClassRule) -> None:
        self.rule = rule
        # Whose view is judged (meshalert.alerts.observe); rules without one judge "auto".
        self.router = str(getattr(rule, "router", ROUTER_AUTO))
        self.window_ms = rule.window_ms
        self.window = format_duration_ms(self.window_ms)
        self.policy = _policy(rule)


class _EvidenceOf:
    """The evidence of one service's evaluation, built only if the step needs it."""

    __slots__ = ("_cycle_ms", "_kit", "_obs", "_query", "observed", "threshold")

    def __init__(  # noqa: PLR0917 -- the parts of one Evidence, kept until needed
        self,
        kit: _RuleKit,
        obs: Observation,
        observed: float | None,
        threshold: ThresholdInForce,
        query: str,
        cycle_ms: int,
    ) -> None:
        self._kit = kit
        self._obs = obs
        self.observed = observed
        self.threshold = threshold
        self._query = query
        self._cycle_ms = cycle_ms

    def build(self, previous_state: AlertState) -> Evidence:
        obs = self._obs
        return Evidence(
            alert_class=obs.alert_class,
            service=obs.service,
            observed=self.observed,
            threshold=self.threshold,
            window=self._kit.window,
            query=self._query,
            samples=obs.samples,
            detail=dict(obs.detail),
            previous_state=previous_state,
            replay=replay_command(
                obs.alert_class, obs.service, self._cycle_ms, self._kit.window_ms
            ),
        )


def _observation(
    aggregates: ClassAggregates,
    key: str,
    alert_class: AlertClass,
    percentile: float,
    *,
    router: str,
    memo: dict[tuple[int, float, str], dict[str, Observation]],
) -> Observation:
    # One observe() pass per (window, percentile, router policy), shared by the services: a
    # copy of the aggregates per service to observe it alone cost about 1 s of a 10k-service
    # cycle.
    slot = (aggregates.query.window_ms, percentile, router)
    window_observations = memo.get(slot)
    if window_observations is None:
        window_observations = memo[slot] = observe(aggregates, percentile=percentile, router=router)
    obs = window_observations.get(key)
    return obs if obs is not None else Observation(alert_class, key, None)
