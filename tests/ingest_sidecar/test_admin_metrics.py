"""Pull mode's pure part: tree parsing, counter deltas, snapshots, rebuilt buckets."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest_sidecar.admin_metrics import (
    AdminConverter,
    AdminMetricsError,
    AdminSnapshot,
    CounterTracker,
    SnapshotTracker,
    StatSummary,
    parse_tree,
    statsd_name,
    summary_buckets,
)
from ingest_sidecar.linkerd_names import NameMapper
from meshalert.histogram import BOUNDS, LE_LABELS, parse_le, percentile_from_buckets

HOST = "node-a"


def tree(**paths: Any) -> dict[str, Any]:
    """``{"rt x requests": {"counter": 3}}`` (elements separated by spaces) -> a nested
    tree. A ``|`` inside an element stands for ``/`` (``svc|web`` -> ``svc/web``)."""
    root: dict[str, Any] = {}
    for path, leaf in paths.items():
        node = root
        for element in path.split(" "):
            node = node.setdefault(element.replace("|", "/"), {})
        node.update(leaf)
    return root


SERVICE = "rt outgoing service svc|web"
CLIENT = "rt outgoing client #|io.l5d.k8s|prod|http|web"


def sample_tree(
    requests: int, failures: int, *, started: int = 1_700_000_000_000
) -> dict[str, Any]:
    return tree(
        **{
            f"{SERVICE} requests": {"counter": requests},
            f"{SERVICE} failures": {"counter": failures},
            f"{SERVICE} retries budget": {"gauge": 7.5},
            f"{SERVICE} request_latency_ms": {
                "stat.count": 4,
                "stat.min": 1,
                "stat.max": 40,
                "stat.p50": 5,
                "stat.p90": 30,
                "stat.p95": 35,
                "stat.p99": 40,
                "stat.p9990": 40,
                "stat.p9999": 40,
                "stat.sum": 70,
                "stat.avg": 17.5,
            },
            f"{CLIENT} loadbalancer available": {"gauge": 2.0},
            "jvm start_time": {"gauge": started},
        }
    )


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [
        # StatsDStatsReceiverTest's own expectation (Linkerd 1.7.5).
        (
            "rt/http/client/#/io.l5d.fs/default/path/http/1.1/GET/default/request_latency_ms",
            "rt.http.client._.io_l5d_fs.default.path.http.1_1.GET.default.request_latency_ms",
        ),
        ("rt/outgoing/service/svc/web-v1/requests", "rt.outgoing.service.svc.web_v1.requests"),
        ("rt/in/server/0.0.0.0/4141/connections", "rt.in.server.0_0_0_0.4141.connections"),
        # An empty element: '//' collapses once, '///' leaves an empty token.
        ("a//b", "a.b"),
        ("a///b", "a..b"),
    ],
)
def test_paths_get_the_statsd_telemeters_names(path: str, name: str) -> None:
    assert statsd_name(path, prefix="") == name
    assert statsd_name(path) == "linkerd." + name


def test_pulled_series_have_the_statsd_series_keys() -> None:
    mapper = NameMapper()
    converter = AdminConverter(mapper)
    converter.convert(parse_tree(sample_tree(10, 1)), 0, HOST)
    result = converter.convert(parse_tree(sample_tree(15, 3)), 10_000, HOST)
    by_name = {(p.measurement, p.tag_dict().get("scope")): p for p in result.points}

    statsd = mapper.map("linkerd.rt.outgoing.service.svc.web.requests")
    requests = by_name[("linkerd_requests", "service")]
    assert requests.tag_dict() == {**dict(statsd.tags), "host": HOST}
    assert requests.field_dict() == {"count": 5.0, "samples": 5}
    assert by_name[("linkerd_failures", "service")].field_dict()["count"] == 2.0
    client = mapper.map(
        "linkerd.rt.outgoing.client._.io_l5d_k8s.prod.http.web.loadbalancer.available"
    )
    available = by_name[("linkerd_loadbalancer_available", "client")]
    assert available.tag_dict() == {**dict(client.tags), "host": HOST}
    assert available.field_dict() == {"value": 2.0}
    assert by_name[("linkerd_retries_budget", "service")].field_dict() == {"value": 7.5}


# --- parsing -------------------------------------------------------------------------------


def test_tree_leaves_are_read_by_kind_and_bad_leaves_counted() -> None:
    doc = sample_tree(3, 1)
    doc["rt"]["outgoing"]["service"]["svc/web"]["pending"] = {"gauge": "lots"}
    doc["rt"]["outgoing"]["service"]["svc/web"]["closes"] = {"counter": None}
    doc["rt"]["outgoing"]["service"]["svc/web"]["load"] = {"gauge": True}
    snapshot = parse_tree(doc)

    assert snapshot.counters == {
        "rt/outgoing/service/svc/web/requests": 3.0,
        "rt/outgoing/service/svc/web/failures": 1.0,
    }
    assert snapshot.gauges["rt/outgoing/client/#/io.l5d.k8s/prod/http/web/loadbalancer/available"]
    assert snapshot.gauges["jvm/start_time"] == 1_700_000_000_000
    stat = snapshot.stats["rt/outgoing/service/svc/web/request_latency_ms"]
    assert stat.count == 4 and stat.values["p9990"] == 40.0
    assert snapshot.bad_leaves == 3


def test_a_counter_with_children_keeps_both() -> None:
    doc = tree(
        **{
            "rt r service svc|a failures": {"counter": 4},
            "rt r service svc|a failures com.twitter.finagle.ChannelClosedException": {
                "counter": 4
            },
        }
    )
    assert parse_tree(doc).counters == {
        "rt/r/service/svc/a/failures": 4.0,
        "rt/r/service/svc/a/failures/com.twitter.finagle.ChannelClosedException": 4.0,
    }


@pytest.mark.parametrize("doc", [[], "x", 3, None])
def test_a_document_that_is_not_a_tree_is_refused(doc: object) -> None:
    with pytest.raises(AdminMetricsError, match="expected a JSON object"):
        parse_tree(doc)


# --- counter deltas -------------------------------------------------------------------------

# One poll: (restart before it?, increments per counter name since the previous poll).
polls = st.lists(
    st.tuples(
        st.booleans(),
        st.dictionaries(st.sampled_from("abcde"), st.integers(0, 10**12), max_size=5),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300)
@given(polls, st.booleans())
def test_deltas_add_up_to_every_increment_after_the_first_poll(
    script: list[tuple[bool, dict[str, int]]], with_start_time: bool
) -> None:
    """Linkerd's counters are modelled as cumulative values that a restart sets back to 0
    (and removes until first used again). With ``jvm/start_time`` the deltas are exact
    across any restart; without it, exact whenever a restart shows as a counter going down."""
    tracker = CounterTracker()
    values: dict[str, int] = {}
    started = 0
    emitted: dict[str, float] = {}
    truth: dict[str, int] = {}
    undetectable = False
    for i, (restart, increments) in enumerate(script):
        if restart and i > 0:
            if any(values.get(k, 0) > 0 and increments.get(k, 0) >= values[k] for k in values):
                undetectable = True  # grew back past its old value: only start_time tells
            values, started = {}, started + 1
        for name, inc in increments.items():
            values[name] = values.get(name, 0) + inc
            if i > 0:
                truth[name] = truth.get(name, 0) + inc
        d = tracker.advance(
            {k: float(v) for k, v in values.items()}, float(started) if with_start_time else None
        )
        assert all(delta > 0 for delta in d.deltas.values())
        for name, delta in d.deltas.items():
            emitted[name] = emitted.get(name, 0.0) + delta
    if with_start_time or not undetectable:
        assert emitted == {k: float(v) for k, v in truth.items() if v > 0}


def test_a_restart_is_counted_and_the_new_value_is_the_delta() -> None:
    tracker = CounterTracker()
    tracker.advance({"r": 100.0}, 5.0)
    assert tracker.advance({"r": 130.0}, 5.0).deltas == {"r": 30.0}
    # Restarted and already past the old value: only the start time shows it.
    after = tracker.advance({"r": 400.0}, 9.0)
    assert (after.deltas, after.resets, after.restarted) == ({"r": 400.0}, 1, True)
    # Uptime going down shows a restart within the start time's float32 step.
    by_uptime = CounterTracker()
    by_uptime.advance({"r": 10.0}, 5.0, 90_000.0)
    assert by_uptime.advance({"r": 50.0}, 5.0, 3_000.0).deltas == {"r": 50.0}
    # No start time: the counter going down is what shows the restart.
    plain = CounterTracker()
    plain.advance({"r": 100.0})
    assert plain.advance({"r": 7.0}).deltas == {"r": 7.0}
    assert plain.resets_total == 1


def test_the_first_poll_only_primes() -> None:
    tracker = CounterTracker()
    first = tracker.advance({"r": 1e6})
    assert first.deltas == {} and tracker.primed
    assert tracker.advance({"r": 1e6, "new": 3.0}).deltas == {"new": 3.0}


# --- snapshots ------------------------------------------------------------------------------


def summary(count: float, p50: float = 5.0) -> StatSummary:
    return StatSummary({"count": count, "min": 1.0, "p50": p50, "max": 9.0})


def test_each_histogram_snapshot_is_written_once() -> None:
    tracker = SnapshotTracker(snapshot_interval_ms=60_000)
    assert tracker.new_summaries({"s": summary(3)}, 0) == {}  # served before we started
    assert tracker.new_summaries({"s": summary(3)}, 10_000) == {}
    assert tracker.new_summaries({"s": summary(5)}, 20_000) == {"s": summary(5)}
    assert tracker.new_summaries({"s": summary(5)}, 30_000) == {}
    # The next minute happened to give identical figures: still a new snapshot.
    assert tracker.new_summaries({"s": summary(5)}, 80_000) == {"s": summary(5)}
    assert tracker.new_summaries({"s": summary(0)}, 90_000) == {}  # empty minute: nothing
    assert tracker.new_summaries({"t": summary(2)}, 100_000) == {"t": summary(2)}


# --- rebuilt buckets ------------------------------------------------------------------------

KNOTS = ("min", "p50", "p90", "p95", "p99", "p9990", "p9999", "max")
QUANTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p9990": 99.9}


@st.composite
def summaries(draw: st.DrawFn) -> StatSummary:
    values = sorted(draw(st.lists(st.integers(0, 10**7), min_size=8, max_size=8)))
    count = draw(st.integers(1, 10**9))
    return StatSummary(
        {"count": float(count), **{k: float(v) for k, v in zip(KNOTS, values, strict=True)}}
    )


@settings(max_examples=300)
@given(summaries())
def test_rebuilt_buckets_keep_the_count_and_each_quantiles_bucket(s: StatSummary) -> None:
    buckets = summary_buckets(s)
    assert math.fsum(buckets.values()) == pytest.approx(s.count, rel=1e-9)
    by_bound = {parse_le(LE_LABELS[i]): c for i, c in buckets.items()}
    for key, q in QUANTILES.items():
        value = s.values[key]
        estimate = percentile_from_buckets(by_bound, q)
        assert estimate is not None
        idx = next(i for i, b in enumerate(BOUNDS) if value <= b)
        lower = BOUNDS[idx - 1] if idx > 0 else 0.0
        # Within the bucket that holds Linkerd's own quantile (float slack at its edges).
        assert lower * (1 - 1e-9) - 1e-9 <= estimate <= BOUNDS[idx] * (1 + 1e-9) + 1e-9


def test_malformed_summaries_still_keep_their_count() -> None:
    assert summary_buckets(StatSummary({"count": 0.0})) == {}
    only_avg = summary_buckets(StatSummary({"count": 6.0, "avg": 3.0}))
    assert list(only_avg.values()) == [6.0]
    out_of_order = StatSummary({"count": 10.0, "min": 5.0, "p50": 2.0, "max": 9.0})
    assert math.fsum(summary_buckets(out_of_order).values()) == pytest.approx(10.0)


def test_a_new_snapshot_writes_a_timer_point_and_its_buckets() -> None:
    converter = AdminConverter(NameMapper())
    converter.convert(AdminSnapshot(stats={}), 0, HOST)
    snap = parse_tree(sample_tree(1, 0))
    result = converter.convert(snap, 10_000, HOST)
    timer = [p for p in result.points if p.measurement == "linkerd_request_latency_ms"]
    buckets = [p for p in result.points if p.measurement == "linkerd_request_latency_ms_bucket"]
    assert len(timer) == 1
    assert timer[0].field_dict()["p999"] == 40.0 and timer[0].field_dict()["count"] == 4.0
    assert math.fsum(float(p.field_dict()["count"]) for p in buckets) == pytest.approx(4.0)
    assert all(p.tag_dict()["le"] in LE_LABELS for p in buckets)
    again = converter.convert(snap, 20_000, HOST)
    assert not [p for p in again.points if p.measurement.startswith("linkerd_request_latency")]


def test_the_series_cap_is_honoured_and_counted() -> None:
    converter = AdminConverter(NameMapper(), max_series=2)
    converter.convert(parse_tree(sample_tree(1, 1)), 0, HOST)
    result = converter.convert(parse_tree(sample_tree(2, 2)), 10_000, HOST)
    assert result.series == 2 and result.rejected_series > 0
