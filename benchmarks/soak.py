"""Soak: ``meshalert run`` under simulated load from many services for several minutes.

    python3 -m benchmarks.soak [--minutes 10] [--services 200]

Starts ``meshalert run`` as a subprocess (embedded SQLite store and state in a temporary
directory, statsd on a free loopback port), sends simulated Linkerd traffic from this
process over real UDP (with the four scripted incidents in the middle of the run), samples
the run's resident memory (VmRSS) and CPU time every ``--sample-every``, then stops it with
SIGTERM and reports memory, evaluation cycle durations and sidecar flush figures parsed from
its JSON logs, and the lines sent.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from meshalert.durations import parse_duration_ms
from meshalert.simulator.sender import SendStats, run_sender
from meshalert.simulator.traffic import (
    LinkerdTraffic,
    TrafficConfig,
    standard_incidents,
    standard_services,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    elapsed_s: float
    rss_kib: int
    cpu_s: float


@dataclass
class Sampler:
    pid: int
    every_s: float
    samples: list[Sample] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        started = time.monotonic()
        while True:
            sample = read_sample(self.pid, time.monotonic() - started)
            if sample is not None:
                self.samples.append(sample)
            if stop.wait(self.every_s):
                return


def read_sample(pid: int, elapsed_s: float) -> Sample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # the process has exited
    rss = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), "0")
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = stat.rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return Sample(round(elapsed_s, 1), int(rss), cpu_s)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_env(workdir: Path, port: int, args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHALERT_")}
    env.update(
        PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        MESHALERT_STATSD_LISTEN=f"127.0.0.1:{port}",
        MESHALERT_FLUSH_INTERVAL=args.flush_interval,
        MESHALERT_EVAL_INTERVAL=args.eval_interval,
        MESHALERT_STORE=f"sqlite:///{workdir / 'meshalert.db'}",
        MESHALERT_STATE=f"sqlite:///{workdir / 'state.db'}",
        MESHALERT_SPOOL_DIR=str(workdir / "spool"),
        MESHALERT_HOST="soak-node",
    )
    return env


def build_traffic(args: argparse.Namespace, duration_s: float) -> LinkerdTraffic:
    services = tuple(
        replace(s, rps=s.rps * args.rps_scale) for s in standard_services(args.services)
    )
    # Long enough for the default rules (for: 2m) to fire, over before the end of the run.
    incidents = standard_incidents(services, duration_s / 5, duration_s / 4)
    return LinkerdTraffic(TrafficConfig(services, incidents), random.Random(args.seed))


def wait_started(proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"meshalert run exited with {proc.returncode}:\n{tail(log_path)}")
        if any(e.get("event") == "meshalert.started" for e in read_events(log_path)):
            return
        time.sleep(0.2)
    raise SystemExit(f"meshalert run did not start in {START_TIMEOUT_S:.0f}s:\n{tail(log_path)}")


def read_events(log_path: Path) -> Iterator[dict[str, Any]]:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written while we read


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: Sequence[float], unit: str) -> str:
    if not values:
        return "none"
    return (
        f"n={len(values)} mean={statistics.fmean(values):.1f}{unit} "
        f"p50={pct(values, 50):.1f}{unit} p95={pct(values, 95):.1f}{unit} "
        f"max={max(values):.1f}{unit}"
    )


def report(
    args: argparse.Namespace,
    *,
    samples: list[Sample],
    events: list[dict[str, Any]],
    sent: SendStats,
    sent_wall_s: float,
    exit_code: int,
) -> None:
    print(
        f"soak: {args.minutes:g} min, {args.services} services, rps x{args.rps_scale:g}, "
        f"flush {args.flush_interval}, eval {args.eval_interval}"
    )
    print(f"meshalert run exit code after SIGTERM: {exit_code}")
    print_memory(samples)
    print_cycles(events)
    print_flushes(events)
    print(
        f"sent: {sent.lines} lines in {sent.datagrams} datagrams ({sent.bytes / 1e6:.1f} MB) "
        f"over {sent_wall_s:.0f}s = {sent.lines / max(sent_wall_s, 1e-9):.0f} lines/s"
    )
    parsed = sum(int(e.get("parsed", 0)) for e in events if e.get("event") == "sidecar_flush")
    lost = sent.lines - parsed
    print(f"lines sent - lines parsed by the sidecar: {lost} ({lost / max(sent.lines, 1):.3%})")
    errors = [e for e in events if e.get("level") in ("error", "critical")]
    print(f"log events: {len(events)}, errors: {len(errors)}")
    for e in errors[:5]:
        print("  error:", json.dumps(e)[:300])


def print_memory(samples: list[Sample]) -> None:
    if not samples:
        print("RSS: no samples")
        return
    first, last = samples[0], samples[-1]
    peak = max(samples, key=lambda s: s.rss_kib)
    print(
        f"RSS: start {first.rss_kib / 1024:.1f} MiB, end {last.rss_kib / 1024:.1f} MiB, "
        f"max {peak.rss_kib / 1024:.1f} MiB at {peak.elapsed_s:.0f}s ({len(samples)} samples)"
    )
    later = [s for s in samples if s.elapsed_s >= last.elapsed_s / 2]
    if len(later) >= 2:
        slope = (later[-1].rss_kib - later[0].rss_kib) / max(
            later[-1].elapsed_s - later[0].elapsed_s, 1e-9
        )
        print(f"RSS slope over the second half: {slope * 60 / 1024:+.2f} MiB/min")
    span = last.elapsed_s - first.elapsed_s
    if span > 0:
        print(f"CPU: {(last.cpu_s - first.cpu_s) / span:.1%} of one core on average")
    print(
        "RSS timeline (s:MiB): "
        + " ".join(
            f"{s.elapsed_s:.0f}:{s.rss_kib / 1024:.0f}"
            for s in samples[:: max(1, len(samples) // 20)]
        )
    )


def print_cycles(events: list[dict[str, Any]]) -> None:
    cycles = [e for e in events if e.get("event") == "evaluation.cycle"]
    per_class: dict[str, list[float]] = defaultdict(list)
    per_cycle: dict[int, float] = defaultdict(float)
    for e in cycles:
        per_class[str(e.get("alert_class"))].append(float(e["duration_ms"]))
        per_cycle[int(e.get("cycle_ms", 0))] += float(e["duration_ms"])
    print(f"evaluation cycles (all four classes): {summary(list(per_cycle.values()), 'ms')}")
    for name, durations in sorted(per_class.items()):
        print(f"  {name:9s} {summary(durations, 'ms')}")
    served = [int(e.get("services_evaluated", 0)) for e in cycles]
    notes = sum(int(e.get("notifications", 0)) for e in cycles)
    print(
        f"  services evaluated per class-cycle max {max(served, default=0)}; "
        f"notifications sent {notes}"
    )
    failed = [e for e in events if e.get("event") == "evaluation.query_failed"]
    if failed:
        print(f"  query failures: {len(failed)}")


def print_flushes(events: list[dict[str, Any]]) -> None:
    flushes = [e for e in events if e.get("event") == "sidecar_flush"]
    if not flushes:
        print("sidecar flushes: none")
        return

    def total(key: str) -> int:
        return sum(int(e.get(key, 0)) for e in flushes)

    print(
        f"sidecar flushes: {len(flushes)}; received {total('received')} datagrams, "
        f"{total('lines')} lines, parsed {total('parsed')}, bad {total('bad')}, "
        f"dropped {total('dropped')}, points {total('points')}, written {total('written')}, "
        f"write errors {total('write_errors')}, dead letters {total('dead_letter_lines')}"
    )
    print(
        f"  series per flush max {max(int(e.get('series', 0)) for e in flushes)}; "
        f"spool bytes max {max(int(e.get('spool_bytes', 0)) for e in flushes)}"
    )
    print(f"  flush_ms {summary([float(e.get('flush_ms', 0)) for e in flushes], 'ms')}")
    print(
        "  write_latency_ms "
        + summary([float(e.get("write_latency_ms", 0)) for e in flushes], "ms")
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python3 -m benchmarks.soak", description=__doc__)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--services", type=int, default=200)
    p.add_argument("--rps-scale", type=float, default=1.0)
    p.add_argument("--flush-interval", default="10s")
    p.add_argument("--eval-interval", default="10s")
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", help="keep the store, state and log in this directory")
    args = p.parse_args(argv)
    for name in ("flush_interval", "eval_interval"):
        parse_duration_ms(getattr(args, name))  # fail here on a bad duration
    return args


def soak(args: argparse.Namespace, workdir: Path) -> int:
    port = free_udp_port()
    log_path = workdir / "run.log"
    duration_s = args.minutes * 60
    with open(log_path, "wb") as log, open(workdir / "console.txt", "wb") as console:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meshalert_cli.main", "run"],
            cwd=workdir,
            env=run_env(workdir, port, args),
            stdout=console,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_started(proc, log_path)
        stop = threading.Event()
        sampler = Sampler(proc.pid, args.sample_every)
        sampling = threading.Thread(target=sampler.run, args=(stop,), daemon=True)
        sampling.start()
        began = time.monotonic()
        sent = run_sender(
            build_traffic(args, duration_s),
            ("127.0.0.1", port),
            duration_s=duration_s,
            gauge_interval_s=10.0,
        )
        sent_wall_s = time.monotonic() - began
        time.sleep(min(5.0, parse_duration_ms(args.flush_interval) / 1000 + 1))
        stop.set()
        sampling.join()
        tail_sample = read_sample(proc.pid, time.monotonic() - began)
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(timeout=STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    samples = sampler.samples + ([tail_sample] if tail_sample else [])
    report(
        args,
        samples=samples,
        events=list(read_events(log_path)),
        sent=sent,
        sent_wall_s=sent_wall_s,
        exit_code=exit_code,
    )
    return 0 if exit_code == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
        return soak(args, workdir)
    with tempfile.TemporaryDirectory(prefix="meshalert-soak-") as tmp:
        return soak(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
