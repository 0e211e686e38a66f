"""``meshalert simulate``: realistic Linkerd 1.x statsd with scripted incidents, over UDP."""

from __future__ import annotations

import argparse
import random
from typing import Any

from meshalert.simulator.sender import parse_target, run_sender
from meshalert.simulator.traffic import (
    LinkerdTraffic,
    TrafficConfig,
    standard_incidents,
    standard_services,
)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    from meshalert_cli.main import duration_ms

    p = sub.add_parser("simulate", help="send simulated Linkerd statsd traffic to a host:port")
    p.add_argument("--target", default="127.0.0.1:8125", help="statsd host:port")
    p.add_argument("--services", type=int, default=8, help="number of services")
    p.add_argument("--duration", type=duration_ms, default=duration_ms("2m"))
    p.add_argument("--sample-rate", type=float, default=0.1, help="Linkerd's sampleRate")
    p.add_argument("--gauge-interval", type=duration_ms, default=duration_ms("10s"))
    p.add_argument(
        "--incidents-at",
        type=duration_ms,
        default=None,
        help="start of the scripted incidents (latency, failures, endpoints, retries on the "
        "first four services); none when omitted",
    )
    p.add_argument("--incident-length", type=duration_ms, default=duration_ms("1m"))
    p.add_argument("--rps-scale", type=float, default=1.0, help="multiply every service's rps")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(handler=run)


def build_traffic(args: argparse.Namespace) -> LinkerdTraffic:
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
    traffic = build_traffic(args)
    for incident in traffic.config.incidents:
        print(
            f"incident {incident.kind.value:9s} on {incident.service:12s} "
            f"from {incident.start_s:.0f}s to {incident.end_s:.0f}s"
        )
    stats = run_sender(
        traffic,
        parse_target(args.target),
        duration_s=args.duration / 1000,
        gauge_interval_s=args.gauge_interval / 1000,
    )
    print(f"sent {stats.lines} lines in {stats.datagrams} datagrams ({stats.bytes} bytes)")
    return 0
