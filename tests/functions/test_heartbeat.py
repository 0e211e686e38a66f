"""functions/heartbeat.py end to end on the packaged stack in moto: the ``ingest`` class from a
real SQLite store (and a real influxd), the ``evaluation`` class from the stack's DynamoDB
table, both through the shared engine; notifications through SNS (read back from SQS) and
Slack, once per transition."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions import evaluate, heartbeat
from meshalert.alert_classes import AlertClass
from meshalert.backends.influxdb1.reader import InfluxDB1WindowReader
from meshalert.backends.influxdb1.writer import InfluxDB1Writer
from meshalert.backends.sqlite.writer import SqliteWriter
from meshalert.backends.urls import parse_store_url
from meshalert.lineprotocol import Point, encode
from meshalert.queries.model import IngestAggregate, class_query
from tests.functions.conftest import REGION, Deployment, FakeContext, at, event, put_rules
from tests.meshalert.scenario import T0_MS

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..S3..BucketPolicy")
MINUTE = 60_000


def sidecar_lines(host: str, minutes: Iterable[int]) -> list[str]:
    """The sidecar's self-metrics point every 10 s of the given minutes."""
    return [
        encode(
            Point.make(
                "meshalert_sidecar",
                {"host": host},
                {"received": 5, "parsed": 5},
                T0_MS + m * MINUTE + s * 1000,
            )
        )
        for m in minutes
        for s in range(0, 60, 10)
    ]


