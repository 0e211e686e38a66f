"""Flusher: one flush turns the finished interval into points, carried gauges and health."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ingest_sidecar.aggregate import IntervalAggregator
from ingest_sidecar.gauge_carry import GaugeCarry
from ingest_sidecar.ingest import IngestCore
from ingest_sidecar.linkerd_names import NameMapper
from ingest_sidecar.pipeline import Flusher, split_batches
from ingest_sidecar.spool import Spool
from ingest_sidecar.store_writer import SpoolingWriter
from meshalert.lineprotocol import Point, decode


class ListStore:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, lines: Sequence[str]) -> None:
        self.lines.extend(lines)

    def close(self) -> None:
        pass


def _flusher(tmp_path: Path, batch_lines: int = 1000) -> tuple[IngestCore, Flusher, ListStore]:
    core = IngestCore(NameMapper(), IntervalAggregator)
    store = ListStore()
    writer = SpoolingWriter(Spool(str(tmp_path), 1 << 20), store)
    writer.start()
    flusher = Flusher(
        core, writer, interval_ms=1000, host="n1", batch_lines=batch_lines, clock_ms=lambda: 5_500
    )
    flusher._writer_for_test = writer  # type: ignore[attr-defined]
    return core, flusher, store


def _points(store: ListStore, measurement: str) -> list[Point]:
    return [p for p in map(decode, store.lines) if p.measurement == measurement]


def test_flush_writes_interval_points_gauges_and_health(tmp_path: Path) -> None:
    core, flusher, store = _flusher(tmp_path, batch_lines=3)
    core.feed(
        b"linkerd.rt.r.service.svc.a.requests:1|c|@0.5\n"
        b"linkerd.rt.r.service.svc.a.request_latency_ms:7|ms\n"
        b"linkerd.rt.r.client._.inet.h.80.loadbalancer.size:4|g\nbroken"
    )
    report = flusher.flush(5_000)
    flusher.flush(6_000)  # nothing received: the gauge is carried
    flusher.flush(7_000)
    flusher.flush(8_000)  # third unseen interval: expired
    assert flusher._writer_for_test.stop()  # type: ignore[attr-defined]
    assert report.health.ingest.lines == 4 and report.health.ingest.bad == {"no_value": 1}
    (requests,) = _points(store, "linkerd_requests")
    assert requests.timestamp_ms == 5_000 and requests.field_dict()["count"] == 2.0
    assert requests.tag_dict()["host"] == "n1"
    gauges = _points(store, "linkerd_loadbalancer_size")
    assert [(p.timestamp_ms, p.field_dict()["value"]) for p in gauges] == [
        (5_000, 4.0),
        (6_000, 4.0),
        (7_000, 4.0),
    ]
    health = {p.timestamp_ms: p.field_dict() for p in _points(store, "meshalert_sidecar")}
    assert sorted(health) == [5_000, 6_000, 7_000, 8_000]
    assert health[5_000]["lines"] == 4 and health[5_000]["bad_no_value"] == 1
    assert health[5_000]["series"] == 3 and health[6_000]["series"] == 1
    assert health[8_000]["series"] == 0
    assert sum(int(h["written"]) for h in health.values()) <= len(store.lines)


def test_gauge_carry_contract() -> None:
    carry = GaugeCarry(expiry_intervals=2)
    g = Point("g", (("host", "h"),), (("value", 1.0),), 0)
    c = Point("c", (("host", "h"),), (("count", 1.0), ("samples", 1)), 0)
    assert carry.carry([g, c], 0).points == []
    assert carry.carry([], 10).points == [Point("g", g.tags, (("value", 1.0),), 10)]
    last = carry.carry([], 20)
    assert last.points == [] and last.expired == 1 and carry.held == 0


def test_gauge_carry_is_bounded_forgetting_the_longest_unseen_first() -> None:
    carry = GaugeCarry(expiry_intervals=3, max_held=100)
    for interval in range(5):
        fresh = [
            Point(f"g{interval}_{i}", (("host", "h"),), (("value", float(i)),), interval)
            for i in range(80)
        ]
        result = carry.carry(fresh, interval)
        assert carry.held <= 100
        # This interval's gauges are all kept; the 20 survivors are the most recent others.
        assert all(p.measurement.startswith(f"g{interval - 1}_") for p in result.points)
        assert len(result.points) == (20 if interval else 0)


@given(
    st.lists(st.text(max_size=30), max_size=60),
    st.integers(1, 10),
    st.integers(1, 200),
)
def test_split_batches_keeps_order_and_bounds(
    lines: list[str], max_lines: int, max_bytes: int
) -> None:
    batches = split_batches(lines, max_lines, max_bytes)
    assert [line for batch in batches for line in batch] == lines
    for batch in batches:
        assert 1 <= len(batch) <= max_lines
        size = sum(len(line.encode()) + 1 for line in batch)
        assert size <= max_bytes or len(batch) == 1
