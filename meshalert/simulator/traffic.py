"""Linkerd 1.x statsd traffic, generated the way the `io.l5d.statsd` telemeter sends it.

Pure: a seeded ``random.Random`` and explicit times go in, statsd lines come out. The shape
follows Linkerd's telemeter: counters and timers are sampled per event at ``sample_rate``
(one ``:1|c|@0.010000`` line per kept increment), gauges are sent unsampled for every
registered gauge each ``gauge_interval``, names are the sanitised Finagle scopes of a
daemonset deployment (``outgoing`` router, ``svc/<name>`` logical names from the Host
header, concrete clients behind the ``io.l5d.k8s.daemonset`` transformer).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class IncidentKind(StrEnum):
    LATENCY = "latency"
    FAILURES = "failures"
    ENDPOINTS = "endpoints"
    RETRIES = "retries"


@dataclass(frozen=True)
class ServiceSpec:
    namespace: str
    name: str
    rps: float = 50.0
    latency_ms: float = 20.0
    """Median request latency in milliseconds (log-normal, sigma 0.5)."""
    endpoints: int = 10
    failure_rate: float = 0.002
    retry_rate: float = 0.01


@dataclass(frozen=True)
class Incident:
    kind: IncidentKind
    service: str
    """Service name (without namespace)."""
    start_s: float
    end_s: float

    def active(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s


@dataclass(frozen=True)
class TrafficConfig:
    services: tuple[ServiceSpec, ...]
    incidents: tuple[Incident, ...] = ()
    sample_rate: float = 0.1
    prefix: str = "linkerd"
    router: str = "outgoing"
    hosts: int = 1
    """Nodes whose Linkerd each carry an equal share of the traffic (gauges per node)."""


@dataclass
class _Budget:
    tokens: float = 100.0


@dataclass
class LinkerdTraffic:
    """Generates the statsd lines of a fleet of Linkerd nodes, one step at a time."""

    config: TrafficConfig
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def requests_step(self, t_s: float, dt_s: float, host: int = 0) -> list[str]:
        """Lines for the requests one host's Linkerd handles in ``[t_s, t_s + dt_s)``."""
        lines: list[str] = []
        for svc in self.config.services:
            lines.extend(self._service_requests(svc, t_s, dt_s))
        return lines

    def gauges(self, t_s: float, host: int = 0) -> list[str]:
        """The gauge flush of one host's Linkerd (sent every ``gaugeIntervalMs``)."""
        lines: list[str] = []
        for svc in self.config.services:
            client = self._client(svc)
            available = self._available(svc, t_s)
            exhausted = self._incident(svc, IncidentKind.RETRIES, t_s)
            lines += [
                f"{client}.loadbalancer.size:{svc.endpoints}|g",
                f"{client}.loadbalancer.available:{available}|g",
                f"{client}.connections:{max(1, available)}|g",
                f"{client}.retries.budget:{0 if exhausted else 100}|g",
                f"{self._service(svc)}.pending:{self.rng.randint(0, 3)}|g",
            ]
        return lines

    def _service(self, svc: ServiceSpec) -> str:
        return f"{self.config.prefix}.rt.{self.config.router}.service.svc.{_token(svc.name)}"

    def _client(self, svc: ServiceSpec) -> str:
        ns, name = _token(svc.namespace), _token(svc.name)
        return (
            f"{self.config.prefix}.rt.{self.config.router}.client."
            f"_.io_l5d_k8s_daemonset.linkerd.incoming.l5d._.io_l5d_k8s.{ns}.http.{name}"
        )

    def _incident(self, svc: ServiceSpec, kind: IncidentKind, t_s: float) -> bool:
        return any(
            i.kind is kind and i.service == svc.name and i.active(t_s)
            for i in self.config.incidents
        )

    def _available(self, svc: ServiceSpec, t_s: float) -> int:
        if self._incident(svc, IncidentKind.ENDPOINTS, t_s):
            return max(0, math.floor(svc.endpoints * 0.6))
        return svc.endpoints

    def _service_requests(self, svc: ServiceSpec, t_s: float, dt_s: float) -> list[str]:
        rate = self.config.sample_rate
        per_host = svc.rps * dt_s / max(1, self.config.hosts)
        kept = _binomial(self.rng, _poisson(self.rng, per_host), rate)
        slow = self._incident(svc, IncidentKind.LATENCY, t_s)
        failing = self._incident(svc, IncidentKind.FAILURES, t_s)
        storm = self._incident(svc, IncidentKind.RETRIES, t_s)
        failure_p = 0.3 if failing else svc.failure_rate
        retry_p = 0.6 if storm else svc.retry_rate
        median = svc.latency_ms * (40.0 if slow else 1.0)
        at = f"|@{rate:.6f}"
        service, client = self._service(svc), self._client(svc)
        lines: list[str] = []
        for _ in range(kept):
            latency = int(self.rng.lognormvariate(math.log(median), 0.5))
            lines.append(f"{service}.requests:1|c{at}")
            lines.append(f"{service}.request_latency_ms:{latency}|ms{at}")
            lines.append(f"{client}.requests:1|c{at}")
            lines.append(f"{client}.request_latency_ms:{max(0, latency - 1)}|ms{at}")
            if self.rng.random() < failure_p:
                lines += _failure_lines(service, client, at, connection=failing)
            else:
                lines.append(f"{service}.success:1|c{at}")
                lines.append(f"{client}.success:1|c{at}")
            if self.rng.random() < retry_p:
                lines.append(f"{service}.retries.total:1|c{at}")
                if storm:
                    lines.append(f"{service}.retries.budget_exhausted:1|c{at}")
                    lines.append(f"{client}.retries.budget_exhausted:1|c{at}")
        return lines


