"""Reads what the status page shows: alert records and history from the state store, and each
service's four signals over the last hour from the metrics store.

Signals are read with the engine's own class queries through the same ``WindowReader`` port,
one query per class, window length and step (not per service), and turned into values by the
engine's ``observe``: a point on a chart is the value the engine computes for that time, on
every store the engine can read (SQLite, InfluxQL, Flux), and the threshold line means what
it means to the alert. Finished steps are cached, so after the first page load a refresh
costs a few queries per class, whatever the number of services.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.alerts.model import AlertRecord, AlertState
from meshalert.alerts.observe import observe
from meshalert.charts import Point
from meshalert.evaluation import RulesView
from meshalert.queries.model import WindowQueryError, WindowReader, class_query
from meshalert.rules import LoadedRules
from meshalert.signals import SIGNAL_THRESHOLDS
from meshalert.state.protocols import HistoryEntry, StateStore
from meshalert.statuspage.model import (
    SignalSeries,
    StatusSnapshot,
    chart_groups,
    classify,
    firing_intervals,
)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass
class SignalSampler:
    """Per (class, service) the engine's value at every step of the last ``span_ms``."""

    reader: WindowReader
    span_ms: int = HOUR_MS
    step_ms: int = 60_000
    refetch_steps: int = 2
    """The newest steps are read again on every refresh: points of a flush interval land
    after the step they belong to has ended."""
    queries_issued: int = field(default=0, init=False)
    _cache: dict[tuple[AlertClass, int, int], dict[str, float | None]] = field(
        default_factory=dict, init=False, repr=False
    )
    _rules: LoadedRules | None = field(default=None, init=False, repr=False)
    _services: frozenset[str] = field(default=frozenset(), init=False, repr=False)

    def ends(self, now_ms: int) -> list[int]:
        """Step end times (oldest first), aligned like evaluation cycles."""
        last = now_ms - now_ms % self.step_ms
        return [last - k * self.step_ms for k in range(self.span_ms // self.step_ms, -1, -1)]

    def sample(
        self, rules: LoadedRules, services: Sequence[str], now_ms: int
    ) -> dict[tuple[AlertClass, str], tuple[Point, ...]]:
        wanted = frozenset(services)
        if rules is not self._rules or not wanted <= self._services:
            # New rules may change windows and percentiles; a newly charted service has no
            # cached values. Either way the cached steps no longer answer.
            self._cache.clear()
            self._rules, self._services = rules, wanted
        ends = self.ends(now_ms)
        for key in [k for k in self._cache if k[2] < ends[0]]:
            del self._cache[key]
        fresh = set(ends[-self.refetch_steps :])
        view = RulesView(rules)
        out: dict[tuple[AlertClass, str], tuple[Point, ...]] = {}
        for alert_class in SERVICE_CLASSES:
            default_window, _ = view.windows(alert_class)
            by_window: dict[int, list[str]] = {}
            for service in services:
                rule = view.rule(alert_class, service)
                window = rule.window_ms if rule is not None else default_window
                by_window.setdefault(window, []).append(service)
            for window, members in by_window.items():
                columns: list[dict[str, float | None]] = []
                for end in ends:
                    key = (alert_class, window, end)
                    if key not in self._cache or end in fresh:
                        self._cache[key] = self._values(view, alert_class, window, end)
                    columns.append(self._cache[key])
                for service in members:
                    out[(alert_class, service)] = tuple(
                        (end, column.get(service))
                        for end, column in zip(ends, columns, strict=True)
                    )
        return out

    def _values(
        self, view: RulesView, alert_class: AlertClass, window_ms: int, end_ms: int
    ) -> dict[str, float | None]:
        aggregates = self.reader.fetch(class_query(alert_class, window_ms=window_ms, end_ms=end_ms))
        self.queries_issued += aggregates.queries_issued
        present = [s for s in self._services if s in aggregates.services]
        if alert_class is not AlertClass.LATENCY:
            observed = observe(aggregates)
            return {s: observed[s].value for s in present}
        values: dict[str, float | None] = {}
        by_percentile: dict[float, list[str]] = {}
        for service in present:
            by_percentile.setdefault(view.percentile(service), []).append(service)
        for percentile, members in by_percentile.items():
            observed = observe(aggregates, percentile=percentile)
            values.update({s: observed[s].value for s in members})
        return values


def _threshold(
    view: RulesView | None, alert_class: AlertClass, service: str
) -> tuple[float | None, str]:
    name = SIGNAL_THRESHOLDS[alert_class]
    rules = view.service(service) if view is not None else None
    if rules is None or not rules.rule(alert_class).enabled:
        return None, name
    for threshold in rules.rule(alert_class).thresholds():
        if threshold.name == name:
            return threshold.value, name
    return None, name


def _history(state: StateStore, records: Sequence[AlertRecord], now_ms: int) -> list[HistoryEntry]:
    """The last day of transitions, plus those of alerts in force for longer (their evidence
    is the transition that started them), oldest first."""
    since = now_ms - DAY_MS
    entries = state.history(since_ms=since)
    for record in records:
        if record.state is not AlertState.OK and record.since_ms < since:
            entries[:0] = [
                e
                for e in state.history(
                    since_ms=record.since_ms,
                    service=record.service,
                    alert_class=record.alert_class,
                )
                if e.at_ms < since
            ]
    return sorted(entries, key=lambda e: e.at_ms)


def build_snapshot(
    state: StateStore,
    sampler: SignalSampler | None,
    rules: LoadedRules | None,
    now_ms: int,
    *,
    max_services: int = 40,
    history_rows: int = 50,
    store: str = "",
) -> StatusSnapshot:
    """Everything the page shows at ``now_ms``. A metrics store that cannot answer leaves the
    charts out and says why; the alert states still show."""
    span_ms = sampler.span_ms if sampler is not None else HOUR_MS
    records = state.load_all()
    history = _history(state, records, now_ms)
    firing, pending, resolved, ok_counts = classify(
        records, history, resolved_since_ms=now_ms - span_ms
    )
    # Pipeline alerts (ingest, evaluation) are listed with the others but have no chart.
    groups = chart_groups([r for r in records if r.alert_class in SERVICE_CLASSES])
    charted = groups[:max_services]
    keys = sorted({key for group in charted for key in group.keys.values()})
    problems: list[str] = []
    sampled: dict[tuple[AlertClass, str], tuple[Point, ...]] = {}
    if sampler is not None and rules is not None and keys:
        try:
            sampled = sampler.sample(rules, keys, now_ms)
        except WindowQueryError as err:
            problems.append(f"signals could not be read: {err}")
    elif rules is None:
        problems.append("signals: no rules loaded yet")
    silences = tuple(state.silences(now_ms=now_ms))
    current = {(r.alert_class, r.service): r.state for r in records}
    recent = [e for e in history if e.at_ms >= now_ms - span_ms]
    view = RulesView(rules) if rules is not None else None
    signals: dict[str, dict[AlertClass, SignalSeries]] = {}
    for group in charted:
        per_class: dict[AlertClass, SignalSeries] = {}
        for alert_class in SERVICE_CLASSES:
            service = group.keys[alert_class]
            threshold, name = _threshold(view, alert_class, service)
            entries = [e for e in recent if e.alert_class is alert_class and e.service == service]
            per_class[alert_class] = SignalSeries(
                alert_class,
                service,
                sampled.get((alert_class, service), ()),
                threshold,
                name,
                firing_intervals(
                    entries,
                    current.get((alert_class, service), AlertState.OK),
                    since_ms=now_ms - span_ms,
                ),
                view.percentile(service)
                if view is not None and alert_class is AlertClass.LATENCY
                else None,
            )
        signals[group.name] = per_class
    return StatusSnapshot(
        now_ms=now_ms,
        span_ms=span_ms,
        step_ms=sampler.step_ms if sampler is not None else 60_000,
        firing=firing,
        pending=pending,
        resolved=resolved,
        ok_counts=ok_counts,
        history=tuple(reversed(history[-history_rows:])),
        signals=signals,
        services_total=len(groups),
        store=store,
        rules_sources=rules.sources if rules is not None else (),
        problems=tuple(problems),
        silences=silences,
    )


@dataclass
class StoreSnapshotSource:
    """``build_snapshot`` over open adapters; owned by the page's worker thread."""

    state: StateStore
    sampler: SignalSampler | None
    rules: Callable[[], LoadedRules | None]
    clock: Callable[[], float] = time.time
    store: str = ""
    closers: Sequence[Callable[[], None]] = ()

    def snapshot(self) -> StatusSnapshot:
        return build_snapshot(
            self.state, self.sampler, self.rules(), int(self.clock() * 1000), store=self.store
        )

    def close(self) -> None:
        self.state.close()
        for close in self.closers:
            close()
