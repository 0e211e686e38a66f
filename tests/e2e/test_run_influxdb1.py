"""``meshalert run`` writing to and querying a real InfluxDB 1.x (``influxd`` fixture): the
same scenario as the embedded store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.scenario import run_incident_scenario
from tests.fixtures.http_server import RecordingHttpServer
from tests.fixtures.influxd import InfluxdServer

pytestmark = [pytest.mark.e2e, pytest.mark.influxd]


def test_incidents_fire_and_resolve_once_across_a_restart(
    tmp_path: Path,
    influxd: InfluxdServer,
    influx_db: str,
    http_server: RecordingHttpServer,
    slack_server: RecordingHttpServer,
) -> None:
    phases = run_incident_scenario(
        tmp_path, influxd.store_url(influx_db), http_server, slack_server
    )
    rows = influxd.rows('SELECT count("count") FROM "linkerd_requests"', influx_db)
    assert rows and rows[0]["count"] > 0, "the sidecar wrote nothing to influxd"
    print("phases (s):", {k: round(v, 1) for k, v in phases.items()})
