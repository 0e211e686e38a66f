"""Notification -> words and JSON, shared by every channel. Pure: values in, values out."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from meshalert import units
from meshalert.alerts.model import Notification, NotificationKind, ThresholdInForce

if TYPE_CHECKING:
    from meshalert.notify.grouping import NotificationGroup

_KIND_LABEL = {
    NotificationKind.FIRING: "FIRING",
    NotificationKind.RESOLVED: "RESOLVED",
    NotificationKind.REMINDER: "STILL FIRING",
}
_SUBJECT_MAX = 99  # SNS: "must be less than 100 characters"


def kind_label(notification: Notification) -> str:
    return _KIND_LABEL[notification.kind]


def title(notification: Notification) -> str:
    """``FIRING latency production/checkout`` (``STILL FIRING ... (reminder 2)``)."""
    text = f"{kind_label(notification)} {notification.alert_class.value} {notification.service}"
    if notification.kind is NotificationKind.REMINDER:
        text += f" (reminder {notification.reminder_seq})"
    return text


def format_value(value: float | None, threshold_name: str) -> str:
    """Units follow the threshold's name (one formatting module for every view)."""
    return units.format_value(value, threshold_name)


def threshold_text(threshold: ThresholdInForce) -> str:
    shown = format_value(threshold.value, threshold.name)
    return f"{threshold.name} {shown} (from {threshold.source})"


def comparison(notification: Notification) -> str:
    """``observed 612 ms vs above_ms 250 ms (from file:/etc/meshalert.yaml)``."""
    evidence = notification.evidence
    observed = format_value(evidence.observed, evidence.threshold.name)
    return f"observed {observed} vs {threshold_text(evidence.threshold)}"


def summary(notification: Notification) -> str:
    """The one line every channel can show (Slack's fallback text, the console)."""
    evidence = notification.evidence
    return (
        f"[{notification.severity.value}] {title(notification)}: {comparison(notification)}, "
        f"window {evidence.window}"
    )


def subject(notification: Notification) -> str:
    """SNS subject: ``[FIRING] latency production/checkout``, ASCII, one line, < 100 chars."""
    kind = notification.kind.value.upper()
    text = f"[{kind}] {notification.alert_class.value} {notification.service}"
    printable = "".join(_subject_char(ch) for ch in text)
    return truncate(" ".join(printable.split()), _SUBJECT_MAX)


def _subject_char(ch: str) -> str:
    if " " <= ch <= "~":
        return ch
    return " " if ch.isspace() else "?"


def truncate(text: str, limit: int, marker: str = "...") -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - len(marker), 0)] + marker


def _identity(notification: Notification) -> dict[str, Any]:
    """The fields naming one notification, first in every JSON form of it."""
    return {
        "dedup_key": notification.dedup_key,
        "state": notification.kind.value,
        "alert_class": notification.alert_class.value,
        "service": notification.service,
        "severity": notification.severity.value,
        "at_ms": notification.at_ms,
    }


def to_dict(notification: Notification, *, max_query_chars: int = 65536) -> dict[str, Any]:
    """The notification as JSON-ready data (the SNS message and the webhook body)."""
    evidence = notification.evidence
    return {
        **_identity(notification),
        "episode_start_ms": notification.episode_start_ms,
        "reminder_seq": notification.reminder_seq,
        "summary": summary(notification),
        "evidence": {
            "observed": _finite(evidence.observed),
            "threshold": {
                "name": evidence.threshold.name,
                "value": _finite(evidence.threshold.value),
                "source": evidence.threshold.source,
            },
            "window": evidence.window,
            "query": truncate(evidence.query, max_query_chars),
            "samples": _finite(evidence.samples),
            "detail": {
                k: _finite(v) if isinstance(v, float) else v for k, v in evidence.detail.items()
            },
            "previous_state": evidence.previous_state.value,
            "replay": evidence.replay,
        },
    }


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity; a non-finite reading is reported as no value."""
    return value if value is not None and math.isfinite(value) else None


def to_json(notification: Notification, *, max_query_chars: int = 65536) -> str:
    return json.dumps(
        to_dict(notification, max_query_chars=max_query_chars),
        ensure_ascii=False,
        allow_nan=False,
        sort_keys=True,
    )


# Grouped messages (meshalert.notify.grouping): a storm of notifications as one message.


def group_title(group: NotificationGroup) -> str:
    """``42 critical alerts: 40 FIRING, 2 RESOLVED``: the group's size and what changed."""
    severities = "/".join(group.severities)
    states = ", ".join(
        f"{count} {_KIND_LABEL[NotificationKind(state)]}" for state, count in group.by_state.items()
    )
    return f"{len(group.members)} {severities} alerts: {states}"


def group_counts(group: NotificationGroup) -> str:
    """``failures 30, latency 12``: members by class, most first."""
    return ", ".join(f"{name} {count}" for name, count in group.by_class.items())


def group_line(notification: Notification) -> str:
    """One member's line in a grouped message: ``FIRING failures ns/svc: observed ...``."""
    return f"{title(notification)}: {comparison(notification)}"


def group_see_all(group: NotificationGroup) -> str:
    return f"see all: {group.see_all}"


def group_subject(group: NotificationGroup) -> str:
    """SNS subject: ``[GROUP] 42 critical alerts: 40 FIRING, 2 RESOLVED``, ASCII, < 100."""
    text = f"[GROUP] {group_title(group)}"
    return truncate(" ".join("".join(_subject_char(ch) for ch in text).split()), _SUBJECT_MAX)


def group_to_dict(group: NotificationGroup, *, max_members: int | None = None) -> dict[str, Any]:
    """The group as JSON-ready data (the SNS message and the webhook body): counts, the
    members worst first (each member's own dedup key), and how many were left out."""
    listed = group.members if max_members is None else group.members[:max_members]
    return {
        "group": True,
        "dedup_key": group.dedup_key,
        "group_key": dict(group.key),
        "at_ms": group.at_ms,
        "count": len(group.members),
        "severity": group.severity.value,
        "by_class": group.by_class,
        "by_state": group.by_state,
        "by_severity": group.by_severity,
        "summary": f"{group_title(group)} ({group_counts(group)})",
        "see_all": group.see_all,
        "members": [_member(n) for n in listed],
        "members_not_listed": len(group.members) - len(listed),
    }


def _member(notification: Notification) -> dict[str, Any]:
    evidence = notification.evidence
    return {
        **_identity(notification),
        "observed": _finite(evidence.observed),
        "threshold": {"name": evidence.threshold.name, "value": _finite(evidence.threshold.value)},
        "summary": summary(notification),
        "replay": evidence.replay,
    }


def group_to_json(group: NotificationGroup, *, max_bytes: int | None = None) -> str:
    """JSON of :func:`group_to_dict`; with ``max_bytes``, members are left out (and
    counted in ``members_not_listed``) until the text fits."""
    listed = len(group.members)
    while True:
        text = json.dumps(
            group_to_dict(group, max_members=listed),
            ensure_ascii=False,
            allow_nan=False,
            sort_keys=True,
        )
        if max_bytes is None or listed == 0 or len(text.encode("utf-8")) <= max_bytes:
            return text
        # Shrink in proportion to the excess, at least one member per step.
        size = len(text.encode("utf-8"))
        listed = min(listed - 1, int(listed * max_bytes / size))
        listed = max(listed, 0)
