"""The rules document's ``maintenance`` windows and ``inhibit`` rules, validated.

Both are lists and are not merged leaf by leaf like the thresholds: the highest-precedence
source that sets a list replaces it whole (``inhibit: []`` turns the default inhibition off).
Errors name the field path, e.g. ``file:/etc/rules.yaml: maintenance.0.timezone: ...``.

.. code-block:: yaml

    maintenance:
      - name: db-patching                 # shown as "maintenance db-patching"
        service: "production/*"          # exact key or glob
        classes: [latency, failures]     # optional, default every class
        timezone: Europe/Berlin          # required for weekly windows: no implicit zone
        weekly: {days: [sat], start: "02:00", duration: 2h}
      - name: migration
        service: production/checkout
        start: "2026-12-01T22:00:00+01:00"   # one-off; an offset is required
        end: "2026-12-02T02:00:00+01:00"
    inhibit:
      - name: endpoints-over-latency-failures
        source: {class: endpoints, service: "*"}
        target: {classes: [latency, failures]}
        same_service: true
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from meshalert.alert_classes import PIPELINE_CLASSES, SERVICE_CLASSES, AlertClass
from meshalert.durations import parse_duration_ms
from meshalert.rules.models import PositiveDuration
from meshalert.suppression import (
    DEFAULT_INHIBIT_RULES,
    MAX_WINDOW_MS,
    WEEKDAYS,
    InhibitRule,
    MaintenanceWindow,
)


def _matcher(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"service matcher {value!r} must be non-empty without spaces")
    return value


def _name(value: str) -> str:
    if not value or not value.isprintable() or len(value) > 100:
        raise ValueError("name must be 1-100 printable characters")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value!r} (write an IANA name such as UTC or Europe/Berlin)"
        ) from None
    return value


def _weekday(value: str) -> str:
    day = value.strip().lower()[:3]
    if day not in WEEKDAYS:
        raise ValueError(f"unknown weekday {value!r} (one of {', '.join(WEEKDAYS)})")
    return day


def _clock(value: str) -> str:
    hours, sep, minutes = value.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"start {value!r} must be a local time HH:MM")
    if not (0 <= int(hours) <= 23 and 0 <= int(minutes) <= 59):
        raise ValueError(f"start {value!r} is not a time of day")
    return f"{int(hours):02d}:{minutes}"


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("write the time with its offset (e.g. 2026-12-01T22:00:00+01:00 or ...Z)")
    return value


Matcher = Annotated[str, AfterValidator(_matcher)]
Name = Annotated[str, AfterValidator(_name)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Weekday = Annotated[str, AfterValidator(_weekday)]
Clock = Annotated[str, AfterValidator(_clock)]
Aware = Annotated[datetime, AfterValidator(_aware)]


class WeeklySpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    days: list[Weekday] = Field(min_length=1)
    start: Clock
    duration: PositiveDuration

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if parse_duration_ms(self.duration) > MAX_WINDOW_MS:
            raise ValueError("duration must be at most 7d (a weekly window cannot overlap itself)")
        return self


def _service_classes(classes: list[AlertClass]) -> list[AlertClass]:
    """Pipeline alerts (ingest, evaluation) are never held back: naming one here would be a
    rule that silently does nothing."""
    held = [c.value for c in classes if c in PIPELINE_CLASSES]
    if held:
        raise ValueError(
            f"{', '.join(held)}: the heartbeat's own alerts are never held back; "
            f"classes here are any of {', '.join(c.value for c in SERVICE_CLASSES)}"
        )
    return classes


ServiceClasses = Annotated[list[AlertClass], AfterValidator(_service_classes)]


class MaintenanceSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    service: Matcher
    classes: ServiceClasses = []
    timezone: TimeZone | None = None
    weekly: WeeklySpec | None = None
    start: Aware | None = None
    end: Aware | None = None

    @model_validator(mode="after")
    def _one_schedule(self) -> Self:
        once = self.start is not None or self.end is not None
        if self.weekly is None and not once:
            raise ValueError("set either weekly or start and end")
        if self.weekly is not None and once:
            raise ValueError("set either weekly or start and end, not both")
        if self.weekly is not None and self.timezone is None:
            raise ValueError("timezone is required for a weekly window (e.g. timezone: UTC)")
        if once:
            if self.start is None or self.end is None:
                raise ValueError("a one-off window needs both start and end")
            if self.end <= self.start:
                raise ValueError("end must be after start")
        return self

    def window(self) -> MaintenanceWindow:
        classes = frozenset(self.classes)
        if self.weekly is not None:
            hours, _, minutes = self.weekly.start.partition(":")
            return MaintenanceWindow(
                name=self.name,
                service=self.service,
                classes=classes,
                timezone=self.timezone or "UTC",
                days=frozenset(WEEKDAYS.index(d) for d in self.weekly.days),
                start_minute=int(hours) * 60 + int(minutes),
                duration_ms=parse_duration_ms(self.weekly.duration),
            )
        assert self.start is not None and self.end is not None
        return MaintenanceWindow(
            name=self.name,
            service=self.service,
            classes=classes,
            once_start_ms=round(self.start.timestamp() * 1000),
            once_end_ms=round(self.end.timestamp() * 1000),
        )


class InhibitSourceSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    class_: AlertClass | None = Field(default=None, alias="class")
    service: Matcher = "*"


class InhibitTargetSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    classes: ServiceClasses = []
    service: Matcher = "*"
    no_data_only: bool = False


class InhibitSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name | None = None
    source: InhibitSourceSpec
    target: InhibitTargetSpec = InhibitTargetSpec()
    same_service: bool = False

    def rule(self, index: int) -> InhibitRule:
        return InhibitRule(
            name=self.name or f"inhibit-{index}",
            source_class=self.source.class_,
            source_service=self.source.service,
            target_classes=frozenset(self.target.classes),
            target_service=self.target.service,
            same_service=self.same_service,
            no_data_only=self.target.no_data_only,
        )


@dataclass(frozen=True)
class SuppressionConfig:
    """What the merged rules say about suppression (``LoadedRules.suppression``)."""

    maintenance: tuple[MaintenanceWindow, ...] = ()
    inhibit: tuple[InhibitRule, ...] = DEFAULT_INHIBIT_RULES

    def over(
        self,
        maintenance: list[MaintenanceSpec] | None,
        inhibit: list[InhibitSpec] | None,
    ) -> SuppressionConfig:
        """This config with one source's lists on top (a list it sets replaces ours)."""
        return SuppressionConfig(
            maintenance=self.maintenance
            if maintenance is None
            else tuple(m.window() for m in maintenance),
            inhibit=self.inhibit
            if inhibit is None
            else tuple(spec.rule(i) for i, spec in enumerate(inhibit)),
        )
