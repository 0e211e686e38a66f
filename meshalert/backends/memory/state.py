"""An in-process state store for backtests and one-shot evaluations: same semantics as the
durable stores (claims with leases, idempotent history), nothing persisted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertRecord, Notification, SkippedServices
from meshalert.state.protocols import (
    ClaimInfo,
    Delivery,
    HistoryEntry,
    SilenceEndedError,
    UnknownClaimError,
    UnknownSilenceError,
)
from meshalert.suppression import Silence, SilenceAction, SilenceEvent, Suppressed


@dataclass
class MemoryStateStore:
    records: dict[tuple[AlertClass, str], AlertRecord] = field(default_factory=dict)
    entries: dict[tuple[int, AlertClass, str, str, str], HistoryEntry] = field(default_factory=dict)
    claims: dict[str, ClaimInfo] = field(default_factory=dict)
    notifications: list[Notification] = field(default_factory=list)
    _open: dict[str, Notification] = field(default_factory=dict, repr=False)
    """Claimed and not final yet: what ``unsent`` looks through."""
    skipped: dict[AlertClass, SkippedServices] = field(default_factory=dict)
    silence_items: dict[str, Silence] = field(default_factory=dict)
    audit: list[SilenceEvent] = field(default_factory=list)
    held: dict[str, Suppressed] = field(default_factory=dict)

    def load(self, alert_class: AlertClass) -> dict[str, AlertRecord]:
        return {svc: r for (cls, svc), r in self.records.items() if cls is alert_class}

    def load_all(self) -> list[AlertRecord]:
        return list(self.records.values())

    def save(self, records: Sequence[AlertRecord]) -> None:
        for record in records:
            self.records[(record.alert_class, record.service)] = record

    def forget(self, alert_class: AlertClass, services: Sequence[str]) -> None:
        for service in services:
            self.records.pop((alert_class, service), None)

    def append_history(self, entries: Sequence[HistoryEntry]) -> None:
        for e in entries:
            key = (e.at_ms, e.alert_class, e.service, e.from_state.value, e.to_state.value)
            self.entries.setdefault(key, e)

    def history(
        self,
        *,
        since_ms: int,
        service: str | None = None,
        alert_class: AlertClass | None = None,
    ) -> list[HistoryEntry]:
        return sorted(
            (
                e
                for e in self.entries.values()
                if e.at_ms >= since_ms
                and (service is None or e.service == service)
                and (alert_class is None or e.alert_class is alert_class)
            ),
            key=lambda e: (e.at_ms, e.alert_class.value, e.service),
        )

    def claim(self, notification: Notification, *, now_ms: int, lease_ms: int) -> bool:
        if lease_ms <= 0:
            raise ValueError(f"lease_ms must be > 0, got {lease_ms}")
        key = notification.dedup_key
        held = self.claims.get(key)
        if held is not None and (held.sent_ms is not None or now_ms < held.lease_until_ms):
            return False
        attempts = held.attempts + 1 if held else 1
        deliveries = held.deliveries if held else ()
        self.claims[key] = ClaimInfo(key, now_ms, now_ms + lease_ms, attempts, None, deliveries)
        self.notifications.append(notification)
        self._open[key] = notification
        return True

    def mark_sent(
        self, dedup_key: str, channel: str, *, ok: bool, detail: str, now_ms: int
    ) -> None:
        held = self.claims.get(dedup_key)
        if held is None:
            raise UnknownClaimError(dedup_key)
        # One delivery per channel: a retried send replaces the failed attempt's outcome.
        others = tuple(d for d in held.deliveries if d.channel != channel)
        deliveries = (*others, Delivery(channel, ok, detail, now_ms))
        self.claims[dedup_key] = replace(held, deliveries=deliveries)

    def finish(self, dedup_key: str, *, complete: bool, now_ms: int) -> None:
        held = self.claims.get(dedup_key)
        if held is None:
            raise UnknownClaimError(dedup_key)
        if complete:
            self.claims[dedup_key] = replace(held, sent_ms=held.sent_ms or now_ms)
            self._open.pop(dedup_key, None)
        else:
            self.claims[dedup_key] = replace(held, lease_until_ms=min(held.lease_until_ms, now_ms))

    def unsent(self, alert_class: AlertClass, *, now_ms: int, since_ms: int) -> list[Notification]:
        return [
            note
            for key, note in self._open.items()
            if note.alert_class is alert_class
            and note.at_ms >= since_ms
            and (held := self.claims.get(key)) is not None
            and held.sent_ms is None
            and held.lease_until_ms <= now_ms
        ]

    def claim_info(self, dedup_key: str) -> ClaimInfo | None:
        return self.claims.get(dedup_key)

    def note_skipped(self, summary: SkippedServices) -> None:
        self.skipped[summary.alert_class] = summary

    def last_skipped(self, alert_class: AlertClass) -> SkippedServices | None:
        return self.skipped.get(alert_class)

    def add_silence(self, silence: Silence) -> None:
        if silence.id in self.silence_items:
            raise ValueError(f"silence {silence.id} already exists")
        self.silence_items[silence.id] = silence
        self.audit.append(
            SilenceEvent(silence.created_ms, silence.id, SilenceAction.ADDED, silence.author)
        )

    def expire_silence(self, silence_id: str, *, author: str, now_ms: int) -> Silence:
        held = self.silence_items.get(silence_id)
        if held is None:
            raise UnknownSilenceError(silence_id)
        if held.ends_ms <= now_ms:
            raise SilenceEndedError(f"silence {silence_id} has already ended")
        expired = replace(held, expired_ms=now_ms, expired_by=author)
        self.silence_items[silence_id] = expired
        self.audit.append(SilenceEvent(now_ms, silence_id, SilenceAction.EXPIRED, author))
        return expired

    def silences(self, *, now_ms: int, include_ended: bool = False) -> list[Silence]:
        return sorted(
            (s for s in self.silence_items.values() if include_ended or s.ends_ms > now_ms),
            key=lambda s: (s.start_ms, s.id),
        )

    def silence_audit(self, *, since_ms: int = 0) -> list[SilenceEvent]:
        return sorted(
            (e for e in self.audit if e.at_ms >= since_ms),
            key=lambda e: (e.at_ms, e.silence_id, e.action),
        )

    def note_suppressed(self, entries: Sequence[Suppressed]) -> None:
        for entry in entries:
            self.held.setdefault(entry.dedup_key, entry)

    def suppressed(self, alert_class: AlertClass, *, since_ms: int) -> list[Suppressed]:
        return sorted(
            (e for e in self.held.values() if e.alert_class is alert_class and e.at_ms >= since_ms),
            key=lambda e: (e.at_ms, e.dedup_key),
        )

    def close(self) -> None:
        return None
