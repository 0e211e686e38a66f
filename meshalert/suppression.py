"""Which notifications are held back, and why: silences, maintenance windows, inhibition. Pure.

Suppression is decided in the evaluation path, before delivery: the state machine still
steps every alert and the history records every transition (marked with the reason), but
a suppressed notification is never claimed or sent. It is recorded instead
(:class:`Suppressed`, keyed by its dedup key), so that when the suppression ends while the
alert still fires, :func:`catch_up` re-issues the latest suppressed notification of the
episode *under its own dedup key*: the ordinary claim then lets exactly one cycle send it,
however often the cycle is retried or run concurrently.

Reasons, in the order they are tried (the first that applies is recorded):

* ``silenced by <id>: <reason>`` -- an operator's silence (``meshalert silence add``);
* ``maintenance <name>`` -- a scheduled window of the rules document;
* ``inhibited by <class>/<service>`` -- a firing alert named by an inhibition rule.

Service matchers are exact keys or ``fnmatch`` globs matched case-sensitively against the
whole ``namespace/service`` key (``*`` also matches ``/``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Protocol
from zoneinfo import ZoneInfo

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.alerts.model import (
    AlertRecord,
    AlertState,
    Evidence,
    Notification,
    NotificationKind,
    Severity,
)


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def service_matches(pattern: str, service: str) -> bool:
    """An exact key matches only itself; a glob matches the whole key."""
    if not is_glob(pattern):
        return pattern == service
    return fnmatchcase(service, pattern)


@dataclass(frozen=True)
class Silence:
    """An operator's silence: matching notifications are held back while it is active."""

    id: str
    service: str
    """Exact service key or glob."""
    alert_class: AlertClass | None
    """None: every class."""
    start_ms: int
    end_ms: int
    reason: str
    author: str
    created_ms: int
    expired_ms: int | None = None
    """Set when ``silence expire`` ended it early."""
    expired_by: str | None = None

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise ValueError(f"silence {self.id}: end must be after start")
        if not self.service:
            raise ValueError(f"silence {self.id}: service must not be empty")

    @property
    def ends_ms(self) -> int:
        """When it stops (or stopped) suppressing."""
        return self.end_ms if self.expired_ms is None else min(self.end_ms, self.expired_ms)

    def active(self, now_ms: int) -> bool:
        return self.start_ms <= now_ms < self.ends_ms

    def matches(self, alert_class: AlertClass, service: str) -> bool:
        if self.alert_class is not None and self.alert_class is not alert_class:
            return False
        return service_matches(self.service, service)


class SilenceAction:
    ADDED = "added"
    EXPIRED = "expired"


@dataclass(frozen=True)
class SilenceEvent:
    """One line of the audit trail: who added or expired which silence, when."""

    at_ms: int
    silence_id: str
    action: str
    author: str
    detail: str = ""


@dataclass(frozen=True)
class Suppressed:
    """A notification held back, and why (what ``catch_up`` and ``history`` read)."""

    dedup_key: str
    alert_class: AlertClass
    service: str
    episode_start_ms: int
    kind: NotificationKind
    reminder_seq: int
    at_ms: int
    reason: str

    @staticmethod
    def of(note: Notification, reason: str) -> Suppressed:
        return Suppressed(
            dedup_key=note.dedup_key,
            alert_class=note.alert_class,
            service=note.service,
            episode_start_ms=note.episode_start_ms,
            kind=note.kind,
            reminder_seq=note.reminder_seq,
            at_ms=note.at_ms,
            reason=reason,
        )


# --- maintenance windows ----------------------------------------------------------------

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_WINDOW_MS = 7 * 86_400_000