_CONN_FAILED = "com_twitter_finagle_ConnectionFailedException"
_ANNOTATED = "io_netty_channel_AbstractChannel_AnnotatedConnectException"
_SYNTHETIC = "com_twitter_finagle_service_ResponseClassificationSyntheticException"


def _failure_lines(service: str, client: str, at: str, *, connection: bool) -> list[str]:
    # Finagle rolls every failure up its exception chain: one event, one line per prefix.
    if connection:
        return [
            f"{service}.failures:1|c{at}",
            f"{service}.failures.{_CONN_FAILED}:1|c{at}",
            f"{client}.failures:1|c{at}",
            f"{client}.failures.{_CONN_FAILED}:1|c{at}",
            f"{client}.failures.{_CONN_FAILED}.{_ANNOTATED}:1|c{at}",
        ]
    return [
        f"{service}.failures:1|c{at}",
        f"{service}.failures.{_SYNTHETIC}:1|c{at}",
        f"{client}.failures:1|c{at}",
    ]


def _token(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _binomial(rng: random.Random, n: int, p: float) -> int:
    if p >= 1.0 or n == 0:
        return n
    if n > 200:
        mean = n * p
        return max(0, min(n, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))
    return sum(1 for _ in range(n) if rng.random() < p)


def pack_datagrams(lines: Sequence[str], max_bytes: int = 1400) -> list[bytes]:
    """Join lines with ``\\n`` into datagrams of at most ``max_bytes`` (no trailing newline),
    as java-dogstatsd-client 2.3 does; a single longer line goes out alone."""
    datagrams: list[bytes] = []
    buf = bytearray()
    for line in lines:
        data = line.encode()
        if buf and len(buf) + 1 + len(data) > max_bytes:
            datagrams.append(bytes(buf))
            buf = bytearray()
        if buf:
            buf += b"\n"
        buf += data
    if buf:
        datagrams.append(bytes(buf))
    return datagrams


def standard_services(count: int) -> tuple[ServiceSpec, ...]:
    """``count`` services across three namespaces with varied traffic."""
    namespaces = ("production", "payments", "search")
    base = ("checkout", "cart", "inventory", "users", "frontend", "orders", "catalog", "auth")
    services = []
    for i in range(count):
        name = base[i] if i < len(base) else f"svc-{i:04d}"
        services.append(
            ServiceSpec(
                namespace=namespaces[i % len(namespaces)],
                name=name,
                rps=40.0 + (i * 37) % 120,
                latency_ms=10.0 + (i * 13) % 40,
            )
        )
    return tuple(services)


def standard_incidents(
    services: Sequence[ServiceSpec], start_s: float, length_s: float
) -> tuple[Incident, ...]:
    """One incident of each class on the first four services, staggered."""
    kinds = (
        IncidentKind.LATENCY,
        IncidentKind.FAILURES,
        IncidentKind.ENDPOINTS,
        IncidentKind.RETRIES,
    )
    return tuple(
        Incident(
            kind, services[i].name, start_s + i * length_s / 4, start_s + length_s * (1 + i / 4)
        )
        for i, kind in enumerate(kinds)
        if i < len(services)
    )
