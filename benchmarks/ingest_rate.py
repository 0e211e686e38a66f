"""Loss-free ingest rate of the sidecar against Etsy statsd and collectd's statsd plugin.

    python3 -m benchmarks.ingest_rate [--trial-seconds 1.5]

One compiled sender (``benchmarks/peers/udp_sender.c``, built with gcc at run time: Python
cannot send 1M datagrams/s) replays the same pre-built Linkerd-shaped datagrams (counters,
timers, gauges at Linkerd's 0.01 sample rate) to each receiver in turn, on 127.0.0.1, at 1
and at 20 lines per datagram. For each receiver and size the rate doubles until loss reaches
0.01%, then two bisection steps refine it. Received lines come from each receiver's own
figures: the sidecar's ``sidecar_flush`` logs (``lines``), Etsy's management ``counters``
(``statsd.metrics_received``), and for collectd the csv plugin's cumulative counters
compared with the counter sum sent (value / rate). Peak resident memory is /proc VmHWM.

Peers: Etsy statsd is ``npm install statsd`` into a cache directory (ignored by git),
collectd is Debian's ``collectd-core`` (``apt-get install collectd-core`` if missing).
The whole run is bounded (about 3-4 minutes); receivers run one at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

REPO = Path(__file__).resolve().parents[1]
PEERS = Path(__file__).resolve().parent / "peers"
CACHE = Path(
    os.environ.get("MESHALERT_BENCH_CACHE", Path(tempfile.gettempdir()) / "meshalert-peers")
)
LOSS_LIMIT = 1e-4  # 0.01%
RATE = 0.01
SERVICES = ("nginx", "frontend", "checkout", "users", "payments", "search", "cart", "auth")
_CLIENT = "linkerd.rt.outgoing.client._.io_l5d_k8s.production.http.{svc}"
TEMPLATES = (
    ("linkerd.rt.outgoing.service.svc.{svc}.request_latency_ms:{lat}|ms|@0.010000", "ms"),
    ("linkerd.rt.outgoing.service.svc.{svc}.requests:1|c|@0.010000", "c"),
    ("linkerd.rt.outgoing.service.svc.{svc}.success:1|c|@0.010000", "c"),
    ("linkerd.rt.outgoing.service.svc.{svc}.retries.budget:100|g", "g"),
    (_CLIENT + ".request_latency_ms:{lat}|ms|@0.010000", "ms"),
    (_CLIENT + ".requests:1|c|@0.010000", "c"),
    (_CLIENT + ".received_bytes:1432|c|@0.010000", "c"),
    (_CLIENT + ".loadbalancer.available:3|g", "g"),
    (_CLIENT + ".failures.interrupted.com_twitter_finagle_Failure:1|c|@0.010000", "c"),
    (_CLIENT + ".service.svc.{svc}.request_latency_ms:{lat}|ms|@0.010000", "ms"),
    ("linkerd.rt.incoming.server.0_0_0_0.4141.requests:1|c|@0.010000", "c"),
    ("linkerd.jvm.mem.current.G1_Eden_Space.used:25165824|g", "g"),
)


# --- workload ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    path: Path
    lines: list[int]  # per datagram
    counter_sums: list[float]  # per datagram: sum of value / rate of its counter lines

    def totals(self, datagrams_sent: int) -> tuple[int, float]:
        """(lines, counter sum) of the first ``datagrams_sent`` datagrams, replayed in order."""
        n = len(self.lines)
        rounds, rest = divmod(datagrams_sent, n)
        lines = rounds * sum(self.lines) + sum(self.lines[:rest])
        counters = rounds * sum(self.counter_sums) + sum(self.counter_sums[:rest])
        return lines, counters


def build_workload(directory: Path, per_datagram: int) -> Workload:
    lines: list[tuple[str, float]] = []
    for i in range(20):
        for svc in SERVICES:
            for template, kind in TEMPLATES:
                text = template.format(svc=svc, lat=1 + (i * 37 + len(svc)) % 400)
                value = float(text.split(":")[1].split("|")[0])
                lines.append((text, value / RATE if kind == "c" else 0.0))
    path = directory / f"datagrams-{per_datagram}.bin"
    counts: list[int] = []
    sums: list[float] = []
    with open(path, "wb") as out:
        for start in range(0, len(lines), per_datagram):
            chunk = lines[start : start + per_datagram]
            payload = "\n".join(text for text, _ in chunk).encode()
            out.write(struct.pack("<H", len(payload)) + payload)
            counts.append(len(chunk))
            sums.append(sum(c for _, c in chunk))
    return Workload(path, counts, sums)


def build_sender(directory: Path) -> Path:
    binary = directory / "udp_sender"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(PEERS / "udp_sender.c")], check=True)
    return binary


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


# --- receivers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    lines: float
    peak_rss_kib: int


class Receiver(Protocol):
    name: str

    def start(self, port: int, workdir: Path) -> None: ...

    def finish(self, workload: Workload, datagrams_sent: int) -> Received: ...


class SidecarReceiver:
    name = "meshalert sidecar"

    def start(self, port: int, workdir: Path) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "MESHALERT_STATSD_LISTEN": f"127.0.0.1:{port}",
            "MESHALERT_FLUSH_INTERVAL": "1s",
            "MESHALERT_STORE": f"sqlite:///{workdir / 'bench.db'}",
            "MESHALERT_SPOOL_DIR": str(workdir / "spool"),
        }
        self._events: list[dict[str, object]] = []
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ingest_sidecar"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 20
        while not any(e.get("event") == "sidecar_started" for e in list(self._events)):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sidecar did not start: {self._events[-3:]}")
            time.sleep(0.02)

    def _read(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            with contextlib.suppress(json.JSONDecodeError):
                self._events.append(json.loads(line))

    def finish(self, workload: Workload, datagrams_sent: int) -> Received:
        time.sleep(0.3)  # let the receive thread drain the socket
        rss = peak_rss_kib(self._proc.pid)
        self._proc.send_signal(signal.SIGTERM)
        self._proc.wait(60)
        self._reader.join(5)
        lines = sum(int(str(e["lines"])) for e in self._events if e.get("event") == "sidecar_flush")
        return Received(float(lines), rss)


class EtsyReceiver:
    name = "Etsy statsd"

    def start(self, port: int, workdir: Path) -> None:
        self._mgmt = free_tcp_port()
        config = workdir / "etsy.js"
        config.write_text(
            f"{{port: {port}, address: '127.0.0.1', mgmt_port: {self._mgmt}, "
            "mgmt_address: '127.0.0.1', backends: [], flushInterval: 3600000}"
        )
        self._proc = subprocess.Popen(
            ["node", str(etsy_dir() / "stats.js"), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                self._command("health")
                return
            time.sleep(0.05)
        raise RuntimeError("Etsy statsd did not start")

    def _command(self, command: str) -> str:
        with socket.create_connection(("127.0.0.1", self._mgmt), timeout=5) as conn:
            conn.sendall(command.encode() + b"\n")
            data = b""
            while not data.endswith((b"END\n\n", b"up\n", b"down\n")):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.decode()

    def finish(self, workload: Workload, datagrams_sent: int) -> Received:
        received = 0.0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # node may still be working through its queue
            match = re.search(r"'statsd\.metrics_received': (\d+)", self._command("counters"))
            now = float(match.group(1)) if match else 0.0
            if now == received and now > 0:
                break
            received = now
            time.sleep(0.3)
        rss = peak_rss_kib(self._proc.pid)
        self._proc.terminate()
        self._proc.wait(10)
        return Received(received, rss)


class CollectdReceiver:
    name = "collectd statsd"

    def start(self, port: int, workdir: Path) -> None:
        self._csv = workdir / "csv"
        shutil.rmtree(self._csv, ignore_errors=True)
        config = workdir / "collectd.conf"
        config.write_text(
            f'Interval 0.5\nBaseDir "{workdir}"\nPIDFile "{workdir / "collectd.pid"}"\n'
            'Hostname "bench"\nFQDNLookup false\nLoadPlugin statsd\nLoadPlugin csv\n'
            f'<Plugin statsd>\n  Host "127.0.0.1"\n  Port "{port}"\n</Plugin>\n'
            f'<Plugin csv>\n  DataDir "{self._csv}"\n  StoreRates false\n</Plugin>\n'
        )
        self._proc = subprocess.Popen(
            [collectd_binary(), "-f", "-C", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)

    def finish(self, workload: Workload, datagrams_sent: int) -> Received:
        time.sleep(1.3)  # two read intervals: every counter reaches the csv files
        rss = peak_rss_kib(self._proc.pid)
        self._proc.terminate()
        self._proc.wait(10)
        got = 0.0
        for path in self._csv.glob("*/statsd/derive-*"):
            last = path.read_text().strip().splitlines()[-1]
            got += float(last.split(",")[1])
        lines, counter_sum = workload.totals(datagrams_sent)
        # collectd has no line counter: the share of the counter sum it got stands for all
        return Received(lines * got / counter_sum if counter_sum else 0.0, rss)


def etsy_dir() -> Path:
    target = CACHE / "node_modules" / "statsd"
    if not (target / "stats.js").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(CACHE), "statsd"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return target


def collectd_binary() -> str:
    found = shutil.which("collectd") or (
        "/usr/sbin/collectd" if Path("/usr/sbin/collectd").exists() else None
    )
    if found is None:
        raise RuntimeError("collectd not installed: apt-get install collectd-core")
    return found


# --- the search --------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    rate: float  # achieved lines/s
    loss: float
    rss_kib: int


def run_trial(
    receiver: Receiver,
    *,
    sender: Path,
    workload: Workload,
    lines_per_s: float,
    seconds: float,
    workdir: Path,
) -> Trial:
    port = free_udp_port()
    receiver.start(port, workdir)
    per_datagram = workload.lines[0]
    out = subprocess.run(
        [
            str(sender),
            "127.0.0.1",
            str(port),
            str(workload.path),
            str(lines_per_s / per_datagram),
            str(seconds),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    sent = int(out.stdout.split()[1])
    received = receiver.finish(workload, sent)
    sent_lines, _ = workload.totals(sent)
    loss = max(0.0, 1.0 - received.lines / sent_lines) if sent_lines else 1.0
    return Trial(sent_lines / seconds, loss, received.peak_rss_kib)


def loss_free_rate(
    receiver: Receiver,
    *,
    sender: Path,
    workload: Workload,
    start: float,
    cap: float,
    seconds: float,
    workdir: Path,
) -> tuple[Trial | None, list[Trial]]:
    trials: list[Trial] = []
    good: Trial | None = None
    bad_rate: float | None = None
    rate = start
    while rate <= cap:
        trial = run_trial(
            receiver,
            sender=sender,
            workload=workload,
            lines_per_s=rate,
            seconds=seconds,
            workdir=workdir,
        )
        trials.append(trial)
        if trial.loss >= LOSS_LIMIT:
            bad_rate = rate
            break
        good = trial
        rate *= 2
    while good is None and rate > start / 16:  # not even the start rate was clean: go down
        rate /= 2
        trial = run_trial(
            receiver,
            sender=sender,
            workload=workload,
            lines_per_s=rate,
            seconds=seconds,
            workdir=workdir,
        )
        trials.append(trial)
        if trial.loss < LOSS_LIMIT:
            good = trial
        else:
            bad_rate = rate
    low = good.rate if good else rate / 2
    for _ in range(2 if bad_rate is not None else 0):
        assert bad_rate is not None
        mid = math.sqrt(low * bad_rate)
        trial = run_trial(
            receiver,
            sender=sender,
            workload=workload,
            lines_per_s=mid,
            seconds=seconds,
            workdir=workdir,
        )
        trials.append(trial)
        if trial.loss < LOSS_LIMIT:
            good, low = trial, mid
        else:
            bad_rate = mid
    return good, trials


def main() -> None:
    parser = argparse.ArgumentParser(description="sidecar vs Etsy statsd vs collectd")
    parser.add_argument("--trial-seconds", type=float, default=1.5)
    args = parser.parse_args()
    started = time.monotonic()
    receivers: list[Receiver] = [SidecarReceiver(), EtsyReceiver(), CollectdReceiver()]
    etsy_dir()  # install first, outside the timed trials
    collectd_binary()
    print(
        f"loss-free = highest rate with < {LOSS_LIMIT:.2%} lines lost; "
        f"{args.trial_seconds}s trials on 127.0.0.1; {os.cpu_count()} CPUs shared with "
        "the sender"
    )
    with tempfile.TemporaryDirectory(prefix="ingest-rate-") as tmp:
        workdir = Path(tmp)
        sender = build_sender(workdir)
        results: dict[tuple[str, int], Trial | None] = {}
        for per_datagram, start, cap in ((1, 25_000.0, 1_600_000.0), (20, 100_000.0, 6_400_000.0)):
            workload = build_workload(workdir, per_datagram)
            for receiver in receivers:
                good, trials = loss_free_rate(
                    receiver,
                    sender=sender,
                    workload=workload,
                    start=start,
                    cap=cap,
                    seconds=args.trial_seconds,
                    workdir=workdir,
                )
                results[(receiver.name, per_datagram)] = good
                steps = ", ".join(f"{t.rate / 1e3:.0f}k:{t.loss:.3%}" for t in trials)
                shown = f"{good.rate:>12,.0f} lines/s" if good else "   (none clean)"
                rss = f"{max(t.rss_kib for t in trials) / 1024:6.1f} MiB peak RSS"
                print(
                    f"{per_datagram:>2} line(s)/datagram  {receiver.name:<18} {shown}  {rss}"
                    f"   trials {steps}",
                    flush=True,
                )
        print()
        for per_datagram in (1, 20):
            ours = results[("meshalert sidecar", per_datagram)]
            for peer, target in (("Etsy statsd", 2.0), ("collectd statsd", 0.5)):
                theirs = results[(peer, per_datagram)]
                if ours and theirs:
                    ratio = ours.rate / theirs.rate
                    verdict = "meets" if ratio >= target else "MISSES"
                    print(
                        f"{per_datagram:>2} line(s)/datagram: sidecar / {peer} = {ratio:.2f} "
                        f"(target >= {target}: {verdict})"
                    )
    print(f"benchmark took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
