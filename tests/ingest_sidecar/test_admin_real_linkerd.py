"""Pull mode against a real Linkerd 1.7.5: the pulled totals are the requests sent, exactly.

Uses the ``linkerd_mesh`` fixture (``tests/fixtures/linkerd.py``, from the h9-linkerd branch).
"""

from __future__ import annotations

import importlib.util
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ingest_sidecar.admin_poller import HttpMetricsFetcher
from ingest_sidecar.settings import SidecarSettings
from ingest_sidecar.sidecar import Sidecar
from tests.fixtures.http_server import RecordingHttpServer
from tests.ingest_sidecar.sidecar_helpers import sqlite_sum

if TYPE_CHECKING:
    from tests.fixtures.linkerd import Mesh

if importlib.util.find_spec("tests.fixtures.linkerd") is None:  # until h9-linkerd is merged
    pytest.skip("needs tests/fixtures/linkerd.py (real Linkerd)", allow_module_level=True)

HOST = "node-pull"


def _wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _counter(admin_url: str, path: str) -> float:
    """The live cumulative counter at ``path`` of the tree (0 before it exists)."""
    node: object = HttpMetricsFetcher(admin_url).fetch()
    for element in path.split("\n"):
        node = node.get(element, {}) if isinstance(node, dict) else {}
    value = node.get("counter", 0) if isinstance(node, dict) else 0
    return float(value)


def test_pulled_request_totals_equal_the_requests_sent(tmp_path: Path, linkerd_mesh: Mesh) -> None:
    linkerd = linkerd_mesh.linkerd
    service = "pull-" + uuid.uuid4().hex[:8]
    backend = RecordingHttpServer()
    backend.set_default(200, "ok")
    backend.start()
    linkerd_mesh.disco.set(service, [backend.port])
    db = str(tmp_path / "m.db")
    sidecar = Sidecar(
        SidecarSettings.from_env(
            {},
            statsd_listen="127.0.0.1:0",  # Linkerd's statsd goes to the fixture's capture
            flush_interval="500ms",
            store_url=f"sqlite:///{db}",
            spool_dir=str(tmp_path / "spool"),
            host=HOST,
            linkerd_admin_url=linkerd.admin_url,
        )
    )
    sidecar.start()
    sent = 0
    try:
        _wait_for(lambda: sidecar.pull_counts().polls >= 1, "the priming poll")
        statuses = [linkerd.request(service) for _ in range(37)]
        sent = len(statuses)
        assert statuses == [200] * sent
        # A request crosses both routers; wait until Linkerd's own counters say so, then
        # for one poll after that.
        for router in ("outgoing", "incoming"):
            path = f"rt\n{router}\nservice\nsvc/{service}\nrequests"
            _wait_for(lambda p=path: _counter(linkerd.admin_url, p) == sent, f"{router} count")
        polls = sidecar.pull_counts().polls
        _wait_for(lambda: sidecar.pull_counts().polls >= polls + 2, "a poll after the traffic")
    finally:
        sidecar.stop()
        backend.close()

    assert sidecar.pull_counts().poll_failures == 0
    for router in ("outgoing", "incoming"):
        tags = {"service": service, "scope": "service", "router": router, "host": HOST}
        assert sqlite_sum(db, "linkerd_requests", "count", **tags) == sent
        assert sqlite_sum(db, "linkerd_requests", "samples", **tags) == sent
        assert sqlite_sum(db, "linkerd_success", "count", **tags) == sent
        assert sqlite_sum(db, "linkerd_failures", "count", **tags) == 0
    assert len(backend.requests) == sent
