"""Sidecar CPU beside a real Linkerd 1.7.5 pushing as many requests/s as it can here, with
the statsd telemeter at sampleRate 1.0 (every counter increment and timer observation sent).

    make deps-linkerd && python3 -m benchmarks.linkerd_sidecar [--seconds 40] [--clients 16]

One process each, all on this machine's cores: the sidecar (``python -m ingest_sidecar``,
SQLite store, 10 s flushes), Linkerd (two routers: every request crosses ``outgoing`` and
``incoming``, as in a DaemonSet mesh), an asyncio HTTP backend answering 200 at once, and an
asyncio load generator with ``--clients`` keep-alive connections to the outgoing router.
After a warm-up, the measured phase counts requests exactly from Linkerd's
``/admin/metrics.json`` (outgoing router, service scope) and the sidecar's CPU seconds from
``/proc/<pid>/stat`` (user + system); it prints requests/s, statsd lines/s the sidecar
parsed, and sidecar CPU seconds per 1M Linkerd requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.influxd import free_port  # noqa: E402
from tests.fixtures.linkerd import (  # noqa: E402
    Disco,
    LinkerdConfig,
    LinkerdProcess,
    linkerd_available,
    linkerd_home,
)

_TICKS = os.sysconf("SC_CLK_TCK")

BACKEND = """
import asyncio, sys
RESPONSE = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok"
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            writer.write(RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


async def _client(port: int, host: str, stop_at: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    try:
        while time.monotonic() < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            counts[0] += 1
    finally:
        writer.close()


def load(port: int, host: str, seconds: float, clients: int) -> int:
    counts = [0]

    async def main() -> None:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(_client(port, host, stop_at, counts) for _ in range(clients)))

    asyncio.run(main())
    return counts[0]


def outgoing_requests(linkerd: LinkerdProcess, service: str) -> float:
    return float(linkerd.metrics().get(f"rt/outgoing/service/svc/{service}/requests", 0))


def sidecar_lines(log: Path) -> int:
    total = 0
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"sidecar_flush"' in line:
            total += int(json.loads(line).get("lines", 0))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    if not linkerd_available():
        print(f"Linkerd not built in {linkerd_home()}: run `make deps-linkerd`", file=sys.stderr)
        return 1
    service = "bench"
    with tempfile.TemporaryDirectory(prefix="l5d-bench-") as tmp:
        root = Path(tmp)
        statsd_port = free_port()
        backend_port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MESHALERT_")},
            "PYTHONPATH": str(REPO),
            "MESHALERT_STATSD_LISTEN": f"127.0.0.1:{statsd_port}",
            "MESHALERT_STORE": f"sqlite:///{root / 'bench.db'}",
            "MESHALERT_SPOOL_DIR": str(root / "spool"),
            "MESHALERT_FLUSH_INTERVAL": "10s",
        }
        sidecar_log = root / "sidecar.log"
        with open(sidecar_log, "wb") as log:
            sidecar = subprocess.Popen(
                [sys.executable, "-m", "ingest_sidecar"], env=env, stderr=log, stdout=log
            )
        backend = subprocess.Popen([sys.executable, "-c", BACKEND, str(backend_port)])
        disco = Disco(root / "disco")
        disco.set(service, [backend_port])
        linkerd = LinkerdProcess(
            LinkerdConfig(disco.root, statsd_port, sample_rate=1.0, gauge_interval_ms=10_000),
            root / "l5d",
        )
        try:
            linkerd.start()
            port = linkerd.config.outgoing_port
            load(port, service, args.warmup, args.clients)  # JIT warm-up, not measured
            req0, cpu0, lines0 = outgoing_requests(linkerd, service), cpu_seconds(sidecar.pid), 0
            time.sleep(0.1)
            lines0 = sidecar_lines(sidecar_log)
            began = time.monotonic()
            load(port, service, args.seconds, args.clients)
            elapsed = time.monotonic() - began
            time.sleep(12)  # let the sidecar flush the last interval it received
            requests = outgoing_requests(linkerd, service) - req0
            cpu = cpu_seconds(sidecar.pid) - cpu0
            lines = sidecar_lines(sidecar_log) - lines0
        finally:
            linkerd.stop()
            backend.terminate()
            sidecar.terminate()
            sidecar.wait(timeout=30)
            backend.wait(timeout=10)
    rps = requests / elapsed
    print(f"linkerd requests (outgoing, exact): {requests:.0f} in {elapsed:.1f}s = {rps:.0f}/s")
    print(f"statsd lines parsed by the sidecar: {lines} ({lines / max(requests, 1):.1f}/request)")
    print(f"sidecar CPU: {cpu:.2f}s = {cpu / elapsed * 100:.0f}% of one core")
    print(f"sidecar CPU seconds per 1M Linkerd requests: {cpu / max(requests, 1) * 1e6:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
