"""functions/evaluate.py end to end: the packaged stack in moto, rules and secrets in SSM,
a real SQLite store with a latency incident, Slack as a local HTTP server, SNS read back
through SQS, state in the stack's DynamoDB table."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions import evaluate, runtime
from functions.events import EventError
from meshalert.alert_classes import AlertClass
from meshalert.backends.dynamodb.state import DynamoDBStateStore
from meshalert.backends.sqlite.writer import SqliteWriter
from meshalert.simulator.traffic import Incident, IncidentKind, ServiceSpec
from tests.fixtures.dynamodb import SerializedClient
from tests.functions.conftest import (
    HOOK_PATH,
    INFLUX_TOKEN,
    REGION,
    Deployment,
    FakeContext,
    at,
    event,
    put_rules,
)
from tests.meshalert.scenario import T0_MS, Scenario, ingest

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..S3..BucketPolicy")

RULES = """
defaults:
  latency: {percentile: 99, above_ms: 500, window: 2m, for: 1m}
"""
SERVICES = (
    ServiceSpec("production", "checkout", rps=60.0, latency_ms=20.0),
    ServiceSpec("production", "cart", rps=60.0, latency_ms=20.0),
)
INCIDENT = Incident(IncidentKind.LATENCY, "checkout", 240, 480)
MINUTES = range(2, 13)
PENDING_MINUTE = 5  # the first cycle whose 2m window sees the incident
FIRE_MINUTE = 6  # for: 1m later


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "meshalert.db"
    writer = SqliteWriter.open(str(path))
    ingest(Scenario(SERVICES, (INCIDENT,), 780, hosts=("node-a", "node-b")), writer)
    writer.close()
    return path


@pytest.fixture
def deployed(
    deployment: Deployment, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Deployment:
    monkeypatch.setenv("MESHALERT_STORE", f"sqlite:///{store_path}")
    put_rules(RULES)
    return deployment


def latency_event(minute: int, second: int = 6) -> dict[str, Any]:
    return event("evaluate_latency_transformed", time=at(T0_MS + minute * 60_000 + second * 1000))


def run_cycles(minutes: range, *, repeat: int = 1, remaining_ms: int = 30_000) -> list[Any]:
    out = []
    for minute in minutes:
        for n in range(repeat):
            ctx = FakeContext(f"req-{minute}-{n}", remaining_ms)
            out.append(evaluate.handler(latency_event(minute, second=6 + n), ctx))
    return out


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_incident_fires_and_resolves_once_on_every_channel(
    deployed: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    summaries = run_cycles(MINUTES, repeat=2)  # every delivery duplicated, seconds apart

    messages = deployed.sns_messages()
    assert [m["Subject"] for m in messages] == [
        "[FIRING] latency checkout",
        "[RESOLVED] latency checkout",
    ]
    firing = json.loads(messages[0]["Message"])
    assert firing["evidence"]["threshold"] == {
        "name": "latency.above_ms",
        "value": 500.0,
        "source": "ssm:/meshalert/test/rules@1",
    }
    assert firing["evidence"]["observed"] > 500
    assert "linkerd_request_latency_ms_bucket" in firing["evidence"]["query"]
    assert firing["at_ms"] == T0_MS + FIRE_MINUTE * 60_000
    assert firing["episode_start_ms"] == T0_MS + PENDING_MINUTE * 60_000
    attributes = {k: v["Value"] for k, v in messages[0]["MessageAttributes"].items()}
    assert attributes["class"] == "latency"
    assert attributes["service"] == "checkout"
    assert attributes["state"] == "firing"
    assert attributes["dedup_key"] == firing["dedup_key"]

    posts = deployed.slack_posts()
    assert [p["text"].split(":")[0] for p in posts] == [
        "[critical] FIRING latency checkout",
        "[critical] RESOLVED latency checkout",
    ]
    assert all(r.path == HOOK_PATH for r in deployed.slack.requests)

    ddb = DynamoDBStateStore(deployed.table, boto3.client("dynamodb", region_name=REGION))
    records = ddb.load(AlertClass.LATENCY)
    assert records["checkout"].state.value == "ok"
    assert records["checkout"].last_evaluated_ms == T0_MS + MINUTES[-1] * 60_000
    assert set(records) == {"checkout", "cart"}
    for key in (firing["dedup_key"], json.loads(messages[1]["Message"])["dedup_key"]):
        claim = ddb.claim_info(key)
        assert claim is not None and claim.sent_ms is not None and claim.attempts == 1
        assert {(d.channel, d.ok) for d in claim.deliveries} == {("slack", True), ("sns", True)}

    # A sequential duplicate loads the record its twin saved: no transition, no claim.
    assert [len(s["notifications"]) for s in summaries].count(1) == 2

    lines = [x for x in log_lines(capsys.readouterr().err) if x["event"] == "evaluate"]
    assert len(lines) == 2 * len(MINUTES)  # one canonical line per invocation
    assert [x["cold_start"] for x in lines] == [True] + [False] * (len(lines) - 1)
    assert {x["request_id"] for x in lines} == {f"req-{m}-{n}" for m in MINUTES for n in (0, 1)}
    assert sum(x["notifications"] for x in lines) == 2
    assert all(x["alert_class"] == "latency" and x["duration_ms"] >= 0 for x in lines)


def test_secrets_never_reach_the_logs(
    deployed: Deployment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    deployed.slack.set_default(500, f"echo {HOOK_PATH} {INFLUX_TOKEN}")
    run_cycles(range(FIRE_MINUTE - 1, FIRE_MINUTE + 1), remaining_ms=4_000)
    with pytest.raises(EventError):
        evaluate.handler({"alert_class": INFLUX_TOKEN}, FakeContext("bad"))
    output = capsys.readouterr()
    text = output.out + output.err
    assert '"send_failures": 1' in text  # the failure (with the echoed body) was logged
    assert INFLUX_TOKEN not in text
    assert HOOK_PATH not in text and "hookSecretXyz123" not in text
    assert deployed.slack.url + HOOK_PATH not in text


def test_missing_or_unknown_class_names_the_field(deployed: Deployment) -> None:
    with pytest.raises(EventError, match=r"event\.alert_class: missing"):
        evaluate.handler(event("scheduled_heartbeat"), FakeContext("r"))
    with pytest.raises(EventError, match=r"event\.alert_class: 'latencies' is not one of"):
        evaluate.handler({"alert_class": "latencies"}, FakeContext("r"))
    with pytest.raises(EventError, match=r"event\.time: 'yesterday'"):
        evaluate.handler({"alert_class": "latency", "time": "yesterday"}, FakeContext("r"))


def test_an_unknown_variable_is_logged_at_cold_start(
    deployed: Deployment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHALERT_RUNBOOK_URI", "https://wiki.example.com/rb")
    run_cycles(range(2, 3))
    warnings = [
        line
        for line in log_lines(capsys.readouterr().err)
        if line["event"] == "settings.unknown_variable"
    ]
    assert [w["detail"] for w in warnings] == [
        "unknown variable MESHALERT_RUNBOOK_URI is ignored; did you mean MESHALERT_RUNBOOK_URL?"
    ]
    assert warnings[0]["level"] == "warning"


def test_warm_invocations_reuse_the_container(deployed: Deployment) -> None:
    run_cycles(range(2, 4))
    first, _ = runtime.current()
    run_cycles(range(4, 5))
    again, cold = runtime.current()
    assert again is first and not cold
    assert again.invocations == 5
    runtime.reset()
    fresh, cold = runtime.current()
    assert fresh is not first and cold


def test_concurrent_invocations_of_one_cycle_notify_once(deployed: Deployment) -> None:
    """Two Lambda instances (two containers) get the same scheduled event at once."""
    shared = SerializedClient(boto3.client("dynamodb", region_name=REGION))
    import os

    containers = [
        runtime.build_container(
            dict(os.environ), clients=runtime.AwsClients(region=REGION, dynamodb=shared)
        )
        for _ in range(2)
    ]
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def run(container: runtime.Container, minute: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        summary = evaluate.invoke(
            container,
            latency_event(minute),
            FakeContext(f"c-{minute}"),
            cold_start=False,
            started_s=time.monotonic(),
        )
        with lock:
            results.append(summary)

    for minute in MINUTES:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=run, args=(c, minute, barrier)) for c in containers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert len(results) == 2 * len(MINUTES)
    subjects = Counter(m["Subject"] for m in deployed.sns_messages())
    assert subjects == Counter({"[FIRING] latency checkout": 1, "[RESOLVED] latency checkout": 1})
    assert len(deployed.slack_posts()) == 2
    sent = [k for r in results for k in r["notifications"]]
    assert len(sent) == len(set(sent)) == 2


@pytest.mark.parametrize(
    ("script", "slack_ok", "max_elapsed_s"),
    [
        # The bound is the Lambda's 5 s: past it the function is killed mid-send. (The
        # notifications' own share is 2 s; the rest is queries and state on a busy machine.)
        pytest.param([(429, {"Retry-After": "1"}, 0.0)], True, 4.5, id="429-retry-after"),
        pytest.param([], False, 4.5, id="500-always"),
        pytest.param([(200, {}, 30.0)] * 5, False, 4.5, id="no-answer"),
    ],
)
def test_slack_trouble_is_bounded_by_remaining_time_and_sns_still_sent(
    deployed: Deployment,
    script: list[tuple[int, dict[str, str], float]],
    slack_ok: bool,
    max_elapsed_s: float,
) -> None:
    run_cycles(range(2, FIRE_MINUTE))  # up to PENDING; Slack answers 200 meanwhile
    deployed.slack.requests.clear()
    if script:
        for status, headers, delay in script:
            deployed.slack.respond(status, "slow" if delay else "rate limited", headers, delay)
    else:
        deployed.slack.set_default(500, "internal error")
    # 5 s left minus the 3 s safety margin: 2 s for notifications.
    started = time.monotonic()
    (summary,) = run_cycles(range(FIRE_MINUTE, FIRE_MINUTE + 1), remaining_ms=5_000)
    elapsed = time.monotonic() - started
    assert elapsed < max_elapsed_s
    assert summary["notifications"] == [
        f"latency|checkout|{T0_MS + PENDING_MINUTE * 60_000}|firing"
    ]
    assert summary["send_failures"] == (0 if slack_ok else 1)
    assert [m["Subject"] for m in deployed.sns_messages()] == ["[FIRING] latency checkout"]
    if slack_ok:
        assert len(deployed.slack.requests) == 2  # the 429, then the retry after 1 s
    else:
        assert len(deployed.slack.requests) >= 1
    ddb = DynamoDBStateStore(deployed.table, boto3.client("dynamodb", region_name=REGION))
    claim = ddb.claim_info(summary["notifications"][0])
    assert claim is not None
    assert dict((d.channel, d.ok) for d in claim.deliveries) == {"sns": True, "slack": slack_ok}


def test_transitions_reach_the_embedded_store_for_the_dashboards(
    deployed: Deployment, store_path: Path
) -> None:
    """MESHALERT_HISTORY_TO_STORE is unset: on for the embedded store, so the Lambda writes
    each transition as a ``meshalert_alert`` point next to the series it judged."""
    summaries = run_cycles(MINUTES)
    assert all(s["history_sink_failures"] == 0 for s in summaries)
    writer = SqliteWriter.open(str(store_path))
    try:
        rows = writer.connection.execute(
            "SELECT p.ts, p.value, s.tags_json FROM points p JOIN series s ON s.id = p.series_id"
            " WHERE s.measurement = 'meshalert_alert' AND p.field = 'state_code' ORDER BY p.ts"
        ).fetchall()
    finally:
        writer.close()
    assert [(ts - T0_MS, code) for ts, code, _ in rows][:2] == [
        (PENDING_MINUTE * 60_000, 1.0),
        (FIRE_MINUTE * 60_000, 2.0),
    ]
    assert [code for _, code, _ in rows] == [1.0, 2.0, 0.0]
    assert all(json.loads(tags)["service"] == "checkout" for _, _, tags in rows)
    assert all(json.loads(tags)["class"] == "latency" for _, _, tags in rows)
