"""``meshalert run`` on the embedded SQLite store: four incidents over real UDP, webhook and
Slack over real HTTP, ``status``/``history`` while it runs, SIGTERM and a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.scenario import run_incident_scenario
from tests.fixtures.http_server import RecordingHttpServer

pytestmark = pytest.mark.e2e


def test_incidents_fire_and_resolve_once_across_a_restart(
    tmp_path: Path, http_server: RecordingHttpServer, slack_server: RecordingHttpServer
) -> None:
    store = f"sqlite:///{tmp_path / 'meshalert.db'}"
    phases = run_incident_scenario(tmp_path, store, http_server, slack_server)
    print("phases (s):", {k: round(v, 1) for k, v in phases.items()})