@dataclass(frozen=True)
class MaintenanceWindow:
    """A scheduled window of the rules document: weekly (``days`` at ``start_minute`` local
    time for ``duration_ms``, in ``timezone``) or one-off (``once_start_ms``..``once_end_ms``).
    Validation lives in :mod:`meshalert.rules.suppression`; this only answers "active?"."""

    name: str
    service: str
    classes: frozenset[AlertClass]
    """Empty: every class."""
    timezone: str = "UTC"
    days: frozenset[int] = frozenset()
    """Weekdays the window starts on (0 = Monday), local time."""
    start_minute: int = 0
    duration_ms: int = 0
    once_start_ms: int | None = None
    once_end_ms: int | None = None

    def matches(self, alert_class: AlertClass, service: str) -> bool:
        if self.classes and alert_class not in self.classes:
            return False
        return service_matches(self.service, service)

    def active(self, now_ms: int) -> bool:
        if self.once_start_ms is not None and self.once_end_ms is not None:
            return self.once_start_ms <= now_ms < self.once_end_ms
        return self.occurrence(now_ms) is not None

    def occurrence(self, now_ms: int) -> tuple[int, int] | None:
        """The weekly occurrence ``[start, end)`` holding ``now_ms``, if any.

        A start is a local wall-clock time: on a DST change it is resolved with ``fold=0``
        (a skipped time moves forward with the offset, a repeated one takes the first);
        the duration is absolute (a 2h window is two real hours even across a change)."""
        if not self.days or self.duration_ms <= 0:
            return None
        zone = ZoneInfo(self.timezone)
        now_local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(zone)
        # Occurrences that could still hold now started at most duration (<= 7 days) ago.
        back = self.duration_ms // 86_400_000 + 1
        for days_ago in range(back + 1):
            day = now_local.date() - timedelta(days=days_ago)
            if day.weekday() not in self.days:
                continue
            naive = datetime(day.year, day.month, day.day) + timedelta(minutes=self.start_minute)
            start_ms = _epoch_ms(naive.replace(tzinfo=zone))
            if start_ms <= now_ms < start_ms + self.duration_ms:
                return start_ms, start_ms + self.duration_ms
        return None


def _epoch_ms(moment: datetime) -> int:
    # Via UTC: subtracting an aware local time from the epoch honours its offset exactly.
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


# --- inhibition ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InhibitRule:
    """A firing alert matching ``source_*`` suppresses notifications matching ``target_*``.

    ``same_service``: only the source's own service (the endpoints -> latency/failures
    default). ``no_data_only``: only notifications about a window without data (the
    pipeline-health default: a dead sidecar makes every service it fed go quiet)."""

    name: str
    source_class: AlertClass | None
    source_service: str
    target_classes: frozenset[AlertClass]
    target_service: str = "*"
    same_service: bool = False
    no_data_only: bool = False

    def source_matches(self, record: AlertRecord) -> bool:
        if record.state is not AlertState.FIRING:
            return False
        if self.source_class is not None and record.alert_class is not self.source_class:
            return False
        return service_matches(self.source_service, record.service)

    def target_matches(self, note: Notification) -> bool:
        if self.target_classes and note.alert_class not in self.target_classes:
            return False
        if self.no_data_only and note.evidence.observed is not None:
            return False
        return service_matches(self.target_service, note.service)


PIPELINE_KEY_GLOB = "meshalert/ingest*"
"""The heartbeat's ingest alerts (``meshalert/ingest`` and ``meshalert/ingest:<host>``, class
``ingest``; see :mod:`meshalert.alerts.pipeline`)."""

DEFAULT_INHIBIT_RULES: tuple[InhibitRule, ...] = (
    InhibitRule(
        name="pipeline-no-data",
        source_class=AlertClass.INGEST,
        source_service=PIPELINE_KEY_GLOB,
        target_classes=frozenset(SERVICE_CLASSES),
        no_data_only=True,
    ),
    InhibitRule(
        name="endpoints-over-latency-failures",
        source_class=AlertClass.ENDPOINTS,
        source_service="*",
        target_classes=frozenset({AlertClass.LATENCY, AlertClass.FAILURES}),
        same_service=True,
    ),
)


# --- the decision ------------------------------------------------------------------------


class SuppressionRules(Protocol):
    """What the rules document contributes (``LoadedRules.suppression``)."""

    @property
    def maintenance(self) -> Sequence[MaintenanceWindow]: ...

    @property
    def inhibit(self) -> Sequence[InhibitRule]: ...


@dataclass(frozen=True)
class NoRules:
    maintenance: tuple[MaintenanceWindow, ...] = ()
    inhibit: tuple[InhibitRule, ...] = DEFAULT_INHIBIT_RULES


