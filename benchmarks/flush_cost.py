"""Cost of the sidecar's aggregation: time per add(), time and memory per flush.

    python3 -m benchmarks.flush_cost [--series 10000] [--intervals 5]

Workload per interval: 50% counters (5 samples each), 30% timers (20 samples each, log-normal
integer latencies at Linkerd's default rate 0.01), 20% gauges (1 sample each), with tags
shaped like the mapped Linkerd names. Timing runs without tracemalloc (it slows allocation
several-fold); a second pass measures memory.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ingest_sidecar.aggregate import FlushResult, IntervalAggregator
from ingest_sidecar.model import MetricKind, SeriesKey
from meshalert.lineprotocol import encode

INTERVAL_MS = 10_000
T0 = 1_700_000_000_000
COUNTER_SAMPLES = 5
TIMER_SAMPLES = 20

Sample = tuple[SeriesKey, MetricKind, float, float]


@dataclass(frozen=True)
class Figures:
    adds: int
    add_s: float
    flush_s: list[float]
    encode_s: float
    points: int
    series: int


class HashCachedKey(SeriesKey):
    """SeriesKey with its hash computed once: measures what the dataclass's per-call tuple
    hash costs add() (a suggestion for ingest_sidecar.model, not what production uses)."""

    __slots__ = ("_hash",)
    _hash: int

    def __init__(self, measurement: str, tags: tuple[tuple[str, str], ...]) -> None:
        super().__init__(measurement, tags)
        object.__setattr__(self, "_hash", hash((measurement, tags)))

    def __hash__(self) -> int:
        return self._hash


def make_keys(n: int, key_type: type[SeriesKey] = SeriesKey) -> list[tuple[SeriesKey, MetricKind]]:
    counters, timers = n * 50 // 100, n * 30 // 100
    keys: list[tuple[SeriesKey, MetricKind]] = []
    for i in range(n):
        tags = (
            ("client", f"#/io.l5d.k8s/ns{i % 20}/http/svc{i}"),
            ("namespace", f"ns{i % 20}"),
            ("router", "outgoing"),
            ("scope", "client"),
            ("service", f"svc{i}"),
        )
        if i < counters:
            keys.append((key_type("linkerd_requests", tags), MetricKind.COUNTER))
        elif i < counters + timers:
            keys.append((key_type("linkerd_request_latency_ms", tags), MetricKind.TIMER))
        else:
            keys.append((key_type("linkerd_loadbalancer_available", tags), MetricKind.GAUGE))
    return keys


def make_interval(keys: list[tuple[SeriesKey, MetricKind]], rng: random.Random) -> list[Sample]:
    samples: list[Sample] = []
    for key, kind in keys:
        if kind is MetricKind.COUNTER:
            samples.extend((key, kind, 1.0, 0.01) for _ in range(COUNTER_SAMPLES))
        elif kind is MetricKind.TIMER:
            samples.extend(
                (key, kind, float(int(rng.lognormvariate(3.0, 0.8))), 0.01)
                for _ in range(TIMER_SAMPLES)
            )
        else:
            samples.append((key, kind, float(rng.randint(0, 10)), 1.0))
    rng.shuffle(samples)  # datagrams arrive interleaved, not series by series
    return samples


def feed(agg: IntervalAggregator, samples: list[Sample]) -> float:
    add = agg.add
    start = time.perf_counter()
    for key, kind, value, rate in samples:
        add(key, kind, value, rate)
    return time.perf_counter() - start


def timed(fn: Callable[[], FlushResult]) -> tuple[FlushResult, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def measure_time(intervals: list[list[Sample]]) -> Figures:
    agg = IntervalAggregator()
    add_s, flush_s, encode_s = 0.0, [], 0.0
    result: FlushResult | None = None
    for i, samples in enumerate(intervals):
        add_s += feed(agg, samples)
        result, seconds = timed(partial(agg.flush, T0 + i * INTERVAL_MS, "node-a"))
        flush_s.append(seconds)
        start = time.perf_counter()
        "\n".join(encode(p) for p in result.points)
        encode_s += time.perf_counter() - start
    assert result is not None
    return Figures(
        adds=sum(len(s) for s in intervals),
        add_s=add_s,
        flush_s=flush_s,
        encode_s=encode_s / len(intervals),
        points=len(result.points),
        series=result.series,
    )


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def measure_memory(intervals: list[list[Sample]]) -> tuple[int, int, int]:
    """(interval state held before flush, tracemalloc peak during flush, RSS delta of flush),
    from the last interval, so the gauges carried over are included."""
    agg = IntervalAggregator()
    for i, samples in enumerate(intervals[:-1]):
        feed(agg, samples)
        agg.flush(T0 + i * INTERVAL_MS, "node-a")
    gc.collect()
    tracemalloc.start()
    before_adds = tracemalloc.get_traced_memory()[0]
    feed(agg, intervals[-1])
    held = tracemalloc.get_traced_memory()[0] - before_adds
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    rss_before = rss_bytes()
    result = agg.flush(T0 + len(intervals) * INTERVAL_MS, "node-a")
    rss_after = rss_bytes()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del result
    return held, peak, rss_after - rss_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--intervals", type=int, default=5)
    args = parser.parse_args()

    rng = random.Random(42)
    keys = make_keys(args.series)
    intervals = [make_interval(keys, rng) for _ in range(args.intervals)]
    figures = measure_time(intervals)
    held, peak, rss_delta = measure_memory(intervals)
    cached_keys = make_keys(args.series, HashCachedKey)
    cached = measure_time([make_interval(cached_keys, random.Random(42)) for _ in intervals])

    mib = 1024 * 1024
    print(
        f"workload: {args.series} series (50% counters x{COUNTER_SAMPLES}, 30% timers "
        f"x{TIMER_SAMPLES}, 20% gauges), {figures.adds // args.intervals} add() per interval, "
        f"{args.intervals} intervals"
    )
    print(
        f"add():  {figures.add_s / figures.adds * 1e9:.0f} ns per call "
        f"({figures.adds / figures.add_s / 1e6:.2f} M samples/s)"
    )
    print(f"add() with a hash-cached SeriesKey: {cached.add_s / cached.adds * 1e9:.0f} ns per call")
    print(
        f"flush(): median {statistics.median(figures.flush_s) * 1e3:.1f} ms, "
        f"max {max(figures.flush_s) * 1e3:.1f} ms; {figures.points} points, "
        f"{figures.series} series per flush"
    )
    print(f"encode() of one flush's points (not part of flush): {figures.encode_s * 1e3:.1f} ms")
    print(
        f"memory: interval state {held / mib:.1f} MiB; flush tracemalloc peak "
        f"{peak / mib:.1f} MiB; flush RSS delta {rss_delta / mib:+.1f} MiB"
    )


if __name__ == "__main__":
    main()
