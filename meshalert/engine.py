"""One evaluation cycle of one alert class: query, judge, step, claim, notify, persist.

The same code runs in Lambda (one class per scheduled function), in ``meshalert run`` and in
``meshalert backtest``; the pipeline-health classes (``ingest``, ``evaluation``: the
heartbeat) go through :meth:`Engine.evaluate_pipeline` and the same state, claims and
delivery. Everything it touches is injected: the window reader (store), the
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

import math
import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Protocol

import structlog

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.alerts.baseline import Baselines, BaselineSource, shared_cache, with_baseline
from meshalert.alerts.model import (
    AlertRecord,
    AlertState,
    Evidence,
    NoDataPolicy,
    Notification,
    NotificationKind,
    Observation,
    Severity,
    SkippedServices,
    ThresholdInForce,
    Verdict,
)
from meshalert.alerts.observe import ROUTER_AUTO, observe_service
from meshalert.alerts.pipeline import (
    Check,
    HeartbeatPolicy,
    evaluation_checks,
    forgotten_host,
    ingest_checks,
    skipped_checks,
)
from meshalert.alerts.state_machine import EvidenceSource, StepPolicy, StepResult, step
from meshalert.delivery import Dispatcher, deliver_all
from meshalert.durations import format_duration_ms
from meshalert.history_sink import HistorySink
from meshalert.queries.baseline import BucketReader
from meshalert.queries.model import (
    DEFAULT_LOOKBACK_MS,
    ClassAggregates,
    IngestAggregate,
    WindowReader,
    class_query,
)
from meshalert.safe_text import printable
from meshalert.state.protocols import HistoryEntry, StateStore
from meshalert.state.serialization import history_entry_from_step
from meshalert.suppression import (
    NoRules,
    Suppressed,
    SuppressionRules,
    Suppressor,
    catch_up,
    decide,
)

log = structlog.get_logger("meshalert.engine")

MAX_SERVICE_KEY_BYTES = 512
"""Longer keys are skipped: a Kubernetes ``namespace/name`` is at most 317 bytes, and every
state store keys records, claims and history by service (DynamoDB sort keys hold 1 KiB), so
one overlong name from a datagram would otherwise fail the whole cycle's save."""

