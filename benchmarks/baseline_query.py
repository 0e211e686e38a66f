"""The retries baseline query (a day of 5-minute buckets) over N services, per store.

Data: one day of 10 s intervals from 2 hosts; per service, host and interval the two ratio
parts (``linkerd_requests`` and ``linkerd_retries_total`` at ``scope=service``), plus the
same day's ``linkerd_failures`` as unrelated load the query must skip.

    python3 -m benchmarks.baseline_query [--services 100,400] \
        [--stores sqlite,influxdb1,influxdb2]

Prints the wall time of one baseline query (best of 3 after a warm-up, CPU time of this
process beside it) and the buckets returned. On InfluxDB 2 it also runs the previous Flux
form (``group`` before ``aggregateWindow``, which InfluxDB cannot push down into storage)
on the same data, and says whether both gave identical buckets. The query runs once per
window length per 15 minutes (the engine's cache), so the budget is loose: well under the
one-minute cycle.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from meshalert.backends.influxdb1.reader import InfluxDB1WindowReader
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb1.writer import InfluxDB1Writer
from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.writer import open_database
from meshalert.queries.baseline import (
    BucketQuery,
    BucketReader,
    BucketResult,
    assemble_buckets,
    baseline_query,
)
from meshalert.queries.baseline_text import render_bucket_flux
from meshalert.queries.sql_schema import TAG_COLUMNS

END_MS = 1_700_000_460_000
STEP_MS = 10_000
INTERVALS = 8_640 + 30  # a day and the current window
HOSTS = ("node-a", "node-b")
MEASUREMENTS = ("linkerd_requests", "linkerd_retries_total", "linkerd_failures")


def series_of(services: int) -> Iterator[tuple[str, dict[str, str], int]]:
    for s in range(services):
        for host in HOSTS:
            for m in MEASUREMENTS:
                tags = {
                    "host": host,
                    "namespace": f"ns{s % 20}",
                    "router": "outgoing",
                    "service": f"svc-{s}",
                }
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


def measure(label: str, services: int, rows: int, reader: BucketReader) -> BucketResult:
    query = baseline_query(300_000, END_MS)
    reader.fetch_buckets(query)  # warm-up
    times, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        result = reader.fetch_buckets(query)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    buckets = sum(len(b) for routers in result.services.values() for b in routers.values())
    print(
        f"{label:10s} services={services:>5,} points={rows:>11,} query={min(times):7.3f}s "
        f"(runs {', '.join(f'{t:.3f}' for t in times)}; cpu {min(cpu):.3f}s) "
        f"services_out={len(result.services):,} buckets={buckets:,}",
        flush=True,
    )
    return result


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


def group_first_flux(query: BucketQuery, *, bucket: str) -> str:
    """The Flux form used before: ``group`` then one ``aggregateWindow`` (kept to measure)."""
    out: list[str] = []
    windowed = False
    for line in render_bucket_flux(query, bucket=bucket).splitlines():
        step = line.strip()
        if step.startswith("from("):
            windowed = False
        if step.startswith("|> group("):
            continue
        if step.startswith("|> aggregateWindow("):
            if windowed:
                continue
            windowed = True
            columns = '["namespace", "service", "router"]'
            out.append(line.replace(step, f"|> group(columns: {columns})"))
        out.append(line)
    return "\n".join(out) + "\n"


class FluxTextReader:
    """Runs a given Flux renderer through the real reader's record parsing."""

    def __init__(self, config: InfluxDB2Store, render: Callable[..., str]) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient

        self._config = config
        self._render = render
        self._client = InfluxDBClient(
            url=config.base_url, token=config.token, org=config.org, timeout=600_000
        )

    def fetch_buckets(self, query: BucketQuery) -> BucketResult:
        from meshalert.backends.influxdb2.reader import bucket_rows_from_records

        text = self._render(query, bucket=self._config.bucket)
        records = self._client.query_api().query_stream(text, org=self._config.org)
        rows = list(bucket_rows_from_records(query, records))
        return assemble_buckets(query, rows, query_text=text)

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


def fill_influxdb2(config: InfluxDB2Store, services: int) -> int:
    from meshalert.backends.influxdb2.writer import InfluxDB2Writer

    writer = InfluxDB2Writer(config, timeout_s=300)
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


@contextmanager
def local_influxd2(tmp: Path, services: int) -> Iterator[InfluxDB2Store | None]:
    """A throwaway InfluxDB 2.7 (``make deps-influxdb2``) with a ``bench`` bucket, or the
    server named by MESHALERT_TEST_INFLUXDB2_*; None when neither is there."""
    from tests.contract.backend_influxdb2 import influxdb2_config
    from tests.fixtures.influxd2 import missing_binary_reason, running_influxd2

    config = influxdb2_config()
    if config is not None:
        yield config
        return
    reason = missing_binary_reason()
    if reason is not None:
        print(f"influxdb2  skipped: {reason}")
        yield None
        return
    with running_influxd2(tmp / f"influxd2_{services}") as server:
        yield server.store(server.create_bucket("bench"))


def run_influxdb2(services: int, tmp: Path) -> None:
    with local_influxd2(tmp, services) as config:
        if config is None:
            return
        t0 = time.perf_counter()
        rows = fill_influxdb2(config, services)
        print(f"influxdb2  filled {rows:,} points in {time.perf_counter() - t0:.1f}s", flush=True)
        results = {}
        for label, render in (
            ("flux-now", render_bucket_flux),
            ("flux-before", group_first_flux),
        ):
            reader = FluxTextReader(config, render)
            try:
                results[label] = measure(label, services, rows, reader)
            finally:
                reader.close()
        same = results["flux-now"].services == results["flux-before"].services
        print(f"influxdb2  identical buckets (now vs before): {same}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--services", default="100,400")
    parser.add_argument("--stores", default="sqlite,influxdb1,influxdb2")
    args = parser.parse_args()
    runners = {"sqlite": run_sqlite, "influxdb1": run_influxdb1, "influxdb2": run_influxdb2}
    with tempfile.TemporaryDirectory() as tmp:
        for count in (int(n) for n in args.services.split(",")):
            for store in args.stores.split(","):
                runners[store](count, Path(tmp))


if __name__ == "__main__":
    main()
