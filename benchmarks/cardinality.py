"""Resident memory of the real sidecar under a cardinality attack.

    python3 -m benchmarks.cardinality [--series 2000000] [--per-flush 100000] [--repo PATH]

Starts ``python -m ingest_sidecar`` (embedded SQLite store, default ``MAX_SERIES``) and
sends ``--series`` distinct counter names over UDP on 127.0.0.1, ``--per-flush`` new names
per flush interval (so the cardinality guard admits them all and every one reaches the
store), 20 lines per datagram. Every few seconds it samples the sidecar's VmRSS; at the end
it waits for the spool to drain and prints peak (VmHWM) and final resident memory, the
series in the store and the lines received (from the sidecar's own ``sidecar_flush`` logs).

``--repo`` runs another checkout's sidecar (e.g. an export of ``main``) for a before/after
comparison with the same sender.

    python3 -m benchmarks.cardinality --direct [--series 300000]

``--direct`` skips UDP (one Python receiver on a shared machine loses most of a 2M-name
flood, so few names reach the store) and drives the embedded store writer itself: every
series once, in 5,000-line batches as the sidecar sends them, sampling this process's RSS.
It measures the writer's caches (series ids, parsed series heads). Run it with
``PYTHONPATH=<other checkout>`` for the before/after comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LINE = "linkerd.rt.outgoing.service.svc.attack-{i}.requests:1|c"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in KiB from /proc (0 once the process is gone)."""
    out = {"VmRSS": 0, "VmHWM": 0}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in out:
            out[key] = int(rest.split()[0])
    return out


class LoggedProcess:
    """A subprocess whose stderr is JSON log lines, collected by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.events: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                self.events.append({"event": "raw", "text": line.rstrip()})

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("event") == event]

    def wait_for(self, event: str, count: int = 1, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.named(event)) < count:
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited: {self.events[-5:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} after {timeout_s}s")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(5)
        return code


def send_burst(address: tuple[str, int], start: int, count: int, seconds: float) -> None:
    """``count`` distinct names, 20 lines a datagram, spread over ``seconds``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        datagrams = [
            "\n".join(LINE.format(i=i) for i in range(j, min(j + 20, start + count))).encode()
            for j in range(start, start + count, 20)
        ]
        began = time.monotonic()
        for n, datagram in enumerate(datagrams):
            sock.sendto(datagram, address)
            if n % 200 == 199:  # pace: the receiver parses every new name the slow way
                lag = began + seconds * (n + 1) / len(datagrams) - time.monotonic()
                if lag > 0:
                    time.sleep(lag)


def direct(series: int) -> int:
    from meshalert.backends.sqlite.writer import SqliteWriter

    root = Path(tempfile.mkdtemp(prefix="meshalert-cardinality-"))
    writer = SqliteWriter.open(str(root / "store.db"))
    pid = os.getpid()
    print(f"direct  series {series:,}  rss_start {proc_status(pid)['VmRSS'] / 1024:.1f} MiB")
    began = time.monotonic()
    for start in range(0, series, 5000):
        writer.write(
            [
                f"linkerd_requests,host=bench,scope=service,service=attack-{i} "
                f"count=1,samples=1i 1700000000000"
                for i in range(start, min(start + 5000, series))
            ]
        )
        done = min(start + 5000, series)
        if done % 50_000 == 0 or done == series:
            status = proc_status(pid)
            print(
                f"written {done:>9,}  rss {status['VmRSS'] / 1024:8.1f} MiB  "
                f"peak {status['VmHWM'] / 1024:8.1f} MiB",
                flush=True,
            )
    writer.close()
    print(f"took {time.monotonic() - began:.0f} s")
    shutil.rmtree(root, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=2_000_000)
    parser.add_argument("--per-flush", type=int, default=100_000)
    parser.add_argument("--flush", default="2s", help="MESHALERT_FLUSH_INTERVAL")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose sidecar runs")
    parser.add_argument("--direct", action="store_true", help="drive the store writer only")
    args = parser.parse_args()
    if args.direct:
        return direct(args.series)
    root = Path(tempfile.mkdtemp(prefix="meshalert-cardinality-"))
    port = free_udp_port()
    db = root / "store.db"
    env = {
        **os.environ,
        "PYTHONPATH": str(args.repo.resolve()),
        "MESHALERT_STATSD_LISTEN": f"127.0.0.1:{port}",
        "MESHALERT_FLUSH_INTERVAL": args.flush,
        "MESHALERT_STORE": f"sqlite:///{db}",
        "MESHALERT_SPOOL_DIR": str(root / "spool"),
        "MESHALERT_HOST": "bench",
    }
    sidecar = LoggedProcess([sys.executable, "-m", "ingest_sidecar"], env)
    sidecar.wait_for("sidecar_started")
    pid = sidecar.proc.pid
    interval_s = float(args.flush.rstrip("s"))
    start_rss = proc_status(pid)["VmRSS"]
    print(f"repo {args.repo.resolve()}  series {args.series:,}  per flush {args.per_flush:,}")
    print(f"rss_start          {start_rss / 1024:8.1f} MiB", flush=True)
    began = time.monotonic()
    sent = 0
    while sent < args.series:
        count = min(args.per_flush, args.series - sent)
        flushes = len(sidecar.named("sidecar_flush"))
        send_burst(("127.0.0.1", port), sent, count, interval_s * 0.8)
        sent += count
        sidecar.wait_for("sidecar_flush", flushes + 1, timeout_s=600)
        status = proc_status(pid)
        print(
            f"sent {sent:>9,}  rss {status['VmRSS'] / 1024:8.1f} MiB  "
            f"peak {status['VmHWM'] / 1024:8.1f} MiB",
            flush=True,
        )
    # Let the writer catch up: the spool drains when every batch is in the store.
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        flushes = sidecar.named("sidecar_flush")
        if flushes and flushes[-1].get("spooled_batches", 1) == 0 and flushes[-1]["lines"] == 0:
            break
        time.sleep(interval_s)
    status = proc_status(pid)
    received = sum(e.get("lines", 0) for e in sidecar.named("sidecar_flush"))
    code = sidecar.stop()
    with sqlite3.connect(db) as conn:
        (series,) = conn.execute(
            "SELECT count(*) FROM series WHERE measurement = 'linkerd_requests'"
        ).fetchone()
    print(f"rss_end            {status['VmRSS'] / 1024:8.1f} MiB")
    print(f"rss_peak (VmHWM)   {status['VmHWM'] / 1024:8.1f} MiB")
    print(f"lines_received     {received:>12,} of {args.series:,} sent")
    print(f"series_in_store    {series:>12,}")
    print(f"took               {time.monotonic() - began:8.0f} s   exit {code}")
    shutil.rmtree(root, ignore_errors=True)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