MAX_SKIPPED_LISTED = 20
"""Skipped services named in a cycle's log line and report (all are counted)."""


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
    skipped: dict[str, str] = field(default_factory=dict)
    """Services left out of this cycle (service key -> why): a bad name, a rule that does
    not resolve for it, an impossible value. The other services are evaluated as usual."""
    suppressed: dict[str, str] = field(default_factory=dict)
    """Notifications held back this cycle (dedup key -> reason; see meshalert.suppression)."""
    caught_up: list[str] = field(default_factory=list)
    """Dedup keys re-issued because the suppression that held them has ended."""
    history_sink_failures: int = 0
    """Transitions the history sink (``meshalert_alert`` points) failed to write."""
    outbox: list[Notification] = field(default_factory=list)
    """Notifications of a cycle evaluated with ``deliver=False``, until
    :meth:`Engine.deliver` sends them with the other classes' (empty once delivered)."""
    unsunk: list[HistoryEntry] = field(default_factory=list)
    """Transitions saved but not yet copied to the history sink (after delivery)."""

    def skipped_sample(self) -> list[str]:
        """The first skipped services, escaped for any log or terminal."""
        return [printable(k) for k in sorted(self.skipped)[:MAX_SKIPPED_LISTED]]

    def as_log(self) -> dict[str, object]:
        return {
            "alert_class": self.alert_class.value,
            "cycle_ms": self.cycle_ms,
            "services_evaluated": self.services_evaluated,
            "services_skipped": len(self.skipped),
            "queries_issued": self.queries_issued,
            "transitions": len(self.transitions),
            "notifications": len(self.notifications),
            "duplicates_skipped": self.duplicates_skipped,
            "send_failures": self.send_failures,
            "suppressed": len(self.suppressed),
            "caught_up": len(self.caught_up),
            "history_sink_failures": self.history_sink_failures,
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
    """The command that replays an alert; the service is one shell word whatever it holds
    (an operator pastes this line into a shell)."""
    since = format_duration_ms(max(window_ms * 2, 3_600_000))
    return (
        f"meshalert backtest --class {alert_class.value} --service {shlex.quote(service)} "
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
    history_sink: HistorySink | None = None
    """Also writes each transition to the metrics store (``meshalert_alert``); best-effort."""

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
        suppression: SuppressionRules | None = None,
        deliver: bool = True,
    ) -> CycleReport:
        """Evaluate every service of one class at ``cycle_ms``.

        ``deliver=False`` leaves the cycle's notifications in ``report.outbox`` for
        :meth:`deliver`, so several classes evaluated together are sent (and grouped) as one
        cycle; everything else, state and history included, is done here.

        ``extra_windows`` are the window lengths of per-service overrides: one query per
        distinct window, whatever the number of services. ``baseline_windows`` are the
        window lengths whose services' rules use a baseline (retries ``anomaly_factor``):
        each service evaluated at one of them gets ``detail["baseline"]``.
        ``suppression``: maintenance windows and inhibition rules (default: no windows,
        the default inhibition); silences come from the state store.
        """
        report = CycleReport(alert_class, cycle_ms)
        deadline = deadline_s if deadline_s is not None else self.clock() + 30.0
        previous = self.state.load(alert_class)
        fetched = self._fetch(alert_class, {default_window_ms, *extra_windows}, cycle_ms, report)
        baselines = self._baselines(set(baseline_windows), cycle_ms, report)
        records: list[AlertRecord] = []
        history: list[HistoryEntry] = []
        keys = sorted(set(previous) | {k for agg in fetched.values() for k in agg.services})
        kits: dict[int, _RuleKit] = {}
        outbox: list[Notification] = []
        results: dict[str, StepResult] = {}
        for key in keys:
            # Service keys come from data: whatever one of them holds or resolves to, it is
            # skipped (counted, logged) and never stops the cycle for the others.
            try:
                outcome = self._evaluate_one(
                    alert_class,
                    key,
                    rules,
                    fetched,
                    baselines,
                    previous,
                    kits,
                    percentile_of,
                    cycle_ms,
                )
            except Exception as exc:
                self._skip(report, key, f"{type(exc).__name__}: {exc}")
                continue
            if outcome is None:
                continue
            obs, result = outcome
            report.observations[key] = obs
            report.services_evaluated += 1
            report.states[key] = result.record.state
            records.append(result.record)
            if result.transition is not None and (entry := history_entry_from_step(result)):
                report.transitions.append((key, entry.from_state.value, entry.to_state.value))
                history.append(entry)
            outbox.extend(result.notifications)
            results[key] = result
        if report.skipped:
            log.warning(
                "evaluation.services_skipped",
                alert_class=alert_class.value,
                cycle_ms=cycle_ms,
                count=len(report.skipped),
                services=report.skipped_sample(),
            )
        # Inhibiting alerts are read only when something could be held back or owed: most
        # cycles notify nothing and have nothing firing.
        needed = bool(outbox) or any(r.state is AlertState.FIRING for r in records)
        suppressor = self._suppressor(
            alert_class, suppression or NoRules(), cycle_ms, records if needed else None
        )
        decision = decide(outbox, suppressor)
        owed = self._catch_up(alert_class, rules, results, outbox, suppressor, cycle_ms, report)
        # A catch-up replaces the same alert's reminder of this cycle: one message, not two.
        replaced = {n.service for n in owed}
        send = [
            n
            for n in decision.send
            if not (n.kind is NotificationKind.REMINDER and n.service in replaced)
        ] + owed
        history = _mark_suppressed(history, decision.suppressed, suppressor)
        if decision.suppressed:
            # Before the records: a cycle that dies in between is retried from the old
            # records and holds the same keys again, while a saved FIRING record without its
            # held notification on file would never get its catch-up.
            self.state.note_suppressed(decision.suppressed)
            report.suppressed.update((h.dedup_key, h.reason) for h in decision.suppressed)
            log.info(
                "evaluation.suppressed",
                alert_class=alert_class.value,
                cycle_ms=cycle_ms,
                count=len(decision.suppressed),
                sample=[printable(h.reason) for h in decision.suppressed[:5]],
            )
        self.state.save(records)
        if history:
            self.state.append_history(history)
        # Every cycle, so the heartbeat sees the count fall back to zero too.
        self.state.note_skipped(
            SkippedServices(
                alert_class, cycle_ms, len(report.skipped), tuple(report.skipped_sample())
            )
        )
        report.outbox = send
        report.unsunk = history
        if deliver:
            self.deliver([report], deadline)
        return report

    def evaluate_pipeline(
        self,
        alert_class: AlertClass,
        policy: HeartbeatPolicy,
        cycle_ms: int,
        *,
        query_end_ms: int,
        deadline_s: float | None = None,
        deliver: bool = True,
    ) -> CycleReport:
        """One cycle of a pipeline-health class, ``ingest`` or ``evaluation`` (the checks of
        :mod:`meshalert.alerts.pipeline`), kept, claimed and sent like any class's alerts.

        Points up to ``query_end_ms`` count as fresh (the heartbeat runs after its cycle
        time). Pipeline alerts are not held back: silences, maintenance windows and
        inhibition apply to the service classes (route these with ``service:
        "meshalert/*"``), and a firing ``ingest`` alert inhibits their no-data noise.
        ``deliver=False`` as for :meth:`evaluate`.
        """
        report = CycleReport(alert_class, cycle_ms)
        deadline = deadline_s if deadline_s is not None else self.clock() + 30.0
        previous = self.state.load(alert_class)
        checks = self._pipeline_checks(
            alert_class, policy, cycle_ms, query_end_ms, previous, report
        )
        records: list[AlertRecord] = []
        forget: list[str] = []
        history: list[HistoryEntry] = []
        outbox: list[Notification] = []
        for check in checks:
            obs = check.observation
            evidence = Evidence(
                alert_class=obs.alert_class,
                service=obs.service,
                observed=obs.value,
                threshold=check.threshold,
                window=check.window,
                query=check.query,
                samples=obs.samples,
                detail=dict(obs.detail),
                previous_state=AlertState.OK,
                replay="",
            )
            step_policy = _policy_of(0, policy.renotify_ms, check.no_data, policy.severity)
            result = step(
                previous.get(obs.service), obs, check.verdict, evidence, step_policy, cycle_ms
            )
            record = result.record
            report.observations[obs.service] = obs
            report.services_evaluated += 1
            report.states[obs.service] = record.state
            if forgotten_host(record.service, obs.value, record.state is AlertState.OK):
                forget.append(record.service)
            else:
                records.append(record)
            if result.transition is not None and (entry := history_entry_from_step(result)):
                report.transitions.append(
                    (record.service, entry.from_state.value, entry.to_state.value)
                )
                history.append(entry)
            outbox.extend(result.notifications)
        self.state.save(records)
        if forget:
            self.state.forget(alert_class, forget)
        if history:
            self.state.append_history(history)
        report.outbox = outbox
        report.unsunk = history
        if deliver:
            self.deliver([report], deadline)
        return report

    def _pipeline_checks(  # noqa: PLR0917 -- one cycle's inputs, passed through
        self,
        alert_class: AlertClass,
        policy: HeartbeatPolicy,
        cycle_ms: int,
        query_end_ms: int,
        previous: Mapping[str, AlertRecord],
        report: CycleReport,
    ) -> list[Check]:
        if alert_class is AlertClass.INGEST:
            lookback_start = cycle_ms - policy.lookback_ms
            aggregates = self.reader.fetch(
                class_query(
                    AlertClass.INGEST, window_ms=query_end_ms - lookback_start, end_ms=query_end_ms
                )
            )
            report.queries_issued += aggregates.queries_issued
            newest = {
                host: agg.newest_ms
                for host, routed in aggregates.services.items()
                for agg in routed.values()
                if isinstance(agg, IngestAggregate)
            }
            return ingest_checks(
                newest,
                known_keys=previous,
                cycle_ms=cycle_ms,
                policy=policy,
                query_text=aggregates.query_text,
                window=format_duration_ms(policy.lookback_ms),
            )
        if alert_class is AlertClass.EVALUATION:
            last_evaluated = {
                c: max(
                    (
                        r.last_evaluated_ms
                        for r in self.state.load(c).values()
                        if r.last_evaluated_ms is not None
                    ),
                    default=None,
                )
                for c in SERVICE_CLASSES
            }
            checks = evaluation_checks(
                last_evaluated,
                cycle_ms=cycle_ms,
                policy=policy,
                query_text="state store: newest last_evaluated_ms of the class's alert records",
                window=format_duration_ms(policy.evaluation_stale_ms),
            )
            latest = {c: self.state.last_skipped(c) for c in SERVICE_CLASSES}
            return checks + skipped_checks(latest, cycle_ms=cycle_ms, policy=policy)
        raise ValueError(f"{alert_class.value} is not a pipeline class")

    def deliver(self, reports: Sequence[CycleReport], deadline_s: float) -> None:
        """Send the outboxes of ``reports`` (one cycle, one report per class) together:
        every channel in its own thread, one grouping over the whole cycle, plus those
        classes' earlier notifications still missing a channel. Runs after the state is
        saved; each notification is counted in its own class's report."""
        if not reports:
            return
        tallies = {r.alert_class: r for r in reports}
        deliver_all(
            [n for r in reports for n in r.outbox],
            state=self.state,
            dispatcher=self.dispatcher,
            now_ms=max(r.cycle_ms for r in reports),
            lease_ms=self.lease_ms,
            deadline_s=deadline_s,
            tallies=tallies,
            retry_classes=list(tallies),
        )
        for report in reports:
            report.outbox = []
            if report.unsunk and self.history_sink is not None:
                # After the notifications: a slow metrics store never delays a page.
                _sink_history(self.history_sink, report.unsunk, report)
            report.unsunk = []

    def _suppressor(
        self,
        alert_class: AlertClass,
        rules: SuppressionRules,
        cycle_ms: int,
        records: Sequence[AlertRecord] | None,
    ) -> Suppressor:
        """Silences (state store), windows and inhibition in force at ``cycle_ms``; the
        source alerts are this cycle's records of the class, the saved records of other
        source classes (pipeline classes included), read only when a rule needs them."""
        base = Suppressor.build(cycle_ms, self.state.silences(now_ms=cycle_ms), rules)
        relevant = [
            r for r in base.inhibit if not r.target_classes or alert_class in r.target_classes
        ]
        if not relevant or records is None:
            return base
        sources: list[AlertRecord] = []
        classes = {r.source_class for r in relevant}
        for source_class in sorted(c for c in classes if c is not None):
            if source_class is alert_class:
                sources.extend(records)
            else:
                sources.extend(self.state.load(source_class).values())
        if None in classes:
            sources.extend(
                r for c in AlertClass if c is not alert_class for r in self.state.load(c).values()
            )
            sources.extend(records)
        return base.with_sources(sources)

    def _catch_up(  # noqa: PLR0917 -- the cycle's results, passed through
        self,
        alert_class: AlertClass,
        rules: RuleLookup,
        results: Mapping[str, StepResult],
        outbox: Sequence[Notification],
        suppressor: Suppressor,
        cycle_ms: int,
        report: CycleReport,
    ) -> list[Notification]:
        """Notifications owed by FIRING alerts whose suppression has ended (see
        :func:`meshalert.suppression.catch_up`); each under the dedup key it was held with,
        so the claim sends it once however many cycles compute it."""
        # A FIRING this cycle opened a new episode: nothing of an older one is owed.
        notified = {n.service for n in outbox if n.kind is not NotificationKind.REMINDER}
        firing = {
            key: result
            for key, result in results.items()
            if result.record.state is AlertState.FIRING
            and key not in notified
            and suppressor.muted(alert_class, key) is None
        }
        if not firing:
            return []
        since = min(r.record.episode_start_ms or r.record.since_ms for r in firing.values())
        held: dict[str, list[Suppressed]] = {}
        for entry in self.state.suppressed(alert_class, since_ms=since):
            if entry.service in firing:
                held.setdefault(entry.service, []).append(entry)
        out: list[Notification] = []
        for key, entries in sorted(held.items()):
            result = firing[key]
            rule = rules(alert_class, key)
            if rule is None:
                continue
            note = catch_up(
                result.record,
                entries,
                evidence=result.evidence,
                severity=rule.severity,
                now_ms=cycle_ms,
                claimed_at=self._claimed_at,
            )
            if note is not None and suppressor.reason(note) is None:
                out.append(note)
                report.caught_up.append(note.dedup_key)
        return out

    def _claimed_at(self, dedup_key: str) -> int | None:
        info = self.state.claim_info(dedup_key)
        return None if info is None else info.claimed_ms

    def _evaluate_one(  # noqa: PLR0917 -- the cycle's shared lookups, passed through
        self,
        alert_class: AlertClass,
        key: str,
        rules: RuleLookup,
        fetched: Mapping[int, ClassAggregates],
        baselines: Mapping[int, Baselines],
        previous: Mapping[str, AlertRecord],
        kits: dict[int, _RuleKit],
        percentile_of: Callable[[str], float] | None,
        cycle_ms: int,
    ) -> tuple[Observation, StepResult] | None:
        if len(key.encode("utf-8", "surrogatepass")) > MAX_SERVICE_KEY_BYTES:
            raise ValueError(f"service key longer than {MAX_SERVICE_KEY_BYTES} bytes")
        rule = rules(alert_class, key)
        if rule is None:
            return None
        # Rules are shared by the services they apply to; the kit holds its rule, so the
        # id cannot be reused by another object during this call.
        kit = kits.get(id(rule))
        if kit is None:
            kit = kits[id(rule)] = _RuleKit(rule)
        aggregates = fetched.get(kit.window_ms)
        if aggregates is None:
            return None
        # Only latency observations read the percentile (see observe()).
        latency = alert_class is AlertClass.LATENCY
        percentile = percentile_of(key) if percentile_of and latency else 99.0
        obs = observe_service(aggregates, key, percentile=percentile, router=kit.router)
        if obs is None:
            obs = Observation(alert_class, key, None)
        if (window_baselines := baselines.get(kit.window_ms)) is not None:
            obs = with_baseline(obs, window_baselines)
        if (problem := impossible_reading(obs)) is not None:
            raise ValueError(problem)
        return obs, self._step(kit, obs, previous.get(key), aggregates, cycle_ms)

    @staticmethod
    def _skip(report: CycleReport, key: str, reason: str) -> None:
        report.skipped[key] = reason
        if len(report.skipped) > MAX_SKIPPED_LISTED:
            return  # a flood of bad names: the cycle's summary line counts the rest
        log.info(
            "evaluation.service_skipped",
            alert_class=report.alert_class.value,
            service=printable(key),
            reason=printable(reason),
        )

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


def _sink_history(sink: HistorySink, history: list[HistoryEntry], report: CycleReport) -> None:
    """After the state store has the history: a failed copy costs dashboard points, never
    the cycle (its writer's timeout bounds the delay; the state store stays complete)."""
    try:
        sink.write(history)
    except Exception as exc:
        report.history_sink_failures += len(history)
        log.warning(
            "evaluation.history_sink_failed",
            alert_class=report.alert_class.value,
            cycle_ms=report.cycle_ms,
            transitions=len(history),
            error=printable(f"{type(exc).__name__}: {exc}")[:300],
        )


def _mark_suppressed(
    history: list[HistoryEntry], held: Sequence[Suppressed], suppressor: Suppressor
) -> list[HistoryEntry]:
    """History entries of suppressed alerts say why (``evidence["suppressed"]``): the
    reason their notification was held, or the silence or window covering the service."""
    by_service = {(h.alert_class, h.service): h.reason for h in held}
    out: list[HistoryEntry] = []
    for entry in history:
        reason = by_service.get((entry.alert_class, entry.service)) or suppressor.muted(
            entry.alert_class, entry.service
        )
        out.append(
            entry
            if reason is None
            else replace(entry, evidence={**entry.evidence, "suppressed": reason})
        )
    return out


def impossible_reading(obs: Observation) -> str | None:
    """Why an observation cannot be judged, or None: every reading is a count, a ratio or a
    duration, so NaN, infinity and negative numbers only come from broken data."""
    for name, value in (("value", obs.value), ("samples", obs.samples)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            return f"{name} {value!r} is not a finite non-negative number"
    for name, detail in obs.detail.items():
        if isinstance(detail, float) and not math.isfinite(detail):
            return f"detail {name} {detail!r} is not finite"
    return None
