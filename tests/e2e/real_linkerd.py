"""``meshalert run`` beside a real Linkerd 1.7.5, with the four incidents caused physically,
judged on every store at once from every source Linkerd offers.

Sources (:data:`SOURCES`): ``statsd@1.0`` (every increment sent), ``statsd@0.01`` (Linkerd's
default rate: each counter increment and latency sample kept with probability 0.01) and
``pull`` (the sidecar polls ``/admin/metrics.json``; the telemeter's datagrams go nowhere).
One timeline per source; in it three ``meshalert run`` processes, one per store (SQLite,
influxd 1.x, InfluxDB 2 with Flux), see the same Linkerd: the statsd datagrams reach all three
through a UDP fan-out, and in pull mode each polls the admin endpoint itself.

Timeline (wall seconds after traffic starts; windows 10 s unless the source says, ``for`` 6 s):

- (a Linkerd just started gets ``JVM_WARMUP_S`` of traffic no sidecar sees first;)
- every service healthy for ``WARMUP_S``;
- incidents on, each on its own service:
  latency   -- ``checkout``'s only backend answers after 4 s (rule: p90 above 2 s: on the
               shared 2-core machine healthy requests through Linkerd have taken 1.7 s
               (tests/data/linkerd_corpus/healthy.jsonl), so p99 of ~30 requests, i.e.
               their maximum, fired for healthy services);
  failures  -- ``cart``'s disco file now lists a port where nothing listens (refused);
  endpoints -- ``ledger``'s disco file drops from 5 endpoints to 2 (as Kubernetes drops
               unready pods from Endpoints);
  retries   -- ``catalog``'s backend answers 503 to everything: the outgoing router retries
               (io.l5d.http.retryableRead5XX) until its budget is exhausted;
- after the source's ``incident_s`` (or once all four have fired on every store) every
  incident ends, and the run waits for the resolutions;
- ``web`` and ``users`` stay healthy all along and must stay silent.

At 0.01 a 3 rps service sends about one request line per 30 s, so the sampled source gives
the latency and failures services the traffic sampling needs (see :data:`SAMPLED`); the
endpoints and retries classes judge gauges (``loadbalancer.*``, ``retries.budget``), which
Linkerd never samples. In pull mode Linkerd serves one latency summary per minute, so the
latency class can only see the incident from the first whole minute of it on.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.harness import MeshalertRun, base_env, cli, short, wait_for, webhook_deliveries
from tests.fixtures.http_server import RecordingHttpServer
from tests.fixtures.influxd import free_port
from tests.fixtures.linkerd import (
    Disco,
    LinkerdConfig,
    LinkerdProcess,
    TrafficDriver,
    UdpFanout,
    counter_total,
)

LATENCY_ABOVE_S = 2.0
RULES = """
defaults:
  latency:   {percentile: 90, above_ms: 2000, window: 10s, for: 6s}
  failures:  {rate_above: 0.05, min_requests: 10, window: 10s, for: 6s}
  endpoints: {available_ratio_below: 0.7, window: 10s, for: 6s}
  retries:   {exhausted_above: 0, ratio_above: 0.2, min_requests: 10, window: 10s, for: 6s}
inhibit: []
"""
RULES_SAMPLED = """
defaults:
  latency:   {percentile: 90, above_ms: 2000, window: 30s, for: 6s}
  failures:  {rate_above: 0.05, min_requests: 10, min_samples: 20, window: 60s, for: 6s}
  endpoints: {available_ratio_below: 0.7, window: 10s, for: 6s}
  retries:   {exhausted_above: 0, ratio_above: 0.2, min_requests: 10, min_samples: 20,
              window: 10s, for: 6s}
inhibit: []
"""
"""``inhibit: []``: this e2e judges each class's own notifications. With the default
inhibition, cart's refused connections page as endpoints only: Linkerd's failure accrual
marks its endpoints dead, the endpoints alert fires for cart, and it holds cart's failures
page (README "Silences and maintenance"); the failures alert still fires and is recorded.

