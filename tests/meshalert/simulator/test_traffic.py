from __future__ import annotations

import random
import re
import socket

from hypothesis import given
from hypothesis import strategies as st

from meshalert.simulator.sender import run_sender
from meshalert.simulator.traffic import (
    Incident,
    IncidentKind,
    LinkerdTraffic,
    ServiceSpec,
    TrafficConfig,
    pack_datagrams,
    standard_incidents,
    standard_services,
)

LINE = r"^[A-Za-z0-9_.]+:-?\d+(\.\d+)?\|(c|ms|g)(\|@\d\.\d{6})?$"


def _traffic(incidents: tuple[Incident, ...] = (), rate: float = 1.0) -> LinkerdTraffic:
    svc = ServiceSpec("production", "checkout", rps=200.0, latency_ms=20.0)
    return LinkerdTraffic(TrafficConfig((svc,), incidents, sample_rate=rate), random.Random(1))


def test_lines_have_linkerd_wire_format() -> None:

    traffic = _traffic(rate=0.01)
    lines = traffic.requests_step(0.0, 60.0) + traffic.gauges(0.0)
    assert lines
    for line in lines:
        assert re.match(LINE, line), line
    assert any(line.endswith("|c|@0.010000") for line in lines)
    gauges = [line for line in lines if line.endswith("|g")]
    assert gauges and all("@" not in g for g in gauges)


def test_counts_follow_the_sample_rate() -> None:
    traffic = _traffic(rate=0.1)
    lines = traffic.requests_step(0.0, 100.0)
    service_requests = sum(
        1 for x in lines if x.startswith("linkerd.rt.outgoing.service.svc.checkout.requests:")
    )
    estimated = service_requests / 0.1
    assert 20_000 * 0.85 < estimated < 20_000 * 1.15


def _median_latency(lines: list[str]) -> float:
    values = sorted(
        int(x.split(":")[1].split("|")[0])
        for x in lines
        if x.startswith("linkerd.rt.outgoing.service.svc.checkout.request_latency_ms:")
    )
    return values[len(values) // 2]


def test_incidents_change_the_signal_only_while_active() -> None:
    incidents = (
        Incident(IncidentKind.LATENCY, "checkout", 10.0, 20.0),
        Incident(IncidentKind.ENDPOINTS, "checkout", 10.0, 20.0),
    )
    traffic = _traffic(incidents)
    assert _median_latency(traffic.requests_step(0.0, 5.0)) < 40
    assert _median_latency(traffic.requests_step(12.0, 5.0)) > 400
    assert _median_latency(traffic.requests_step(25.0, 5.0)) < 40
    assert any(x.endswith("loadbalancer.available:6|g") for x in traffic.gauges(15.0))
    assert any(x.endswith("loadbalancer.available:10|g") for x in traffic.gauges(25.0))


@given(st.lists(st.text(alphabet="abc.:|@0123456789", min_size=1, max_size=300), max_size=60))
def test_datagrams_keep_every_line_in_order_within_the_size(lines: list[str]) -> None:
    datagrams = pack_datagrams(lines, max_bytes=400)
    rebuilt = [x for d in datagrams for x in d.decode().split("\n")]
    assert rebuilt == lines
    for d in datagrams:
        assert len(d) <= 400 or b"\n" not in d
        assert not d.endswith(b"\n")


def test_standard_incidents_cover_the_four_classes() -> None:
    services = standard_services(6)
    incidents = standard_incidents(services, 30.0, 40.0)
    assert {i.kind for i in incidents} == set(IncidentKind)
    assert len({i.service for i in incidents}) == 4


def test_sender_delivers_over_a_real_udp_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        traffic = _traffic(rate=1.0)
        stats = run_sender(
            traffic, sock.getsockname(), duration_s=0.3, step_s=0.1, gauge_interval_s=0.1
        )
        received: list[str] = []
        for _ in range(stats.datagrams):
            received += sock.recv(65536).decode().split("\n")
    assert len(received) == stats.lines > 0
    assert any("loadbalancer.size:10|g" in x for x in received)
