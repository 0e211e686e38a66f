from __future__ import annotations

import io
import json
import time
from collections.abc import Callable

import structlog

from meshalert.alerts.model import Notification
from meshalert.notify.redact import redact_secrets
from meshalert.notify.retry import RetryPolicy
from meshalert.notify.slack import SlackWebhookNotifier

TOKEN = "influx-T0ken-9f8e7d"
HOOK = "https://hooks.slack.com/services/T01/B02/xyzSECRETpath"


def _logger(buffer: io.StringIO, secrets: list[str]) -> structlog.BoundLogger:
    logger: structlog.BoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(buffer),
        processors=[
            structlog.processors.format_exc_info,
            redact_secrets(secrets),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.BoundLogger,
    )
    return logger


def test_secret_values_are_removed_everywhere() -> None:
    buffer = io.StringIO()
    log = _logger(buffer, [TOKEN, ""])
    log.info(
        f"connecting with {TOKEN}",
        headers={"Authorization": f"Token {TOKEN}"},
        tries=[f"x{TOKEN}y", 3],
        port=8086,
    )
    log.info("plain", url="https://influx.example.com:8086", token="anything-at-all")
    try:
        raise ValueError(f"bad token {TOKEN}")
    except ValueError:
        log.error("failed", exc_info=True)
    output = buffer.getvalue()
    assert TOKEN not in output
    first, second, third = (json.loads(line) for line in output.splitlines())
    assert first["event"] == "connecting with ***"
    assert first["headers"] == {"Authorization": "***"}
    assert first["tries"] == ["x***y", 3] and first["port"] == 8086
    assert second["url"] == "https://influx.example.com:8086" and second["token"] == "***"
    assert "ValueError: bad token ***" in third["exception"]


def test_slack_hook_paths_are_removed_even_when_not_configured() -> None:
    buffer = io.StringIO()
    log = _logger(buffer, [])
    log.warning("posting", target=f"POST {HOOK} failed", cause=OSError(f"refused {HOOK}"))
    output = buffer.getvalue()
    assert "xyzSECRETpath" not in output and "T01/B02" not in output
    assert json.loads(output)["target"] == "POST https://hooks.slack.com/*** failed"


def test_notifier_logs_stay_clean_under_capture(
    make_notification: Callable[..., Notification],
) -> None:
    url = "http://127.0.0.1:9/services/T01/B02/xyzSECRETpath"  # discard port: refused
    notifier = SlackWebhookNotifier(url, policy=RetryPolicy(base_delay_s=0.01, max_delay_s=0.02))
    with structlog.testing.capture_logs() as logs:
        notifier.send(make_notification(), deadline_s=time.monotonic() + 0.3)
    assert logs and "xyzSECRETpath" not in json.dumps(logs, default=str)
