"""What the EventBridge schedule hands a handler, as values: the alert class and the cycle.

Three event shapes reach the handlers:

* the full scheduled event (a rule target without ``Input``; the heartbeat)::

    {"version": "0", "id": "...", "detail-type": "Scheduled Event", "source": "aws.events",
     "account": "...", "time": "2026-01-01T00:05:00Z", "region": "...",
     "resources": ["arn:aws:events:...:rule/..."], "detail": {}}

* an ``InputTransformer`` target that keeps the scheduled time next to the class::

    {"alert_class": "latency", "time": "2026-01-01T00:05:00Z"}

* a constant ``Input`` target (``{"alert_class": "latency"}``): no time at all, so the cycle
  comes from the clock, aligned down. A duplicated delivery within the same interval still
  computes the same cycle; one that straddles an interval boundary does not, which is why
  the schedule should pass ``time`` (see :data:`CYCLE_FROM_CLOCK`).

Pure: the current time is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass

CYCLE_FROM_EVENT = "event.time"
CYCLE_FROM_CLOCK = "clock"


class EventError(ValueError):
    """An event the handler cannot use; the message names the field."""


@dataclass(frozen=True)
class Cycle:
    cycle_ms: int
    """The scheduled time aligned down to the evaluation interval."""
    source: str
    """:data:`CYCLE_FROM_EVENT` or :data:`CYCLE_FROM_CLOCK`."""


def alert_class_of(event: object) -> AlertClass:
    """The ``alert_class`` field of the schedule's input (also accepted under ``detail``)."""
    if not isinstance(event, Mapping):
        raise EventError(f"event: expected a JSON object, got {type(event).__name__}")
    raw: Any = event.get("alert_class")
    if raw is None and isinstance(event.get("detail"), Mapping):
        raw = event["detail"].get("alert_class")
    choices = ", ".join(c.value for c in SERVICE_CLASSES)
    if raw is None:
        raise EventError(
            "event.alert_class: missing; the schedule's input must carry "
            f'{{"alert_class": ...}} with one of {choices}'
        )
    if not isinstance(raw, str) or raw.strip().lower() not in {c.value for c in SERVICE_CLASSES}:
        raise EventError(f"event.alert_class: {raw!r} is not one of {choices}")
    return AlertClass(raw.strip().lower())


def scheduled_time_ms(event: object) -> int | None:
    """The event's ``time`` (RFC 3339, UTC) in epoch ms, or None when the event has none."""
    if not isinstance(event, Mapping) or event.get("time") in (None, ""):
        return None
    raw = event["time"]
    if not isinstance(raw, str):
        raise EventError(f"event.time: expected an RFC 3339 string, got {raw!r}")
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise EventError(f"event.time: {raw!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise EventError(f"event.time: {raw!r} has no time zone (EventBridge sends UTC 'Z')")
    return epoch_ms(moment)


def cycle_of(event: object, *, interval_ms: int, now_ms: int) -> Cycle:
    """The cycle a run evaluates: the scheduled time when the event has one, else now."""
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be > 0, got {interval_ms}")
    scheduled = scheduled_time_ms(event)
    if scheduled is None:
        return Cycle(now_ms - now_ms % interval_ms, CYCLE_FROM_CLOCK)
    return Cycle(scheduled - scheduled % interval_ms, CYCLE_FROM_EVENT)


def epoch_ms(moment: datetime) -> int:
    """Exact epoch milliseconds (float seconds would round 8.149 s down to 8148 ms)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
