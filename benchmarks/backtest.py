"""Backtest over a day of history: bulk-load it, replay it with the engine.

    python3 -m benchmarks.backtest [--services 1000] [--hours 24] [--interval 1m] [--db PATH]
                                   [--profile-cycles N]

History (:mod:`benchmarks.backtest_history`): ``--services`` services on 2 hosts, one flush
every 10 s. Per service, host and flush: ``linkerd_requests`` and the total
``linkerd_failures`` (count, samples), ``linkerd_retries_total``,
``linkerd_retries_budget_exhausted`` (client scope), non-empty latency buckets (two ``le``,
a third during a latency incident), and the load balancer gauges ``available``/``size``
(client scope). Four incidents, one per class, each on its own service for 20 minutes.

The history is written straight into the store's tables (``executemany``, one transaction
per hour, rollup triggers dropped and ``rollup_1m`` rebuilt per hour with the schema's
``ROLLUP_REBUILD_RANGE``): through ``SqliteWriter`` a full day of 1,000 services would take
over an hour. Before that, a small sample is built through ``SqliteWriter``, through the bulk
path and through the bulk path keeping the triggers, and the three stores are asserted equal.

Then :func:`meshalert.backtest.backtest` replays the default rules at ``--interval`` over the
whole history and prints wall and CPU time, cycles, queries issued, notifications and peak
memory (max RSS of the process). ``--db`` keeps the history for a second run (it is reused
when the file already exists); without it the history lives in a temporary directory under
``--tmpdir`` and is deleted. ``--profile-cycles N`` first replays N cycles under cProfile and
prints the top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.backtest_history import START_MS, bulk_load, verify_bulk_load
from meshalert.alerts.model import NotificationKind
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.writer import open_database
from meshalert.backtest import backtest
from meshalert.durations import parse_duration_ms
from meshalert.rules import load_rules


def build(path: str, services: int, hours: float, workdir: str) -> None:
    check = verify_bulk_load(workdir)
    print(
        f"verified   sample of {check.lines:,} lines ({check.points:,} points, "
        f"{check.rollups:,} rollups): SqliteWriter == bulk+triggers == bulk+rebuild; "
        f"writer {check.writer_rate:,.0f} lines/s, bulk with triggers "
        f"{check.trigger_rate:,.0f} rows/s, bulk with rebuild {check.rebuild_rate:,.0f} rows/s",
        flush=True,
    )
    cpu = time.process_time()
    report = bulk_load(path, services, hours, progress=True)
    cpu = time.process_time() - cpu
    size = sum(p.stat().st_size for p in Path(path).parent.glob(Path(path).name + "*")) / 2**20
    print(
        f"history    services={services:,} hours={hours:g} series={report.series:,} "
        f"points={report.points:,} rollups={report.rollups:,} in {report.seconds:.1f}s "
        f"(cpu {cpu:.1f}s, {report.points / report.seconds:,.0f} rows/s, rollup rebuild "
        f"{report.rollup_seconds:.1f}s) db={size:,.0f} MiB",
        flush=True,
    )


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


def profile(path: str, interval_ms: int, cycles: int) -> None:
    """A few cycles an hour into the history under cProfile: where a cycle's time goes."""
    rules = load_rules({}, now_s=0)
    reader = SqliteWindowReader(open_database(path, readonly=True))
    since = START_MS + 3_600_000
    profiler = cProfile.Profile()
    profiler.enable()
    backtest(
        reader,
        rules,
        since_ms=since,
        until_ms=since + cycles * interval_ms,
        interval_ms=interval_ms,
    )
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(30)
    sys.stdout.flush()


def _build_in_child(path: str, services: int, hours: float, workdir: str) -> None:
    """The build runs in a child so the replay's peak RSS is its own (the load uses a
    multi-GiB page cache)."""
    child = multiprocessing.get_context("fork").Process(
        target=build, args=(path, services, hours, workdir)
    )
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit(f"history build failed (exit {child.exitcode})")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"build_rss  {peak:,.0f} MiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--interval", default="1m")
    parser.add_argument("--db", default="", help="keep (or reuse) the history here")
    parser.add_argument("--tmpdir", default=None, help="where the temporary history goes")
    parser.add_argument("--profile-cycles", type=int, default=0)
    args = parser.parse_args()
    interval_ms = parse_duration_ms(args.interval)
    with tempfile.TemporaryDirectory(prefix="meshalert-backtest-", dir=args.tmpdir) as tmp:
        path = args.db or str(Path(tmp) / "history.db")
        if not Path(path).exists():
            _build_in_child(path, args.services, args.hours, tmp)
        if args.profile_cycles:
            profile(path, interval_ms, args.profile_cycles)
        replay(path, args.hours, interval_ms)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak_rss   {peak:,.0f} MiB (replay process)", flush=True)


if __name__ == "__main__":
    main()
