"""Human-readable output for local runs: one summary line, then the evidence indented."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from meshalert.alerts.model import Notification
from meshalert.notify import render
from meshalert.notify.base import SendResult
from meshalert.notify.grouping import NotificationGroup
from meshalert.safe_text import printable


def console_text(notification: Notification) -> str:
    evidence = notification.evidence
    lines = [render.summary(notification), f"    samples: {evidence.samples:.6g}"]
    lines.extend(f"    {key}: {value}" for key, value in evidence.detail.items())
    lines.append("    query:")
    lines.extend(f"      {line}" for line in evidence.query.splitlines() or [""])
    if evidence.replay:
        lines.append(f"    replay: {evidence.replay}")
    lines.append(f"    dedup: {notification.dedup_key}")
    # Each line is built from one-line parts, so escaping per line keeps the layout while
    # no name from data can send a control sequence to the operator's terminal.
    return "\n".join(printable(line) for line in lines) + "\n"


def console_group_text(group: NotificationGroup) -> str:
    """A grouped message: the counts, every member's line (a terminal has room), the
    pointer to the full view, and each member's dedup key."""
    lines = [
        f"[{group.severity.value}] {render.group_title(group)}",
        f"    by class: {render.group_counts(group)}",
    ]
    lines.extend(f"    {render.group_line(n)}  (dedup: {n.dedup_key})" for n in group.members)
    lines.append(f"    {render.group_see_all(group)}")
    return "\n".join(printable(line) for line in lines) + "\n"


class ConsoleNotifier:
    channel = "console"

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock

    def __repr__(self) -> str:
        return "ConsoleNotifier()"

    def send(self, notification: Notification, *, deadline_s: float) -> SendResult:
        return self._write(console_text(notification), notification.dedup_key)

    def send_group(self, group: NotificationGroup, *, deadline_s: float) -> SendResult:
        return self._write(console_group_text(group), group.dedup_key)

    def _write(self, text: str, dedup_key: str) -> SendResult:
        started = self._clock()
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError) as exc:  # closed stream, broken pipe
            return SendResult(
                self.channel,
                False,
                dedup_key,
                1,
                self._clock() - started,
                error=f"{type(exc).__name__}: {exc}",
            )
        return SendResult(self.channel, True, dedup_key, 1, self._clock() - started)
