"""Channels never block each other, and every channel gets each notification exactly once:
real HTTP servers on 127.0.0.1 that hang or fail, the real router and notifiers, and every
state store (SQLite file, DynamoDB under moto, memory)."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertState
from meshalert.backends.memory.state import MemoryStateStore
from meshalert.engine import Engine
from meshalert.evaluation import evaluate_class
from meshalert.notify.console import ConsoleNotifier
from meshalert.notify.retry import RetryPolicy
from meshalert.notify.router import Router
from meshalert.notify.slack import SlackWebhookNotifier
from meshalert.notify.webhook import WebhookNotifier
from meshalert.queries.model import ClassAggregates, ClassQuery, FailuresAggregate
from meshalert.rules import load_rules
from meshalert.state.protocols import StateStore
from tests.fixtures.http_server import RecordingHttpServer
from tests.meshalert.state.conftest import aws_env, dynamodb_client, store  # noqa: F401

FAST = RetryPolicy(base_delay_s=0.05, max_delay_s=0.1, attempt_timeout_s=1.0, max_attempts=3)
RULES = load_rules(
    {"MESHALERT_RULES": "defaults: {failures: {rate_above: 0.05, min_requests: 1, for: 0s}}"},
    now_s=0,
)
BROKEN = FailuresAggregate(requests=100.0, failures=50.0, connection_failures=0.0)
T0 = 1_700_000_000_000 + 86_400_000


@dataclass
class _Reader:
    """The failures query's answer (the store is not what these tests are about)."""

    services: Mapping[str, FailuresAggregate]

    def fetch(self, query: ClassQuery) -> ClassAggregates:
        return ClassAggregates(query, {k: {"": a} for k, a in self.services.items()}, "q")


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


def _router(
    slack: RecordingHttpServer, webhook: RecordingHttpServer, console: io.StringIO
) -> Router:
    return Router(
        {
            "console": ConsoleNotifier(console),
            "slack": SlackWebhookNotifier(slack.url + "/hook", policy=FAST),
            "webhook": WebhookNotifier(webhook.url + "/hook", policy=FAST),
        }
    )


def _slack_services(server: RecordingHttpServer) -> Counter[str]:
    return Counter(
        json.loads(r.text)["text"].split(" FIRING failures ")[1].split(":")[0]
        for r in list(server.requests)
    )


def _webhook_keys(server: RecordingHttpServer) -> Counter[str]:
    return Counter(json.loads(r.text)["dedup_key"] for r in list(server.requests))


def test_a_hung_webhook_does_not_hold_slack_back(
    slack: RecordingHttpServer, webhook: RecordingHttpServer
) -> None:
    webhook.set_default(204, delay=30.0)  # accepts the connection, never answers in time
    services = {f"ns/svc-{i}": BROKEN for i in range(4)}
    state = MemoryStateStore()
    engine = Engine(_Reader(services), state, _router(slack, webhook, io.StringIO()))

    report = evaluate_class(
        engine, RULES, AlertClass.FAILURES, T0, deadline_s=time.monotonic() + 4.0
    )

    # Slack got every notification although the webhook hung for the whole deadline.
    assert _slack_services(slack) == Counter(dict.fromkeys(services, 1))
    assert len(report.notifications) == 4
    for key in report.notifications:
        info = state.claim_info(key)
        assert info is not None
        outcomes = {d.channel: d.ok for d in info.deliveries}
        assert outcomes == {"console": True, "slack": True, "webhook": False}
        assert info.sent_ms is None  # the webhook still owes it
    assert report.send_failures == 4


def test_a_channel_that_failed_or_never_tried_is_retried_and_a_sent_one_never_again(
    store: StateStore,  # noqa: F811 -- the fixture
    slack: RecordingHttpServer,
    webhook: RecordingHttpServer,
) -> None:
    webhook.set_default(500, "down")
    console = io.StringIO()
    engine = Engine(_Reader({"ns/checkout": BROKEN}), store, _router(slack, webhook, console))

    first = evaluate_class(engine, RULES, AlertClass.FAILURES, T0, deadline_s=time.monotonic() + 5)
    assert first.states == {"ns/checkout": AlertState.FIRING}
    (key,) = first.notifications
    assert _webhook_keys(webhook)[key] == FAST.max_attempts  # tried, failed every time
    assert _slack_services(slack) == Counter({"ns/checkout": 1})

    webhook.set_default(204)
    webhook.requests.clear()
    second = evaluate_class(
        engine, RULES, AlertClass.FAILURES, T0 + 60_000, deadline_s=time.monotonic() + 5
    )
    assert second.transitions == []  # nothing new: only the retry of the missing channel
    assert _webhook_keys(webhook) == Counter({key: 1})
    assert _slack_services(slack) == Counter({"ns/checkout": 1})  # never sent twice
    assert console.getvalue().count(key) == 1
    info = store.claim_info(key)
    assert info is not None
    assert info.sent_ms is not None
    assert {(d.channel, d.ok) for d in info.deliveries} == {
        ("console", True),
        ("slack", True),
        ("webhook", True),
    }

    evaluate_class(
        engine, RULES, AlertClass.FAILURES, T0 + 120_000, deadline_s=time.monotonic() + 5
    )
    assert _webhook_keys(webhook) == Counter({key: 1})
    assert _slack_services(slack) == Counter({"ns/checkout": 1})
    assert console.getvalue().count(key) == 1


def test_a_channel_left_without_time_is_retried_next_cycle(
    slack: RecordingHttpServer, webhook: RecordingHttpServer
) -> None:
    state = MemoryStateStore()
    console = io.StringIO()
    engine = Engine(_Reader({"ns/checkout": BROKEN}), state, _router(slack, webhook, console))

    # The cycle's time is already up when it notifies: console writes, HTTP never starts.
    first = evaluate_class(engine, RULES, AlertClass.FAILURES, T0, deadline_s=time.monotonic())
    (key,) = first.notifications
    assert slack.requests == []
    info = state.claim_info(key)
    assert info is not None
    assert info.sent_ms is None

    evaluate_class(engine, RULES, AlertClass.FAILURES, T0 + 60_000, deadline_s=time.monotonic() + 5)
    assert _slack_services(slack) == Counter({"ns/checkout": 1})
    assert _webhook_keys(webhook) == Counter({key: 1})
    assert console.getvalue().count(key) == 1
