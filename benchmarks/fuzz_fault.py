"""Fuzz and fault soak of the real sidecar: hostile datagrams, a full disk, kill -9, a flipped
spool byte; then an account of every line.

    python3 -m benchmarks.fuzz_fault [--datagrams 200000] [--seed 8]

The benchmark re-runs itself in a private mount namespace (``unshare --mount``, mapped root
when not root) and mounts a 2 MiB tmpfs as the spool directory, so it can fill the disk for
real; the SQLite store lives outside it. Phases, each against ``python -m ingest_sidecar``:

1. fuzz: ``--datagrams`` datagrams mixing known-good counters (``good-0..9``), crafted
   lines (``/`` and shell quotes and ESC in names, ``1e308``, ``@1e-320``, ``|s``/``|ms``
   with a counter's name, huge and empty lines, invalid UTF-8), random bytes, byte-flipped
   good lines and fresh names (cardinality);
2. disk full: a ballast file fills the tmpfs for 3 s of traffic, then is removed;
3. store locked + kill -9: an exclusive SQLite lock holds the store so batches pile up in
   the spool, the sidecar is killed, one byte of the last spooled batch is flipped, and the
   sidecar restarts on the same spool and store;
4. more good traffic, then SIGTERM.

Printed: datagrams sent and received, crashes (unexpected exits, flush or writer
exceptions), RSS before and after the fuzz, and the line accounts: line-protocol lines the
flushes produced, the points in the store, the lines lost (produced - stored) and the lines
the sidecar counted as lost (spool drops, damaged lines, dead-letter); the two must match.
Then the good counters sent vs stored: statsd lines of the disk-full intervals are lost
inside the (counted) line-protocol lines that carried them, and the interval received but
not yet flushed at kill -9 is lost uncounted, by design.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.cardinality import LoggedProcess, free_udp_port, proc_status

REPO = Path(__file__).resolve().parents[1]
GOOD = "linkerd.rt.outgoing.service.svc.good-{n}.requests:1|c"
_IN_NAMESPACE = "MESHALERT_FUZZ_IN_NAMESPACE"


def crafted(rng: random.Random) -> bytes:
    n = rng.randrange(10)
    good_name = f"linkerd.rt.outgoing.service.svc.good-{n}.requests"
    choices = [
        "linkerd.rt.out.service.svc.a/b/c.requests:1|c",
        "linkerd.rt.outgoing.service.svc.x'$(touch${IFS}pwned)'.requests:1|c",
        "linkerd.rt.outgoing.service.svc.\x1b[31mred\x1b[0m.requests:1|c",
        f"{good_name}:1|c|@1e-320",
        "linkerd.rt.outgoing.service.svc.huge.requests:1e308|c",
        f"{good_name}:7|s",
        f"{good_name}:5|ms",
        f"{good_name}:NaN|c",
        "linkerd.rt.outgoing.service.svc.big.request_latency_ms:1e308|ms",
        "linkerd.rt.outgoing.service.svc.big.request_latency_ms:-1e308|ms",
        ":1|c",
        "x" * rng.randrange(1, 60000) + ":1|c",
        "\n" * rng.randrange(1, 50),
        f"fresh.{rng.randrange(10**9)}:1|g",
        "a:1|c|@0|#k:v,,:x",
        "a:1|c|#" + ",".join(f"t{i}:{i}" for i in range(200)),
    ]
    line = rng.choice(choices)
    data = line.encode("utf-8", "surrogateescape")
    if rng.random() < 0.1:
        data += b"\xff\xfe\n" + data
    return data


def mutated(rng: random.Random) -> bytes:
    # Not a good-N name: a flipped digit would change the good counters' known totals.
    data = bytearray(GOOD.replace("good-", "mutant-").format(n=rng.randrange(10)).encode())
    for _ in range(rng.randrange(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


class Run:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.spool = root / "spool"
        self.db = root / "store.db"
        self.processes: list[LoggedProcess] = []
        self.sent_datagrams = 0
        self.good_sent = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def start(self) -> LoggedProcess:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "MESHALERT_STATSD_LISTEN": f"127.0.0.1:{self.port}",
            "MESHALERT_FLUSH_INTERVAL": "500ms",
            "MESHALERT_STORE": f"sqlite:///{self.db}",
            "MESHALERT_SPOOL_DIR": str(self.spool),
            "MESHALERT_SPOOL_MAX_BYTES": "1MiB",
            "MESHALERT_DEAD_LETTER_MAX_BYTES": "256KiB",
            "MESHALERT_HOST": "fuzz",
        }
        process = LoggedProcess([sys.executable, "-m", "ingest_sidecar"], env)
        process.wait_for("sidecar_started")
        self.processes.append(process)
        return process

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendto(data, ("127.0.0.1", self.port))
        except OSError:
            return  # a datagram too large for UDP never left: not counted as sent
        self.sent_datagrams += 1

    def good(self, count: int, pause_every: int = 50) -> None:
        for i in range(count):
            self.send(GOOD.format(n=i % 10).encode())
            self.good_sent += 1
            if i % pause_every == pause_every - 1:
                time.sleep(0.002)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for p in self.processes for e in p.named(name)]


def fill(directory: Path) -> Path:
    ballast = directory / "ballast"
    with open(ballast, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            return ballast


def flip_byte(spool: Path) -> str:
    """Flip one byte 40 bytes before the end of the newest segment: inside the last batch
    that piled up while the store was locked (no acks happen then)."""
    segments = sorted(spool.glob("segment-*.spool"))
    segments = [p for p in segments if p.stat().st_size >= 200]
    if not segments:
        return "no spooled segment to damage"
    target = segments[-1]
    data = bytearray(target.read_bytes())
    at = len(data) - 40
    data[at] ^= 0x20
    target.write_bytes(bytes(data))
    return f"flipped byte {at} of {target.name} ({len(data)} bytes)"


def distinct_points(db: Path) -> int:
    """Points in the store: (series, timestamp) pairs; a replayed line overwrites its own."""
    with sqlite3.connect(db) as conn:
        query = "SELECT count(*) FROM (SELECT DISTINCT series_id, ts FROM points)"
        return int(conn.execute(query).fetchone()[0])


def good_stored(db: Path) -> float:
    with sqlite3.connect(db) as conn:
        (total,) = conn.execute(
            "SELECT coalesce(sum(p.value), 0) FROM points p JOIN series s ON s.id = p.series_id "
            "WHERE s.measurement = 'linkerd_requests' AND s.service LIKE 'good-%' "
            "AND p.field = 'count'"
        ).fetchone()
    return float(total)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datagrams", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    if not os.environ.get(_IN_NAMESPACE):
        flags = ["--mount"] if os.geteuid() == 0 else ["--mount", "--map-root-user"]
        unshare = shutil.which("unshare") or "/usr/bin/unshare"
        env = {**os.environ, _IN_NAMESPACE: "1"}
        argv = [unshare, *flags, sys.executable, "-m", "benchmarks.fuzz_fault", *sys.argv[1:]]
        return subprocess.call(argv, env=env, cwd=REPO)

    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="meshalert-fuzz-"))
    run = Run(root, free_udp_port())
    run.spool.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(run.spool)], check=True)
    began = time.monotonic()
    crashes: list[str] = []

    # 1. fuzz
    sidecar = run.start()
    run.good(500)
    time.sleep(1.0)
    rss_before = proc_status(sidecar.proc.pid)
    for i in range(args.datagrams):
        roll = rng.random()
        if roll < 0.3:
            run.good(1)
        elif roll < 0.6:
            run.send(crafted(rng))
        elif roll < 0.8:
            run.send(mutated(rng))
        else:
            run.send(rng.randbytes(rng.randrange(1, 1400)))
        if i % 100 == 99:
            time.sleep(0.003)  # a loopback sender outruns one Python receiver
    time.sleep(1.5)
    rss_after = proc_status(sidecar.proc.pid)
    if sidecar.proc.poll() is not None:
        crashes.append(f"exited during fuzz: {sidecar.proc.returncode}")
        sidecar = run.start()

    # 2. disk full
    ballast = fill(run.spool)
    run.good(3000, pause_every=10)
    time.sleep(1.5)
    ballast.unlink()
    run.good(500)
    time.sleep(1.5)

    # 3. store locked, kill -9, flipped byte, restart
    lock = sqlite3.connect(run.db, timeout=30, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    run.good(2000, pause_every=10)
    time.sleep(2.0)
    if sidecar.proc.poll() is not None:
        crashes.append(f"exited before kill -9: {sidecar.proc.returncode}")
    sidecar.proc.kill()
    sidecar.proc.wait()
    damage = flip_byte(run.spool)
    lock.execute("ROLLBACK")
    lock.close()
    sidecar = run.start()

    # 4. more traffic, then stop
    run.good(500)
    time.sleep(2.0)
    code = sidecar.stop()
    if code != 0:
        crashes.append(f"exit {code} on SIGTERM")
    crashes += [
        f"flush_failed: {e.get('exception', '')[-200:]}" for e in run.events("flush_failed")
    ]
    crashes += [f"store_writer_error: {e.get('error')}" for e in run.events("store_writer_error")]

    totals: dict[str, int] = run.events("sidecar_stopped")[-1]["totals"]
    produced = sum(e["points"] for e in run.events("sidecar_flush"))
    stored = distinct_points(run.db)
    counted = {
        k: totals.get(k, 0)
        for k in ("spool_dropped_lines", "spool_corrupt_lines", "dead_letter_lines")
    }
    stored_good = good_stored(run.db)
    print(f"datagrams_sent        {run.sent_datagrams:>12,}")
    print(f"datagrams_received    {totals.get('received', 0):>12,}  (flushed intervals)")
    print(f"lines_received        {totals.get('lines', 0):>12,}  bad {totals.get('bad', 0):,}")
    refused = ("rejected_samples", "invalid_samples", "nonfinite_samples", "type_clash_samples")
    print("samples_refused       " + "  ".join(f"{k}={totals.get(k, 0):,}" for k in refused))
    print(f"crashes               {len(crashes):>12}")
    for crash in crashes[:10]:
        print(f"  {crash}")
    print(f"rss_before_fuzz       {rss_before['VmRSS'] / 1024:12.1f} MiB")
    peak = rss_after["VmHWM"] / 1024
    print(f"rss_after_fuzz        {rss_after['VmRSS'] / 1024:12.1f} MiB  (peak {peak:.1f})")
    print(f"damage                {damage}")
    print(f"lp_lines_produced     {produced:>12,}  (line-protocol lines the flushes handed over)")
    print(f"lp_lines_stored       {stored:>12,}  (points in the store)")
    print(f"lp_lines_written      {totals.get('written_lines', 0):>12,}  (writer's count)")
    print(f"lp_lines_lost         {produced - stored:>12,}")
    print(
        "lp_lines_counted      "
        + f"{sum(counted.values()):>12,}  "
        + "  ".join(f"{k}={v:,}" for k, v in counted.items())
    )
    print(f"spool_write_failures  {totals.get('spool_write_failures', 0):>12,}")
    print(f"good_counter_sent     {run.good_sent:>12,}")
    print(f"good_counter_stored   {stored_good:>12,.0f}")
    print(f"took                  {time.monotonic() - began:12.0f} s")
    if os.environ.get("MESHALERT_FUZZ_DEBUG"):
        print(totals)
    subprocess.run(["umount", str(run.spool)], check=False)
    shutil.rmtree(root, ignore_errors=True)
    lost = produced - stored
    balanced = lost == sum(counted.values())
    print(f"accounts_balance      {'yes' if balanced else 'NO'}")
    return 1 if crashes or not balanced else 0


if __name__ == "__main__":
    sys.exit(main())
