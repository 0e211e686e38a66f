"""Micro-benchmark of the sidecar's hot path: statsd parsing, and parsing plus name mapping.

Run: ``python3 -m benchmarks.parse_map``. Prints lines/s for realistic Linkerd 1.x lines,
both one line per datagram and 20 lines per datagram (Linkerd batches under load).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from ingest_sidecar.linkerd_names import NameMapper
from ingest_sidecar.statsd import parse_datagram

_SERVICES = ("nginx", "frontend", "checkout", "users", "payments", "search", "cart", "auth")
_CLIENT = "linkerd.rt.outgoing.client._.io_l5d_k8s.production.http.{svc}"
_LINES = (
    "linkerd.rt.outgoing.service.svc.{svc}.request_latency_ms:12|ms|@0.010000",
    "linkerd.rt.outgoing.service.svc.{svc}.requests:1|c|@0.010000",
    "linkerd.rt.outgoing.service.svc.{svc}.success:1|c|@0.010000",
    "linkerd.rt.outgoing.service.svc.{svc}.retries.budget:100|g",
    _CLIENT + ".request_latency_ms:11|ms|@0.010000",
    _CLIENT + ".requests:1|c|@0.010000",
    _CLIENT + ".received_bytes:1432|c|@0.010000",
    _CLIENT + ".loadbalancer.available:3|g",
    _CLIENT + ".failures.interrupted.com_twitter_finagle_Failure:1|c|@0.010000",
    _CLIENT + ".service.svc.{svc}.request_latency_ms:11|ms|@0.010000",
    "linkerd.rt.incoming.server.0_0_0_0.4141.requests:1|c|@0.010000",
    "linkerd.jvm.mem.current.G1_Eden_Space.used:25165824|g",
)
_ROUNDS = 3
_TARGET_LINES = 200_000


def _lines() -> list[bytes]:
    return [line.format(svc=svc).encode() for svc in _SERVICES for line in _LINES]


def _datagrams(lines: list[bytes], per_datagram: int) -> list[bytes]:
    return [b"\n".join(lines[i : i + per_datagram]) for i in range(0, len(lines), per_datagram)]


def _best_rate(work: Callable[[], int]) -> float:
    best = 0.0
    for _ in range(_ROUNDS):
        start = time.perf_counter()
        done = work()
        best = max(best, done / (time.perf_counter() - start))
    return best


def _parse_only(datagrams: list[bytes]) -> int:
    return sum(len(parse_datagram(data).samples) for data in datagrams)


def _parse_and_map(datagrams: list[bytes], mapper: NameMapper) -> int:
    count = 0
    map_name = mapper.map
    for data in datagrams:
        for sample in parse_datagram(data).samples:
            map_name(sample.name, sample.tags)
            count += 1
    return count


def main() -> None:
    base = _lines()
    lines = base * (_TARGET_LINES // len(base))
    print(f"{len(base)} distinct Linkerd lines, {len(lines)} lines per round, best of {_ROUNDS}")
    for per_datagram in (1, 20):
        datagrams = _datagrams(lines, per_datagram)
        parse_rate = _best_rate(partial(_parse_only, datagrams))
        both_rate = _best_rate(partial(_parse_and_map, datagrams, NameMapper()))
        print(
            f"{per_datagram:>2} line(s)/datagram: parse {parse_rate:>10,.0f} lines/s   "
            f"parse+map {both_rate:>10,.0f} lines/s"
        )
    uncached = [
        f"linkerd.rt.outgoing.client._.io_l5d_k8s.ns{i}.http.svc{i}.requests" for i in range(50_000)
    ]
    mapper = NameMapper()
    start = time.perf_counter()
    for name in uncached:
        mapper.map(name)
    rate = len(uncached) / (time.perf_counter() - start)
    print(f"map, every name new (cache misses): {rate:>10,.0f} names/s")


if __name__ == "__main__":
    main()
