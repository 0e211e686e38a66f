"""Values that flow through the alert engine: observations, alert records, notifications.

These are the seams between the query layer (which produces :class:`Observation`), the pure
state machine (which turns a previous :class:`AlertRecord` and an observation into a new
record and :class:`Notification` values), the state stores and the notifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from meshalert.alert_classes import AlertClass


class AlertState(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"


class NotificationKind(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"
    REMINDER = "reminder"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class ThresholdInForce:
    """A threshold value and where it came from (``default``, ``file:/path``,
    ``ssm:/name@version``, ``env:MESHALERT_RULE__LATENCY__ABOVE_MS``, ``flag:--rules``)."""

    name: str
    value: float
    source: str


@dataclass(frozen=True)
class Observation:
    """What one window query says about one (class, service) at one evaluation.

    ``value`` is None when the window had no data (the rule's ``no_data`` policy decides).
    ``samples`` is the amount of data behind the value (requests, timer samples, hosts).
    ``detail`` carries class-specific evidence (worst host, connection failures, ratio
    parts); values are plain JSON scalars.
    """

    alert_class: AlertClass
    service: str
    value: float | None
    samples: float = 0.0
    detail: Mapping[str, float | str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Evidence:
    """Everything a responder needs to trust (or replay) an alert."""

    alert_class: AlertClass
    service: str
    observed: float | None
    threshold: ThresholdInForce
    window: str
    query: str
    samples: float
    detail: Mapping[str, float | str | None]
    previous_state: AlertState
    replay: str


@dataclass(frozen=True)
class AlertRecord:
    """The persisted state of one (class, service) alert."""

    alert_class: AlertClass
    service: str
    state: AlertState
    since_ms: int
    """When the current state began."""
    episode_start_ms: int | None = None
    """When the current episode's condition first became true (PENDING entry); the dedup key
    of every notification of the episode contains it."""
    last_notified_ms: int | None = None
    last_value: float | None = None
    last_evaluated_ms: int | None = None
    threshold: ThresholdInForce | None = None
    flaps: int = 0
    """Recent FIRING->OK->PENDING turns, used to damp flapping."""
    reminder_seq: int = 0
    """Reminders sent in the current FIRING episode (the last REMINDER's sequence number)."""
    recovering_since_ms: int | None = None
    """While a damped (flapping) alert is FIRING: when ``recovered`` began to hold."""
    last_resolved_ms: int | None = None
    """When the last episode was RESOLVED; a re-fire soon after it counts as a flap."""


@dataclass(frozen=True)
class Notification:
    kind: NotificationKind
    alert_class: AlertClass
    service: str
    severity: Severity
    at_ms: int
    episode_start_ms: int
    evidence: Evidence
    reminder_seq: int = 0

    @property
    def dedup_key(self) -> str:
        """Same for every evaluation of one transition; a retried cycle reuses it."""
        suffix = f"#{self.reminder_seq}" if self.kind is NotificationKind.REMINDER else ""
        return (
            f"{self.alert_class.value}|{self.service}|{self.episode_start_ms}|"
            f"{self.kind.value}{suffix}"
        )


class NoDataPolicy(StrEnum):
    KEEP = "keep"
    """Keep the current state; a FIRING alert stays firing while data is missing."""
    ALERT = "alert"
    """Missing data counts as a breach."""
    OK = "ok"
    """Missing data counts as healthy (resolves a firing alert)."""


@dataclass(frozen=True)
class Verdict:
    """A rule's judgement of one observation, the state machine's only view of thresholds.

    ``breached`` is None when there was no data. ``recovered`` is True when the value is back
    past the recovery threshold (hysteresis: between the two thresholds an alert neither
    fires nor resolves, so ``breached`` False and ``recovered`` False means "hold").
    """

    breached: bool | None
    recovered: bool


@dataclass(frozen=True)
class SkippedServices:
    """What the latest evaluation of a class left out (see ``CycleReport.skipped``), kept
    for the heartbeat: how many services, and the first few names, already escaped."""

    alert_class: AlertClass
    cycle_ms: int
    count: int
    services: tuple[str, ...] = ()
