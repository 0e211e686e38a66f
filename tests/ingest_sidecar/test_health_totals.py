"""Item 9: the health series reports cumulative totals that survive drops and restarts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ingest_sidecar.settings import SidecarSettings
from ingest_sidecar.sidecar import Sidecar
from ingest_sidecar.spool import Spool
from meshalert.lineprotocol import decode
from tests.fixtures.http_server import RecordingHttpServer
from tests.ingest_sidecar.sidecar_helpers import Sent, send_rounds


def _settings(tmp_path: Path, store_url: str, **extra: Any) -> SidecarSettings:
    values: dict[str, Any] = {
        "statsd_listen": "127.0.0.1:0",
        "flush_interval": "200ms",
        "store_url": store_url,
        "spool_dir": str(tmp_path / "spool"),
        "spool_max_bytes": "64KiB",
        "host": "node-h",
        **extra,
    }
    return SidecarSettings.from_env({}, values)


def _health(server: RecordingHttpServer) -> list[dict[str, float]]:
    """The health points the store accepted (the server answered 204), oldest first."""
    by_ts: dict[int, dict[str, float]] = {}
    for request in server.requests:
        if request.path != "/write":
            continue
        for line in request.text.splitlines():
            if line.startswith("meshalert_sidecar,"):
                point = decode(line)
                fields = {k: float(v) for k, v in point.fields if not isinstance(v, str)}
                by_ts.setdefault(point.timestamp_ms, {}).update(fields)
    return [by_ts[ts] for ts in sorted(by_ts)]


def test_drops_before_a_restart_are_in_every_later_health_point(
    tmp_path: Path, http_server: RecordingHttpServer
) -> None:
    # One store (a real HTTP server speaking InfluxDB 1.x's /write), so both runs share its
    # spool. Run 1: the store answers 503 and the 64 KiB spool overflows: the oldest batches,
    # health points included, are dropped.
    store = f"influxdb1://127.0.0.1:{http_server.port}/mesh"
    http_server.set_default(503, "down")
    first = Sidecar(_settings(tmp_path, store), backoff_max_s=0.2)
    first.start()
    try:
        for chunk in range(10):
            send_rounds(first.address, range(chunk * 200, chunk * 200 + 200), Sent(), pause_s=0)
            time.sleep(0.25)
        time.sleep(0.3)
    finally:
        first.stop(timeout_s=2)
    dropped_before = first.spool.dropped_lines
    assert dropped_before > 0, "the spool bound was reached"

    # Run 2: the store works; the spool's survivors are replayed first.
    http_server.requests.clear()
    http_server.set_default(204)
    second = Sidecar(_settings(tmp_path, store))
    second.start()
    try:
        time.sleep(1.0)
    finally:
        second.stop()
    after = Spool(second.settings.spool_path, 64 * 1024)
    total = after.dropped_lines
    after.close()
    assert total >= dropped_before  # persisted, not reset by the restart

    health = _health(http_server)
    assert len(health) >= 3, "run 2 wrote health points"
    # The points run 2 made count run 1's drops; the last one counts them all.
    assert all(h["spool_dropped_lines_total"] >= dropped_before for h in health[-3:])
    assert health[-1]["spool_dropped_lines_total"] == total
    assert health[-1]["dropped_total"] >= total
