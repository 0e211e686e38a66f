from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from meshalert.alerts.model import Notification, NotificationKind, Severity
from meshalert.notify import render
from meshalert.notify.retry import RetryPolicy
from meshalert.notify.sns import SNS_CLIENT_CONFIG, SnsNotifier
from tests.meshalert.notify.conftest import notification

REGION = "eu-west-1"
FAST = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05)


@pytest.fixture
def aws() -> Iterator[None]:
    fake = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    saved = {k: os.environ.get(k) for k in fake}
    os.environ.update(fake)
    try:
        with mock_aws():
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def topic_and_queue(aws: None) -> tuple[str, str]:
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="meshalert-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "false"},
    )
    return topic_arn, queue_url


def _received(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_publish_reaches_a_subscribed_queue(
    topic_and_queue: tuple[str, str], make_notification: Callable[..., Notification]
) -> None:
    topic_arn, queue_url = topic_and_queue
    client = boto3.client("sns", region_name=REGION, config=SNS_CLIENT_CONFIG)
    note = make_notification()
    result = SnsNotifier(topic_arn, client).send(note, deadline_s=time.monotonic() + 5)
    assert result.ok and result.attempts == 1 and result.channel == "sns"

    (envelope,) = _received(queue_url)
    assert envelope["Subject"] == "[FIRING] latency production/checkout"
    message = json.loads(envelope["Message"])
    assert message["dedup_key"] == note.dedup_key
    assert message["state"] == "firing" and message["severity"] == "critical"
    assert message["evidence"]["query"] == note.evidence.query
    assert message["evidence"]["threshold"] == {
        "name": "above_ms",
        "value": 250.0,
        "source": "file:/etc/meshalert/rules.yaml",
    }
    assert message["evidence"]["observed"] == 612.0
    attributes = {k: (v["Type"], v["Value"]) for k, v in envelope["MessageAttributes"].items()}
    assert attributes["severity"] == ("String", "critical")
    assert attributes["class"] == ("String", "latency")
    assert attributes["service"] == ("String", "production/checkout")
    assert attributes["state"] == ("String", "firing")


def test_resolved_subject_and_state(
    topic_and_queue: tuple[str, str], make_notification: Callable[..., Notification]
) -> None:
    topic_arn, queue_url = topic_and_queue
    note = make_notification(kind=NotificationKind.RESOLVED, severity=Severity.WARNING)
    SnsNotifier(topic_arn, boto3.client("sns", region_name=REGION)).send(
        note, deadline_s=time.monotonic() + 5
    )
    (envelope,) = _received(queue_url)
    assert envelope["Subject"] == "[RESOLVED] latency production/checkout"
    assert envelope["MessageAttributes"]["state"]["Value"] == "resolved"
    assert envelope["MessageAttributes"]["severity"]["Value"] == "warning"


class FlakyPublisher:
    """Fails the first ``failures`` publishes with ``error``, then hands on to moto."""

    def __init__(self, real: Any, failures: int, error: Exception) -> None:
        self.real, self.failures, self.error, self.calls = real, failures, error, 0

    def publish(self, **kwargs: Any) -> Mapping[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        result: Mapping[str, Any] = self.real.publish(**kwargs)
        return result


def _client_error(code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "nope"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Publish")


def test_throttling_and_5xx_are_retried_within_deadline(
    topic_and_queue: tuple[str, str], make_notification: Callable[..., Notification]
) -> None:
    topic_arn, queue_url = topic_and_queue
    real = boto3.client("sns", region_name=REGION)
    for error in (
        _client_error("Throttling", 400),
        _client_error("InternalError", 500),
        EndpointConnectionError(endpoint_url="https://sns.eu-west-1.amazonaws.com"),
    ):
        flaky = FlakyPublisher(real, 2, error)
        result = SnsNotifier(topic_arn, flaky, policy=FAST).send(
            make_notification(), deadline_s=time.monotonic() + 5
        )
        assert result.ok and result.attempts == 3 and flaky.calls == 3
    assert len(_received(queue_url)) == 3


def test_access_denied_fails_without_retry_and_without_raising(
    topic_and_queue: tuple[str, str], make_notification: Callable[..., Notification]
) -> None:
    topic_arn, _ = topic_and_queue
    flaky = FlakyPublisher(None, 99, _client_error("AuthorizationError", 403))
    result = SnsNotifier(topic_arn, flaky, policy=FAST).send(
        make_notification(), deadline_s=time.monotonic() + 5
    )
    assert not result.ok and flaky.calls == 1 and result.status == 403
    assert result.error is not None and result.error.startswith("AuthorizationError")


def test_endless_throttling_stops_at_the_deadline(
    topic_and_queue: tuple[str, str], make_notification: Callable[..., Notification]
) -> None:
    topic_arn, _ = topic_and_queue
    flaky = FlakyPublisher(None, 10**6, _client_error("Throttling", 400))
    policy = RetryPolicy(base_delay_s=0.05, max_delay_s=0.1, max_attempts=1000)
    started = time.monotonic()
    result = SnsNotifier(topic_arn, flaky, policy=policy).send(
        make_notification(), deadline_s=started + 0.6
    )
    assert not result.ok and flaky.calls > 2
    assert time.monotonic() - started <= 0.7


@settings(max_examples=150)
@given(st.text(min_size=0, max_size=300), st.sampled_from(list(NotificationKind)))
def test_subject_is_always_valid_for_sns(service: str, kind: NotificationKind) -> None:
    subject = render.subject(notification(kind=kind, service=service))
    assert subject.isascii() and len(subject) < 100
    assert "\n" not in subject and "\r" not in subject
    assert all(ch.isprintable() for ch in subject)
    assert subject.startswith(f"[{kind.value.upper()}] latency")
