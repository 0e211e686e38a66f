"""The running sidecar end to end: real UDP on 127.0.0.1, real stores, read back."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ingest_sidecar.settings import SidecarSettings
from ingest_sidecar.sidecar import Sidecar, SpoolLockedError
from tests.fixtures.http_server import RecordingHttpServer
from tests.fixtures.influxd import InfluxdServer, free_port
from tests.ingest_sidecar.sidecar_helpers import (
    SERVICES,
    Sent,
    send_rounds,
    sqlite_latest,
    sqlite_sum,
)

REPO = Path(__file__).resolve().parents[2]
HOST = "node-test"


def _settings(tmp_path: Path, store_url: str, **extra: Any) -> SidecarSettings:
    values: dict[str, Any] = {
        "statsd_listen": "127.0.0.1:0",
        "flush_interval": "200ms",
        "store_url": store_url,
        "spool_dir": str(tmp_path / "spool"),
        "host": HOST,
    }
    return SidecarSettings.from_env({}, **{**values, **extra})


def _assert_sqlite_matches(db: str, sent: Sent) -> None:
    for svc in SERVICES:
        tags = {"service": svc, "scope": "service", "host": HOST}
        assert sqlite_sum(db, "linkerd_requests", "count", **tags) == pytest.approx(
            sent.counter_total[svc], rel=1e-12
        )
        assert sqlite_sum(db, "linkerd_request_latency_ms", "count", **tags) == pytest.approx(
            sent.timer_count[svc], rel=1e-12
        )
        gauge = sqlite_latest(db, "linkerd_loadbalancer_available", "value", service=svc)
        assert gauge == sent.last_gauge[svc]


def test_in_process_sqlite_totals_gauges_and_bad_lines(tmp_path: Path) -> None:
    db = str(tmp_path / "m.db")
    sidecar = Sidecar(_settings(tmp_path, f"sqlite:///{db}"))
    sidecar.start()
    try:
        assert sidecar.address[1] > 0
        assert sidecar.rcvbuf_granted >= 4 * 1024 * 1024  # Linux reports double what it grants
        sent = Sent()
        send_rounds(sidecar.address, range(300), sent, with_bad=True)  # spans several flushes
    finally:
        sidecar.stop()
    assert sidecar.flushes >= 2
    _assert_sqlite_matches(db, sent)
    # Self-metrics: every line, every bad line by reason, written lines.
    assert sqlite_sum(db, "meshalert_sidecar", "lines") == sent.lines
    assert sqlite_sum(db, "meshalert_sidecar", "bad") == sent.bad
    assert sqlite_sum(db, "meshalert_sidecar", "parsed") == sent.lines - sent.bad
    by_reason = {
        reason: sqlite_sum(db, "meshalert_sidecar", f"bad_{reason}")
        for reason in ("no_value", "bad_type", "bad_value", "bad_rate", "non_finite")
    }
    assert by_reason == {
        "no_value": 60,
        "bad_type": 60,
        "bad_value": 60,
        "bad_rate": 60,
        "non_finite": 60,
    }
    assert sqlite_sum(db, "meshalert_sidecar", "written") > 0
    assert not (tmp_path / "spool" / "dead-letter.lp").exists()


def test_name_caches_are_bounded_by_max_series(tmp_path: Path) -> None:
    """A flood of distinct names cannot grow the name caches past MAX_SERIES: memory is
    planned from MAX_SERIES (README "Bounds"), so no cache may be sized independently."""
    max_series = 40
    sidecar = Sidecar(_settings(tmp_path, f"sqlite:///{tmp_path / 'm.db'}", max_series=max_series))
    sidecar.start()
    mapped_peak = shapes_peak = 0
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for batch in range(20):
                names = [f"linkerd.rt.outgoing.service.svc.flood-{batch}-{i}" for i in range(20)]
                sock.sendto("\n".join(f"{n}.requests:1|c" for n in names).encode(), sidecar.address)
                time.sleep(0.01)
        deadline = time.monotonic() + 10
        while True:  # caches are cleared when full, so watch their peak while lines arrive
            mapped, shapes = sidecar.cached_names()
            mapped_peak, shapes_peak = max(mapped_peak, mapped), max(shapes_peak, shapes)
            if sidecar.ingest_counts().lines >= 400 or time.monotonic() > deadline:
                break
            time.sleep(0.005)
    finally:
        sidecar.stop()
    assert sidecar.ingest_counts().lines == 400
    assert 0 < mapped_peak <= max_series
    assert 0 < shapes_peak <= max_series


def test_spool_directory_is_exclusive(tmp_path: Path) -> None:
    first = Sidecar(_settings(tmp_path, f"sqlite:///{tmp_path / 'a.db'}"))
    first.start()
    try:
        with pytest.raises(SpoolLockedError, match="in use by another sidecar"):
            Sidecar(_settings(tmp_path, f"sqlite:///{tmp_path / 'b.db'}")).start()
    finally:
        first.stop()


def test_ipv6_listen(tmp_path: Path) -> None:
    db = str(tmp_path / "m.db")
    try:
        sidecar = Sidecar(_settings(tmp_path, f"sqlite:///{db}", statsd_listen="[::1]:0"))
        sidecar.start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        sent = Sent()
        send_rounds(sidecar.address, range(20), sent)
    finally:
        sidecar.stop()
    _assert_sqlite_matches(db, sent)


def test_influxd_1x_totals(tmp_path: Path, influxd: InfluxdServer, influx_db: str) -> None:
    sidecar = Sidecar(_settings(tmp_path, influxd.store_url(influx_db)))
    sidecar.start()
    try:
        sent = Sent()
        send_rounds(sidecar.address, range(200), sent, with_bad=True)
    finally:
        sidecar.stop()
    _assert_influx_matches(influxd, influx_db, sent)
    rows = influxd.rows('SELECT sum("bad") AS bad FROM meshalert_sidecar', influx_db)
    assert rows[0]["bad"] == sent.bad


def _assert_influx_matches(influxd: InfluxdServer, db: str, sent: Sent) -> None:
    counters = influxd.rows(
        "SELECT sum(\"count\") AS total FROM linkerd_requests WHERE scope = 'service' "
        "GROUP BY service",
        db,
    )
    assert {r["service"]: r["total"] for r in counters} == pytest.approx(dict(sent.counter_total))
    timers = influxd.rows(
        'SELECT sum("count") AS n FROM linkerd_request_latency_ms GROUP BY service', db
    )
    assert {r["service"]: r["n"] for r in timers} == pytest.approx(dict(sent.timer_count))
    gauges = influxd.rows(
        'SELECT last("value") AS v FROM linkerd_loadbalancer_available GROUP BY service', db
    )
    assert {r["service"]: r["v"] for r in gauges} == sent.last_gauge


def test_influxd_outage_loses_nothing(
    tmp_path: Path, influxd: InfluxdServer, influx_db: str
) -> None:
    sidecar = Sidecar(_settings(tmp_path, influxd.store_url(influx_db)), backoff_max_s=0.4)
    sidecar.start()
    sent = Sent()
    try:
        send_rounds(sidecar.address, range(0, 150), sent)
        influxd.stop()
        send_rounds(sidecar.address, range(150, 400), sent)
        deadline = time.monotonic() + 5
        while sidecar.spool.pending_batches < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sidecar.spool.pending_batches >= 2, "batches should wait in the spool"
        assert sidecar.writer_counts().write_errors > 0
        influxd.start()
        send_rounds(sidecar.address, range(400, 500), sent)
        deadline = time.monotonic() + 10
        while sidecar.spool.pending_batches > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if not influxd.running:
            influxd.start()
        sidecar.stop()
    assert sidecar.spool.pending_batches == 0
    _assert_influx_matches(influxd, influx_db, sent)


def test_influxdb2_requests(tmp_path: Path, http_server: RecordingHttpServer) -> None:
    url = f"influxdb2://127.0.0.1:{http_server.port}?org=acme&bucket=mesh"
    sidecar = Sidecar(_settings(tmp_path, url, influxdb_token="tok-secret-123"))
    sidecar.start()
    try:
        sent = Sent()
        send_rounds(sidecar.address, range(100), sent)
    finally:
        sidecar.stop()
    writes = [r for r in http_server.requests if r.path == "/api/v2/write"]
    assert writes
    assert {(r.query["org"], r.query["bucket"], r.query["precision"]) for r in writes} == {
        ("acme", "mesh", "ms")
    }
    assert all(r.header("authorization") == "Token tok-secret-123" for r in writes)
    body = "\n".join(r.text for r in writes)
    total = 0.0
    for line in body.splitlines():
        if line.startswith("linkerd_requests,") and "service=nginx" in line:
            fields = line.split(" ")[1]
            total += float(dict(f.split("=") for f in fields.split(","))["count"])
    assert total == pytest.approx(sent.counter_total["nginx"])


def test_non_retryable_rejection_goes_to_dead_letter(
    tmp_path: Path, http_server: RecordingHttpServer
) -> None:
    # Refuses every write and never says which line: every line ends up dead-lettered.
    http_server.set_default(400, '{"code":"invalid","message":"unable to parse \'bad line\'"}')
    url = f"influxdb2://127.0.0.1:{http_server.port}?org=acme&bucket=mesh"
    sidecar = Sidecar(_settings(tmp_path, url, influxdb_token="tok-secret-123"))
    sidecar.start()
    try:
        send_rounds(sidecar.address, range(30), Sent())
        time.sleep(0.5)
    finally:
        sidecar.stop()
    dead = (tmp_path / "spool" / "dead-letter.lp").read_text()
    assert dead.strip(), "the rejected batch is kept"
    assert sidecar.writer_counts().dead_letter_lines == len(dead.strip().splitlines())
    assert sidecar.spool.pending_batches == 0


# --- the real program, as a subprocess -------------------------------------------------


class SidecarProcess:
    def __init__(self, tmp_path: Path, port: int, store_url: str) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "MESHALERT_STATSD_LISTEN": f"127.0.0.1:{port}",
            "MESHALERT_FLUSH_INTERVAL": "300ms",
            "MESHALERT_STORE": store_url,
            "MESHALERT_SPOOL_DIR": str(tmp_path / "spool"),
            "MESHALERT_HOST": HOST,
        }
        self.events: list[dict[str, Any]] = []
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ingest_sidecar"],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for("sidecar_started")

    def _read(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                self.events.append({"event": "raw", "text": line})

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("event") == event]

    def wait_for(self, event: str, count: int = 1, timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.named(event)) < count:
            if self._proc.poll() is not None:
                self._reader.join(2)
                raise AssertionError(f"sidecar exited early: {self.events}")
            assert time.monotonic() < deadline, f"no {event}: {self.events[-5:]}"
            time.sleep(0.02)

    def signal(self, signum: int) -> int:
        self._proc.send_signal(signum)
        code = self._proc.wait(timeout=30)
        self._reader.join(5)
        return code


def test_subprocess_sigterm_flushes_partial_interval(tmp_path: Path) -> None:
    db = str(tmp_path / "m.db")
    port = free_port()
    proc = SidecarProcess(tmp_path, port, f"sqlite:///{db}")
    sent = Sent()
    send_rounds(("127.0.0.1", port), range(200), sent, with_bad=True)
    time.sleep(0.05)
    assert proc.signal(signal.SIGTERM) == 0
    _assert_sqlite_matches(db, sent)
    flushes = proc.named("sidecar_flush")
    assert sum(f["lines"] for f in flushes) == sent.lines
    assert sum(f["bad"] for f in flushes) == sent.bad
    assert proc.named("sidecar_stopped")[0]["spool_batches_left"] == 0


def test_subprocess_kill9_loses_at_most_the_unflushed_interval(
    tmp_path: Path, influxd: InfluxdServer
) -> None:
    """kill -9 while the store is down: every interval logged as flushed is durably spooled
    and reaches that store after a restart; only samples of the interval still in memory
    (not yet flushed) can be lost."""
    store = InfluxdServer(tmp_path / "influxd")  # its own server, down until the restart
    url = store.store_url("x")
    port = free_port()
    first = SidecarProcess(tmp_path, port, url)
    sent = Sent()
    # One round (3 counters, 3 timers, 3 gauges) per datagram: a third of every interval's
    # lines are counters.
    send_rounds(("127.0.0.1", port), range(400), sent, per_datagram=9, pause_s=0.004)
    first.wait_for("sidecar_flush", count=4)
    first._proc.kill()  # SIGKILL: no flush, no cleanup
    first._proc.wait(10)
    first._reader.join(5)
    flushed = {f["interval_start_ms"]: f["parsed"] for f in first.named("sidecar_flush")}
    assert sum(flushed.values()) > 0

    store.start()
    try:
        store.create_database("x")
        second = SidecarProcess(tmp_path, port, url)
        assert second.named("sidecar_started")[0]["spool_replay_batches"] >= 1
        assert second.signal(signal.SIGTERM) == 0
        stored = _influx_by_ts(store, "meshalert_sidecar", "parsed")
        samples = _influx_by_ts(store, "linkerd_requests", "samples")
    finally:
        store.stop()
    # Every interval the killed process flushed is in the store, complete.
    for interval, parsed in flushed.items():
        assert stored.get(interval) == parsed, interval
    for interval, parsed in flushed.items():
        assert samples.get(interval, 0.0) == parsed / 3, interval
    # Nothing flushed is lost. An interval may be spooled (durably) an instant before its
    # log line is written, so the store can hold more than the log names, never less.
    stored_lines = sum(v for ts, v in stored.items())
    assert sum(flushed.values()) <= stored_lines <= sent.lines


def _influx_by_ts(store: InfluxdServer, measurement: str, field_name: str) -> dict[int, float]:
    totals: dict[int, float] = {}
    for row in store.rows(f'SELECT "{field_name}" FROM "{measurement}"', "x"):
        totals[int(row["time"])] = totals.get(int(row["time"]), 0.0) + float(row[field_name])
    return totals
