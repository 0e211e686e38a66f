"""Notifiers: Slack, SNS, generic webhook and console, and the router between them.

Every notifier has ``send(notification, *, deadline_s) -> SendResult``: retries fit inside
the absolute ``time.monotonic()`` deadline and a final failure is returned, not raised.

Names are resolved lazily: importing one submodule (``meshalert.notify.redact`` from the
logging setup, say) must not load botocore, YAML and pydantic on a Lambda cold start.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Notifier": "base",
    "secret": "base",
    "SendResult": "base",
    "ConsoleNotifier": "console",
    "redact_secrets": "redact",
    "RetryPolicy": "retry",
    "Route": "router",
    "RouteMatch": "router",
    "Router": "router",
    "RoutingConfig": "router",
    "SlackWebhookNotifier": "slack",
    "SNS_CLIENT_CONFIG": "sns",
    "SnsNotifier": "sns",
    "WebhookNotifier": "webhook",
}

__all__ = [  # noqa: RUF022 -- grouped like _EXPORTS
    "Notifier", "secret", "SendResult", "ConsoleNotifier", "redact_secrets", "RetryPolicy",
    "Route", "RouteMatch", "Router", "RoutingConfig", "SlackWebhookNotifier",
    "SNS_CLIENT_CONFIG", "SnsNotifier", "WebhookNotifier",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'meshalert.notify' has no attribute {name!r}")
    return getattr(importlib.import_module(f"meshalert.notify.{module}"), name)
