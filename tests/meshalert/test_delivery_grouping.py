"""Storm protection end to end: 200 alerts changing state in one cycle reach each channel as
at most one message per severity, a retried cycle sends nothing more, and a channel that
failed the group gets it again (and only it) next cycle. Real channels: Slack and webhook
as HTTP servers on 127.0.0.1, SNS under moto with SQS subscriptions and filter policies,
the console on a stream; every state store (SQLite file, DynamoDB under moto, memory)."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertState, Notification
from meshalert.delivery import Job, deliver_all
from meshalert.engine import Engine
from meshalert.evaluation import evaluate_class
from meshalert.notify.console import ConsoleNotifier
from meshalert.notify.grouping import GroupingConfig
from meshalert.notify.retry import RetryPolicy
from meshalert.notify.router import Router
from meshalert.notify.slack import SlackWebhookNotifier
from meshalert.notify.sns import SNS_CLIENT_CONFIG, SnsNotifier
from meshalert.notify.webhook import WebhookNotifier
from meshalert.queries.model import ClassAggregates, ClassQuery, FailuresAggregate
from meshalert.rules import load_rules
from meshalert.state.protocols import StateStore
from tests.fixtures.http_server import RecordingHttpServer
from tests.meshalert.state.conftest import aws_env, dynamodb_client, store  # noqa: F401

FAST = RetryPolicy(base_delay_s=0.05, max_delay_s=0.1, attempt_timeout_s=1.0, max_attempts=2)
RULES = load_rules(
    {
        "MESHALERT_RULES": (
            "defaults: {failures: {rate_above: 0.05, min_requests: 1, for: 0s}}\n"
            'services: {"ns/warn-*": {severity: warning}}\n'
        )
    },
    now_s=0,
)
BROKEN = FailuresAggregate(requests=100.0, failures=50.0, connection_failures=0.0)
T0 = 1_700_000_000_000 + 86_400_000
REGION = "eu-west-1"
CRITICAL = [f"ns/svc-{i:03d}" for i in range(150)]
WARNING = [f"ns/warn-{i:03d}" for i in range(50)]
STORM = {name: BROKEN for name in CRITICAL + WARNING}


@dataclass
class _Reader:
    """The failures query's answer (the store is not what these tests are about)."""

    services: Mapping[str, FailuresAggregate]

    def fetch(self, query: ClassQuery) -> ClassAggregates:
        return ClassAggregates(query, {k: {"": a} for k, a in self.services.items()}, "q")


@dataclass
class Sns:
    topic: str
    queues: dict[str, str]  # filter name -> queue URL
    client: Any

    def messages(self, queue: str) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        out: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(QueueUrl=self.queues[queue], MaxNumberOfMessages=10)
            if not got.get("Messages"):
                return out
            for message in got["Messages"]:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(
                    QueueUrl=self.queues[queue], ReceiptHandle=message["ReceiptHandle"]
                )


FILTERS: dict[str, dict[str, list[str]] | None] = {
    "all": None,
    "warning": {"severity": ["warning"]},
    "failures_critical": {"class": ["failures"], "severity": ["critical"]},
    "latency": {"class": ["latency"]},
}


@pytest.fixture
def sns(aws_env: None) -> Iterator[Sns]:  # noqa: F811 -- the fixture
    with mock_aws():
        client = boto3.client("sns", region_name=REGION, config=SNS_CLIENT_CONFIG)
        topic = client.create_topic(Name="alerts")["TopicArn"]
        sqs = boto3.client("sqs", region_name=REGION)
        queues = {}
        for name, policy in FILTERS.items():
            url = sqs.create_queue(QueueName=f"tap-{name}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            attributes = {"FilterPolicy": json.dumps(policy)} if policy else {}
            client.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes=attributes)
            queues[name] = url
        yield Sns(topic, queues, client)


