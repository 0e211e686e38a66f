"""Sends simulated Linkerd statsd over UDP in real time (the I/O edge of the simulator)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from meshalert.simulator.traffic import LinkerdTraffic, pack_datagrams


@dataclass
class SendStats:
    lines: int = 0
    datagrams: int = 0
    bytes: int = 0


def parse_target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"target must be host:port, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def run_sender(
    traffic: LinkerdTraffic,
    target: tuple[str, int],
    *,
    duration_s: float,
    step_s: float = 0.1,
    gauge_interval_s: float = 10.0,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_step: Callable[[float, SendStats], None] | None = None,
) -> SendStats:
    """Send ``duration_s`` seconds of traffic; simulated time 0 is the moment this starts."""
    stats = SendStats()
    stop = stop or threading.Event()
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        start = clock()
        next_gauges = gauge_interval_s  # Linkerd's first gauge flush comes one period late
        t = 0.0
        while t < duration_s and not stop.is_set():
            lines = traffic.requests_step(t, step_s)
            if t >= next_gauges:
                lines += traffic.gauges(t)
                next_gauges += gauge_interval_s
            for datagram in pack_datagrams(lines):
                sock.sendto(datagram, target)
                stats.datagrams += 1
                stats.bytes += len(datagram)
            stats.lines += len(lines)
            t += step_s
            if on_step is not None:
                on_step(t, stats)
            delay = start + t - clock()
            if delay > 0:
                stop.wait(delay)
    return stats
