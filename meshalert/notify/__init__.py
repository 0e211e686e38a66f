"""Notifiers: Slack, SNS, generic webhook and console, and the router between them.

Every notifier has ``send(notification, *, deadline_s) -> SendResult``: retries fit inside
the absolute ``time.monotonic()`` deadline and a final failure is returned, not raised.
"""

from meshalert.notify.base import Notifier, Secret, SendResult
from meshalert.notify.console import ConsoleNotifier
from meshalert.notify.redact import redact_secrets
from meshalert.notify.retry import RetryPolicy
from meshalert.notify.router import Route, RouteMatch, Router, RoutingConfig
from meshalert.notify.slack import SlackWebhookNotifier
from meshalert.notify.sns import SNS_CLIENT_CONFIG, SnsNotifier
from meshalert.notify.webhook import WebhookNotifier

__all__ = [
    "SNS_CLIENT_CONFIG",
    "ConsoleNotifier",
    "Notifier",
    "RetryPolicy",
    "Route",
    "RouteMatch",
    "Router",
    "RoutingConfig",
    "Secret",
    "SendResult",
    "SlackWebhookNotifier",
    "SnsNotifier",
    "WebhookNotifier",
    "redact_secrets",
]