@pytest.fixture
def slack() -> Iterator[RecordingHttpServer]:
    server = RecordingHttpServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def webhook() -> Iterator[RecordingHttpServer]:
    server = RecordingHttpServer()
    server.start()
    yield server
    server.close()


@dataclass
class Recording:
    """Forwards to the real router and remembers what it was asked to send."""

    router: Router
    jobs: list[Job] = field(default_factory=list)

    def channels_for(self, notification: Notification) -> tuple[str, ...]:
        return self.router.channels_for(notification)

    def dispatch_all(self, jobs: Sequence[Job], deadline_s: float) -> Iterator[Any]:
        self.jobs.extend(jobs)
        return self.router.dispatch_all(jobs, deadline_s)


def _router(
    slack: RecordingHttpServer, webhook: RecordingHttpServer, sns: Sns, console: io.StringIO
) -> Recording:
    router = Router(
        {
            "console": ConsoleNotifier(console),
            "slack": SlackWebhookNotifier(slack.url + "/hook", policy=FAST),
            "webhook": WebhookNotifier(webhook.url + "/hook", policy=FAST),
            "sns": SnsNotifier(sns.topic, sns.client, policy=FAST),
        },
        grouping=GroupingConfig(),
    )
    return Recording(router)


def _posts(server: RecordingHttpServer) -> list[dict[str, Any]]:
    return [json.loads(r.text) for r in list(server.requests)]


def _cycle(engine: Engine, at_ms: int) -> Any:
    # A generous deadline: 200 claims against moto's DynamoDB on a busy machine take a while,
    # and a send left without time would be a retry, not what these tests look at.
    return evaluate_class(
        engine, RULES, AlertClass.FAILURES, at_ms, deadline_s=time.monotonic() + 300
    )


def _console_groups(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(" ")]


def test_a_storm_of_200_is_one_message_per_channel_and_severity_and_never_sent_again(
    store: StateStore,  # noqa: F811 -- the fixture
    slack: RecordingHttpServer,
    webhook: RecordingHttpServer,
    sns: Sns,
) -> None:
    console = io.StringIO()
    dispatcher = _router(slack, webhook, sns, console)
    engine = Engine(_Reader(STORM), store, dispatcher)

    report = _cycle(engine, T0)

    assert len(report.notifications) == 200
    assert report.send_failures == 0
    # Slack: one message per severity, the critical one first, counts and "and N more".
    slack_posts = _posts(slack)
    assert len(slack_posts) == 2
    assert [p["text"] for p in slack_posts] == [
        "[critical] 150 critical alerts: 150 FIRING (failures 150)",
        "[warning] 50 warning alerts: 50 FIRING (failures 50)",
    ]
    listed = slack_posts[0]["attachments"][0]["blocks"][1]["text"]["text"]
    assert listed.endswith("_and 130 more_")
    assert "meshalert status" in json.dumps(slack_posts[0])
    # Webhook: the same two groups, every member by its own dedup key.
    hooks = _posts(webhook)
    assert sorted((h["severity"], h["count"]) for h in hooks) == [
        ("critical", 150),
        ("warning", 50),
    ]
    assert sorted(m["dedup_key"] for h in hooks for m in h["members"]) == sorted(
        report.notifications
    )
    # SNS: two messages; the filter policies still pick by severity and class.
    everything = sns.messages("all")
    assert sorted(m["Subject"] for m in everything) == [
        "[GROUP] 150 critical alerts: 150 FIRING",
        "[GROUP] 50 warning alerts: 50 FIRING",
    ]
    assert [json.loads(m["Message"])["count"] for m in sns.messages("warning")] == [50]
    assert [json.loads(m["Message"])["count"] for m in sns.messages("failures_critical")] == [150]
    assert sns.messages("latency") == []
    assert len(_console_groups(console.getvalue())) == 2
    # Each member's claim is final and names every channel.
    for key in report.notifications:
        info = store.claim_info(key)
        assert info is not None and info.sent_ms is not None
        assert {(d.channel, d.ok) for d in info.deliveries} == {
            ("console", True),
            ("slack", True),
            ("webhook", True),
            ("sns", True),
        }

    # A retried run of the same cycle: the later run sees the saved state (no transition),
    # and a run that computed the same 200 notifications finds every claim taken.
    again = _cycle(engine, T0)
    assert again.notifications == [] and again.transitions == []
    (sent_jobs,) = [dispatcher.jobs]
    replay = deliver_all(
        [note for note, _ in sent_jobs],
        state=store,
        dispatcher=dispatcher,
        now_ms=T0,
        lease_ms=300_000,
        deadline_s=time.monotonic() + 10,
    )
    assert len(replay) == 200
    assert not any(d.claimed for d in replay.values())
    later = _cycle(engine, T0 + 60_000)
    assert later.notifications == []
    assert len(_posts(slack)) == 2
    assert len(_posts(webhook)) == 2
    assert sns.messages("all") == []
    assert len(_console_groups(console.getvalue())) == 2


