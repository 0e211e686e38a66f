"""Real Linkerd 1.7.5 datagrams (``tests/data/linkerd_corpus``, see its README) through the
sidecar's real parser, name mapper and aggregator, without a JVM.

Each test named after a doubted point of the reference or an item of issue 10 says what the
capture shows; the README beside the corpus quotes the lines."""

from __future__ import annotations

import re

import pytest

from ingest_sidecar.linkerd_names import NameMapper
from ingest_sidecar.model import MetricKind
from ingest_sidecar.statsd import parse_line
from tests.ingest_sidecar.linkerd_corpus import (
    SITUATIONS,
    datagrams,
    lines,
    metrics_json,
    names_with,
    replay,
    select,
)

ALL = (*SITUATIONS, "startup", "sampled_0_01")
_CLIENT = re.compile(
    r"^linkerd\.rt\.(?P<router>outgoing|incoming)\.client\."
    r"(?P<id>(?:_\.io_l5d_port\.\d+\.)?_\.io_l5d_fs\.(?P<svc>[a-z]+))\.(?P<metric>.+)$"
)
_SERVICE = re.compile(
    r"^linkerd\.rt\.(?P<router>outgoing|incoming)\.service\.svc\.(?P<svc>[a-z]+)\.(?P<metric>.+)$"
)


# -- wire format -------------------------------------------------------------------------


@pytest.mark.parametrize("situation", ALL)
def test_every_recorded_line_parses_and_maps(situation: str) -> None:
    points = replay([situation])  # replay() asserts no bad line
    assert points


@pytest.mark.parametrize("situation", ALL)
def test_datagrams_are_packed_lines_up_to_1400_bytes_without_trailing_newline(
    situation: str,
) -> None:
    recorded = datagrams(situation)
    assert all(0 < len(d.data) <= 1400 for d in recorded)
    assert not any(d.data.endswith(b"\n") or b"\n\n" in d.data for d in recorded)
    assert max(len(d.lines) for d in recorded) > 1  # several lines share a datagram


@pytest.mark.parametrize("situation", ALL)
def test_counters_and_timers_carry_the_rate_gauges_never(situation: str) -> None:
    rate = "@0.010000" if situation == "sampled_0_01" else "@1.000000"
    for line in lines(situation):
        sample = parse_line(line)
        if sample.kind is MetricKind.GAUGE:
            assert "|@" not in line, line
        else:
            assert sample.kind in (MetricKind.COUNTER, MetricKind.TIMER), line
            assert line.endswith("|" + rate), line


# -- names -> tags -----------------------------------------------------------------------


@pytest.mark.parametrize("situation", (*SITUATIONS, "sampled_0_01"))
def test_client_and_service_scopes_map_to_their_router_client_and_service(
    situation: str,
) -> None:
    mapper = NameMapper()
    checked = 0
    for line in lines(situation):
        name = parse_line(line).name
        key = mapper.map(name)
        tags = dict(key.tags)
        if m := _CLIENT.match(name):
            inner = m["metric"].startswith("service.svc.")
            assert tags["scope"] == ("client_service" if inner else "client"), (name, tags)
            assert tags["client"] == m["id"], (name, tags)
        elif m := _SERVICE.match(name):
            assert tags["scope"] == "service", (name, tags)
        else:
            continue
        assert (tags["router"], tags["service"]) == (m["router"], m["svc"]), (name, tags)
        assert "namespace" not in tags  # Host-header names and fs ids carry none
        checked += 1
    assert checked > 100


def test_http_stream_gauges_do_not_land_in_the_pending_series() -> None:
    """Found by the corpus: ``client.<id>.http.stream.request.pending`` was mapped to
    ``linkerd_pending`` with ``http.stream.request`` glued to the client id."""
    points = replay(["healthy"])
    pending = [t for t, _ in select(points, "linkerd_pending", scope="client", service="web")]
    assert {t["client"] for t in pending} == {
        "_.io_l5d_fs.web",
        next(t["client"] for t in pending if "io_l5d_port" in t["client"]),
    }
    assert len(pending) == 2  # one per router's client
    streams = list(select(points, "linkerd_http_stream_request_pending", scope="client"))
    assert streams and all(t["client"].endswith(".web") for t, _ in streams if "web" in t["client"])


# -- the reference's doubted points and issue 10 -----------------------------------------


