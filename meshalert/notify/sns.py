"""Amazon SNS notifier: stable ASCII subject, JSON message, filterable attributes."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from meshalert.alerts.model import Notification
from meshalert.notify import render
from meshalert.notify.base import SendResult
from meshalert.notify.grouping import NotificationGroup
from meshalert.notify.outcome import Retrier
from meshalert.notify.retry import AttemptOutcome, RetryPolicy

log = structlog.get_logger("meshalert.notify.sns")

SNS_CLIENT_CONFIG = Config(
    retries={"total_max_attempts": 1, "mode": "standard"},
    connect_timeout=2,
    read_timeout=5,
)
"""Build the SNS client with this: botocore's own retries know nothing of our deadline,
so they are switched off and :class:`SnsNotifier` retries instead."""

# SNS caps a message at 256 KiB; the query is the only part that can grow without bound.
_MAX_QUERY_CHARS = 65536
# A group's member list grows with the storm: listed members stop well inside the cap.
_MAX_GROUP_BYTES = 200_000
_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "KMSThrottlingException",
    }
)
_TRANSIENT = frozenset(
    {"InternalError", "InternalFailure", "ServiceUnavailable", "KMSInternalException"}
)


class SnsPublisher(Protocol):
    """The one boto3 SNS client method used here."""

    def publish(self, **kwargs: Any) -> Mapping[str, Any]: ...


def message_attributes(notification: Notification) -> dict[str, dict[str, str]]:
    """String attributes so subscription filter policies can pick by any of them."""
    values = {
        "severity": notification.severity.value,
        "class": notification.alert_class.value,
        "service": notification.service,
        "state": notification.kind.value,
        "dedup_key": notification.dedup_key,
    }
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


def group_attributes(group: NotificationGroup) -> dict[str, dict[str, str]]:
    """The same names a single notification carries, so one filter policy serves both:
    ``severity``, ``class`` and ``state`` are a ``String`` when the group has one value
    and a ``String.Array`` otherwise (a policy matches an array when any element matches,
    so ``{"class": ["latency"]}`` still selects a group holding latency alerts).
    ``grouped`` (``"true"``) and ``count`` (``Number``) tell a group apart; a group has no
    single ``service`` or ``dedup_key`` (each member's is in the message)."""
    attributes = {
        name: _one_or_array(values)
        for name, values in (
            ("severity", group.severities),
            ("class", group.classes),
            ("state", group.states),
        )
    }
    attributes["grouped"] = {"DataType": "String", "StringValue": "true"}
    attributes["count"] = {"DataType": "Number", "StringValue": str(len(group.members))}
    return attributes


def _one_or_array(values: tuple[str, ...]) -> dict[str, str]:
    if len(values) == 1:
        return {"DataType": "String", "StringValue": values[0]}
    return {"DataType": "String.Array", "StringValue": json.dumps(sorted(values))}


class SnsNotifier:
    channel = "sns"

    def __init__(
        self,
        topic_arn: str,
        client: SnsPublisher,
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._topic_arn = topic_arn
        self._client = client
        self._retrier = Retrier(policy or RetryPolicy(), clock, sleep, rand)

    def __repr__(self) -> str:
        return f"SnsNotifier(topic_arn={self._topic_arn!r})"

    def send(self, notification: Notification, *, deadline_s: float) -> SendResult:
        request = {
            "TopicArn": self._topic_arn,
            "Subject": render.subject(notification),
            "Message": render.to_json(notification, max_query_chars=_MAX_QUERY_CHARS),
            "MessageAttributes": message_attributes(notification),
        }
        return self._send(request, notification, deadline_s)

    def send_group(self, group: NotificationGroup, *, deadline_s: float) -> SendResult:
        request = {
            "TopicArn": self._topic_arn,
            "Subject": render.group_subject(group),
            "Message": render.group_to_json(group, max_bytes=_MAX_GROUP_BYTES),
            "MessageAttributes": group_attributes(group),
        }
        return self._send(request, group, deadline_s)

    def _send(
        self,
        request: Mapping[str, Any],
        subject: Notification | NotificationGroup,
        deadline_s: float,
    ) -> SendResult:
        def attempt(_timeout_s: float) -> AttemptOutcome:
            return self._publish(request)

        return self._retrier.send(self.channel, subject, attempt, deadline_s=deadline_s, log=log)

    def _publish(self, request: Mapping[str, Any]) -> AttemptOutcome:
        try:
            self._client.publish(**request)
        except ClientError as exc:
            return _client_error(exc)
        except (ConnectionError, HTTPClientError) as exc:
            return AttemptOutcome(ok=False, retryable=True, error=f"{type(exc).__name__}: {exc}")
        except BotoCoreError as exc:
            return AttemptOutcome(ok=False, retryable=False, error=f"{type(exc).__name__}: {exc}")
        return AttemptOutcome(ok=True, status=200)


def _client_error(exc: ClientError) -> AttemptOutcome:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    retryable = code in _THROTTLING or code in _TRANSIENT or (status is not None and status >= 500)
    return AttemptOutcome(
        ok=False,
        retryable=retryable,
        status=status,
        error=f"{code or 'ClientError'}: {error.get('Message', '')}".strip(),
    )
