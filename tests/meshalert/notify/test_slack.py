from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

from structlog.testing import capture_logs

from meshalert.alerts.model import Notification, NotificationKind
from meshalert.notify.retry import RetryPolicy
from meshalert.notify.slack import (
    FIELD_TEXT_MAX,
    HEADER_MAX,
    SECTION_TEXT_MAX,
    SlackWebhookNotifier,
    slack_payload,
)
from tests.fixtures.http_server import RecordingHttpServer

HOOK_PATH = "/services/T000AAAA/B000BBBB/s3cr3tT0kenXYZ"
FAST = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, attempt_timeout_s=2.0)
RUNBOOK = "https://runbooks.example.com/meshalert/latency"


def _notifier(server: RecordingHttpServer, **kwargs: Any) -> SlackWebhookNotifier:
    return SlackWebhookNotifier(server.url + HOOK_PATH, RUNBOOK, policy=FAST, **kwargs)


def _all_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


def test_posts_block_kit_message_with_evidence(
    http_server: RecordingHttpServer, make_notification: Callable[..., Notification]
) -> None:
    http_server.set_default(200, "ok")
    note = make_notification()
    result = _notifier(http_server).send(note, deadline_s=time.monotonic() + 5)

    assert result.ok and result.attempts == 1 and result.status == 200
    assert result.channel == "slack" and result.dedup_key == note.dedup_key
    (request,) = http_server.requests
    assert request.method == "POST" and request.path == HOOK_PATH
    assert (request.header("content-type") or "").startswith("application/json")
    payload = json.loads(request.text)
    text = payload["text"]
    for expected in (
        "FIRING",
        "latency",
        "production/checkout",
        "612 ms",
        "above_ms 250 ms",
        "file:/etc/meshalert/rules.yaml",
        "window 5m",
        RUNBOOK,
    ):
        assert expected in text, expected
    header = payload["blocks"][0]
    assert header["type"] == "header" and ":rotating_light:" in header["text"]["text"]
    blocks = payload["attachments"][0]["blocks"]
    query_block = next(b for b in blocks if "```" in b.get("text", {}).get("text", ""))
    # The Flux query sits in a code block, with mrkdwn's control characters escaped.
    assert "|&gt; range(start: -5m)" in query_block["text"]["text"]
    assert 'r.le &lt; "+Inf"' in query_block["text"]["text"]
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons[0]["url"] == RUNBOOK
    fields = next(b for b in blocks if "fields" in b)["fields"]
    assert any("node-3" in f["text"] for f in fields)


def test_firing_and_resolved_look_different(
    make_notification: Callable[..., Notification],
) -> None:
    firing = slack_payload(make_notification())
    resolved = slack_payload(make_notification(kind=NotificationKind.RESOLVED))
    assert firing["attachments"][0]["color"] != resolved["attachments"][0]["color"]
    assert resolved["blocks"][0]["text"]["text"].startswith(":white_check_mark: RESOLVED")
    assert firing["blocks"][0]["text"]["text"].startswith(":rotating_light: FIRING")
    reminder = slack_payload(make_notification(kind=NotificationKind.REMINDER, reminder_seq=2))
    assert "STILL FIRING" in reminder["text"] and "reminder 2" in reminder["text"]
    assert "Runbook" not in _all_text(firing)  # no runbook configured, no button


def test_long_evidence_is_cut_to_slack_limits(
    make_notification: Callable[..., Notification],
) -> None:
    note = make_notification(
        service="production/" + "s" * 400,
        evidence={
            "query": "x" * 20_000,
            "detail": {f"k{i}": "v" * 3000 for i in range(20)},
            "service": "production/" + "s" * 400,
        },
    )
    payload = slack_payload(note)
    assert len(payload["blocks"][0]["text"]["text"]) <= HEADER_MAX
    blocks = payload["attachments"][0]["blocks"]
    for block in blocks:
        if "text" in block:
            assert len(block["text"]["text"]) <= SECTION_TEXT_MAX
        for field in block.get("fields", []):
            assert len(field["text"]) <= FIELD_TEXT_MAX
        assert len(block.get("fields", [])) <= 10
    query_text = next(
        b["text"]["text"] for b in blocks if "*Query*" in b.get("text", {}).get("text", "")
    )
    assert query_text.endswith("```") and "..." in query_text