def test_two_routers_each_count_every_request() -> None:
    """Issue 10 item 1, doubted point 2: confirmed. Both routers name the request
    ``/svc/web``; 60 requests are 60 at each router's service scope."""
    requests = {
        n: c
        for n, c in names_with("healthy", ".service.svc.web.requests").items()
        if ".client." not in n
    }
    assert requests == {
        "linkerd.rt.outgoing.service.svc.web.requests|c": 60,
        "linkerd.rt.incoming.service.svc.web.requests|c": 60,
    }
    points = replay(["healthy"])
    rows = {
        t["router"]: f["count"]
        for t, f in select(points, "linkerd_requests", scope="service", service="web")
    }
    assert rows == {"outgoing": 60.0, "incoming": 60.0}


def test_retries_exist_on_outgoing_only_and_each_is_one_more_incoming_request() -> None:
    """Issue 10 item 1: confirmed. ``retries.total`` appears only on ``outgoing``; the
    ``incoming`` router counts every retry as a request; summing both routers dilutes the
    retry ratio."""
    billing = metrics_json("retries_exhausted")
    out_requests = billing["rt/outgoing/service/svc/billing/requests"]
    in_requests = billing["rt/incoming/service/svc/billing/requests"]
    retries = billing["rt/outgoing/service/svc/billing/retries/total"]
    assert "rt/incoming/service/svc/billing/retries/total" not in billing or (
        billing["rt/incoming/service/svc/billing/retries/total"] == 0
    )
    assert retries > 0 and in_requests == out_requests + retries
    points = replay(["retries_exhausted"])
    total = {
        t["router"]: f["count"]
        for t, f in select(points, "linkerd_retries_total", service="billing")
    }
    assert set(total) == {"outgoing"}
    req = {
        t["router"]: f["count"]
        for t, f in select(points, "linkerd_requests", scope="service", service="billing")
    }
    one_router = total["outgoing"] / req["outgoing"]
    both = total["outgoing"] / (req["outgoing"] + req["incoming"])
    assert both < one_router / 2 + 0.01  # roughly halved


def test_exhausted_budget_counts_at_outgoing_service_scope_and_the_gauge_reads_zero() -> None:
    """Doubted point 4 and item 5's exact source: ``retries.budget`` is a gauge at client and
    service scope (never sampled); the outgoing service budget reads 0 while exhausted."""
    exhausted = names_with("retries_exhausted", "billing.retries.budget_exhausted")
    assert exhausted == {"linkerd.rt.outgoing.service.svc.billing.retries.budget_exhausted|c": 60}
    budgets = names_with("retries_exhausted", "billing.retries.budget")
    gauges = {n for n in budgets if n.endswith("retries.budget|g")}
    assert {n.split(".")[2] + "." + n.split(".")[3] for n in gauges} == {
        "outgoing.service",
        "outgoing.client",
        "incoming.service",
        "incoming.client",
    }
    values = [
        parse_line(x).value
        for x in lines("retries_exhausted")
        if x.startswith("linkerd.rt.outgoing.service.svc.billing.retries.budget:")
    ]
    # Exhausted again and again: each flush the budget has refilled a little (minRetriesPerSec
    # 1 over ttlSecs 10) or reads 0; a healthy service's budget sits at its full 10+.
    assert min(values) == 0 and max(values) <= 10, values
    healthy = [
        parse_line(x).value
        for x in lines("healthy")
        if x.startswith("linkerd.rt.outgoing.service.svc.web.retries.budget:")
    ]
    assert healthy and min(healthy) >= 10, healthy


def test_each_router_has_its_own_balancer_for_one_service() -> None:
    """Issue 10 item 2: confirmed. One host holds two client series for ``catalog``: the
    outgoing one (its size counts the node Linkerds, here 1) and the incoming one (the
    pods); both are gauges at the same flush, so 'last value per (service, host)' mixes
    them."""
    points = replay(["endpoints_removed"])
    sizes = {
        t["client"]: f["value"]
        for t, f in select(points, "linkerd_loadbalancer_size", service="catalog")
    }
    assert len(sizes) == 2
    assert sorted(sizes.values()) == [1.0, 1.0]  # after the removal: 1 node, 1 pod
    healthy = replay(["one_backend_down"])
    by_router = {
        t["router"]: (f["value"])
        for t, f in select(healthy, "linkerd_loadbalancer_size", service="orders")
    }
    assert by_router == {"outgoing": 1.0, "incoming": 3.0}


