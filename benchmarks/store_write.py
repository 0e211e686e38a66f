"""Write throughput of the store adapters and the spool.

    python3 -m benchmarks.store_write [--series 10000] [--fields 12] [--batches 5]

Each batch is one flush: ``--series`` lines of ``--fields`` numeric fields each, Linkerd-shaped
tags, one timestamp, 10 s apart. Figures: SQLite rows/s (first batch creates the series, later
batches hit the id cache; every row also updates its minute's rollup through the schema's
triggers), a resent batch (overwrites: rollups recomputed) and a prune of the first minute,
influxd 1.x points/s when /usr/bin/influxd exists (a private server on a free
port), and spool append+fsync / peek+ack per batch.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ingest_sidecar.spool import Spool
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb1.writer import InfluxDB1Writer
from meshalert.backends.sqlite.writer import SqliteWriter

T0 = 1_699_999_980_000  # on a minute: batches fill whole minutes as a sidecar's flushes do


def make_batch(series: int, fields: int, ts: int) -> list[str]:
    values = ",".join(f"f{j}={j * 1.5}" for j in range(fields))
    return [
        f"linkerd_request_latency_ms,host=node-{i % 20},namespace=ns{i % 7},scope=service,"
        f"service=svc-{i} {values} {ts}"
        for i in range(series)
    ]


def bench_sqlite(root: Path, batches: list[list[str]], fields: int) -> None:
    writer = SqliteWriter.open(str(root / "bench.db"))
    took_all = []
    for n, batch in enumerate(batches):
        label = "new series" if n == 0 else "cached ids"
        took_all.append(_timed_write(writer, batch, fields, f"batch {n} ({label})"))
    steady = sorted(took_all[1:])[len(took_all[1:]) // 2] if len(took_all) > 1 else took_all[0]
    rows = len(batches[0]) * fields
    print(f"sqlite   median cached batch: {steady * 1000:.0f} ms = {rows / steady:,.0f} rows/s")
    # A spooled batch sent again (the store had answered too late): every point overwrites
    # one, so each minute's rollup is recomputed from its points instead of added to.
    _timed_write(writer, batches[len(batches) // 2], fields, "resent batch (overwrites)")
    # Retention prunes at cycle time minus the retention: on a minute, so whole minutes go.
    started = time.perf_counter()
    deleted = writer.prune(T0 + 60_000)
    took = time.perf_counter() - started
    print(f"sqlite   prune: {deleted} rows in {took * 1000:.0f} ms = {deleted / took:,.0f} rows/s")
    writer.close()


def _timed_write(writer: SqliteWriter, batch: list[str], fields: int, label: str) -> float:
    started = time.perf_counter()
    writer.write(batch)
    took = time.perf_counter() - started
    rows = len(batch) * fields
    print(f"sqlite   {label}: {rows} rows in {took * 1000:.0f} ms = {rows / took:,.0f} rows/s")
    return took


def bench_influxd(root: Path, batches: list[list[str]], fields: int) -> None:
    if not os.access("/usr/bin/influxd", os.X_OK):
        print("influxd  skipped: /usr/bin/influxd not installed")
        return
    from tests.fixtures.influxd import InfluxdServer

    server = InfluxdServer(root / "influxd")
    server.start()
    try:
        server.create_database("bench")
        writer = InfluxDB1Writer(InfluxDB1Store(server.url, "bench", None, None, None), 60)
        for n, batch in enumerate(batches):
            started = time.perf_counter()
            writer.write(batch)
            took = time.perf_counter() - started
            points = len(batch) * fields
            print(
                f"influxd  batch {n}: {len(batch)} lines ({points} values) in "
                f"{took * 1000:.0f} ms = {len(batch) / took:,.0f} lines/s"
            )
        writer.close()
    finally:
        server.stop()


def bench_spool(root: Path, batches: list[list[str]]) -> None:
    spool = Spool(str(root / "spool"), 1 << 30)
    started = time.perf_counter()
    for batch in batches:
        spool.append(batch)
    append_s = time.perf_counter() - started
    mib = spool.pending_bytes / (1 << 20)
    started = time.perf_counter()
    while (item := spool.peek()) is not None:
        spool.ack(item.id)
    drain_s = time.perf_counter() - started
    n = len(batches)
    print(
        f"spool    append+fsync: {append_s / n * 1000:.1f} ms/batch ({mib / append_s:.0f} MiB/s); "
        f"peek+ack: {drain_s / n * 1000:.1f} ms/batch"
    )
    small = [["m,host=h v=1 1"] * 10] * 200
    started = time.perf_counter()
    for batch in small:
        spool.append(batch)
        item = spool.peek()
        assert item is not None
        spool.ack(item.id)
    per = (time.perf_counter() - started) / len(small)
    print(f"spool    small batch append+peek+ack (2 fsyncs): {per * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--fields", type=int, default=12)
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    batches = [make_batch(args.series, args.fields, T0 + k * 10_000) for k in range(args.batches)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench_sqlite(root, batches, args.fields)
        bench_influxd(root, batches, args.fields)
        bench_spool(root, batches)


if __name__ == "__main__":
    main()
