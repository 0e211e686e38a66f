"""Pull mode over real HTTP: the fetcher, and the running sidecar polling a local server."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from ingest_sidecar.admin_metrics import AdminConverter
from ingest_sidecar.admin_poller import (
    AdminPullSource,
    FetchError,
    HttpMetricsFetcher,
    metrics_url,
)
from ingest_sidecar.linkerd_names import NameMapper
from ingest_sidecar.settings import SettingsError, SidecarSettings
from ingest_sidecar.sidecar import Sidecar
from meshalert.histogram import RELATIVE_WIDTH, parse_le, percentile_from_buckets
from tests.fixtures.http_server import RecordingHttpServer
from tests.fixtures.influxd import free_port
from tests.ingest_sidecar.sidecar_helpers import sqlite_latest, sqlite_sum
from tests.ingest_sidecar.test_admin_metrics import sample_tree

HOST = "node-pull"
WEB = {"service": "web", "scope": "service", "host": HOST}


def test_metrics_url_asks_for_the_tree() -> None:
    assert metrics_url("http://127.0.0.1:9990") == "http://127.0.0.1:9990/admin/metrics.json?tree=1"
    assert metrics_url("http://l5d:9990/admin/") == "http://l5d:9990/admin/metrics.json?tree=1"
    with pytest.raises(ValueError, match="admin server"):
        metrics_url("127.0.0.1:9990")


def test_the_fetcher_reads_the_tree_and_names_failures(http_server: RecordingHttpServer) -> None:
    fetcher = HttpMetricsFetcher(http_server.url, timeout_s=2.0)
    http_server.respond(200, json.dumps(sample_tree(3, 1)))
    http_server.respond(500, "boom")
    http_server.respond(200, "<html>not json")
    http_server.respond(200, "x", delay=3.0)
    try:
        assert fetcher.fetch() == sample_tree(3, 1)
        with pytest.raises(FetchError, match=r"metrics\.json\?tree=1: HTTP 500"):
            fetcher.fetch()
        with pytest.raises(FetchError, match="not JSON"):
            fetcher.fetch()
        with pytest.raises(FetchError, match="timed out"):
            fetcher.fetch()
    finally:
        fetcher.close()
    assert [(r.method, r.path, r.query) for r in http_server.requests[:1]] == [
        ("GET", "/admin/metrics.json", {"tree": "1"})
    ]


def test_a_refused_connection_is_a_failed_poll_not_a_crash() -> None:
    fetcher = HttpMetricsFetcher(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    source = AdminPullSource(fetcher, AdminConverter(NameMapper()))
    points = source.collect(10_000, HOST)
    assert [p.measurement for p in points] == ["meshalert_sidecar_pull"]
    assert points[0].field_dict()["ok"] == 0
    assert source.counts().poll_failures == 1


def test_settings_take_the_admin_url_and_reject_a_bad_one() -> None:
    assert SidecarSettings.from_env({}).linkerd_admin_url is None
    env = {"MESHALERT_LINKERD_ADMIN_URL": "http://127.0.0.1:9990"}
    assert SidecarSettings.from_env(env).linkerd_admin_url == "http://127.0.0.1:9990"
    with pytest.raises(SettingsError, match="MESHALERT_LINKERD_ADMIN_URL"):
        SidecarSettings.from_env({"MESHALERT_LINKERD_ADMIN_URL": "localhost:9990"})


def _wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_the_sidecar_writes_exact_deltas_across_a_restart_and_a_failed_poll(
    tmp_path: Path, http_server: RecordingHttpServer
) -> None:
    # What Linkerd serves at successive polls: the first only primes; the server is down
    # once (its increase lands in the next poll); then Linkerd restarts (start time changes,
    # counters start again from 0) and goes on counting.
    served: list[tuple[int, dict[str, Any]] | None] = [
        (200, sample_tree(1_000, 10)),
        (200, sample_tree(1_040, 12)),
        None,
        (200, sample_tree(1_100, 15)),
        (200, sample_tree(7, 1, started=1_700_000_900_000)),
        (200, sample_tree(30, 2, started=1_700_000_900_000)),
    ]
    for item in served:
        if item is None:
            http_server.respond(503, "down")
        else:
            http_server.respond(item[0], json.dumps(item[1]))
    http_server.set_default(200, json.dumps(sample_tree(30, 2, started=1_700_000_900_000)))
    db = str(tmp_path / "m.db")
    settings = SidecarSettings.from_env(
        {},
        statsd_listen="127.0.0.1:0",
        flush_interval="150ms",
        store_url=f"sqlite:///{db}",
        spool_dir=str(tmp_path / "spool"),
        host=HOST,
        linkerd_admin_url=http_server.url,
    )
    sidecar = Sidecar(settings)
    sidecar.start()
    try:
        _wait_for(lambda: len(http_server.requests) > len(served))
    finally:
        sidecar.stop()

    # 40 + 60 before the restart (the failed poll's share carried by the next), 7 + 23 after.
    assert sqlite_sum(db, "linkerd_requests", "count", **WEB) == 130.0
    assert sqlite_sum(db, "linkerd_requests", "samples", **WEB) == 130.0
    assert sqlite_sum(db, "linkerd_failures", "count", **WEB) == 2 + 3 + 1 + 1
    assert sqlite_latest(db, "linkerd_retries_budget", "value", **WEB) == 7.5
    counts = sidecar.pull_counts()
    assert counts.poll_failures == 1 and counts.restarts == 1 and counts.counter_resets == 2
    assert sqlite_latest(db, "meshalert_sidecar_pull", "restarts", host=HOST) == 1
    assert sqlite_latest(db, "meshalert_sidecar_pull", "poll_failures", host=HOST) == 1


CORPUS = Path(__file__).resolve().parent / "data" / "admin_tree"


def test_recorded_linkerd_snapshots_replayed_over_http_give_the_requests_sent(
    tmp_path: Path, http_server: RecordingHttpServer
) -> None:
    """Trees recorded from a real Linkerd 1.7.5 (record_admin_corpus.py): 37 requests in
    all, a restart before the last snapshot, and one histogram snapshot of the minute."""
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    bodies = [(CORPUS / entry["file"]).read_text() for entry in manifest]
    for body in bodies:
        http_server.respond(200, body)
    http_server.set_default(200, bodies[-1])
    db = str(tmp_path / "m.db")
    sidecar = Sidecar(
        SidecarSettings.from_env(
            {},
            statsd_listen="127.0.0.1:0",
            flush_interval="150ms",
            store_url=f"sqlite:///{db}",
            spool_dir=str(tmp_path / "spool"),
            host=HOST,
            linkerd_admin_url=http_server.url,
        )
    )
    sidecar.start()
    try:
        _wait_for(lambda: len(http_server.requests) > len(bodies))
    finally:
        sidecar.stop()

    sent = manifest[-1]["sent_total"]
    for router in ("outgoing", "incoming"):
        tags = {"service": "web", "scope": "service", "router": router, "host": HOST}
        assert sqlite_sum(db, "linkerd_requests", "count", **tags) == sent
        assert sqlite_sum(db, "linkerd_success", "count", **tags) == sent
        assert sqlite_sum(db, "linkerd_failures", "count", **tags) == 0
    assert sidecar.pull_counts().restarts == 1

    # The one histogram snapshot, written once: Linkerd's summary, and buckets that give
    # its percentiles back to within one bucket.
    served = json.loads(bodies[2])["rt"]["outgoing"]["service"]["svc/web"]["request_latency_ms"]
    latency = {"service": "web", "scope": "service", "router": "outgoing", "host": HOST}
    assert sqlite_sum(db, "linkerd_request_latency_ms", "count", **latency) == served["stat.count"]
    assert sqlite_latest(db, "linkerd_request_latency_ms", "p99", **latency) == served["stat.p99"]
    buckets = sqlite_buckets(db, "linkerd_request_latency_ms_bucket", **latency)
    assert math.fsum(buckets.values()) == pytest.approx(served["stat.count"])
    for key, q in (("stat.p50", 50.0), ("stat.p90", 90.0), ("stat.p99", 99.0)):
        estimate = percentile_from_buckets(buckets, q)
        assert estimate is not None
        truth = float(served[key])
        assert truth * (1 - RELATIVE_WIDTH) - 1 <= estimate <= truth / (1 - RELATIVE_WIDTH)


def sqlite_buckets(db: str, measurement: str, **tags: str) -> dict[float, float]:
    where = "".join(f" AND s.{k} = ?" for k in tags)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT s.le, sum(p.value) FROM points p JOIN series s ON s.id = p.series_id "
            f"WHERE s.measurement = ? AND p.field = 'count'{where} GROUP BY s.le",
            (measurement, *tags.values()),
        ).fetchall()
    return {parse_le(le): float(total) for le, total in rows}
