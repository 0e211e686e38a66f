"""Generic webhook: the notification as JSON (see :func:`meshalert.notify.render.to_dict`)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import structlog
from pydantic import SecretStr

from meshalert.alerts.model import Notification
from meshalert.notify import render
from meshalert.notify.base import SendResult, secret
from meshalert.notify.grouping import NotificationGroup
from meshalert.notify.http import post_json
from meshalert.notify.outcome import Retrier
from meshalert.notify.retry import AttemptOutcome, RetryPolicy

log = structlog.get_logger("meshalert.notify.webhook")


class WebhookNotifier:
    """POSTs the JSON form; the URL may carry a token, so it is a ``SecretStr`` too."""

    channel = "webhook"

    def __init__(
        self,
        url: str | SecretStr,
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._url = secret(url)
        self._retrier = Retrier(policy or RetryPolicy(), clock, sleep, rand)

    def __repr__(self) -> str:
        return f"WebhookNotifier(url={self._url!r})"

    def send(self, notification: Notification, *, deadline_s: float) -> SendResult:
        return self._post(render.to_json(notification), notification, deadline_s)

    def send_group(self, group: NotificationGroup, *, deadline_s: float) -> SendResult:
        """The group's JSON (``"group": true``, counts, every member with its dedup key)."""
        return self._post(render.group_to_json(group), group, deadline_s)

    def _post(
        self, text: str, subject: Notification | NotificationGroup, deadline_s: float
    ) -> SendResult:
        body = text.encode("utf-8")

        def attempt(timeout_s: float) -> AttemptOutcome:
            return post_json(self._url, body, timeout_s)

        return self._retrier.send(self.channel, subject, attempt, deadline_s=deadline_s, log=log)
