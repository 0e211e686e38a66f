"""``meshalert simulate``: realistic Linkerd 1.x statsd with scripted incidents, over UDP.

It sends until stopped (Ctrl-C or SIGTERM) unless ``--duration`` is given. Alerts resolve
only while traffic flows: once it stops, every class has no data, and with the default
``no_data: keep`` each alert keeps its last state (a FIRING alert stays FIRING). So stop the
simulator after ``meshalert status`` says all OK, not before.
"""

from __future__ import annotations

import argparse
import math
import random
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

from meshalert.durations import format_duration_ms
from meshalert_cli.arguments import add_command, duration_ms

if TYPE_CHECKING:
    from meshalert.simulator.traffic import LinkerdTraffic

NO_DATA_NOTE = (
    "traffic stopped: from now on every service has no data, and with `no_data: keep` "
    "(the default) each alert keeps its last state until traffic returns"
)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = add_command(
        sub,
        "simulate",
        "send simulated Linkerd statsd traffic, with scripted incidents, until stopped",
        [
            "meshalert simulate --incidents-at 6m   # beside `meshalert run` (after its "
            "5m warm-up); Ctrl-C once `meshalert status` says all OK",
            "meshalert simulate --duration 10m --target 127.0.0.1:9125",
            "meshalert simulate --services 50 --rps-scale 4   # a bigger, busier mesh",
        ],
    )
    p.add_argument(
        "--target", default="127.0.0.1:8125", metavar="HOST:PORT", help="statsd address to send to"
    )
    p.add_argument("--services", type=int, default=8, metavar="N", help="number of services")
    p.add_argument(
        "--duration",
        type=duration_ms,
        default=None,
        metavar="DURATION",
        help="stop after this long (default: run until Ctrl-C or SIGTERM, so alerts can "
        "resolve: with no traffic, `no_data: keep` holds every alert in its last state)",
    )
    p.add_argument(
        "--sample-rate", type=float, default=0.1, metavar="RATE", help="Linkerd's sampleRate"
    )
    p.add_argument(
        "--gauge-interval",
        type=duration_ms,
        default="10s",
        metavar="DURATION",
        help="Linkerd's gaugeIntervalMs, as a duration",
    )
    p.add_argument(
        "--incidents-at",
        type=duration_ms,
        default=None,
        metavar="DURATION",
        help="start of the scripted incidents (latency, failures, endpoints, retries on the "
        "first four services) after the simulator starts (default: no incidents)",
    )
    p.add_argument(
        "--incident-length",
        type=duration_ms,
        default="3m",
        metavar="DURATION",
        help="how long each incident lasts (long enough for every default rule to fire: "
        "endpoints must stay low for its `for: 1m`)",
    )
    p.add_argument(
        "--rps-scale",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="multiply every service's requests per second",
    )
    p.add_argument(
        "--seed", type=int, default=7, metavar="N", help="random seed (same seed, same traffic)"
    )
    p.set_defaults(handler=run)


def clock(seconds: float) -> str:
    """Simulator time as ``6m15s`` (``format_duration_ms`` would say ``375s``)."""
    minutes, secs = divmod(round(seconds), 60)
    if not minutes:
        return f"{secs}s"
    return f"{minutes}m{secs}s" if secs else f"{minutes}m"


def build_traffic(args: argparse.Namespace) -> LinkerdTraffic:
    from meshalert.simulator.traffic import (
        LinkerdTraffic,
        TrafficConfig,
        standard_incidents,
        standard_services,
    )

    services = tuple(
        s.__class__(**{**s.__dict__, "rps": s.rps * args.rps_scale})
        for s in standard_services(args.services)
    )
    incidents = (
        standard_incidents(services, args.incidents_at / 1000, args.incident_length / 1000)
        if args.incidents_at is not None
        else ()
    )
    config = TrafficConfig(services, incidents, sample_rate=args.sample_rate)
    return LinkerdTraffic(config, random.Random(args.seed))


def run(args: argparse.Namespace) -> int:
    from meshalert.simulator.sender import parse_target, run_sender

    traffic = build_traffic(args)
    target = parse_target(args.target)
    for incident in traffic.config.incidents:
        print(
            f"incident {incident.kind.value:9s} on {incident.service:12s} "
            f"from {clock(incident.start_s)} to {clock(incident.end_s)}"
        )
    until = (
        f"for {format_duration_ms(args.duration)}" if args.duration is not None else "until Ctrl-C"
    )
    print(f"sending to {args.target} {until}", flush=True)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    stats = run_sender(
        traffic,
        target,
        duration_s=math.inf if args.duration is None else args.duration / 1000,
        gauge_interval_s=args.gauge_interval / 1000,
        stop=stop,
    )
    print(f"sent {stats.lines} lines in {stats.datagrams} datagrams ({stats.bytes} bytes)")
    print(NO_DATA_NOTE, file=sys.stderr)
    return 0
