"""The ingest class query (newest point per host) on every store: SQLite, a real influxd
1.x (InfluxQL) and a real InfluxDB 2 (Flux), through the ordinary window readers."""

from __future__ import annotations

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.lineprotocol import Point
from meshalert.queries.model import ClassAggregates, IngestAggregate, class_query
from tests.contract.backends import Backend

END = 1_700_000_400_000
LOOKBACK = 3_600_000
START = END - LOOKBACK


def _newest(result: ClassAggregates) -> dict[str, int]:
    out: dict[str, int] = {}
    for host, routed in result.services.items():
        [agg] = routed.values()
        assert isinstance(agg, IngestAggregate)
        out[host] = agg.newest_ms
    return out


def test_newest_point_per_host_from_the_sidecar_or_requests(backend: Backend) -> None:
    hostile = "node b,\"x=${y} 'a"  # backslashes never reach a store (lineprotocol.sanitize)
    backend.write(
        [
            Point.make("meshalert_sidecar", {"host": "a"}, {"received": 5, "parsed": 5}, START),
            Point.make("meshalert_sidecar", {"host": "a"}, {"received": 0}, END - 20_000),
            # Requests in any scope count (Linkerd still sends); other measurements do not.
            Point.make(
                "linkerd_requests",
                {"host": "b", "scope": "client", "service": "web"},
                {"count": 1.0, "samples": 1},
                END - 70_000,
            ),
            Point.make("linkerd_failures", {"host": "b"}, {"count": 1.0}, END - 1_000),
            Point.make("linkerd_requests", {"host": "b"}, {"samples": 1}, END - 2_000),
            Point.make("meshalert_sidecar", {"host": hostile}, {"received": 1}, START + 1),
            # Outside [START, END): before the lookback, at and after its end.
            Point.make("meshalert_sidecar", {"host": "c"}, {"received": 1}, START - 1),
            Point.make("meshalert_sidecar", {"host": "a"}, {"received": 1}, END),
        ]
    )
    result = backend.reader.fetch(class_query(AlertClass.INGEST, window_ms=LOOKBACK, end_ms=END))
    assert result.queries_issued == 1
    assert _newest(result) == {"a": END - 20_000, "b": END - 70_000, hostile: START + 1}
    assert "meshalert_sidecar" in result.query_text


def test_a_series_without_host_tag_is_its_own_group(backend: Backend) -> None:
    backend.write([Point.make("meshalert_sidecar", {}, {"received": 1}, END - 5_000)])
    result = backend.reader.fetch(class_query(AlertClass.INGEST, window_ms=LOOKBACK, end_ms=END))
    assert _newest(result) == {"": END - 5_000}


def test_nothing_written_answers_no_hosts(backend: Backend) -> None:
    result = backend.reader.fetch(class_query(AlertClass.INGEST, window_ms=LOOKBACK, end_ms=END))
    assert result.services == {}


@pytest.mark.parametrize("hosts", [3, 40])
def test_many_hosts_each_keep_their_own_newest(backend: Backend, hosts: int) -> None:
    points = [
        Point.make("meshalert_sidecar", {"host": f"node-{h:02d}"}, {"received": 1}, ts)
        for h in range(hosts)
        for ts in range(START, START + (h + 1) * 10_000, 10_000)
    ]
    backend.write(points)
    result = backend.reader.fetch(class_query(AlertClass.INGEST, window_ms=LOOKBACK, end_ms=END))
    assert _newest(result) == {f"node-{h:02d}": START + h * 10_000 for h in range(hosts)}
