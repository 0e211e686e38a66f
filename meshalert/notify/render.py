"""Notification -> words and JSON, shared by every channel. Pure: values in, values out."""

from __future__ import annotations

import json
import math
from typing import Any

from meshalert import units
from meshalert.alerts.model import Notification, NotificationKind, ThresholdInForce

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


def to_dict(notification: Notification, *, max_query_chars: int = 65536) -> dict[str, Any]:
    """The notification as JSON-ready data (the SNS message and the webhook body)."""
    evidence = notification.evidence
    return {
        "dedup_key": notification.dedup_key,
        "state": notification.kind.value,
        "alert_class": notification.alert_class.value,
        "service": notification.service,
        "severity": notification.severity.value,
        "at_ms": notification.at_ms,
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
