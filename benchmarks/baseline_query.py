"""The retries baseline query (a day of 5-minute buckets) over N services, per store.

Data: one day of 10 s intervals from 2 hosts; per service, host and interval the two ratio
parts (``linkerd_requests`` and ``linkerd_retries_total`` at ``scope=service``), plus the
same day's ``linkerd_failures`` as unrelated load the query must skip.

    python3 -m benchmarks.baseline_query [--services 100,400] [--stores sqlite,influxdb1]

Prints the wall time of one baseline query (best of 3 after a warm-up, CPU time of this
process beside it) and the buckets returned. It runs once per window length per 15 minutes
(the engine's cache), so the budget is loose: well under the one-minute cycle.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from meshalert.queries.baseline import BucketReader, baseline_query
from meshalert.store_url import InfluxDB1Store
from meshalert.stores.influxdb1_reader import InfluxDB1WindowReader
from meshalert.stores.influxdb1_writer import InfluxDB1Writer
from meshalert.stores.sqlite_reader import SqliteWindowReader
from meshalert.stores.sqlite_schema import TAG_COLUMNS
from meshalert.stores.sqlite_store import open_database

END_MS = 1_700_000_460_000
STEP_MS = 10_000
INTERVALS = 8_640 + 30  # a day and the current window
HOSTS = ("node-a", "node-b")
MEASUREMENTS = ("linkerd_requests", "linkerd_retries_total", "linkerd_failures")


def series_of(services: int) -> Iterator[tuple[str, dict[str, str], int]]:
    for s in range(services):
        for host in HOSTS:
            for m in MEASUREMENTS:
                tags = {"host": host, "namespace": f"ns{s % 20}", "service": f"svc-{s}"}
                yield m, {**tags, "scope": "service"}, s


def _value(measurement: str, s: int, t: int) -> float:
    return 100.0 if measurement == "linkerd_requests" else float((s + t) % 9)


def _times() -> range:
    return range(END_MS - INTERVALS * STEP_MS, END_MS, STEP_MS)


def fill_sqlite(path: str, services: int) -> int:
    conn = open_database(path)
    cols = ", ".join(TAG_COLUMNS)
    insert_series = (
        f"INSERT INTO series (id, measurement, tagset, {cols}, tags_json) VALUES "
        f"(?, ?, ?, {', '.join('?' * len(TAG_COLUMNS))}, ?)"
    )
    rows = 0
    conn.execute("BEGIN")
    for sid, (m, tags, s) in enumerate(series_of(services), start=1):
        tagset = ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
        conn.execute(
            insert_series, (sid, m, tagset, *(tags.get(c) for c in TAG_COLUMNS), json.dumps(tags))
        )
        points = [(sid, ts, "count", _value(m, s, t)) for t, ts in enumerate(_times())]
        conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?)", points)
        rows += len(points)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return rows


def fill_influxdb1(config: InfluxDB1Store, services: int) -> int:
    writer = InfluxDB1Writer(config, timeout_s=300)
    rows = 0
    batch: list[str] = []
    for m, tags, s in series_of(services):
        head = m + "," + ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
        batch += [f"{head} count={_value(m, s, t)} {ts}" for t, ts in enumerate(_times())]
        if len(batch) >= 50_000:
            writer.write(batch)
            rows, batch = rows + len(batch), []
    if batch:
        writer.write(batch)
        rows += len(batch)
    writer.close()
    return rows


def measure(label: str, services: int, rows: int, reader: BucketReader) -> None:
    query = baseline_query(300_000, END_MS)
    reader.fetch_buckets(query)  # warm-up
    times, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        result = reader.fetch_buckets(query)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    buckets = sum(len(b) for b in result.services.values())
    print(
        f"{label:10s} services={services:>5,} points={rows:>11,} query={min(times):7.3f}s "
        f"(runs {', '.join(f'{t:.3f}' for t in times)}; cpu {min(cpu):.3f}s) "
        f"services_out={len(result.services):,} buckets={buckets:,}",
        flush=True,
    )


def run_sqlite(services: int, tmp: Path) -> None:
    path = str(tmp / f"baseline_{services}.db")
    t0 = time.perf_counter()
    rows = fill_sqlite(path, services)
    print(f"sqlite     filled {rows:,} points in {time.perf_counter() - t0:.1f}s", flush=True)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        measure("sqlite", services, rows, SqliteWindowReader(conn))
    finally:
        conn.close()


def run_influxdb1(services: int, tmp: Path) -> None:
    from benchmarks.query_cycle import local_influxd

    with local_influxd(tmp, services) as config:
        if config is None:
            return
        t0 = time.perf_counter()
        rows = fill_influxdb1(config, services)
        print(f"influxdb1  filled {rows:,} points in {time.perf_counter() - t0:.1f}s", flush=True)
        measure("influxdb1", services, rows, InfluxDB1WindowReader(config, timeout_s=300))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--services", default="100,400")
    parser.add_argument("--stores", default="sqlite,influxdb1")
    args = parser.parse_args()
    runners = {"sqlite": run_sqlite, "influxdb1": run_influxdb1}
    with tempfile.TemporaryDirectory() as tmp:
        for count in (int(n) for n in args.services.split(",")):
            for store in args.stores.split(","):
                runners[store](count, Path(tmp))


if __name__ == "__main__":
    main()
