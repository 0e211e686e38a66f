"""Backtest over a day of history: build it with SqliteWriter, replay it with the engine.

    python3 -m benchmarks.backtest [--services 1000] [--hours 24] [--interval 1m] [--db PATH]

History: ``--services`` services on 2 hosts, one flush every 10 s, written as line protocol
through :class:`SqliteWriter` (one transaction per flush of both hosts, as the sidecars would).
Per service, host and flush: ``linkerd_requests`` and the total ``linkerd_failures``
(count, samples), ``linkerd_retries_total``, ``linkerd_retries_budget_exhausted`` (client
scope), three non-empty latency buckets, and the load balancer gauges ``available``/``size``
(client scope). Four incidents, one per class, each on its own service for 20 minutes.

Then :func:`meshalert.backtest.backtest` replays the default rules at ``--interval`` over the
whole history and prints wall and CPU time, cycles, queries issued, notifications and peak
memory (max RSS of the process). ``--db`` keeps the history for a second run (it is reused
when the file already exists).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from meshalert.alerts.model import AlertClass, NotificationKind
from meshalert.backtest import backtest
from meshalert.durations import parse_duration_ms
from meshalert.histogram import LE_LABELS
from meshalert.rules import load_rules
from meshalert.stores.sqlite_reader import SqliteWindowReader
from meshalert.stores.sqlite_store import SqliteWriter, open_database

START_MS = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000
FLUSH_MS = 10_000
HOSTS = ("node-a", "node-b")
FAST, MEDIUM, SLOW = LE_LABELS[20], LE_LABELS[28], LE_LABELS[44]
INCIDENT_MS = 20 * 60_000


@dataclass(frozen=True)
class Incident:
    alert_class: AlertClass
    service: int
    start_ms: int

    def active(self, ts: int) -> bool:
        return self.start_ms <= ts < self.start_ms + INCIDENT_MS


def incidents(services: int, hours: float) -> tuple[Incident, ...]:
    span = int(hours * 3_600_000)
    return tuple(
        Incident(cls, (k * 7 + 3) % services, START_MS + span * (k + 1) // 5)
        for k, cls in enumerate(AlertClass)
    )


def flush_lines(services: int, ts: int, active: dict[int, AlertClass]) -> Iterator[str]:
    """Every line of one 10 s flush of both hosts."""
    for s in range(services):
        incident = active.get(s)
        svc = f"namespace=ns{s % 20},scope=service,service=svc-{s}"
        client = f"namespace=ns{s % 20},scope=client,service=svc-{s}"
        requests = 50 + (s * 31 + ts // FLUSH_MS) % 50
        failures = requests // 2 if incident is AlertClass.FAILURES else (s + ts) % 2
        retries = requests // 2 if incident is AlertClass.RETRIES else (s + ts) % 3
        exhausted = 3 if incident is AlertClass.RETRIES else 0
        available = 2 if incident is AlertClass.ENDPOINTS else 10
        slow = requests // 4 if incident is AlertClass.LATENCY else 0
        for host in HOSTS:
            yield f"linkerd_requests,host={host},{svc} count={requests},samples={requests}i {ts}"
            yield f"linkerd_failures,host={host},{svc} count={failures},samples=1i {ts}"
            yield f"linkerd_retries_total,host={host},{svc} count={retries},samples=1i {ts}"
            yield (
                f"linkerd_retries_budget_exhausted,host={host},{client} "
                f"count={exhausted},samples=1i {ts}"
            )
            yield f"linkerd_loadbalancer_available,host={host},{client} value={available} {ts}"
            yield f"linkerd_loadbalancer_size,host={host},{client} value=10 {ts}"
            bucket = f"linkerd_request_latency_ms_bucket,host={host},{svc}"
            yield f"{bucket},le={FAST} count={requests - slow - 2} {ts}"
            yield f"{bucket},le={MEDIUM} count=2 {ts}"
            if slow:
                yield f"{bucket},le={SLOW} count={slow} {ts}"


def build_history(path: str, services: int, hours: float) -> tuple[int, float]:
    """Writes the history; returns (lines written, seconds)."""
    writer = SqliteWriter.open(path)
    planned = incidents(services, hours)
    lines = 0
    started = time.perf_counter()
    end = START_MS + int(hours * 3_600_000)
    try:
        for ts in range(START_MS, end, FLUSH_MS):
            active = {i.service: i.alert_class for i in planned if i.active(ts)}
            batch = list(flush_lines(services, ts, active))
            writer.write(batch)
            lines += len(batch)
    finally:
        writer.close()
    return lines, time.perf_counter() - started


def replay(path: str, hours: float, interval_ms: int) -> None:
    rules = load_rules({}, now_s=0)
    reader = SqliteWindowReader(open_database(path, readonly=True))
    since = START_MS
    until = START_MS + int(hours * 3_600_000)
    wall, cpu = time.perf_counter(), time.process_time()
    result = backtest(reader, rules, since_ms=since, until_ms=until, interval_ms=interval_ms)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    notes = result.notifications
    firing = sorted(
        {(n.alert_class.value, n.service) for n in notes if n.kind is NotificationKind.FIRING}
    )
    print(
        f"backtest   cycles={result.cycles:,} queries={result.queries_issued:,} "
        f"wall={wall:.1f}s cpu={cpu:.1f}s per_cycle={wall / max(result.cycles, 1):.3f}s "
        f"notifications={len(notes)} fired={firing}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--interval", default="1m")
    parser.add_argument("--db", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshalert-backtest-") as tmp:
        path = args.db or str(Path(tmp) / "history.db")
        if not Path(path).exists():
            lines, seconds = build_history(path, args.services, args.hours)
            size = Path(path).stat().st_size / 2**20
            print(
                f"history    services={args.services:,} hours={args.hours:g} lines={lines:,} "
                f"in {seconds:.1f}s ({lines / seconds:,.0f} lines/s) db={size:,.0f} MiB",
                flush=True,
            )
        replay(path, args.hours, parse_duration_ms(args.interval))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak_rss   {peak:,.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
