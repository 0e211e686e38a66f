"""Routing notifications to channels by severity, class and service glob.

Routes are tried in order and the first that matches decides the channels; a notification
no route matches goes to every channel. An empty ``channels`` list drops the notification
(e.g. silence staging). Configuration (``MESHALERT_ROUTES``, JSON or YAML)::

    - match: {severity: [critical], service: "production/*"}
      channels: [slack, sns]
    - match: {severity: [warning]}
      channels: [slack]
    - match: {service: ["staging/*", "dev/*"]}
      channels: []

``match`` keys (all optional, all must hold): ``severity`` (list), ``class`` (list of alert
classes), ``service`` (one glob or a list of globs, fnmatch style, case-sensitive).
A mapping ``{"routes": [...]}`` is accepted too.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from fnmatch import fnmatchcase
from queue import Queue
from typing import Any, cast

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import Notification, Severity
from meshalert.notify.base import GroupNotifier, Notifier, SendResult
from meshalert.notify.grouping import GroupingConfig, NotificationGroup, plan

log = structlog.get_logger("meshalert.notify.router")


class RouteMatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    severity: tuple[Severity, ...] | None = None
    alert_class: tuple[AlertClass, ...] | None = Field(default=None, alias="class")
    service: tuple[str, ...] | None = None

    @field_validator("service", mode="before")
    @classmethod
    def _one_glob_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    def matches(self, notification: Notification) -> bool:
        if self.severity is not None and notification.severity not in self.severity:
            return False
        if self.alert_class is not None and notification.alert_class not in self.alert_class:
            return False
        return self.service is None or any(
            fnmatchcase(notification.service, glob) for glob in self.service
        )


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    match: RouteMatch = RouteMatch()
    channels: tuple[str, ...]


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: tuple[Route, ...] = ()

    @classmethod
    def from_text(cls, text: str) -> RoutingConfig:
        """Parse JSON or YAML (JSON is YAML); a bare list means the routes."""
        import yaml  # only when routes are configured: the Lambda cold start stays lean

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"MESHALERT_ROUTES is neither JSON nor YAML: {exc}") from exc
        if data is None:
            return cls()
        if isinstance(data, list):
            data = {"routes": data}
        return cls.model_validate(data)

    def channels_for(
        self, notification: Notification, all_channels: tuple[str, ...]
    ) -> tuple[str, ...]:
        for route in self.routes:
            if route.match.matches(notification):
                return route.channels
        return all_channels


class Router:
    """Sends notifications to their channels concurrently: one worker thread per channel
    works through that channel's queue, so a slow or retrying channel never eats another's
    time. Within a channel, each notification may use an equal share of the time left
    (``(deadline - now) / notifications still queued``), so one hung send cannot starve
    the notifications behind it either."""

    def __init__(
        self,
        channels: Mapping[str, Notifier],
        config: RoutingConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        grouping: GroupingConfig | None = None,
    ) -> None:
        self._channels = dict(channels)
        self._config = config or RoutingConfig()
        self._clock = clock
        self._grouping = grouping
        """Storm protection (``meshalert.notify.grouping``); None sends every notification
        on its own."""
        self.counts: Counter[tuple[str, str]] = Counter()
        """(channel, "sent" | "failed") -> notifications, for health output."""
        _check_channels(self._config, tuple(self._channels))

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(self._channels)

    def channels_for(self, notification: Notification) -> tuple[str, ...]:
        return self._config.channels_for(notification, tuple(self._channels))

    def dispatch(self, notification: Notification, deadline_s: float) -> list[SendResult]:
        """One notification to every channel its route names."""
        names = self.channels_for(notification)
        if not names:
            log.info("notify.dropped_by_route", dedup_key=notification.dedup_key)
            return []
        results = [r for _, r in self.dispatch_all([(notification, names)], deadline_s)]
        return sorted(results, key=lambda r: names.index(r.channel))

    def dispatch_all(
        self, jobs: Sequence[tuple[Notification, Sequence[str]]], deadline_s: float
    ) -> Iterator[tuple[Notification, SendResult]]:
        """Send each job to its channels; yields (notification, result) in the caller's
        thread as each send finishes, exactly one per (notification, channel)."""
        queues: dict[str, list[Notification]] = {}
        for note, names in jobs:
            for name in names:
                queues.setdefault(name, []).append(note)
        if not queues:
            return
        done: Queue[tuple[Notification, SendResult]] = Queue()
        expected = sum(len(q) for q in queues.values())
        pool = ThreadPoolExecutor(max_workers=len(queues), thread_name_prefix="notify")
        try:
            for name, notes in queues.items():
                pool.submit(self._work, name, notes, deadline_s, done)
            for _ in range(expected):
                note, result = done.get()
                self.counts[(result.channel, "sent" if result.ok else "failed")] += 1
                yield note, result
        finally:
            pool.shutdown(wait=True)

    def _work(
        self,
        name: str,
        notes: Sequence[Notification],
        deadline_s: float,
        done: Queue[tuple[Notification, SendResult]],
    ) -> None:
        # A channel that cannot send a group (a notifier without send_group) gets singles.
        grouping = self._grouping if hasattr(self._channels[name], "send_group") else None
        try:
            items = plan(notes, grouping)
        except Exception as exc:  # never leave the caller waiting for outcomes: send singles
            log.error("notify.grouping_failed", channel=name, error_type=type(exc).__name__)
            items = list(notes)
        for index, item in enumerate(items):
            left = len(items) - index
            end = deadline_s
            if left > 1:
                now = self._clock()
                end = min(now + max(deadline_s - now, 0.0) / left, deadline_s)
            if isinstance(item, NotificationGroup):
                result = self._send_group(name, item, end)
                # One send, one outcome per member: each member's claim records it.
                for member in item.members:
                    done.put((member, replace(result, dedup_key=member.dedup_key)))
            else:
                done.put((item, self._send_one(name, item, end)))

    def _send_group(self, name: str, group: NotificationGroup, deadline_s: float) -> SendResult:
        log.info(
            "notify.grouped",
            channel=name,
            members=len(group.members),
            group_key=dict(group.key),
            group_dedup_key=group.dedup_key,
        )
        # Only planned for a channel that has send_group (see _work).
        sender = cast(GroupNotifier, self._channels[name])
        return self._guarded(
            name, group.dedup_key, lambda: sender.send_group(group, deadline_s=deadline_s)
        )

    def _send_one(self, name: str, notification: Notification, deadline_s: float) -> SendResult:
        channel = self._channels[name]
        return self._guarded(
            name, notification.dedup_key, lambda: channel.send(notification, deadline_s=deadline_s)
        )

    def _guarded(self, name: str, dedup_key: str, send: Callable[[], SendResult]) -> SendResult:
        started = self._clock()
        try:
            result = send()
        except BaseException as exc:  # a notifier bug must not stop the other channels
            log.error("notify.crashed", channel=name, error_type=type(exc).__name__)
            return SendResult(
                name,
                False,
                dedup_key,
                1,
                self._clock() - started,
                error=f"notifier raised {type(exc).__name__}",
            )
        return replace(result, channel=name)


def _check_channels(config: RoutingConfig, known: tuple[str, ...]) -> None:
    for index, route in enumerate(config.routes):
        unknown = [c for c in route.channels if c not in known]
        if unknown:
            raise ValueError(
                f"routes[{index}].channels: unknown channel(s) {unknown}; "
                f"configured channels are {list(known)}"
            )
