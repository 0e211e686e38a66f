"""Claim-then-send: the one way every notification leaves meshalert.

The claim (a conditional write on the dedup key) comes first, so a duplicated or concurrent
run of the same cycle sends nothing twice; each channel's outcome is then recorded on the
claim as it arrives. Shared by the class evaluator and the heartbeat.

Per-channel exactly-once. A claim is final only when every channel its route names has
succeeded. A channel that failed, or never got its try before the deadline, leaves the claim
open: the claim's lease is released and a later cycle claims it again and sends to the
channels still missing, never to one that already succeeded. Open claims are retried for
:data:`RETRY_HORIZON_MS` after the notification's time.

A cycle's notifications are sent together: every channel works through its own queue in its
own thread, so a hung or retrying channel only spends its own time; within a channel each
notification gets an equal share of what is left of the deadline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import Notification
from meshalert.state.protocols import StateStore

log = structlog.get_logger("meshalert.delivery")

RETRY_HORIZON_MS = 3_600_000
"""How long after its time a notification still missing a channel is retried."""

NO_CHANNEL = "none"


class DeliveryOutcome(Protocol):
    @property
    def channel(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def error(self) -> str | None: ...


Job = tuple[Notification, Sequence[str]]
"""One notification and the channels it still has to reach."""


class Dispatcher(Protocol):
    def channels_for(self, notification: Notification) -> tuple[str, ...]:
        """The channels a notification is routed to (empty: dropped by a route)."""
        ...

    def dispatch_all(
        self, jobs: Sequence[Job], deadline_s: float
    ) -> Iterator[tuple[Notification, DeliveryOutcome]]:
        """Send every job to its channels; yield one outcome per (notification, channel),
        in the caller's thread, as each one finishes."""
        ...


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


@dataclass
class _Claimed:
    note: Notification
    todo: list[str]
    failed: int = 0


def deliver_all(
    notes: Sequence[Notification],
    *,
    state: StateStore,
    dispatcher: Dispatcher | None,
    now_ms: int,
    lease_ms: int,
    deadline_s: float,
    tally: DeliveryTally | None = None,
    retry_class: AlertClass | None = None,
    retry_classes: Sequence[AlertClass] = (),
    tallies: Mapping[AlertClass, DeliveryTally] | None = None,
) -> dict[str, Delivered]:
    """Claim and send ``notes``, plus (with ``retry_class``/``retry_classes``) those
    classes' open claims whose channels are not all delivered yet. ``tallies`` counts each
    notification in its class's tally (several classes delivered together), else ``tally``.
    Returns what happened per dedup key."""
    out: dict[str, Delivered] = {}
    claimed: dict[str, _Claimed] = {}
    classes = [*retry_classes, *([retry_class] if retry_class is not None else [])]
    retries = _retries(state, classes, now_ms, {n.dedup_key for n in notes})
    for note, is_retry in [*((r, True) for r in retries), *((n, False) for n in notes)]:
        key = note.dedup_key
        counted = tallies.get(note.alert_class, tally) if tallies else tally
        if not state.claim(note, now_ms=now_ms, lease_ms=lease_ms):
            out[key] = Delivered(claimed=False)
            if counted is not None and not is_retry:
                counted.duplicates_skipped += 1
            continue
        if counted is not None:
            counted.notifications.append(key)
        todo = _missing_channels(state, dispatcher, note, now_ms)
        if not todo:
            state.finish(key, complete=True, now_ms=now_ms)
            out[key] = Delivered(claimed=True)
            continue
        if is_retry:
            log.info("notify.retrying", dedup_key=key, channels=todo)
        claimed[key] = _Claimed(note, todo)
    if claimed and dispatcher is not None:
        _send(claimed, state, dispatcher, now_ms, deadline_s)
    for key, job in claimed.items():
        out[key] = Delivered(claimed=True, failures=job.failed)
        counted = tallies.get(job.note.alert_class, tally) if tallies else tally
        if counted is not None:
            counted.send_failures += job.failed
    return out


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
    done = deliver_all(
        [note],
        state=state,
        dispatcher=dispatcher,
        now_ms=now_ms,
        lease_ms=lease_ms,
        deadline_s=deadline_s,
        tally=tally,
    )
    return done[note.dedup_key]


def _retries(
    state: StateStore, classes: Sequence[AlertClass], now_ms: int, fresh: set[str]
) -> list[Notification]:
    since_ms = now_ms - RETRY_HORIZON_MS
    found = [
        n for c in dict.fromkeys(classes) for n in state.unsent(c, now_ms=now_ms, since_ms=since_ms)
    ]
    # Oldest first, so a channel gets an episode's FIRING before its RESOLVED.
    return sorted(
        (n for n in found if n.dedup_key not in fresh), key=lambda n: (n.at_ms, n.dedup_key)
    )


def _missing_channels(
    state: StateStore, dispatcher: Dispatcher | None, note: Notification, now_ms: int
) -> list[str]:
    """The routed channels this notification has not reached yet (after an earlier
    attempt: a failed or untried channel, never one that succeeded)."""
    targets = dispatcher.channels_for(note) if dispatcher is not None else ()
    if not targets:
        state.mark_sent(note.dedup_key, NO_CHANNEL, ok=True, detail="no channel", now_ms=now_ms)
        return []
    info = state.claim_info(note.dedup_key)
    delivered = {d.channel for d in info.deliveries if d.ok} if info is not None else set()
    return [c for c in targets if c not in delivered]


def _send(
    claimed: dict[str, _Claimed],
    state: StateStore,
    dispatcher: Dispatcher,
    now_ms: int,
    deadline_s: float,
) -> None:
    jobs: list[Job] = [(c.note, tuple(c.todo)) for c in claimed.values()]
    waiting = {key: set(c.todo) for key, c in claimed.items()}
    for note, outcome in dispatcher.dispatch_all(jobs, deadline_s):
        key = note.dedup_key
        job = claimed[key]
        # Recorded as each outcome arrives: a crash later in the cycle cannot make a
        # channel that already succeeded look unsent (and so send it twice).
        state.mark_sent(
            key, outcome.channel, ok=outcome.ok, detail=outcome.error or "sent", now_ms=now_ms
        )
        job.failed += not outcome.ok
        waiting[key].discard(outcome.channel)
        if not waiting[key]:
            state.finish(key, complete=job.failed == 0, now_ms=now_ms)
    for key, channels in waiting.items():
        if channels:  # a dispatcher that skipped a channel: keep the claim open
            log.warning("notify.no_outcome", dedup_key=key, channels=sorted(channels))
            state.finish(key, complete=False, now_ms=now_ms)


class OneChannel:
    """A dispatcher with one channel that sends in the caller's thread (backtests, tests):
    subclasses implement ``dispatch``."""

    channel = "recorder"

    def channels_for(self, notification: Notification) -> tuple[str, ...]:
        return (self.channel,)

    def dispatch(self, notification: Notification, deadline_s: float) -> Iterable[DeliveryOutcome]:
        raise NotImplementedError

    def dispatch_all(
        self, jobs: Sequence[Job], deadline_s: float
    ) -> Iterator[tuple[Notification, DeliveryOutcome]]:
        for note, _channels in jobs:
            for outcome in self.dispatch(note, deadline_s):
                yield note, outcome
