"""Alert values <-> JSON-able dicts, the one shape every state store persists.

Readers are strict: a missing or mistyped field raises :class:`SerializationError` naming it,
so a corrupt row is reported rather than silently turned into a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import (
    AlertRecord,
    AlertState,
    Evidence,
    Notification,
    NotificationKind,
    Severity,
    ThresholdInForce,
)
from meshalert.alerts.state_machine import StepResult
from meshalert.state.protocols import HistoryEntry
from meshalert.suppression import Silence, SilenceEvent, Suppressed

JSONDict = dict[str, Any]


class SerializationError(ValueError):
    """A stored document that does not describe a valid value; the message names the field."""


def _get(doc: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return doc[key]
    except KeyError:
        raise SerializationError(f"{where}: missing field {key!r}") from None


def _int(doc: Mapping[str, Any], key: str, where: str) -> int:
    value = _get(doc, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise SerializationError(f"{where}.{key}: expected an integer, got {value!r}")
    return int(value)


def _opt_int(doc: Mapping[str, Any], key: str, where: str) -> int | None:
    return None if doc.get(key) is None else _int(doc, key, where)


def _float(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SerializationError(f"{field}: expected a number, got {value!r}")
    return float(value)


def _opt_float(doc: Mapping[str, Any], key: str, where: str) -> float | None:
    value = doc.get(key)
    return None if value is None else _float(value, f"{where}.{key}")


def _str(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = _get(doc, key, where)
    if not isinstance(value, str):
        raise SerializationError(f"{where}.{key}: expected a string, got {value!r}")
    return value


_E = TypeVar("_E", AlertClass, AlertState, NotificationKind, Severity)


def _enum(kind: type[_E], doc: Mapping[str, Any], key: str, where: str) -> _E:
    raw = _str(doc, key, where)
    try:
        return kind(raw)
    except ValueError:
        raise SerializationError(f"{where}.{key}: unknown value {raw!r}") from None


def threshold_to_dict(threshold: ThresholdInForce) -> JSONDict:
    return {"name": threshold.name, "value": threshold.value, "source": threshold.source}


def threshold_from_dict(doc: Mapping[str, Any]) -> ThresholdInForce:
    where = "threshold"
    return ThresholdInForce(
        name=_str(doc, "name", where),
        value=_float(_get(doc, "value", where), f"{where}.value"),
        source=_str(doc, "source", where),
    )


def _detail_from(raw: Any, where: str) -> dict[str, float | str | None]:
    if not isinstance(raw, Mapping):
        raise SerializationError(f"{where}: expected an object, got {raw!r}")
    out: dict[str, float | str | None] = {}
    for key, value in raw.items():
        out[str(key)] = (
            value if value is None or isinstance(value, str) else _float(value, f"{where}.{key}")
        )
    return out


def evidence_to_dict(evidence: Evidence) -> JSONDict:
    return {
        "alert_class": evidence.alert_class.value,
        "service": evidence.service,
        "observed": evidence.observed,
        "threshold": threshold_to_dict(evidence.threshold),
        "window": evidence.window,
        "query": evidence.query,
        "samples": evidence.samples,
        "detail": dict(evidence.detail),
        "previous_state": evidence.previous_state.value,
        "replay": evidence.replay,
    }


def evidence_from_dict(doc: Mapping[str, Any]) -> Evidence:
    where = "evidence"
    return Evidence(
        alert_class=_enum(AlertClass, doc, "alert_class", where),
        service=_str(doc, "service", where),
        observed=_opt_float(doc, "observed", where),
        threshold=threshold_from_dict(_get(doc, "threshold", where)),
        window=_str(doc, "window", where),
        query=_str(doc, "query", where),
        samples=_float(_get(doc, "samples", where), f"{where}.samples"),
        detail=_detail_from(_get(doc, "detail", where), f"{where}.detail"),
        previous_state=_enum(AlertState, doc, "previous_state", where),
        replay=_str(doc, "replay", where),
    )


def record_to_dict(record: AlertRecord) -> JSONDict:
    return {
        "alert_class": record.alert_class.value,
        "service": record.service,
        "state": record.state.value,
        "since_ms": record.since_ms,
        "episode_start_ms": record.episode_start_ms,
        "last_notified_ms": record.last_notified_ms,
        "last_value": record.last_value,
        "last_evaluated_ms": record.last_evaluated_ms,
        "threshold": None if record.threshold is None else threshold_to_dict(record.threshold),
        "flaps": record.flaps,
        "reminder_seq": record.reminder_seq,
        "recovering_since_ms": record.recovering_since_ms,
        "last_resolved_ms": record.last_resolved_ms,
    }


def record_from_dict(doc: Mapping[str, Any]) -> AlertRecord:
    where = "record"
    threshold = doc.get("threshold")
    return AlertRecord(
        alert_class=_enum(AlertClass, doc, "alert_class", where),
        service=_str(doc, "service", where),
        state=_enum(AlertState, doc, "state", where),
        since_ms=_int(doc, "since_ms", where),
        episode_start_ms=_opt_int(doc, "episode_start_ms", where),
        last_notified_ms=_opt_int(doc, "last_notified_ms", where),
        last_value=_opt_float(doc, "last_value", where),
        last_evaluated_ms=_opt_int(doc, "last_evaluated_ms", where),
        threshold=None if threshold is None else threshold_from_dict(threshold),
        # Fields added after the first release default when absent from older rows.
        flaps=_int(doc, "flaps", where) if "flaps" in doc else 0,
        reminder_seq=_int(doc, "reminder_seq", where) if "reminder_seq" in doc else 0,
        recovering_since_ms=_opt_int(doc, "recovering_since_ms", where),
        last_resolved_ms=_opt_int(doc, "last_resolved_ms", where),
    )


def notification_to_dict(notification: Notification) -> JSONDict:
    return {
        "kind": notification.kind.value,
        "alert_class": notification.alert_class.value,
        "service": notification.service,
        "severity": notification.severity.value,
        "at_ms": notification.at_ms,
        "episode_start_ms": notification.episode_start_ms,
        "evidence": evidence_to_dict(notification.evidence),
        "reminder_seq": notification.reminder_seq,
        "dedup_key": notification.dedup_key,
    }


def notification_from_dict(doc: Mapping[str, Any]) -> Notification:
    """``dedup_key`` in the document is informational; the key is always recomputed."""
    where = "notification"
    return Notification(
        kind=_enum(NotificationKind, doc, "kind", where),
        alert_class=_enum(AlertClass, doc, "alert_class", where),
        service=_str(doc, "service", where),
        severity=_enum(Severity, doc, "severity", where),
        at_ms=_int(doc, "at_ms", where),
        episode_start_ms=_int(doc, "episode_start_ms", where),
        evidence=evidence_from_dict(_get(doc, "evidence", where)),
        reminder_seq=_int(doc, "reminder_seq", where) if "reminder_seq" in doc else 0,
    )


def history_entry_to_dict(entry: HistoryEntry) -> JSONDict:
    return {
        "at_ms": entry.at_ms,
        "alert_class": entry.alert_class.value,
        "service": entry.service,
        "from_state": entry.from_state.value,
        "to_state": entry.to_state.value,
        "evidence": dict(entry.evidence),
        "dedup_key": entry.dedup_key,
    }


def history_entry_from_dict(doc: Mapping[str, Any]) -> HistoryEntry:
    where = "history"
    evidence = _get(doc, "evidence", where)
    if not isinstance(evidence, Mapping):
        raise SerializationError(f"{where}.evidence: expected an object, got {evidence!r}")
    key = doc.get("dedup_key")
    if key is not None and not isinstance(key, str):
        raise SerializationError(f"{where}.dedup_key: expected a string, got {key!r}")
    return HistoryEntry(
        at_ms=_int(doc, "at_ms", where),
        alert_class=_enum(AlertClass, doc, "alert_class", where),
        service=_str(doc, "service", where),
        from_state=_enum(AlertState, doc, "from_state", where),
        to_state=_enum(AlertState, doc, "to_state", where),
        evidence=dict(evidence),
        dedup_key=key,
    )


def history_entry_from_step(result: StepResult) -> HistoryEntry | None:
    """The history entry of a step that changed state (None when it did not)."""
    if result.transition is None:
        return None
    from_state, to_state = result.transition
    keys = [n.dedup_key for n in result.notifications if n.kind is not NotificationKind.REMINDER]
    return HistoryEntry(
        at_ms=result.record.since_ms,
        alert_class=result.record.alert_class,
        service=result.record.service,
        from_state=from_state,
        to_state=to_state,
        evidence=evidence_to_dict(result.evidence),
        dedup_key=keys[0] if keys else None,
    )


# --- silences and held-back notifications (meshalert.suppression) ---------------------


def silence_to_dict(silence: Silence) -> JSONDict:
    return {
        "id": silence.id,
        "service": silence.service,
        "alert_class": silence.alert_class.value if silence.alert_class is not None else None,
        "start_ms": silence.start_ms,
        "end_ms": silence.end_ms,
        "reason": silence.reason,
        "author": silence.author,
        "created_ms": silence.created_ms,
        "expired_ms": silence.expired_ms,
        "expired_by": silence.expired_by,
    }


def silence_from_dict(doc: Mapping[str, Any]) -> Silence:
    where = "silence"
    expired_by = doc.get("expired_by")
    try:
        return Silence(
            id=_str(doc, "id", where),
            service=_str(doc, "service", where),
            alert_class=None
            if doc.get("alert_class") is None
            else _enum(AlertClass, doc, "alert_class", where),
            start_ms=_int(doc, "start_ms", where),
            end_ms=_int(doc, "end_ms", where),
            reason=_str(doc, "reason", where),
            author=_str(doc, "author", where),
            created_ms=_int(doc, "created_ms", where),
            expired_ms=_opt_int(doc, "expired_ms", where),
            expired_by=None if expired_by is None else _str(doc, "expired_by", where),
        )
    except ValueError as exc:
        if isinstance(exc, SerializationError):
            raise
        raise SerializationError(f"{where}: {exc}") from None


def silence_event_to_dict(event: SilenceEvent) -> JSONDict:
    return {
        "at_ms": event.at_ms,
        "silence_id": event.silence_id,
        "action": event.action,
        "author": event.author,
        "detail": event.detail,
    }


def silence_event_from_dict(doc: Mapping[str, Any]) -> SilenceEvent:
    where = "silence_event"
    return SilenceEvent(
        at_ms=_int(doc, "at_ms", where),
        silence_id=_str(doc, "silence_id", where),
        action=_str(doc, "action", where),
        author=_str(doc, "author", where),
        detail=_str(doc, "detail", where),
    )


def suppressed_to_dict(entry: Suppressed) -> JSONDict:
    return {
        "dedup_key": entry.dedup_key,
        "alert_class": entry.alert_class.value,
        "service": entry.service,
        "episode_start_ms": entry.episode_start_ms,
        "kind": entry.kind.value,
        "reminder_seq": entry.reminder_seq,
        "at_ms": entry.at_ms,
        "reason": entry.reason,
    }


def suppressed_from_dict(doc: Mapping[str, Any]) -> Suppressed:
    where = "suppressed"
    return Suppressed(
        dedup_key=_str(doc, "dedup_key", where),
        alert_class=_enum(AlertClass, doc, "alert_class", where),
        service=_str(doc, "service", where),
        episode_start_ms=_int(doc, "episode_start_ms", where),
        kind=_enum(NotificationKind, doc, "kind", where),
        reminder_seq=_int(doc, "reminder_seq", where),
        at_ms=_int(doc, "at_ms", where),
        reason=_str(doc, "reason", where),
    )
