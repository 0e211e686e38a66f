"""Human-readable output for local runs: one summary line, then the evidence indented."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from meshalert.alerts.model import Notification
from meshalert.notify import render
from meshalert.notify.base import SendResult
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


class ConsoleNotifier:
    channel = "console"

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock

    def __repr__(self) -> str:
        return "ConsoleNotifier()"

    def send(self, notification: Notification, *, deadline_s: float) -> SendResult:
        started = self._clock()
        try:
            self._stream.write(console_text(notification))
            self._stream.flush()
        except (OSError, ValueError) as exc:  # closed stream, broken pipe
            return SendResult(
                self.channel,
                False,
                notification.dedup_key,
                1,
                self._clock() - started,
                error=f"{type(exc).__name__}: {exc}",
            )
        return SendResult(self.channel, True, notification.dedup_key, 1, self._clock() - started)
