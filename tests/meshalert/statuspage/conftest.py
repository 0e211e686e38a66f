from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertRecord, AlertState, ThresholdInForce
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert.backends.sqlite.writer import open_database
from meshalert.state.protocols import HistoryEntry
from meshalert.statuspage.collect import SignalSampler, StoreSnapshotSource
from meshalert.statuspage.server import StatusPage
from tests.meshalert.statuspage.stores import PageStores, build

HOSTILE_SERVICE = '<img src=x onerror="alert(1)">&<script>x</script>'


@pytest.fixture(scope="session")
def page_stores(tmp_path_factory: pytest.TempPathFactory) -> PageStores:
    """An hour of real traffic and real engine state, plus a PENDING alert whose service name
    is markup (service names are wire data)."""
    stores = build(tmp_path_factory.mktemp("status-page"))
    state = SqliteStateStore(stores.state)
    at = stores.end_ms - 120_000
    threshold = ThresholdInForce("latency.above_ms", 500.0, "env:MESHALERT_RULES")
    state.save(
        [
            AlertRecord(
                AlertClass.LATENCY,
                HOSTILE_SERVICE,
                AlertState.PENDING,
                at,
                episode_start_ms=at,
                last_value=640.0,
                last_evaluated_ms=stores.end_ms,
                threshold=threshold,
            )
        ]
    )
    state.append_history(
        [
            HistoryEntry(
                at,
                AlertClass.LATENCY,
                HOSTILE_SERVICE,
                AlertState.OK,
                AlertState.PENDING,
                {
                    "observed": 640.0,
                    "threshold": {"name": threshold.name, "value": 500.0, "source": "x"},
                    "window": "2m",
                    "query": f"service = '{HOSTILE_SERVICE}'",
                    "samples": 12.0,
                    "detail": {"host": HOSTILE_SERVICE},
                },
            )
        ]
    )
    state.close()
    return stores


def source_opener(
    stores: PageStores, *, now_ms: int | None = None
) -> Callable[[], StoreSnapshotSource]:
    """Opens the page's adapters the way ``meshalert run`` does, at a fixed time."""

    def open_source() -> StoreSnapshotSource:
        conn = open_database(str(stores.store), readonly=True)
        return StoreSnapshotSource(
            SqliteStateStore(stores.state),
            SignalSampler(SqliteWindowReader(conn)),
            lambda: stores.rules,
            clock=lambda: (now_ms or stores.end_ms) / 1000,
            store=f"sqlite://{stores.store}",
            closers=[conn.close],
        )

    return open_source


@pytest.fixture
def page(page_stores: PageStores) -> Iterator[StatusPage]:
    server = StatusPage(source_opener(page_stores), host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()