def test_a_channel_that_failed_the_group_gets_it_next_cycle_and_no_other_channel_does(
    store: StateStore,  # noqa: F811 -- the fixture
    slack: RecordingHttpServer,
    webhook: RecordingHttpServer,
    sns: Sns,
) -> None:
    webhook.set_default(500, "down")
    console = io.StringIO()
    engine = Engine(_Reader(STORM), store, _router(slack, webhook, sns, console))

    first = _cycle(engine, T0)
    assert first.states == dict.fromkeys(STORM, AlertState.FIRING)
    assert first.send_failures == 200  # the webhook, once for every member of both groups
    assert len(webhook.requests) == 2 * FAST.max_attempts
    for key in first.notifications:
        info = store.claim_info(key)
        assert info is not None and info.sent_ms is None  # the webhook still owes it
        outcomes = {d.channel: d.ok for d in info.deliveries}
        assert outcomes == {"console": True, "slack": True, "sns": True, "webhook": False}
    first_groups = {json.loads(r.text)["dedup_key"] for r in webhook.requests}
    assert len(first_groups) == 2

    webhook.set_default(204)
    webhook.requests.clear()
    second = _cycle(engine, T0 + 60_000)
    assert second.transitions == [] and second.send_failures == 0
    hooks = _posts(webhook)
    # The same two groups, with all their members, exactly once; nothing else anywhere.
    assert {h["dedup_key"] for h in hooks} == first_groups
    assert len(hooks) == 2
    assert Counter(m["dedup_key"] for h in hooks for m in h["members"]) == Counter(
        first.notifications
    )
    assert len(_posts(slack)) == 2
    assert len(sns.messages("all")) == 2  # the first cycle's two, never again
    assert len(_console_groups(console.getvalue())) == 2
    for key in first.notifications:
        info = store.claim_info(key)
        assert info is not None and info.sent_ms is not None

    third = _cycle(engine, T0 + 120_000)
    assert third.notifications == []
    assert len(_posts(webhook)) == 2
    assert len(_posts(slack)) == 2
    assert sns.messages("all") == []


def test_a_few_alerts_still_go_one_message_each(
    slack: RecordingHttpServer, webhook: RecordingHttpServer, sns: Sns
) -> None:
    from meshalert.backends.memory.state import MemoryStateStore

    five = {name: BROKEN for name in CRITICAL[:5]}
    engine = Engine(_Reader(five), MemoryStateStore(), _router(slack, webhook, sns, io.StringIO()))

    report = _cycle(engine, T0)

    assert len(report.notifications) == 5
    assert sorted(p["text"].split(":")[0] for p in _posts(slack)) == [
        f"[critical] FIRING failures {name}" for name in sorted(five)
    ]
    assert sorted(h["dedup_key"] for h in _posts(webhook)) == sorted(report.notifications)
    assert len(sns.messages("all")) == 5
