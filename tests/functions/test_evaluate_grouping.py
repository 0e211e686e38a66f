"""Storm protection in Lambda: the packaged stack in moto, a real SQLite store where twelve
services slow down at once, Slack as a local HTTP server and SNS read back through SQS.
Each channel gets one grouped message per severity, and duplicated invocations of every
cycle (EventBridge delivers at least once) send nothing more."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions import evaluate
from meshalert.alert_classes import AlertClass
from meshalert.backends.dynamodb.state import DynamoDBStateStore
from meshalert.backends.sqlite.writer import SqliteWriter
from meshalert.simulator.traffic import Incident, IncidentKind, ServiceSpec
from tests.functions.conftest import REGION, Deployment, FakeContext, at, event, put_rules
from tests.meshalert.scenario import T0_MS, Scenario, ingest

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..S3..BucketPolicy")

RULES = """
defaults:
  latency: {percentile: 99, above_ms: 500, window: 2m, for: 1m}
services:
  "warn-*": {severity: warning}
"""
CRITICAL = tuple(f"svc-{i:02d}" for i in range(8))
WARNING = tuple(f"warn-{i:02d}" for i in range(4))
SERVICES = tuple(
    ServiceSpec("production", name, rps=10.0, latency_ms=20.0) for name in CRITICAL + WARNING
)
# A shared dependency slows everything down for minutes 4-8, then recovers.
INCIDENTS = tuple(Incident(IncidentKind.LATENCY, name, 240, 480) for name in CRITICAL + WARNING)
MINUTES = range(2, 13)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("storm") / "meshalert.db"
    writer = SqliteWriter.open(str(path))
    ingest(Scenario(SERVICES, INCIDENTS, 780), writer)
    writer.close()
    return path


@pytest.fixture
def deployed(
    deployment: Deployment, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Deployment:
    monkeypatch.setenv("MESHALERT_STORE", f"sqlite:///{store_path}")
    put_rules(RULES)
    return deployment


def test_a_storm_reaches_each_channel_as_one_message_per_severity_once(
    deployed: Deployment,
) -> None:
    summaries: list[dict[str, Any]] = []
    for minute in MINUTES:
        for n in range(2):  # every scheduled event delivered twice, seconds apart
            ctx = FakeContext(f"req-{minute}-{n}")
            when = at(T0_MS + minute * 60_000 + (6 + n) * 1000)
            summaries.append(
                evaluate.handler(event("evaluate_latency_transformed", time=when), ctx)
            )

    messages = deployed.sns_messages()
    assert sorted(m["Subject"] for m in messages) == [
        "[GROUP] 4 warning alerts: 4 FIRING",
        "[GROUP] 4 warning alerts: 4 RESOLVED",
        "[GROUP] 8 critical alerts: 8 FIRING",
        "[GROUP] 8 critical alerts: 8 RESOLVED",
    ]
    for message in messages:
        body = json.loads(message["Message"])
        attributes = {k: v["Value"] for k, v in message["MessageAttributes"].items()}
        assert attributes["severity"] == body["severity"]
        assert attributes["class"] == "latency"
        assert attributes["grouped"] == "true"
        assert body["by_class"] == {"latency": body["count"]}
    posts = deployed.slack_posts()
    assert sorted(p["text"] for p in posts) == [
        "[critical] 8 critical alerts: 8 FIRING (latency 8)",
        "[critical] 8 critical alerts: 8 RESOLVED (latency 8)",
        "[warning] 4 warning alerts: 4 FIRING (latency 4)",
        "[warning] 4 warning alerts: 4 RESOLVED (latency 4)",
    ]

    sent = [key for s in summaries for key in s["notifications"]]
    assert len(sent) == len(set(sent)) == 2 * 12  # a FIRING and a RESOLVED per service
    ddb = DynamoDBStateStore(deployed.table, boto3.client("dynamodb", region_name=REGION))
    for key in sent:
        claim = ddb.claim_info(key)
        assert claim is not None and claim.sent_ms is not None and claim.attempts == 1
        assert {(d.channel, d.ok) for d in claim.deliveries} == {("slack", True), ("sns", True)}
    assert ddb.load(AlertClass.LATENCY)["svc-00"].state.value == "ok"
