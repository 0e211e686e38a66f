"""Lambda honours silences: a silence added to the stack's DynamoDB state table (as
``meshalert silence add --state dynamodb://...`` does) holds the evaluate function's page
back, and when it ends while the alert still fires the page goes out once on every channel,
though every invocation is duplicated."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from functions import evaluate
from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertState
from meshalert.backends.dynamodb.state import DynamoDBStateStore
from meshalert.backends.sqlite.writer import SqliteWriter
from meshalert.simulator.traffic import Incident, IncidentKind, ServiceSpec
from meshalert.suppression import Silence
from tests.functions.conftest import REGION, Deployment, FakeContext, at, event, put_rules
from tests.meshalert.scenario import T0_MS, Scenario, ingest

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..S3..BucketPolicy")

MIN = 60_000
RULES = """
defaults:
  latency: {percentile: 99, above_ms: 500, window: 2m, for: 1m}
"""
SERVICES = (ServiceSpec("production", "checkout", rps=60.0, latency_ms=20.0),)
INCIDENT = Incident(IncidentKind.LATENCY, "checkout", 240, 720)  # fires at minute 6
SILENCE_END_MINUTE = 9


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "meshalert.db"
    writer = SqliteWriter.open(str(path))
    ingest(Scenario(SERVICES, (INCIDENT,), 16 * 60), writer)
    writer.close()
    return path


def _cycle(minute: int, n: int) -> dict[str, object]:
    ctx = FakeContext(f"req-{minute}-{n}")
    when = at(T0_MS + minute * MIN + (6 + n) * 1000)
    return evaluate.handler(event("evaluate_latency_transformed", time=when), ctx)


def test_lambda_holds_the_page_while_silenced_and_sends_it_once_after(
    deployment: Deployment, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHALERT_STORE", f"sqlite:///{store_path}")
    put_rules(RULES)
    ddb = DynamoDBStateStore(
        deployment.table,
        boto3.client("dynamodb", region_name=REGION),
        clock_ms=lambda: T0_MS + 60 * MIN,  # history is read within its retention of "now"
    )
    ddb.add_silence(
        Silence(
            "maint1",
            "checkout",
            None,
            T0_MS,
            T0_MS + SILENCE_END_MINUTE * MIN,
            "db failover",
            "alice",
            T0_MS,
        )
    )
    held = []
    for minute in range(2, SILENCE_END_MINUTE):
        for n in (0, 1):
            held.append(_cycle(minute, n)["suppressed"])
    assert ddb.load(AlertClass.LATENCY)["checkout"].state is AlertState.FIRING
    assert sum(int(str(h)) for h in held) == 1  # the FIRING, held once (its twin loads it)
    assert deployment.sns_messages() == [] and deployment.slack_posts() == []
    (firing_entry,) = [e for e in ddb.history(since_ms=0) if e.to_state is AlertState.FIRING]
    assert firing_entry.evidence["suppressed"] == "silenced by maint1: db failover"

    summaries = [_cycle(m, n) for m in range(SILENCE_END_MINUTE, 16) for n in (0, 1)]
    messages = deployment.sns_messages()
    assert [m["Subject"] for m in messages] == [
        "[FIRING] latency checkout",
        "[RESOLVED] latency checkout",
    ]
    firing = json.loads(messages[0]["Message"])
    assert firing["at_ms"] == T0_MS + SILENCE_END_MINUTE * MIN  # sent when the silence ended
    assert [p["text"].split(":")[0] for p in deployment.slack_posts()] == [
        "[critical] FIRING latency checkout",
        "[critical] RESOLVED latency checkout",
    ]
    claim = ddb.claim_info(firing["dedup_key"])
    assert claim is not None and claim.attempts == 1 and claim.sent_ms is not None
    assert sum(int(str(s["caught_up"])) for s in summaries) == 1
