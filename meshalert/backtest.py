"""Replays the rules over stored history with the same engine and state machine.

Every cycle between ``since`` and ``until`` is evaluated as the scheduler would have done it,
with an in-memory state store and a recording dispatcher, so a threshold can be tuned on
yesterday's traffic before it pages anyone.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.alerts.model import AlertState, Notification, NotificationKind
from meshalert.backends.memory.url import MemoryState
from meshalert.delivery import OneChannel
from meshalert.engine import CycleReport, Engine
from meshalert.evaluation import evaluate_class
from meshalert.queries.model import DEFAULT_LOOKBACK_MS, WindowReader
from meshalert.rules import LoadedRules
from meshalert.wiring import open_state

_STATES: tuple[AlertState, ...] = tuple(AlertState)
_STATE_CODES: dict[AlertState, int] = {state: i for i, state in enumerate(_STATES)}


@dataclass(frozen=True)
class Sample:
    cycle_ms: int
    value: float | None
    state: AlertState


@dataclass
class SeriesTrace:
    """One (class, service) over the replay: values, states, firing intervals."""

    alert_class: AlertClass
    service: str
    threshold: float | None = None
    threshold_source: str = ""
    notifications: list[Notification] = field(default_factory=list)
    # Compact columns, not a Sample per cycle: a day of 1,000 services is 5.8M samples, which
    # as objects took 1.8 GiB. NaN stands for "no value".
    _cycles: array[int] = field(default_factory=lambda: array("q"), repr=False)
    _values: array[float] = field(default_factory=lambda: array("d"), repr=False)
    _states: bytearray = field(default_factory=bytearray, repr=False)

    def add(self, cycle_ms: int, value: float | None, state: AlertState) -> None:
        self._cycles.append(cycle_ms)
        self._values.append(math.nan if value is None else value)
        self._states.append(_STATE_CODES[state])

    @property
    def samples(self) -> list[Sample]:
        return [
            Sample(c, None if math.isnan(v) else v, _STATES[code])
            for c, v, code in zip(self._cycles, self._values, self._states, strict=True)
        ]

    @property
    def firing_intervals(self) -> list[tuple[int, int | None]]:
        """(start, end) of each FIRING stretch; end None when still firing at the end."""
        intervals: list[tuple[int, int | None]] = []
        start: int | None = None
        for s in self.samples:
            if s.state is AlertState.FIRING and start is None:
                start = s.cycle_ms
            elif s.state is not AlertState.FIRING and start is not None:
                intervals.append((start, s.cycle_ms))
                start = None
        if start is not None:
            intervals.append((start, None))
        return intervals

    @property
    def fired(self) -> bool:
        return any(n.kind is NotificationKind.FIRING for n in self.notifications)


@dataclass
class BacktestResult:
    since_ms: int
    until_ms: int
    interval_ms: int
    cycles: int = 0
    queries_issued: int = 0
    traces: dict[tuple[AlertClass, str], SeriesTrace] = field(default_factory=dict)

    @property
    def notifications(self) -> list[Notification]:
        return [n for t in self.traces.values() for n in t.notifications]

    def alerting(self) -> list[SeriesTrace]:
        return sorted(
            (t for t in self.traces.values() if t.notifications),
            key=lambda t: (t.alert_class.value, t.service),
        )


@dataclass
class _Recorder(OneChannel):
    channel = "backtest"
    sent: list[Notification] = field(default_factory=list)

    def dispatch(self, notification: Notification, deadline_s: float) -> list[_Recorded]:
        self.sent.append(notification)
        return [_Recorded()]


@dataclass(frozen=True)
class _Recorded:
    channel: str = "backtest"
    ok: bool = True
    error: str | None = None


def cycle_times(since_ms: int, until_ms: int, interval_ms: int) -> list[int]:
    first = since_ms - since_ms % interval_ms + interval_ms
    return list(range(first, until_ms + 1, interval_ms))


def backtest(
    reader: WindowReader,
    rules: LoadedRules,
    *,
    since_ms: int,
    until_ms: int,
    interval_ms: int,
    classes: Sequence[AlertClass] = SERVICE_CLASSES,
    services: Iterable[str] = (),
    settle_ms: int = 0,
    lookback_ms: int = DEFAULT_LOOKBACK_MS,
) -> BacktestResult:
    """``settle_ms`` and ``lookback_ms`` as the live engine uses them (``meshalert backtest``
    passes the settings), so a replayed cycle reads exactly the window the live one did."""
    wanted = set(services)
    recorder = _Recorder()
    engine = Engine(
        reader, open_state(MemoryState()), recorder, settle_ms=settle_ms, lookback_ms=lookback_ms
    )
    result = BacktestResult(since_ms, until_ms, interval_ms)
    for cycle_ms in cycle_times(since_ms, until_ms, interval_ms):
        result.cycles += 1
        for alert_class in classes:
            before = len(recorder.sent)
            report = evaluate_class(engine, rules, alert_class, cycle_ms)
            result.queries_issued += report.queries_issued
            _record(result, report, recorder.sent[before:], wanted)
    return result


def _record(
    result: BacktestResult,
    report: CycleReport,
    sent: Sequence[Notification],
    wanted: set[str],
) -> None:
    for service, state in report.states.items():
        if wanted and service not in wanted:
            continue
        key = (report.alert_class, service)
        trace = result.traces.get(key)
        if trace is None:
            trace = result.traces[key] = SeriesTrace(report.alert_class, service)
        obs = report.observations.get(service)
        trace.add(report.cycle_ms, obs.value if obs else None, state)
    for note in sent:
        trace = result.traces.get((note.alert_class, note.service))
        if trace is None:
            continue
        trace.notifications.append(note)
        trace.threshold = note.evidence.threshold.value
        trace.threshold_source = note.evidence.threshold.source
