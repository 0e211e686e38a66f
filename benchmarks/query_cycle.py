"""One evaluation cycle (4 class queries + observe) over N services, per store.

Data: 5 minutes of 10 s intervals from 2 hosts; per service, host and interval: requests,
total failures, retries, budget exhaustions, 3 latency buckets, and the two load balancer
gauges. Windows as in the default rules (latency/failures/retries 5m, endpoints 1m).

    python3 -m benchmarks.query_cycle [--services 1000,10000] [--stores sqlite,influxdb1]

Prints wall time per cycle (best of 3, after a warm-up; CPU time of this process beside it,
steadier than wall time on a shared machine; influxdb1's work is in the server), queries
issued and peak Python heap (tracemalloc, separate run) and the sizes involved. Target:
10,000 services < 2 s per cycle on SQLite. SQLite is measured twice: windows ending on the
minute, as evaluation cycles do (sums come from per-minute rollups), and ending 25 s off it
("ragged": each sum also reads raw points at both ends). The fill goes through the schema's
rollup triggers, as every write does.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from meshalert.alert_classes import AlertClass
from meshalert.alerts.observe import observe
from meshalert.backends.influxdb1.reader import InfluxDB1WindowReader
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb1.writer import InfluxDB1Writer
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.writer import open_database
from meshalert.histogram import LE_LABELS
from meshalert.queries.model import WindowReader, class_query
from meshalert.queries.sql_schema import TAG_COLUMNS
from tests.fixtures.influxd import INFLUXD, InfluxdServer

END_MS = 1_700_000_400_000
STEP_MS = 10_000
INTERVALS = 30
RAGGED_MS = 25_000
HOSTS = ("node-a", "node-b")
WINDOWS = {
    AlertClass.LATENCY: 300_000,
    AlertClass.FAILURES: 300_000,
    AlertClass.ENDPOINTS: 60_000,
    AlertClass.RETRIES: 300_000,
}
BUCKETS = (LE_LABELS[20], LE_LABELS[28], LE_LABELS[36])

# (measurement, scope, field, extra tags, value function of (service index, interval))
Family = tuple[str, str, str, dict[str, str], Callable[[int, int], float]]
FAMILIES: tuple[Family, ...] = (
    ("linkerd_requests", "service", "count", {}, lambda s, t: 100.0),
    ("linkerd_failures", "service", "count", {}, lambda s, t: float(s % 7)),
    ("linkerd_retries_total", "service", "count", {}, lambda s, t: float(s % 5)),
    ("linkerd_retries_budget_exhausted", "client", "count", {}, lambda s, t: float(s % 2)),
    ("linkerd_loadbalancer_available", "client", "value", {}, lambda s, t: float(10 - s % 4)),
    ("linkerd_loadbalancer_size", "client", "value", {}, lambda s, t: 10.0),
    *tuple(
        (
            "linkerd_request_latency_ms_bucket",
            "service",
            "count",
            {"le": le},
            lambda s, t, k=k: float(30 - 10 * k),
        )
        for k, le in enumerate(BUCKETS)
    ),
)


def series_of(
    services: int,
) -> Iterator[tuple[str, dict[str, str], str, Callable[[int, int], float], int]]:
    for s in range(services):
        for host in HOSTS:
            for measurement, scope, fld, extra, fn in FAMILIES:
                tags = {
                    "host": host,
                    "namespace": f"ns{s % 20}",
                    "service": f"svc-{s}",
                    "scope": scope,
                    **extra,
                }
                yield measurement, tags, fld, fn, s


def fill_sqlite(path: str, services: int) -> int:
    conn = open_database(path)
    rows = 0
    cols = ", ".join(TAG_COLUMNS)
    insert_series = (
        f"INSERT INTO series (id, measurement, tagset, {cols}, tags_json) VALUES "
        f"(?, ?, ?, {', '.join('?' * len(TAG_COLUMNS))}, ?)"
    )
    conn.execute("BEGIN")
    for sid, (measurement, tags, fld, fn, s) in enumerate(series_of(services), start=1):
        tagset = ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
        conn.execute(
            insert_series,
            (sid, measurement, tagset, *(tags.get(c) for c in TAG_COLUMNS), json.dumps(tags)),
        )
        points = [
            (sid, END_MS - (INTERVALS - t) * STEP_MS, fld, fn(s, t)) for t in range(INTERVALS)
        ]
        conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?)", points)
        rows += len(points)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return rows


def fill_influxdb1(config: InfluxDB1Store, services: int) -> int:
    writer = InfluxDB1Writer(config, timeout_s=120)
    batch: list[str] = []
    rows = 0
    for measurement, tags, fld, fn, s in series_of(services):
        head = measurement + "," + ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
        for t in range(INTERVALS):
            batch.append(f"{head} {fld}={fn(s, t)} {END_MS - (INTERVALS - t) * STEP_MS}")
        if len(batch) >= 20_000:
            writer.write(batch)
            rows += len(batch)
            batch = []
    if batch:
        writer.write(batch)
        rows += len(batch)
    writer.close()
    return rows


def cycle(reader: WindowReader, end_ms: int = END_MS) -> tuple[int, int]:
    """One cycle; returns (queries issued, observations)."""
    issued = observations = 0
    for cls, window in WINDOWS.items():
        aggs = reader.fetch(class_query(cls, window_ms=window, end_ms=end_ms))
        issued += aggs.queries_issued
        observations += len(observe(aggs))
    return issued, observations


def measure(
    label: str, services: int, rows: int, reader: WindowReader, end_ms: int = END_MS
) -> None:
    cycle(reader, end_ms)  # warm-up: page cache, connection
    times = []
    cpu = []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        issued, observations = cycle(reader, end_ms)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    tracemalloc.start()
    cycle(reader, end_ms)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"{label:16s} services={services:>6,} points={rows:>9,} cycle={min(times):6.3f}s "
        f"(runs {', '.join(f'{t:.3f}' for t in times)}; cpu {min(cpu):.3f}s) queries={issued} "
        f"observations={observations:,} peak_heap={peak / 2**20:6.1f} MiB",
        flush=True,
    )


def run_sqlite(services: int, tmp: Path) -> None:
    path = str(tmp / f"bench_{services}.db")
    t0 = time.perf_counter()
    rows = fill_sqlite(path, services)
    print(f"sqlite     filled {rows:,} points in {time.perf_counter() - t0:.1f}s", flush=True)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        reader = SqliteWindowReader(conn)
        measure("sqlite", services, rows, reader)
        # Window ends off the minute (tests, the demo's 2 s cycles): raw head and tail too.
        measure("sqlite ragged", services, rows, reader, END_MS - RAGGED_MS)
    finally:
        conn.close()


@contextmanager
def local_influxd(tmp: Path, services: int) -> Iterator[InfluxDB1Store | None]:
    """A throwaway influxd 1.x with a ``bench`` database (None when it is not installed)."""
    if not Path(INFLUXD).exists():
        print(f"influxdb1  skipped: {INFLUXD} not installed")
        yield None
        return
    root = tmp / f"influxd_{services}"
    root.mkdir()
    server = InfluxdServer(root)
    server.start()
    try:
        server.create_database("bench")
        yield InfluxDB1Store(server.url, "bench", None, None, None)
    finally:
        server.stop()


def run_influxdb1(services: int, tmp: Path) -> None:
    with local_influxd(tmp, services) as config:
        if config is None:
            return
        t0 = time.perf_counter()
        rows = fill_influxdb1(config, services)
        print(f"influxdb1  filled {rows:,} points in {time.perf_counter() - t0:.1f}s", flush=True)
        measure("influxdb1", services, rows, InfluxDB1WindowReader(config, timeout_s=300))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", default="1000,10000")
    parser.add_argument("--stores", default="sqlite,influxdb1")
    args = parser.parse_args()
    runners = {"sqlite": run_sqlite, "influxdb1": run_influxdb1}
    with tempfile.TemporaryDirectory(prefix="meshalert-bench-") as tmp:
        for n in (int(x) for x in args.services.split(",")):
            for store in args.stores.split(","):
                runners[store](n, Path(tmp))


if __name__ == "__main__":
    main()