@dataclass(frozen=True)
class Suppressor:
    """Everything in force at one cycle time; ``reason`` is the whole decision."""

    now_ms: int
    silences: tuple[Silence, ...] = ()
    maintenance: tuple[MaintenanceWindow, ...] = ()
    inhibit: tuple[InhibitRule, ...] = ()
    sources: tuple[AlertRecord, ...] = ()
    """Firing alerts that may inhibit others (other classes' records, heartbeat records)."""

    @staticmethod
    def build(
        now_ms: int,
        silences: Iterable[Silence],
        rules: SuppressionRules,
        sources: Iterable[AlertRecord] = (),
    ) -> Suppressor:
        inhibit = tuple(rules.inhibit)
        firing = tuple(r for r in sources if any(rule.source_matches(r) for rule in inhibit))
        return Suppressor(
            now_ms=now_ms,
            silences=tuple(s for s in silences if s.active(now_ms)),
            maintenance=tuple(w for w in rules.maintenance if w.active(now_ms)),
            inhibit=inhibit,
            sources=firing,
        )

    def with_sources(self, records: Iterable[AlertRecord]) -> Suppressor:
        more = tuple(r for r in records if any(rule.source_matches(r) for rule in self.inhibit))
        return Suppressor(
            self.now_ms, self.silences, self.maintenance, self.inhibit, self.sources + more
        )

    def muted(self, alert_class: AlertClass, service: str) -> str | None:
        """Why every notification of this alert is held back now (silence, maintenance)."""
        for silence in self.silences:
            if silence.matches(alert_class, service):
                return f"silenced by {silence.id}: {silence.reason}"
        for window in self.maintenance:
            if window.matches(alert_class, service):
                return f"maintenance {window.name}"
        return None

    def reason(self, note: Notification) -> str | None:
        """Why ``note`` is held back, or None to send it."""
        if (muted := self.muted(note.alert_class, note.service)) is not None:
            return muted
        for rule in self.inhibit:
            if not rule.target_matches(note):
                continue
            for source in self.sources:
                if source.alert_class is note.alert_class and source.service == note.service:
                    continue  # an alert never inhibits itself
                if rule.same_service and source.service != note.service:
                    continue
                if rule.source_matches(source):
                    return f"inhibited by {source.alert_class.value}/{source.service}"
        return None


@dataclass(frozen=True)
class Decision:
    send: tuple[Notification, ...]
    suppressed: tuple[Suppressed, ...]


def decide(notes: Sequence[Notification], suppressor: Suppressor) -> Decision:
    send: list[Notification] = []
    held: list[Suppressed] = []
    for note in notes:
        why = suppressor.reason(note)
        if why is None:
            send.append(note)
        else:
            held.append(Suppressed.of(note, why))
    return Decision(tuple(send), tuple(held))


def catch_up(
    record: AlertRecord,
    held: Sequence[Suppressed],
    *,
    evidence: Evidence,
    severity: Severity,
    now_ms: int,
    claimed_at: Callable[[str], int | None],
) -> Notification | None:
    """The notification owed for a FIRING alert whose suppression has ended, or None.

    ``held`` are the suppressed notifications of the record's class and service;
    ``claimed_at`` tells when a dedup key was first claimed (None: never). What is owed is
    what was held in the current episode after the last catch-up (a held notification whose
    key has been claimed since): the held FIRING if the page never went out, else the
    latest held REMINDER. It is re-issued under its own dedup key, so the claim lets one
    cycle send it, once. A RESOLVED alert owes nothing."""
    if record.state is not AlertState.FIRING or record.episode_start_ms is None:
        return None
    episode = [
        h
        for h in held
        if h.episode_start_ms == record.episode_start_ms and h.kind is not NotificationKind.RESOLVED
    ]
    claims = [t for h in episode if (t := claimed_at(h.dedup_key)) is not None]
    last_catch_up = max(claims, default=None)
    owed = [h for h in episode if last_catch_up is None or h.at_ms > last_catch_up]
    if not owed:
        return None
    # The page itself first: a responder who never got the FIRING must not get a REMINDER.
    firing = [h for h in owed if h.kind is NotificationKind.FIRING]
    chosen = firing[0] if firing else max(owed, key=lambda h: (h.at_ms, h.reminder_seq))
    if claimed_at(chosen.dedup_key) is not None:
        return None
    return Notification(
        kind=chosen.kind,
        alert_class=record.alert_class,
        service=record.service,
        severity=severity,
        at_ms=now_ms,
        episode_start_ms=record.episode_start_ms,
        evidence=evidence,
        reminder_seq=chosen.reminder_seq,
    )