At 0.01 the ratio guards stay at their defaults (``min_samples: 20`` request lines, 95 %
confidence). A window with fewer lines is judged healthy, which resolves a firing alert: with
a 30 s window ``cart``'s ~60 rps (all this machine gave) made ~18 lines, and the failures
alert resolved and re-fired mid-incident on every store. 60 s give ~36. Latency keeps 30 s
(``checkout``'s 10 rps: ~3 samples), gauge classes 10 s."""
RPS = 3.0
WARMUP_S = 15.0
JVM_WARMUP_S = 25.0
INCIDENTS = {
    "latency": "checkout",
    "failures": "cart",
    "endpoints": "ledger",
    "retries": "catalog",
}
HEALTHY = ("web", "users")
SERVICES = (*INCIDENTS.values(), *HEALTHY)
STORES = ("sqlite", "influxdb1", "influxdb2")


@dataclass(frozen=True)
class Source:
    """Where the sidecars read Linkerd, and the traffic and rules that source needs."""

    name: str
    sample_rate: float
    """The telemeter's ``sampleRate`` (in pull mode its datagrams are dropped)."""
    pull: bool
    rules: str
    rps: Mapping[str, float]
    workers: Mapping[str, int]
    incident_s: float
    resolve_s: float


STEADY = {"cart": 3, "catalog": 3}
"""Workers (callers) for the services whose requests Linkerd holds in retries during their
incident: with one caller, one request held for seconds leaves a window without a
completed request, in which the retry budget refills and the alert resolves mid-incident
(seen once on SQLite: a flap no real service with several callers would show)."""
STATSD_EXACT = Source(
    "statsd@1.0", 1.0, False, RULES, dict.fromkeys(SERVICES, RPS), STEADY, 60.0, 90.0
)
SAMPLED = Source(
    "statsd@0.01",
    0.01,
    False,
    RULES_SAMPLED,
    {**dict.fromkeys(SERVICES, RPS), "cart": 100.0, "checkout": 10.0},
    # checkout's requests take 4 s during the incident: 48 workers keep its 10 rps.
    {**STEADY, "cart": 16, "checkout": 48},
    120.0,
    150.0,
)
"""``cart`` asks for 100 rps (16 callers; ~60 rps measured on the shared machine): ~36
sampled request lines per 60 s window (min_samples 20); ``checkout`` at 10 rps: ~3 sampled
latency samples per 30 s window."""
PULL = Source("pull", 1.0, True, RULES, dict.fromkeys(SERVICES, RPS), STEADY, 150.0, 150.0)
"""Latency in pull mode is Linkerd's per-minute summary: the first whole slow minute can
take two minutes to be served, and as long to be replaced by a healthy one."""
SOURCES = (STATSD_EXACT, PULL, SAMPLED)


@dataclass(frozen=True)
class StoreTarget:
    url: str
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    """What one store's ``meshalert run`` produced in one timeline, for the per-class tests."""

    source: str = ""
    store: str = ""
    deliveries: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    transport_errors: dict[str, int] = field(default_factory=dict)
    worst_p90_s: dict[str, float] = field(default_factory=dict)
    """Per service, the worst 10 s window's p90 of latency as the traffic driver saw it:
    where it passed the rule's 2 s, Linkerd really was slow (the shared machine stalled)."""
    cycles: int = 0
    log_tail: str = ""
    status_during: list[dict[str, Any]] = field(default_factory=list)
    """``meshalert status --json`` at the end of the incidents: value/threshold per class."""
    exact_requests: dict[str, float] = field(default_factory=dict)
    """Linkerd's own cumulative service-scope request counts (outgoing router) at the end."""
    stored_requests: dict[str, tuple[float, float]] = field(default_factory=dict)
    """SQLite only: per service, the stored (count, samples) of outgoing service-scope
    requests over the whole timeline: estimated count and the lines it rests on."""
    duration_s: float = 0.0

    def count(self, alert_class: str, service: str, state: str) -> int:
        return self.deliveries[(alert_class, service, state)]

    def describe(self) -> str:
        return (
            f"source {self.source}, store {self.store}, timeline {self.duration_s:.0f}s\n"
            f"deliveries: {dict(self.deliveries)}\nLinkerd answered: {self.statuses}\n"
            f"transport errors: {self.transport_errors}\ncycles: {self.cycles}\n"
            f"worst 10 s p90 seen by the caller (s): {self.worst_p90_s}\n"
            f"Linkerd's exact outgoing requests: {self.exact_requests}\n"
            f"stored (count, samples): {self.stored_requests}\n"
            "status at the end of the incidents:\n"
            + "\n".join(json.dumps(r, default=str) for r in self.status_during)
            + "\n"
            + self.log_tail
        )


def _deliveries(server: RecordingHttpServer) -> Counter[tuple[str, str, str]]:
    return webhook_deliveries(list(server.requests))


class RealMesh:
    """One Linkerd for the module (a JVM start costs 20-60 s here), restarted only when a
    source needs another ``sampleRate``, with its backends, disco files and statsd fan-out."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.disco = Disco(root / "disco")
        self.fanout = UdpFanout()
        self.backends: list[RecordingHttpServer] = []
        self.ports = {name: [self._backend().port] for name in SERVICES}
        self.ports["ledger"] = [self._backend().port for _ in range(5)]
        self.slow = self._backend(delay=4.0)
        self.failing = self._backend(status=503)
        self.healthy()
        self.linkerd: LinkerdProcess | None = None
        self.starts = 0

    def _backend(self, delay: float = 0.0, status: int = 200) -> RecordingHttpServer:
        server = RecordingHttpServer()
        server.set_default(status, b"ok", delay=delay)
        server.start()
        self.backends.append(server)
        return server

    def healthy(self) -> None:
        for name, service_ports in self.ports.items():
            self.disco.set(name, service_ports)

    def incidents(self) -> None:
        self.disco.set("checkout", [self.slow.port])
        self.disco.set("cart", [free_port()])
        self.disco.set("ledger", self.ports["ledger"][:2])
        self.disco.set("catalog", [self.failing.port])

    def linkerd_at(self, sample_rate: float) -> LinkerdProcess:
        if self.linkerd is not None and self.linkerd.config.sample_rate == sample_rate:
            return self.linkerd
        if self.linkerd is not None:
            self.linkerd.stop()
        self.starts += 1
        config = LinkerdConfig(
            self.disco.root, self.fanout.port, sample_rate=sample_rate, gauge_interval_ms=1000
        )
        self.linkerd = LinkerdProcess(config, self.root / f"l5d-{self.starts}")
        self.linkerd.start()
        # A fresh JVM interprets until its JIT has compiled the request path: for its first
        # seconds every service answered in over 2 s (seen: all six fired latency in the
        # warm-up). Traffic no sidecar sees yet (the fan-out has no target) warms it first.
        warmup = TrafficDriver(self.linkerd, SERVICES, 5.0, dict.fromkeys(SERVICES, 2))
        warmup.start()
        time.sleep(JVM_WARMUP_S)
        warmup.stop()
        return self.linkerd

    def close(self) -> None:
        if self.linkerd is not None:
            self.linkerd.stop()
        self.fanout.close()
        for server in self.backends:
            server.close()


@contextlib.contextmanager
def real_mesh(root: Path) -> Iterator[RealMesh]:
    mesh = RealMesh(root)
    try:
        yield mesh
    finally:
        mesh.close()


@dataclass
class _StoreRun:
    store: str
    run: MeshalertRun
    webhook: RecordingHttpServer
    env: dict[str, str]
    cwd: Path


def run_real_linkerd_scenario(
    mesh: RealMesh, source: Source, stores: Mapping[str, StoreTarget], tmp_path: Path
) -> dict[str, Outcome]:
    """One timeline on ``mesh`` judged by one ``meshalert run`` per store; per store, what
    it delivered."""
    linkerd = mesh.linkerd_at(source.sample_rate)
    mesh.healthy()
    runs: list[_StoreRun] = []
    outcomes = {store: Outcome(source=source.name, store=store) for store in stores}
    driver: TrafficDriver | None = None
    began = time.monotonic()
    try:
        for store, target in stores.items():
            cwd = tmp_path / store
            cwd.mkdir(parents=True, exist_ok=True)
            webhook = RecordingHttpServer()
            webhook.start()
            env = base_env(
                {
                    "MESHALERT_STATSD_LISTEN": "127.0.0.1:0",
                    "MESHALERT_FLUSH_INTERVAL": "1s",
                    "MESHALERT_EVAL_INTERVAL": "2s",
                    "MESHALERT_STORE": target.url,
                    "MESHALERT_STATE": f"sqlite:///{cwd / 'state.db'}",
                    "MESHALERT_SPOOL_DIR": str(cwd / "spool"),
                    "MESHALERT_HOST": "e2e-node",
                    "MESHALERT_RULES": source.rules,
                    "MESHALERT_WEBHOOK_URL": f"{webhook.url}/hooks/meshalert",
                    **({"MESHALERT_LINKERD_ADMIN_URL": linkerd.admin_url} if source.pull else {}),
                    **target.env,
                }
            )
            runs.append(_StoreRun(store, MeshalertRun(env, cwd, "run"), webhook, env, cwd))
        addresses = [r.run.start() for r in runs]
        mesh.fanout.targets = () if source.pull else tuple(addresses)
        time.sleep(2.5)  # pull: the first poll (the baseline) is taken before any traffic
        at_start = _requests(linkerd)
        driver = TrafficDriver(linkerd, SERVICES, source.rps, source.workers)
        driver.start()
        time.sleep(WARMUP_S)

        mesh.incidents()
        firing = {(cls, svc, "firing") for cls, svc in INCIDENTS.items()}
        # A class that does not fire is judged by its own test: wait, don't fail here.
        with contextlib.suppress(AssertionError):
            wait_for(
                lambda: all(firing <= set(_deliveries(r.webhook)) for r in runs),
                source.incident_s,
                "all four firing on every store",
                str,
            )
        for r in runs:
            outcomes[r.store].status_during = _status(r.env, r.cwd)
        mesh.healthy()
        fired = {
            r.store: {(c, s, "resolved") for c, s, st in _deliveries(r.webhook) if st == "firing"}
            for r in runs
        }
        with contextlib.suppress(AssertionError):
            wait_for(
                lambda: all(fired[r.store] <= set(_deliveries(r.webhook)) for r in runs),
                source.resolve_s,
                "resolutions",
                str,
            )
        for r in runs:
            r.run.wait_cycles(3, 30)  # healthy again: nothing more may be sent
    finally:
        exact: dict[str, float] = {}
        if driver is not None:
            driver.stop()
            time.sleep(3.0)  # the last requests' lines sent and flushed, the last poll taken
            with contextlib.suppress(OSError, ValueError):
                at_end = _requests(linkerd)
                exact = {s: at_end[s] - at_start[s] for s in SERVICES}
        mesh.fanout.targets = ()
        for r in runs:
            outcome = outcomes[r.store]
            outcome.duration_s = time.monotonic() - began
            outcome.exact_requests = exact
            if driver is not None:
                outcome.statuses = {s: dict(c) for s, c in driver.statuses.items()}
                outcome.transport_errors = dict(driver.errors)
                outcome.worst_p90_s = {
                    s: round(driver.worst_window_quantile(s, 10.0, 0.9), 2) for s in SERVICES
                }
            outcome.cycles = r.run.cycles()
            outcome.log_tail = r.run.diagnostics()
            r.run.kill()
            outcome.deliveries = _deliveries(r.webhook)
            r.webhook.close()
            url = stores[r.store].url
            if url.startswith("sqlite:///"):
                outcome.stored_requests = stored_requests(Path(url.removeprefix("sqlite:///")))
    return outcomes


def _requests(linkerd: LinkerdProcess) -> dict[str, float]:
    """Linkerd's exact cumulative requests per service (outgoing router, service scope)."""
    metrics = linkerd.metrics()
    return {s: counter_total(metrics, f"rt/outgoing/service/svc/{s}/requests") for s in SERVICES}


def stored_requests(db: Path) -> dict[str, tuple[float, float]]:
    """Per service, ``(sum of count, sum of samples)`` of the outgoing router's service-scope
    ``linkerd_requests`` in a SQLite store."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT s.service, p.field, sum(p.value) FROM points p "
            "JOIN series s ON s.id = p.series_id "
            "WHERE s.measurement = 'linkerd_requests' AND s.scope = 'service' "
            "AND s.router = 'outgoing' AND p.field IN ('count', 'samples') "
            "GROUP BY s.service, p.field"
        ).fetchall()
    out: dict[str, dict[str, float]] = {}
    for service, name, total in rows:
        out.setdefault(short(str(service)), {})[str(name)] = float(total)
    return {s: (v.get("count", 0.0), v.get("samples", 0.0)) for s, v in out.items()}


def _status(env: dict[str, str], cwd: Path) -> list[dict[str, Any]]:
    done = cli(["status", "--json"], env, cwd)
    if done.returncode != 0:
        return [{"status_failed": done.returncode, "stderr": done.stderr[-2000:]}]
    records: list[dict[str, Any]] = json.loads(done.stdout)
    return [r for r in records if short(str(r.get("service"))) in SERVICES]
