"""Claim-then-send: the one way every notification leaves meshalert.

The claim (a conditional write on the dedup key) comes first, so a duplicated or concurrent
run of the same cycle sends nothing twice; each channel's outcome is then recorded on the
claim. Shared by the class evaluator and the heartbeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from meshalert.alerts.model import Notification
from meshalert.state.protocols import StateStore


class DeliveryOutcome(Protocol):
    @property
    def channel(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def error(self) -> str | None: ...


class Dispatcher(Protocol):
    def dispatch(
        self, notification: Notification, deadline_s: float
    ) -> Sequence[DeliveryOutcome]: ...


@dataclass(frozen=True)
class Delivered:
    """What delivering one notification did: ``claimed`` False means another run owns it."""

    claimed: bool
    failures: int = 0


class DeliveryTally(Protocol):
    """The counters a cycle report keeps about its notifications."""

    notifications: list[str]
    duplicates_skipped: int
    send_failures: int


def deliver(
    note: Notification,
    *,
    state: StateStore,
    dispatcher: Dispatcher | None,
    now_ms: int,
    lease_ms: int,
    deadline_s: float,
    tally: DeliveryTally | None = None,
) -> Delivered:
    done = _claim_and_send(
        note, state, dispatcher, now_ms=now_ms, lease_ms=lease_ms, deadline_s=deadline_s
    )
    if tally is not None:
        if done.claimed:
            tally.notifications.append(note.dedup_key)
            tally.send_failures += done.failures
        else:
            tally.duplicates_skipped += 1
    return done


def _claim_and_send(
    note: Notification,
    state: StateStore,
    dispatcher: Dispatcher | None,
    *,
    now_ms: int,
    lease_ms: int,
    deadline_s: float,
) -> Delivered:
    if not state.claim(note, now_ms=now_ms, lease_ms=lease_ms):
        return Delivered(claimed=False)
    outcomes = dispatcher.dispatch(note, deadline_s) if dispatcher is not None else ()
    if not outcomes:
        state.mark_sent(note.dedup_key, "none", ok=True, detail="no channel", now_ms=now_ms)
    failures = 0
    for outcome in outcomes:
        failures += not outcome.ok
        state.mark_sent(
            note.dedup_key,
            outcome.channel,
            ok=outcome.ok,
            detail=outcome.error or "sent",
            now_ms=now_ms,
        )
    return Delivered(claimed=True, failures=failures)
