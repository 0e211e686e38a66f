"""Known statsd traffic, a paced UDP sender and store read-backs for the sidecar tests."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass, field

SERVICES = ("nginx", "checkout", "users")
COUNTER = "linkerd.rt.outgoing.service.svc.{svc}.requests:{v}|c|@{rate}"
TIMER = "linkerd.rt.outgoing.service.svc.{svc}.request_latency_ms:{v}|ms|@{rate}"
GAUGE = "linkerd.rt.outgoing.client._.io_l5d_k8s.production.http.{svc}.loadbalancer.available:{v}|g"
BAD = ("no colon here|c", "x:1|q", "y:abc|c", "z:1|c|@2", "w:NaN|g")


@dataclass
class Sent:
    """What was sent: counter totals after rate scaling, timer counts, last gauge values."""

    counter_total: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    timer_count: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    last_gauge: dict[str, float] = field(default_factory=dict)
    lines: int = 0
    bad: int = 0


def traffic_round(i: int, sent: Sent, *, with_bad: bool = False) -> list[str]:
    """One round of lines for every service; updates ``sent``."""
    lines = []
    for n, svc in enumerate(SERVICES):
        rate = (1.0, 0.5, 0.25)[n]
        value = 1 + (i + n) % 3
        lines.append(COUNTER.format(svc=svc, v=value, rate=f"{rate:f}"))
        sent.counter_total[svc] += value / rate
        lines.append(TIMER.format(svc=svc, v=10 + i % 50, rate=f"{rate:f}"))
        sent.timer_count[svc] += 1 / rate
        gauge = float((i * 7 + n) % 11)
        lines.append(GAUGE.format(svc=svc, v=int(gauge)))
        sent.last_gauge[svc] = gauge
    if with_bad:
        lines.append(BAD[i % len(BAD)])
        sent.bad += 1
    sent.lines += len(lines)
    return lines


def send_rounds(
    address: tuple[str, int],
    rounds: range,
    sent: Sent,
    *,
    per_datagram: int = 5,
    pause_s: float = 0.002,
    with_bad: bool = False,
) -> None:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        pending: list[str] = []
        for i in rounds:
            pending.extend(traffic_round(i, sent, with_bad=with_bad))
            while len(pending) >= per_datagram:
                chunk, pending = pending[:per_datagram], pending[per_datagram:]
                sock.sendto("\n".join(chunk).encode(), address)
            time.sleep(pause_s)
        if pending:
            sock.sendto("\n".join(pending).encode(), address)


def sqlite_sum(db: str, measurement: str, field_name: str, **tags: str) -> float:
    where = "".join(f" AND s.{k} = ?" for k in tags)
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(p.value), 0) FROM points p JOIN series s ON s.id = p.series_id "
            f"WHERE s.measurement = ? AND p.field = ?{where}",
            (measurement, field_name, *tags.values()),
        ).fetchone()
    return float(row[0])


def sqlite_latest(db: str, measurement: str, field_name: str, **tags: str) -> float | None:
    where = "".join(f" AND s.{k} = ?" for k in tags)
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT p.value FROM points p JOIN series s ON s.id = p.series_id "
            f"WHERE s.measurement = ? AND p.field = ?{where} ORDER BY p.ts DESC LIMIT 1",
            (measurement, field_name, *tags.values()),
        ).fetchone()
    return None if row is None else float(row[0])


def sqlite_by_ts(db: str, measurement: str, field_name: str) -> dict[int, float]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT p.ts, sum(p.value) FROM points p JOIN series s ON s.id = p.series_id "
            "WHERE s.measurement = ? AND p.field = ? GROUP BY p.ts",
            (measurement, field_name),
        ).fetchall()
    return {int(ts): float(v) for ts, v in rows}
