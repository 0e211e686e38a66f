"""What the status page shows, as plain values, and the pure steps that derive it from alert
records, history entries and sampled signals (no I/O here; see ``collect`` for that)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertRecord, AlertState
from meshalert.charts import Interval, Point
from meshalert.state.protocols import HistoryEntry
from meshalert.suppression import Silence

_STATE_RANK = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.OK: 2}


@dataclass(frozen=True)
class AlertView:
    """An alert in force with the evidence of the transition that put it in its state
    (None when that transition is older than the history the store still keeps)."""

    record: AlertRecord
    evidence: Mapping[str, Any] | None


@dataclass(frozen=True)
class SignalSeries:
    """One signal of one service over the page's span: the value the engine would compute
    at each step, the threshold it is judged against and when it fired."""

    alert_class: AlertClass
    service: str
    points: tuple[Point, ...]
    threshold: float | None
    threshold_name: str
    firing: tuple[Interval, ...]
    percentile: float | None = None
    """The latency percentile charted (per service in the rules); None for other classes."""


@dataclass(frozen=True)
class StatusSnapshot:
    now_ms: int
    span_ms: int
    step_ms: int
    firing: tuple[AlertView, ...]
    pending: tuple[AlertView, ...]
    resolved: tuple[AlertView, ...]
    """Alerts back to OK within the span, most recent first."""
    ok_counts: Mapping[AlertClass, int]
    history: tuple[HistoryEntry, ...]
    """Recent transitions, newest first."""
    signals: Mapping[str, Mapping[AlertClass, SignalSeries]]
    """Per charted service (worst first), its four signals."""
    services_total: int
    store: str = ""
    rules_sources: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)
    """What could not be read (a store error): shown on the page instead of failing it."""
    silences: tuple[Silence, ...] = ()
    """Silences in force or scheduled (the state store's), by start."""


@dataclass(frozen=True)
class ChartGroup:
    """One service on the page: the alert key charted for each class.

    Classes that read the logical (service) scope name a service as Linkerd's service scope
    does (``checkout`` when the identifier carries no namespace) while endpoints, read per
    client, name it ``production/checkout``. The engine keeps them as separate alerts; the
    page charts them together when the service name matches exactly one logical key (the
    rule the query layer uses to attribute client-scope rows)."""

    name: str
    keys: Mapping[AlertClass, str]


def chart_groups(records: Iterable[AlertRecord]) -> list[ChartGroup]:
    """Services to chart, the ones with the worst alert state first, then by name."""
    worst: dict[str, int] = {}
    classes: dict[str, set[AlertClass]] = {}
    for r in records:
        worst[r.service] = min(worst.get(r.service, 9), _STATE_RANK[r.state])
        classes.setdefault(r.service, set()).add(r.alert_class)
    logical = {k for k, cs in classes.items() if cs - {AlertClass.ENDPOINTS}}
    by_name: dict[str, list[str]] = {}
    for key in logical:
        by_name.setdefault(_service_name(key), []).append(key)
    keys: dict[str, dict[AlertClass, str]] = {k: dict.fromkeys(AlertClass, k) for k in logical}
    for key in sorted(set(classes) - logical):
        candidates = by_name.get(_service_name(key), [])
        if len(candidates) == 1 and classes[candidates[0]].isdisjoint({AlertClass.ENDPOINTS}):
            home = candidates[0]
            keys[home][AlertClass.ENDPOINTS] = key
            worst[home] = min(worst[home], worst[key])
        else:
            keys[key] = dict.fromkeys(AlertClass, key)
    return [ChartGroup(name, keys[name]) for name in sorted(keys, key=lambda k: (worst[k], k))]


def _service_name(key: str) -> str:
    return key.partition("/")[2] or key


def latest_evidence(
    record: AlertRecord, history: Sequence[HistoryEntry]
) -> Mapping[str, Any] | None:
    """Evidence of the newest transition of ``record``'s alert into its current state."""
    for entry in reversed(history):  # history is oldest first
        if (
            entry.alert_class is record.alert_class
            and entry.service == record.service
            and entry.to_state is record.state
        ):
            return entry.evidence
    return None


def firing_intervals(
    entries: Sequence[HistoryEntry], current: AlertState, *, since_ms: int
) -> tuple[Interval, ...]:
    """FIRING stretches of one alert from ``since_ms`` on, from its transitions (oldest
    first) and its current state; the last interval is open (end None) while it fires."""
    state = entries[0].from_state if entries else current
    start: int | None = since_ms if state is AlertState.FIRING else None
    out: list[Interval] = []
    for entry in entries:
        if entry.to_state is AlertState.FIRING and start is None:
            start = entry.at_ms
        elif entry.to_state is not AlertState.FIRING and start is not None:
            out.append((max(start, since_ms), entry.at_ms))
            start = None
    if start is not None:
        out.append((max(start, since_ms), None))
    return tuple(out)


def classify(
    records: Sequence[AlertRecord],
    history: Sequence[HistoryEntry],
    *,
    resolved_since_ms: int,
) -> tuple[
    tuple[AlertView, ...], tuple[AlertView, ...], tuple[AlertView, ...], dict[AlertClass, int]
]:
    """(firing, pending, resolved recently, OK counts per class)."""
    firing: list[AlertView] = []
    pending: list[AlertView] = []
    resolved: list[AlertView] = []
    ok_counts = dict.fromkeys(AlertClass, 0)
    for record in sorted(records, key=lambda r: (r.service, r.alert_class.value)):
        if record.state is AlertState.FIRING:
            firing.append(AlertView(record, latest_evidence(record, history)))
        elif record.state is AlertState.PENDING:
            pending.append(AlertView(record, latest_evidence(record, history)))
        else:
            ok_counts[record.alert_class] += 1
            if record.last_resolved_ms is not None and record.last_resolved_ms >= resolved_since_ms:
                resolved.append(AlertView(record, latest_evidence(record, history)))
    resolved.sort(key=lambda v: -(v.record.last_resolved_ms or 0))
    return tuple(firing), tuple(pending), tuple(resolved), ok_counts
