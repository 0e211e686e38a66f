from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

from meshalert.alerts.model import Notification
from meshalert.notify.render import to_dict
from meshalert.notify.retry import RetryPolicy
from meshalert.notify.webhook import WebhookNotifier
from tests.fixtures.http_server import RecordingHttpServer

FAST = RetryPolicy(base_delay_s=0.05, max_delay_s=0.1, attempt_timeout_s=2.0)


def test_posts_the_notification_as_json(
    http_server: RecordingHttpServer, make_notification: Callable[..., Notification]
) -> None:
    note = make_notification()
    result = WebhookNotifier(http_server.url + "/hook?token=abc123secret", policy=FAST).send(
        note, deadline_s=time.monotonic() + 5
    )
    assert result.ok and result.status == 204 and result.channel == "webhook"
    (request,) = http_server.requests
    assert request.path == "/hook" and request.query == {"token": "abc123secret"}
    body = json.loads(request.text)
    assert body == to_dict(note)
    assert body["evidence"]["replay"].startswith("meshalert backtest")


def test_503_then_success_is_retried(
    http_server: RecordingHttpServer, make_notification: Callable[..., Notification]
) -> None:
    http_server.respond(503, "busy")
    http_server.respond(502, "bad gateway")
    http_server.set_default(200, "{}")
    result = WebhookNotifier(http_server.url, policy=FAST).send(
        make_notification(), deadline_s=time.monotonic() + 5
    )
    assert result.ok and result.attempts == 3 and len(http_server.requests) == 3


def test_failure_hides_the_url_and_is_returned(
    http_server: RecordingHttpServer, make_notification: Callable[..., Notification]
) -> None:
    http_server.set_default(404, "no such hook /hook?token=abc123secret")
    notifier = WebhookNotifier(http_server.url + "/hook?token=abc123secret", policy=FAST)
    result = notifier.send(make_notification(), deadline_s=time.monotonic() + 5)
    assert not result.ok and result.attempts == 1 and result.status == 404
    assert "abc123secret" not in (result.error or "") and "abc123secret" not in repr(notifier)


def test_non_finite_values_become_null(make_notification: Callable[..., Notification]) -> None:
    note = make_notification(evidence={"observed": math.nan, "detail": {"ratio": math.inf}})
    body = to_dict(note)
    assert body["evidence"]["observed"] is None and body["evidence"]["detail"]["ratio"] is None