def test_size_falls_with_available_when_endpoints_leave() -> None:
    """Issue 10 item 3, doubted point 3: confirmed. Removing endpoints from discovery drops
    ``size`` with ``available`` (3/3 -> 1/1): the ratio stays 1.0. A dead endpoint still
    listed keeps ``size`` and drops ``available`` (3 -> 2)."""
    seen = [
        (x.split(".")[-1].split(":")[0], parse_line(x).value)
        for x in lines("endpoints_removed")
        if x.startswith("linkerd.rt.incoming.client._.io_l5d_fs.catalog.loadbalancer.")
        and ("size:" in x or "available:" in x)
    ]
    sizes = [v for k, v in seen if k == "size"]
    available = [v for k, v in seen if k == "available"]
    assert sizes[0] == 3 and sizes[-1] == 1
    assert available == sizes  # every flush: available == size
    down = {
        x.split(".")[-1].split(":")[0]: parse_line(x).value
        for x in lines("one_backend_down")
        if x.startswith("linkerd.rt.incoming.client._.io_l5d_fs.orders.loadbalancer.")
        and ("size:" in x or "available:" in x)
    }
    assert down == {"size": 3, "available": 2}


def test_refused_connections_never_reach_client_failures() -> None:
    """Issue 10 item 4, doubted point 1: confirmed. No client-scope
    ``failures.com_twitter_finagle_ConnectionFailedException`` line exists: the incoming
    client records ``service_creation.failures.<RichConnectionFailedException>`` and
    ``failed_connect_latency_ms`` and no ``requests``; the incoming service scope records
    ``failures.restartable.<...WithPath>``; the outgoing router only sees Linkerd's 502."""
    ledger = names_with("connection_refused", ".ledger.")
    assert not [n for n in ledger if "com_twitter_finagle_ConnectionFailedException" in n]
    inc = "linkerd.rt.incoming.client._.io_l5d_fs.ledger."
    rich = "com_twitter_finagle_naming_buoyant_RichConnectionFailedException"
    assert ledger[inc + f"service_creation.failures.{rich}|c"] > 0
    assert (
        ledger[inc + "service_creation.failures|c"]
        == ledger[inc + f"service_creation.failures.{rich}|c"]
    )
    assert ledger[inc + "failed_connect_latency_ms|ms"] > 0
    assert ledger[inc + "requests|c"] == 0 and ledger[inc + "failures|c"] == 0
    svc = "linkerd.rt.incoming.service.svc.ledger.failures.restartable."
    assert ledger[svc + rich + "WithPath|c"] > 0
    out = "linkerd.rt.outgoing.client._.io_l5d_port."
    assert any(n.startswith(out) and n.endswith(".status.502|c") for n in ledger)
    # The sidecar keeps service_creation failures apart from request failures, keyed to
    # the right client and service (before the fix they were linkerd_failures rows of a
    # client named "..ledger.service_creation", and service "service_creation" outgoing).
    points = replay(["connection_refused"])
    rows = list(
        select(points, "linkerd_service_creation_failures", service="ledger", exception=rich)
    )
    assert [(t["router"], t["client"]) for t, _ in rows] == [("incoming", "_.io_l5d_fs.ledger")]
    assert not list(select(points, "linkerd_failures", scope="client", service="service_creation"))
    assert not [
        t
        for t, _ in select(points, "linkerd_failures")
        if "service_creation" in t.get("client", "")
    ]


def test_sampling_is_per_counter_increment() -> None:
    """Issue 10 item 5, doubted point 5: confirmed. At sampleRate 0.01, 3000 requests left
    independent samples of each counter of the same requests: the kept counts differ."""
    kept = {
        n: c
        for n, c in names_with("sampled_0_01", ".web.").items()
        if n.endswith((".requests|c", ".success|c")) and ("service.svc.web" in n or ".client." in n)
    }
    assert len(kept) >= 6
    assert len(set(kept.values())) > 1, kept  # not one decision per request
    assert all(5 <= c <= 80 for c in kept.values()), kept  # ~30 = 3000 * 0.01
    exact = metrics_json("sampled_0_01")
    assert exact["rt/outgoing/service/svc/web/requests"] == 3000
    assert exact["rt/incoming/service/svc/web/requests"] == 3000
    points = replay(["sampled_0_01"])
    (fields,) = [
        f
        for t, f in select(
            points, "linkerd_requests", scope="service", service="web", router="outgoing"
        )
    ]
    assert fields["count"] == fields["samples"] * 100  # each kept line stands for 100
