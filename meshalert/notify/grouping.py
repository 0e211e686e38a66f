"""Storm protection: many notifications for one channel in one delivery become a few messages.

Pure: :func:`plan` takes the notifications one channel has to send in one delivery (a
cycle's new notifications plus its retries) and returns what to send: the notifications
themselves while there are at most ``threshold`` of them, otherwise one
:class:`NotificationGroup` per group key (by default: per severity). A group key with a
single member is sent as that notification, alone.

Exactly-once is kept per alert, not per message: every member was claimed on its own before
the group was planned, and the group's outcome is recorded on each member for this channel
(see :mod:`meshalert.delivery`). A retried cycle finds the members final and plans nothing;
a channel that failed the group sends its members again next cycle, and only to itself.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import Notification, NotificationKind, Severity

GROUP_KEYS = ("severity", "class", "state")
"""What a group key may be made of."""

DEFAULT_THRESHOLD = 5
DEFAULT_GROUP_BY: tuple[str, ...] = ("severity",)
DEFAULT_SEE_ALL = "meshalert status"

_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
_KIND_RANK = {
    NotificationKind.FIRING: 0,
    NotificationKind.REMINDER: 1,
    NotificationKind.RESOLVED: 2,
}


@dataclass(frozen=True)
class GroupingConfig:
    """``MESHALERT_GROUP_THRESHOLD``, ``MESHALERT_GROUP_BY``, ``MESHALERT_STATUS_URL``."""

    threshold: int = DEFAULT_THRESHOLD
    """Group when one channel has more than this many notifications in one delivery."""
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    """One message per distinct value of these (``severity``, ``class``, ``state``)."""
    see_all: str = DEFAULT_SEE_ALL
    """Where a grouped message sends its reader for the whole list: a URL or a command."""

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"threshold must be at least 1, not {self.threshold}")
        unknown = [k for k in self.group_by if k not in GROUP_KEYS]
        if unknown:
            raise ValueError(f"unknown group key(s) {unknown}; use any of {list(GROUP_KEYS)}")
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError(f"group key repeated in {list(self.group_by)}")
        if not self.see_all.strip():
            raise ValueError("the see-all link or command is empty")


@dataclass(frozen=True)
class NotificationGroup:
    """Several notifications sent to one channel as one message; members worst first."""

    members: tuple[Notification, ...]
    key: tuple[tuple[str, str], ...]
    """The group key's values, e.g. ``(("severity", "critical"),)``."""
    see_all: str = DEFAULT_SEE_ALL
    by_class: dict[str, int] = field(init=False, compare=False)
    by_state: dict[str, int] = field(init=False, compare=False)
    by_severity: dict[str, int] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a group needs members")
        object.__setattr__(self, "by_class", _counts(n.alert_class.value for n in self.members))
        object.__setattr__(self, "by_state", _counts(n.kind.value for n in self.members))
        object.__setattr__(self, "by_severity", _counts(n.severity.value for n in self.members))

    @property
    def dedup_key(self) -> str:
        """The same for the same members (a retry of a failed group carries the same key),
        so a downstream consumer can drop a message it has already seen."""
        digest = hashlib.sha256("\n".join(sorted(self.dedup_keys)).encode()).hexdigest()
        return f"group|{self.at_ms}|{len(self.members)}|{digest[:16]}"

    @property
    def dedup_keys(self) -> tuple[str, ...]:
        return tuple(n.dedup_key for n in self.members)

    @property
    def at_ms(self) -> int:
        return max(n.at_ms for n in self.members)

    @property
    def severity(self) -> Severity:
        """The worst member's severity."""
        return self.members[0].severity

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.by_class)

    @property
    def states(self) -> tuple[str, ...]:
        return tuple(self.by_state)

    @property
    def severities(self) -> tuple[str, ...]:
        return tuple(self.by_severity)


Planned = Notification | NotificationGroup
"""What a channel sends: one notification, or one group of them."""


def plan(notes: Sequence[Notification], config: GroupingConfig | None) -> list[Planned]:
    """What one channel sends for ``notes`` (see the module docstring). Every notification
    is in exactly one of the returned items."""
    if config is None or len(notes) <= config.threshold:
        return list(notes)
    buckets: dict[tuple[tuple[str, str], ...], list[Notification]] = {}
    for note in notes:
        key = tuple((name, _key_value(note, name)) for name in config.group_by)
        buckets.setdefault(key, []).append(note)
    out: list[Planned] = []
    for key, members in buckets.items():
        ordered = tuple(sorted(members, key=worst_first))
        if len(ordered) == 1:
            out.append(ordered[0])
        else:
            out.append(NotificationGroup(ordered, key, config.see_all))
    # The worst message first: a channel short of time spends it on critical alerts.
    return sorted(out, key=lambda item: worst_first(_head(item)))


def worst_first(note: Notification) -> tuple[int, int, float, int, str]:
    """Sort key: severity, then firing before reminders before resolved, then how far the
    observed value is from its threshold (either side: a distance), then class and name."""
    return (
        _SEVERITY_RANK[note.severity],
        _KIND_RANK[note.kind],
        -_distance(note),
        list(AlertClass).index(note.alert_class),
        note.service,
    )


def members_of(item: Planned) -> tuple[Notification, ...]:
    return item.members if isinstance(item, NotificationGroup) else (item,)


def _head(item: Planned) -> Notification:
    return item.members[0] if isinstance(item, NotificationGroup) else item


def _distance(note: Notification) -> float:
    observed = note.evidence.observed
    threshold = note.evidence.threshold.value
    if observed is None or not math.isfinite(observed) or not math.isfinite(threshold):
        return 0.0
    if observed <= 0 or threshold <= 0:
        return abs(observed - threshold)
    # Two logs, not the log of a quotient: a denormal over a threshold underflows to 0.
    return abs(math.log(observed) - math.log(threshold))


def _key_value(note: Notification, name: str) -> str:
    if name == "severity":
        return note.severity.value
    if name == "class":
        return note.alert_class.value
    return note.kind.value


def _counts(values: Iterable[str]) -> dict[str, int]:
    counted = Counter(values)
    return dict(sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])))
