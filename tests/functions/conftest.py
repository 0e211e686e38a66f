"""The packaged stack in moto, its SSM parameters, an SQS queue on its topic, Slack as a
real local HTTP server, and Lambda-shaped events and contexts for calling the handlers.

Packaging and stack creation are tests/infra/test_serverless.py's fixtures, reused here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions import runtime
from tests.fixtures.http_server import RecordingHttpServer
from tests.infra.test_serverless import REGION, STAGE, packaged, stack

__all__ = ["REGION", "STAGE", "packaged", "stack"]

EVENTS = Path(__file__).parent / "events"
PREFIX = f"/meshalert/{STAGE}/"
INFLUX_TOKEN = "tok-3f9a1c77e2b04d1e8a5b6c7d8e9f0a1b"
HOOK_PATH = "/services/T0SECRET/B0SECRET/hookSecretXyz123"


def event(name: str, **changes: Any) -> dict[str, Any]:
    """A recorded EventBridge event from events/, with fields replaced."""
    data: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return {**copy.deepcopy(data), **changes}


def at(ms: int) -> str:
    """RFC 3339 the way EventBridge writes ``time`` (seconds, 'Z')."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeContext:
    """The Lambda context members the handlers read; time runs from construction."""

    aws_request_id: str
    remaining_ms: int = 30_000

    def __post_init__(self) -> None:
        import time

        self._start = time.monotonic()

    def get_remaining_time_in_millis(self) -> int:
        import time

        return max(int(self.remaining_ms - (time.monotonic() - self._start) * 1000), 0)


@dataclass
class Deployment:
    ids: dict[str, str]
    env: dict[str, str]
    queue_url: str
    slack: RecordingHttpServer

    @property
    def table(self) -> str:
        return self.ids["StateTable"]

    def sns_messages(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        out: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            messages = got.get("Messages", [])
            if not messages:
                return out
            for message in messages:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def slack_posts(self) -> list[dict[str, Any]]:
        return [json.loads(r.text) for r in self.slack.requests if r.method == "POST"]


def function_env(function: str) -> dict[str, str]:
    lam = boto3.client("lambda", region_name=REGION)
    config = lam.get_function_configuration(FunctionName=f"meshalert-{STAGE}-{function}")
    return dict(config["Environment"]["Variables"])


@pytest.fixture
def deployment(
    stack: dict[str, str],
    http_server: RecordingHttpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Deployment]:
    """Secrets and rules in SSM, a queue on the topic, the function's env in os.environ.

    The store URL is the one setting the deploying shell chooses (serverless.yml reads
    ``${env:MESHALERT_STORE}``); tests point it at their own store with ``use_store``.
    """
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name=PREFIX + "influxdb-token", Value=INFLUX_TOKEN, Type="SecureString")
    ssm.put_parameter(
        Name=PREFIX + "slack-webhook-url", Value=http_server.url + HOOK_PATH, Type="SecureString"
    )
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="alerts-tap")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    boto3.client("sns", region_name=REGION).subscribe(
        TopicArn=stack["AlertTopic"], Protocol="sqs", Endpoint=queue_arn
    )
    http_server.set_default(200, "ok")
    env = function_env("evaluate-latency")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_REGION", REGION)
    runtime.reset()
    try:
        yield Deployment(stack, env, queue_url, http_server)
    finally:
        runtime.reset()


def put_rules(text: str) -> None:
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=PREFIX + "rules", Value=text, Type="SecureString", Overwrite=True
    )
