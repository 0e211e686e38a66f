from __future__ import annotations

import io
import time
from collections.abc import Callable

from meshalert.alerts.model import Notification, NotificationKind
from meshalert.notify.console import ConsoleNotifier


def test_one_line_then_indented_evidence(make_notification: Callable[..., Notification]) -> None:
    stream = io.StringIO()
    note = make_notification()
    result = ConsoleNotifier(stream).send(note, deadline_s=time.monotonic() + 1)
    assert result.ok and result.channel == "console"
    first, *rest = stream.getvalue().splitlines()
    assert first == (
        "[critical] FIRING latency production/checkout: observed 612 ms vs above_ms 250 ms "
        "(from file:/etc/meshalert/rules.yaml), window 5m"
    )
    assert all(line.startswith("    ") for line in rest)
    assert "        |> range(start: -5m)" in rest  # query lines keep their own indent
    assert "    worst_host: node-3" in rest
    assert f"    dedup: {note.dedup_key}" in rest


def test_resolved_and_closed_stream(make_notification: Callable[..., Notification]) -> None:
    stream = io.StringIO()
    ConsoleNotifier(stream).send(
        make_notification(kind=NotificationKind.RESOLVED), deadline_s=time.monotonic() + 1
    )
    assert stream.getvalue().startswith("[critical] RESOLVED latency")
    stream.close()
    result = ConsoleNotifier(stream).send(make_notification(), deadline_s=time.monotonic() + 1)
    assert not result.ok and result.error is not None