@pytest.fixture
def store(deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SqliteWriter:
    path = tmp_path / "meshalert.db"
    monkeypatch.setenv("MESHALERT_STORE", f"sqlite:///{path}")
    put_rules("defaults: {latency: {above_ms: 500, window: 2m, for: 1m}}")
    return SqliteWriter.open(str(path))


def beat(minute: int, request: str = "hb") -> dict[str, Any]:
    scheduled = event("scheduled_heartbeat", time=at(T0_MS + minute * MINUTE + 6_000))
    return heartbeat.handler(scheduled, FakeContext(f"{request}-{minute}"))


def subjects(deployment: Deployment) -> list[str]:
    return [m["Subject"] for m in deployment.sns_messages()]


def test_ingest_stop_fires_per_host_and_resume_resolves(
    deployment: Deployment, store: SqliteWriter
) -> None:
    store.write(sidecar_lines("node-a", range(0, 20)) + sidecar_lines("node-b", range(0, 5)))
    for minute in range(1, 9):  # node-b's last point: minute 4:50
        beat(minute)
        beat(minute, "dup")  # a duplicated delivery of the same schedule
    assert subjects(deployment) == ["[FIRING] ingest meshalert/ingest:node-b"]

    store.write(sidecar_lines("node-b", range(9, 12)))
    for minute in range(9, 12):
        beat(minute)
    messages = deployment.sns_messages()
    assert [m["Subject"] for m in messages] == ["[RESOLVED] ingest meshalert/ingest:node-b"]
    resolved = json.loads(messages[0]["Message"])
    assert resolved["evidence"]["threshold"]["name"] == "stale_after_ms"
    assert resolved["evidence"]["threshold"]["value"] == 3 * MINUTE
    assert "meshalert_sidecar" in resolved["evidence"]["query"]
    assert resolved["evidence"]["detail"]["host"] == "node-b"
    posts = deployment.slack_posts()
    assert [p["text"].split(": ")[0] for p in posts] == [
        "[critical] FIRING ingest meshalert/ingest:node-b",
        "[critical] RESOLVED ingest meshalert/ingest:node-b",
    ]


def test_whole_store_silent_fires_once_then_resolves(
    deployment: Deployment, store: SqliteWriter
) -> None:
    store.write(sidecar_lines("node-a", range(0, 2)))
    for minute in range(1, 8):
        beat(minute)
    assert sorted(subjects(deployment)) == [
        "[FIRING] ingest meshalert/ingest",
        "[FIRING] ingest meshalert/ingest:node-a",
    ]
    store.write(sidecar_lines("node-a", range(8, 9)))
    beat(8)
    assert sorted(subjects(deployment)) == [
        "[RESOLVED] ingest meshalert/ingest",
        "[RESOLVED] ingest meshalert/ingest:node-a",
    ]


def test_evaluation_staleness_fires_and_resolves(
    deployment: Deployment, store: SqliteWriter
) -> None:
    store.write(sidecar_lines("node-a", range(0, 30)))
    latency = event("evaluate_latency_transformed")
    # The evaluator runs at minutes 1-3 only (a record exists once a service was seen).
    store.write(
        [
            encode(
                Point.make(
                    "linkerd_request_latency_ms_bucket",
                    {"host": "node-a", "scope": "service", "service": "web", "le": "10"},
                    {"count": 50},
                    T0_MS + m * MINUTE,
                )
            )
            for m in range(0, 30)
        ]
    )
    for minute in range(1, 4):
        evaluate.handler({**latency, "time": at(T0_MS + minute * MINUTE)}, FakeContext("ev"))
    for minute in range(4, 10):
        beat(minute)
    assert subjects(deployment) == ["[FIRING] evaluation meshalert/evaluation:latency"]
    evaluate.handler({**latency, "time": at(T0_MS + 10 * MINUTE)}, FakeContext("ev"))
    beat(10)
    assert subjects(deployment) == ["[RESOLVED] evaluation meshalert/evaluation:latency"]

    # Heartbeat records are the pipeline classes' own records in the same state table,
    # apart from the service classes' partitions the evaluators load.
    ddb = boto3.client("dynamodb", region_name=REGION)

    def partition(pk: str) -> set[str]:
        items = ddb.query(
            TableName=deployment.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
        )["Items"]
        return {i["sk"]["S"] for i in items}

    assert partition("alert#failures") == set()
    assert "svc#meshalert/evaluation:latency" in partition("alert#evaluation")
    assert "svc#meshalert/ingest:node-a" in partition("alert#ingest")
    assert partition("health#heartbeat") == set()


def test_influxdb1_ingest_query_on_a_real_influxd(influxd: Any, influx_db: str) -> None:
    url = influxd.store_url(influx_db)
    writer = InfluxDB1Writer(parse_store_url(url))  # type: ignore[arg-type]
    writer.write(sidecar_lines("node-a", range(0, 3)) + sidecar_lines('node b,"x', range(0, 1)))
    writer.close()
    reader = InfluxDB1WindowReader(parse_store_url(url), timeout_s=10)  # type: ignore[arg-type]
    got = reader.fetch(
        class_query(AlertClass.INGEST, window_ms=10 * MINUTE, end_ms=T0_MS + 10 * MINUTE)
    )
    assert got.services == {
        "node-a": {"": IngestAggregate(T0_MS + 2 * MINUTE + 50_000)},
        'node b,"x': {"": IngestAggregate(T0_MS + 50_000)},
    }
    assert 'GROUP BY "host"' in got.query_text


def test_services_an_evaluation_skipped_show_in_the_heartbeat(
    deployment: Deployment, store: SqliteWriter
) -> None:
    store.write(sidecar_lines("node-a", range(0, 30)))
    latency = event("evaluate_latency_transformed")

    def buckets(service: str, count: float, minutes: Iterable[int]) -> list[str]:
        return [
            encode(
                Point.make(
                    "linkerd_request_latency_ms_bucket",
                    {"host": "node-a", "scope": "service", "service": service, "le": "10"},
                    {"count": count},
                    T0_MS + m * MINUTE,
                )
            )
            for m in minutes
        ]

    # A negative bucket count can only come from broken data: that service is skipped, the
    # other one is still evaluated, and the heartbeat names the skipped one.
    store.write(buckets("web", 50, range(0, 30)) + buckets("x\x1b[2Jbad", -50, range(0, 3)))
    summary = evaluate.handler({**latency, "time": at(T0_MS + 1 * MINUTE)}, FakeContext("ev"))
    assert (summary["services_evaluated"], summary["services_skipped"]) == (1, 1)
    report = beat(1)
    assert report["services_skipped"] == {"latency": 1}
    messages = deployment.sns_messages()
    assert [m["Subject"] for m in messages] == ["[FIRING] evaluation meshalert/skipped:latency"]
    detail = json.loads(messages[0]["Message"])["evidence"]["detail"]
    assert detail["services"] == "x\\x1b[2Jbad"

    # Once the bad series has left the window, nothing is skipped and the alert resolves.
    evaluate.handler({**latency, "time": at(T0_MS + 8 * MINUTE)}, FakeContext("ev"))
    report = beat(8)
    assert report["services_skipped"] == {}
    assert subjects(deployment) == ["[RESOLVED] evaluation meshalert/skipped:latency"]