def test_429_waits_for_retry_after_then_succeeds(
    http_server: RecordingHttpServer, make_notification: Callable[..., Notification]
) -> None:
    http_server.respond(429, "rate_limited", headers={"Retry-After": "1"})
    http_server.set_default(200, "ok")
    started = time.monotonic()
    result = _notifier(http_server).send(make_notification(), deadline_s=started + 5)
    elapsed = time.monotonic() - started
    assert result.ok and result.attempts == 2
    assert len(http_server.requests) == 2
    assert elapsed >= 1.0, "Retry-After was not honoured"
    assert http_server.requests[0].body == http_server.requests[1].body


def test_429_with_retry_after_beyond_deadline_fails_fast(
    http_server: RecordingHttpServer, make_notification: Callable[..., Notification]
) -> None:
    http_server.set_default(429, "rate_limited", headers={"Retry-After": "30"})
    started = time.monotonic()
    result = _notifier(http_server).send(make_notification(), deadline_s=started + 3)
    assert not result.ok and result.status == 429 and result.attempts == 1
    assert time.monotonic() - started < 1.0


def test_5xx_retries_with_backoff_and_gives_up_by_the_deadline(
    http_server: RecordingHttpServer, make_notification: Callable[..., Notification]
) -> None:
    http_server.set_default(500, "boom")
    started = time.monotonic()
    deadline = started + 1.5
    with capture_logs() as logs:
        result = _notifier(http_server).send(make_notification(), deadline_s=deadline)
    finished = time.monotonic()
    assert not result.ok and result.status == 500
    assert result.attempts >= 3 and len(http_server.requests) == result.attempts
    assert finished <= deadline + 0.1
    assert [e["event"] for e in logs] == ["notify.failed"]
    assert logs[0]["attempts"] == result.attempts


def test_hung_server_is_bounded_by_the_deadline(
    http_server: RecordingHttpServer, make_notification: Callable[..., Notification]
) -> None:
    http_server.set_default(200, "ok", delay=5.0)
    started = time.monotonic()
    result = _notifier(http_server).send(make_notification(), deadline_s=started + 1.0)
    elapsed = time.monotonic() - started
    assert not result.ok and result.status is None
    assert "timed out" in (result.error or "").lower() or "timeout" in (result.error or "").lower()
    assert elapsed < 1.3


def test_client_error_is_not_retried(
    http_server: RecordingHttpServer, make_notification: Callable[..., Notification]
) -> None:
    http_server.set_default(400, "invalid_payload")
    result = _notifier(http_server).send(make_notification(), deadline_s=time.monotonic() + 5)
    assert not result.ok and result.attempts == 1
    assert result.error == "HTTP 400: invalid_payload"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_webhook_url_never_shows(make_notification: Callable[..., Notification]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}{HOOK_PATH}"
    notifier = SlackWebhookNotifier(url, policy=FAST)
    with capture_logs() as logs:
        result = notifier.send(make_notification(), deadline_s=time.monotonic() + 0.5)
    assert not result.ok and result.attempts >= 1
    secret = "s3cr3tT0kenXYZ"
    assert "Connection" in (result.error or "") or "refused" in (result.error or "")
    for shown in (repr(notifier), str(notifier), repr(result), json.dumps(logs, default=str)):
        assert secret not in shown
        assert HOOK_PATH not in shown


HOSTILE = "prod/<!channel>\x1b[2J\u202eevil&co`$(id)`"


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def test_a_hostile_service_name_reaches_slack_escaped_and_the_replay_keeps_its_quoting(
    make_notification: Callable[..., Notification],
) -> None:
    import shlex

    from meshalert.alert_classes import AlertClass
    from meshalert.engine import replay_command

    replay = replay_command(AlertClass.LATENCY, HOSTILE, 60_000, 300_000)
    note = make_notification(evidence={"service": HOSTILE, "replay": replay})
    texts = _strings(slack_payload(note, RUNBOOK))

    joined = "\n".join(texts)
    assert "\x1b" not in joined
    assert "\u202e" not in joined
    payload = slack_payload(note, RUNBOOK)
    # Plain text (the header) shows names as they are; everything read as mrkdwn is escaped.
    mrkdwn = [payload["text"], *_strings(payload["attachments"])]
    assert not any("<!channel>" in t for t in mrkdwn)
    assert "&lt;!channel&gt;" in payload["text"]
    replay_block = next(t for t in texts if t.startswith("Replay: "))
    # Fenced, not rewritten: what Slack shows still quotes the service as one shell word.
    shown = replay_block.removeprefix("Replay: ```").removesuffix("```")
    unescaped = shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    words = shlex.split(unescaped)
    assert words[words.index("--service") + 1] == HOSTILE.replace("\x1b", "\\x1b").replace(
        "\u202e", "\\u202e"
    )
