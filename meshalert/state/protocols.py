"""The port between the engine and durable alert state: records, history, notification claims.

Claims make notifications exactly-once per dedup key *per channel*: ``claim`` succeeds for
one caller; that caller sends, records each channel's outcome with ``mark_sent`` and then
calls ``finish``. ``finish(complete=True)`` (every routed channel succeeded) makes the claim
final: it is never handed out again. ``finish(complete=False)`` releases the lease at once,
so the next cycle claims it again (``unsent`` lists such claims) and sends only to the
channels without a successful delivery. If the caller dies before ``finish``, the key can
be claimed again once ``lease_ms`` has passed. The trade-off: a sender slower than its lease
may be joined by a second one (a duplicate), and a crashed sender delays delivery by up to
the lease. Choose a lease longer than the slowest send, e.g. 2-5 minutes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertRecord, AlertState, Notification, SkippedServices
from meshalert.suppression import Silence, SilenceEvent, Suppressed


@dataclass(frozen=True)
class HistoryEntry:
    """One state transition with the evidence that caused it (a JSON-able dict)."""

    at_ms: int
    alert_class: AlertClass
    service: str
    from_state: AlertState
    to_state: AlertState
    evidence: Mapping[str, Any]
    dedup_key: str | None = None


@dataclass(frozen=True)
class Delivery:
    """The outcome of sending one claimed notification on one channel."""

    channel: str
    ok: bool
    detail: str
    at_ms: int


@dataclass(frozen=True)
class ClaimInfo:
    dedup_key: str
    claimed_ms: int
    lease_until_ms: int
    attempts: int
    """How many times the key was claimed (more than 1 after a lease expired)."""
    sent_ms: int | None
    """When the claim became final (every routed channel delivered); None while open."""
    deliveries: tuple[Delivery, ...]


class StateUnavailableError(RuntimeError):
    """The state store cannot be used right now (e.g. another process holds a SQLite lock
    past the busy timeout): an expected condition, reported in one line, never a traceback."""


class UnknownClaimError(KeyError):
    """``mark_sent`` for a dedup key that was never claimed."""


class UnknownSilenceError(KeyError):
    """``expire_silence`` for an id that names no silence."""


class SilenceEndedError(ValueError):
    """``expire_silence`` for a silence that has already ended (or was expired)."""


class StateStore(Protocol):
    def load(self, alert_class: AlertClass) -> dict[str, AlertRecord]:
        """Records of one class, by service."""
        ...

    def load_all(self) -> list[AlertRecord]: ...

    def save(self, records: Sequence[AlertRecord]) -> None:
        """Upsert records by (class, service)."""
        ...

    def forget(self, alert_class: AlertClass, services: Sequence[str]) -> None:
        """Delete these records of one class (unknown ones are ignored): the ingest class
        drops a removed host's resolved alert so records do not grow with node churn."""
        ...

    def append_history(self, entries: Sequence[HistoryEntry]) -> None:
        """Idempotent: the same (at, class, service, from, to) written twice is kept once."""
        ...

    def history(
        self,
        *,
        since_ms: int,
        service: str | None = None,
        alert_class: AlertClass | None = None,
    ) -> list[HistoryEntry]:
        """Entries with ``at_ms >= since_ms``, oldest first."""
        ...

    def claim(self, notification: Notification, *, now_ms: int, lease_ms: int) -> bool:
        """True for exactly one caller per dedup key (per lease; see the module docstring)."""
        ...

    def mark_sent(
        self, dedup_key: str, channel: str, *, ok: bool, detail: str, now_ms: int
    ) -> None:
        """Record one channel's outcome (replacing that channel's earlier one).
        Raises UnknownClaimError for a key never claimed. ``detail`` must hold no secrets."""
        ...

    def finish(self, dedup_key: str, *, complete: bool, now_ms: int) -> None:
        """End the claimant's turn: ``complete`` makes the claim final; otherwise the lease
        is released so a later cycle retries the channels still missing."""
        ...

    def unsent(self, alert_class: AlertClass, *, now_ms: int, since_ms: int) -> list[Notification]:
        """Notifications of ``alert_class`` (``at_ms >= since_ms``) whose claim is not final
        and not leased at ``now_ms``: some channel still has to be (re)tried."""
        ...

    def claim_info(self, dedup_key: str) -> ClaimInfo | None: ...

    def note_skipped(self, summary: SkippedServices) -> None:
        """Replace the class's skipped-services summary with the latest cycle's."""
        ...

    def last_skipped(self, alert_class: AlertClass) -> SkippedServices | None:
        """The latest summary noted for the class, if any."""
        ...

    def add_silence(self, silence: Silence) -> None:
        """Store a new silence and its ``added`` audit event (ids are unique)."""
        ...

    def expire_silence(self, silence_id: str, *, author: str, now_ms: int) -> Silence:
        """End a silence now (``expired_ms``/``expired_by`` set) and audit it; returns the
        updated silence. UnknownSilenceError for an unknown id, SilenceEndedError for one
        already over."""
        ...

    def silences(self, *, now_ms: int, include_ended: bool = False) -> list[Silence]:
        """Silences not yet over at ``now_ms`` (future ones included), by start; with
        ``include_ended`` also those that ended (kept for the retention), by start."""
        ...

    def silence_audit(self, *, since_ms: int = 0) -> list[SilenceEvent]:
        """Who added and expired what, oldest first."""
        ...

    def note_suppressed(self, entries: Sequence[Suppressed]) -> None:
        """Record notifications held back; idempotent per dedup key (the first kept)."""
        ...

    def suppressed(self, alert_class: AlertClass, *, since_ms: int) -> list[Suppressed]:
        """Held-back notifications of one class with ``at_ms >= since_ms``, oldest first."""
        ...

    def close(self) -> None: ...
