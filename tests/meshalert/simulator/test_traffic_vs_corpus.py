"""The simulator's output has the shape of real Linkerd 1.7.5's (the recorded corpus in
``tests/data/linkerd_corpus``): the same names per scope and router, the same types and rate
formatting, counters sampled per increment, datagrams packed the same way."""

from __future__ import annotations

import random
import re
from collections import Counter

from ingest_sidecar.statsd import parse_line
from meshalert.simulator.traffic import (
    Incident,
    IncidentKind,
    LinkerdTraffic,
    ServiceSpec,
    TrafficConfig,
    pack_datagrams,
)
from tests.ingest_sidecar.linkerd_corpus import lines as corpus_lines

_REAL_CLIENT = re.compile(r"client\.(?:_\.io_l5d_port\.\d+\.)?_\.io_l5d_fs\.[a-z]+\.")
_SIM_CLIENT = re.compile(
    r"client\._\.io_l5d_k8s_(?:daemonset\.linkerd\.incoming\.l5d|localnode\.node)"
    r"\._\.io_l5d_k8s\.[a-z]+\.http\.[a-z]+\."
)


def _shape(line: str, service: str, client: re.Pattern[str]) -> str | None:
    """``router scope metric|type`` with the service and client id taken out; None for
    lines of other services, the server scope and the JVM."""
    sample = parse_line(line)
    name = sample.name
    if f".{service}." not in name + "." or ".rt." not in name:
        return None
    name = client.sub("client.<id>.", name).replace(f".svc.{service}.", ".svc.<svc>.")
    return f"{name.removeprefix('linkerd.rt.')}|{sample.kind.value}"


def _simulated(kind: IncidentKind | None, rate: float = 1.0) -> list[str]:
    svc = ServiceSpec("production", "checkout", rps=300.0, latency_ms=20.0)
    incidents = () if kind is None else (Incident(kind, "checkout", 0.0, 100.0),)
    traffic = LinkerdTraffic(TrafficConfig((svc,), incidents, sample_rate=rate), random.Random(5))
    return traffic.requests_step(1.0, 20.0) + traffic.gauges(1.0)


def _shapes(lines: list[str], service: str, client: re.Pattern[str]) -> set[str]:
    return {s for s in (_shape(x, service, client) for x in lines) if s}


def test_every_simulated_name_and_type_exists_in_the_real_corpus() -> None:
    real = set().union(
        *(
            _shapes(corpus_lines(situation), service, _REAL_CLIENT)
            for situation, service in (
                ("healthy", "web"),
                ("slow", "search"),
                ("retries_exhausted", "billing"),
                ("connection_refused", "ledger"),
                ("one_backend_down", "orders"),
            )
        )
    )
    for kind in (None, *IncidentKind):
        simulated = _shapes(_simulated(kind), "checkout", _SIM_CLIENT)
        assert simulated, kind
        assert simulated <= real, (kind, sorted(simulated - real))


def test_refused_connections_look_like_the_recorded_ones() -> None:
    refused = _shapes(corpus_lines("connection_refused"), "ledger", _REAL_CLIENT)
    simulated = _shapes(_simulated(IncidentKind.FAILURES), "checkout", _SIM_CLIENT)
    for shape in (
        "incoming.client.<id>.service_creation.failures|c",
        "incoming.client.<id>.service_creation.failures."
        "com_twitter_finagle_naming_buoyant_RichConnectionFailedException|c",
        "incoming.client.<id>.failed_connect_latency_ms|ms",
        "incoming.service.svc.<svc>.failures.restartable."
        "com_twitter_finagle_naming_buoyant_RichConnectionFailedExceptionWithPath|c",
        "outgoing.client.<id>.status.502|c",
    ):
        assert shape in refused and shape in simulated, shape
    assert not [s for s in simulated if "com_twitter_finagle_ConnectionFailedException" in s]


def test_both_routers_count_requests_and_retries_reach_incoming() -> None:
    lines = _simulated(IncidentKind.RETRIES)
    n = Counter(
        x.split(":")[0]
        for x in lines
        if ".service.svc.checkout.requests:" in x and ".client." not in x
    )
    out = n["linkerd.rt.outgoing.service.svc.checkout.requests"]
    inc = n["linkerd.rt.incoming.service.svc.checkout.requests"]
    retries = sum(
        1 for x in lines if x.startswith("linkerd.rt.outgoing.service.svc.checkout.retries.total:")
    )
    assert out > 0 and retries > 0
    assert inc == out + retries
    assert not [x for x in lines if x.startswith("linkerd.rt.incoming.") and "retries.total" in x]


def test_rates_and_types_are_formatted_as_recorded() -> None:
    for rate, text in ((1.0, "@1.000000"), (0.01, "@0.010000")):
        for line in _simulated(None, rate):
            sample = parse_line(line)
            if sample.kind.value == "g":
                assert "|@" not in line
            else:
                assert line.endswith("|" + text), line
    recorded = {x.rsplit("|@", 1)[-1] for x in corpus_lines("sampled_0_01") if "|@" in x}
    assert recorded == {"0.010000"}


def test_counters_are_sampled_per_increment_like_the_corpus() -> None:
    lines = _simulated(None, rate=0.01) + _simulated(None, rate=0.01)
    kept = Counter(
        x.split(":")[0]
        for x in lines
        if x.endswith("|c|@0.010000") and x.split(":")[0].endswith((".requests", ".success"))
    )
    assert len(kept) >= 6 and len(set(kept.values())) > 1, kept  # independent, as recorded


def test_datagrams_pack_like_the_client() -> None:
    datagrams = pack_datagrams(_simulated(IncidentKind.RETRIES))
    assert all(len(d) <= 1400 and not d.endswith(b"\n") for d in datagrams)
    assert max(d.count(b"\n") for d in datagrams) + 1 > 1
