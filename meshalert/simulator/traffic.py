"""Linkerd 1.x statsd traffic, generated the way real Linkerd 1.7.5 sends it.

Pure: a seeded ``random.Random`` and explicit times go in, statsd lines come out. The shape
follows the recorded corpus (``tests/data/linkerd_corpus``, its README):

* two routers per node, as in a DaemonSet mesh: every request crosses the caller's
  ``outgoing`` router (client ids behind ``io.l5d.k8s.daemonset``, the retry policy) and the
  callee's ``incoming`` router (client ids behind ``io.l5d.k8s.localnode``); both name it
  ``svc/<name>``; each retry is one more ``incoming`` request;
* counters and timers are sampled per increment: every counter of every request is kept
  with probability ``sample_rate`` on its own (``:1|c|@0.010000``), so the kept
  ``requests`` and ``success`` lines of the same requests differ;
* gauges are sent unsampled for every registered gauge each ``gauge_interval``;
* a refused connection is recorded as real Linkerd does: ``service_creation.failures`` on the
  callee's incoming client, ``failures.restartable`` at its service scope, and a 502 with
  failures (and retries) on the caller's outgoing router; never a client-scope
  ``failures.ConnectionFailedException``.

``incoming_router=None`` gives the older one-router shape.
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
    """The caller's router (retries, the daemonset client ids)."""
    hosts: int = 1
    """Nodes whose Linkerd each carry an equal share of the traffic (gauges per node)."""
    incoming_router: str | None = "incoming"
    """The callee's router (localnode client ids); ``None``: one router only."""


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
        cfg = self.config
        lines: list[str] = []
        for svc in cfg.services:
            client = self._client(svc, cfg.router)
            exhausted = self._incident(svc, IncidentKind.RETRIES, t_s)
            nodes = max(1, cfg.hosts)
            lines += [
                f"{client}.loadbalancer.size:{nodes if cfg.incoming_router else svc.endpoints}|g",
                f"{client}.loadbalancer.available:"
                f"{nodes if cfg.incoming_router else self._available(svc, t_s)}|g",
                f"{client}.connections:1|g",
                f"{client}.retries.budget:100|g",
                f"{self._service(svc, cfg.router)}.retries.budget:{0 if exhausted else 100}|g",
                f"{self._service(svc, cfg.router)}.pending:{self.rng.randint(0, 3)}|g",
            ]
            if cfg.incoming_router:
                inner = self._client(svc, cfg.incoming_router)
                available = self._available(svc, t_s)
                lines += [
                    f"{inner}.loadbalancer.size:{svc.endpoints}|g",
                    f"{inner}.loadbalancer.available:{available}|g",
                    f"{inner}.connections:{max(1, available)}|g",
                    f"{inner}.retries.budget:100|g",
                    f"{self._service(svc, cfg.incoming_router)}.retries.budget:100|g",
                    f"{self._service(svc, cfg.incoming_router)}.pending:{self.rng.randint(0, 3)}|g",
                ]
        return lines

    def _service(self, svc: ServiceSpec, router: str | None = None) -> str:
        return (
            f"{self.config.prefix}.rt.{router or self.config.router}.service.svc.{_token(svc.name)}"
        )

    def _client(self, svc: ServiceSpec, router: str | None = None) -> str:
        ns, name = _token(svc.namespace), _token(svc.name)
        router = router or self.config.router
        k8s = f"_.io_l5d_k8s.{ns}.http.{name}"
        if router == self.config.incoming_router:
            return f"{self.config.prefix}.rt.{router}.client._.io_l5d_k8s_localnode.node.{k8s}"
        return (
            f"{self.config.prefix}.rt.{router}.client."
            f"_.io_l5d_k8s_daemonset.linkerd.incoming.l5d.{k8s}"
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
        cfg = self.config
        rng = self.rng
        rate = cfg.sample_rate
        n = _poisson(rng, svc.rps * dt_s / max(1, cfg.hosts))
        slow = self._incident(svc, IncidentKind.LATENCY, t_s)
        refused = self._incident(svc, IncidentKind.FAILURES, t_s)
        storm = self._incident(svc, IncidentKind.RETRIES, t_s)
        failed = _binomial(rng, n, 0.3 if refused else svc.failure_rate)
        retried = _binomial(rng, n, 0.6 if storm else svc.retry_rate)
        median = svc.latency_ms * (40.0 if slow else 1.0)
        emit = _Emitter(rng, rate, median)
        count, timer = emit.count, emit.timer
        ok = n - failed
        syn = "failures." + _SYNTHETIC
        out_svc, out_client = self._service(svc, cfg.router), self._client(svc, cfg.router)
        for name, shift in ((out_svc, 0), (f"{out_client}.service.svc.{_token(svc.name)}", 1)):
            count(f"{name}.requests", n)
            count(f"{name}.success", ok)
            count(f"{name}.failures", failed)
            count(f"{name}.{syn}", failed)
            timer(f"{name}.request_latency_ms", n, shift)
        count(f"{out_svc}.retries.total", retried)
        if storm:
            count(f"{out_svc}.retries.budget_exhausted", retried)
        attempts = n + retried  # each retry is one more request downstream
        count(f"{out_client}.requests", attempts)
        count(f"{out_client}.success", ok)
        count(f"{out_client}.failures", failed + retried)
        count(f"{out_client}.{syn}", failed + retried)
        count(f"{out_client}.status.200", ok)
        count(f"{out_client}.status.{502 if refused else 503}", failed + retried)
        timer(f"{out_client}.request_latency_ms", attempts, 1)
        if cfg.incoming_router:
            self._incoming(
                svc,
                emit,
                router=cfg.incoming_router,
                attempts=attempts,
                ok=ok,
                failed=failed,
                refused=refused,
            )
        return emit.lines

    def _incoming(
        self,
        svc: ServiceSpec,
        emit: _Emitter,
        *,
        router: str,
        attempts: int,
        ok: int,
        failed: int,
        refused: bool,
    ) -> None:
        count, timer = emit.count, emit.timer
        syn = "failures." + _SYNTHETIC
        retried = attempts - (ok + failed)
        in_svc, in_client = self._service(svc, router), self._client(svc, router)
        count(f"{in_svc}.requests", attempts)
        count(f"{in_svc}.success", ok)
        timer(f"{in_svc}.request_latency_ms", attempts, 2)
        if refused:
            # The callee's Linkerd cannot connect: no client request, a service_creation failure.
            count(f"{in_svc}.failures", failed)
            count(f"{in_svc}.failures.restartable", failed)
            count(f"{in_svc}.failures.restartable.{_RICH}WithPath", failed)
            count(f"{in_client}.service_creation.failures", failed)
            count(f"{in_client}.service_creation.failures.{_RICH}", failed)
            timer(f"{in_client}.failed_connect_latency_ms", failed, 10)
            served = attempts - failed
        else:
            count(f"{in_svc}.failures", failed + retried)
            count(f"{in_svc}.{syn}", failed + retried)
            served = attempts
        count(f"{in_client}.requests", served)
        count(f"{in_client}.success", ok)
        count(f"{in_client}.status.200", ok)
        timer(f"{in_client}.request_latency_ms", served, 3)


_RICH = "com_twitter_finagle_naming_buoyant_RichConnectionFailedException"
_SYNTHETIC = "com_twitter_finagle_service_ResponseClassificationSyntheticException"


class _Emitter:
    """Lines of one service step; each counter increment and each timer observation is
    kept or dropped on its own, with probability ``rate`` (java-dogstatsd-client)."""

    def __init__(self, rng: random.Random, rate: float, median_ms: float) -> None:
        self.rng, self.rate, self.mu = rng, rate, math.log(median_ms)
        self.at = f"|@{rate:.6f}"
        self.lines: list[str] = []

    def count(self, name: str, times: int) -> None:
        self.lines.extend([f"{name}:1|c{self.at}"] * _binomial(self.rng, times, self.rate))

    def timer(self, name: str, times: int, shift: int = 0) -> None:
        for _ in range(_binomial(self.rng, times, self.rate)):
            value = max(0, int(self.rng.lognormvariate(self.mu, 0.5)) - shift)
            self.lines.append(f"{name}:{value}|ms{self.at}")


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
