"""The hot path must accept, reject and aggregate exactly like the reference parser."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest_sidecar.aggregate import IntervalAggregator
from ingest_sidecar.ingest import UNMAPPABLE, IngestCore, IngestCounts
from ingest_sidecar.linkerd_names import NameMapper
from ingest_sidecar.model import SeriesKey
from ingest_sidecar.statsd import parse_datagram

NAMES = (
    "linkerd.rt.outgoing.service.svc.nginx.requests",
    "linkerd.rt.outgoing.service.svc.nginx.request_latency_ms",
    "linkerd.rt.outgoing.client._.io_l5d_k8s.prod.http.web.loadbalancer.available",
    "linkerd.jvm.mem.current.G1_Eden_Space.used",
)
VALUES = ("1", "0.5", "-1", "12", "1e3", "NaN", "inf", "1_000", "", "abc", " 3", "\u221e")
REST = ("c", "c|@0.5", "c|@0,25", "ms|@0.010000", "g", "s", "h", "x", "c|@2", "c|#a:b", "c|@0.5|#k")

line_st = st.one_of(
    st.builds(
        lambda n, v, r: f"{n}:{v}|{r}",
        st.sampled_from(NAMES),
        st.sampled_from(VALUES),
        st.sampled_from(REST),
    ),
    st.sampled_from(("", "noColon|c", ":1|c", "a:1", "\udcff:1|c")),
)
datagram_st = st.lists(line_st, min_size=1, max_size=6).map(
    lambda lines: "\n".join(lines).encode("utf-8", "surrogateescape")
)


def _reference(datagrams: list[bytes]) -> tuple[IntervalAggregator, dict[str, int], int]:
    mapper, agg = NameMapper(), IntervalAggregator()
    bad: dict[str, int] = {}
    parsed = 0
    for data in datagrams:
        result = parse_datagram(data)
        for sample in result.samples:
            agg.add(
                mapper.map(sample.name, sample.tags),
                sample.kind,
                sample.value,
                sample.rate,
                sample.set_member,
            )
            parsed += 1
        for reason, n in result.bad.items():
            bad[reason] = bad.get(reason, 0) + n
    return agg, bad, parsed


@settings(max_examples=150, deadline=None)
@given(st.lists(datagram_st, min_size=1, max_size=8))
def test_same_points_and_bad_counts_as_reference(datagrams: list[bytes]) -> None:
    core = IngestCore(NameMapper(), IntervalAggregator)
    for data in datagrams * 2:  # the second pass runs the cached fast path
        core.feed(data)
    agg, counts = core.rollover()
    ref, bad, parsed = _reference(datagrams * 2)
    assert agg.flush(0, "h").points == ref.flush(0, "h").points
    assert counts.parsed == parsed
    assert {k: v for k, v in counts.bad.items() if v} == bad
    assert counts.datagrams == len(datagrams) * 2


def test_rollover_swaps_interval_and_counts_are_deltas() -> None:
    core = IngestCore(NameMapper(), IntervalAggregator)
    core.feed(b"linkerd.rt.r.service.svc.a.requests:2|c|@0.5\nbad")
    first, c1 = core.rollover()
    core.feed(b"linkerd.rt.r.service.svc.a.requests:1|c\r\n\r\n")
    second, c2 = core.rollover()
    assert [p.field_dict()["count"] for p in first.flush(0, "h").points] == [4.0]
    assert [p.field_dict()["count"] for p in second.flush(0, "h").points] == [1.0]
    assert c1 == IngestCounts(datagrams=1, lines=2, parsed=1, bad={"no_value": 1})
    assert c2.minus(c1) == IngestCounts(datagrams=1, lines=1, parsed=1, bad={"no_value": 0})


def test_shape_cache_is_bounded() -> None:
    core = IngestCore(NameMapper(), IntervalAggregator, shape_cache_max=10)
    for i in range(35):
        core.feed(f"linkerd.rt.r.service.svc.s{i}.requests:1|c".encode())
    assert core._shape_count <= 10
    agg, counts = core.rollover()
    assert counts.parsed == 35
    assert agg.flush(0, "h").series == 35


class _BrokenMapper(NameMapper):
    """A mapper with a bug for one name: the ingest path must survive it."""

    def map(self, name: str, extra_tags: tuple[tuple[str, str], ...] = ()) -> SeriesKey:
        if "boom" in name:
            raise IndexError("list index out of range")
        return super().map(name, extra_tags)


def test_a_mapper_failure_costs_one_counted_line_never_the_datagram() -> None:
    core = IngestCore(_BrokenMapper(), IntervalAggregator)
    core.feed(b"linkerd.rt.r.boom:1|c\nlinkerd.rt.outgoing.service.svc.web.requests:2|c")
    counts = core.counts()
    assert (counts.lines, counts.parsed, counts.bad) == (2, 1, {UNMAPPABLE: 1})
    aggregator, _ = core.rollover()
    (point,) = aggregator.flush(0, "h").points
    assert point.measurement == "linkerd_requests" and dict(point.fields)["count"] == 2.0
