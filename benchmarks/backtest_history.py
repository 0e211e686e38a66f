"""Synthetic mesh history for :mod:`benchmarks.backtest`, and two ways to write it.

The history is a pure function of (service, flush time): :func:`flush_values` is the one
place that says what a service reported, and both writers derive from it.

- :func:`flush_lines` is what the sidecars would send (line protocol), written through
  ``SqliteWriter``: the reference, about 30k lines/s.
- :func:`bulk_load` writes the same ``series`` and ``points`` rows straight into the store
  with ``executemany``, one transaction per hour of history, with the rollup triggers
  dropped; each hour's ``rollup_1m`` rows are then built by the schema's own
  ``ROLLUP_REBUILD_RANGE`` (the chunk holds whole minutes, so that is exact), and the
  triggers are put back at the end so the file is an ordinary version 2 store.

:func:`verify_bulk_load` builds a small sample both ways (and once more keeping the
triggers) and asserts that series, points and rollups are identical.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from meshalert.alert_classes import AlertClass
from meshalert.backends.sqlite.schema import ROLLUP_DDL, ROLLUP_REBUILD_RANGE
from meshalert.backends.sqlite.writer import SqliteWriter, open_database, tagset_of
from meshalert.histogram import LE_LABELS
from meshalert.queries.sql_schema import ROLLUP_MS, TAG_COLUMNS

START_MS = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000
FLUSH_MS = 10_000
HOSTS = ("node-a", "node-b")
FAST, MEDIUM, SLOW = LE_LABELS[20], LE_LABELS[28], LE_LABELS[44]
INCIDENT_MS = 20 * 60_000
CHUNK_MS = 3_600_000
"""One transaction (and one rollup rebuild) per hour of history: whole minutes, and a
chunk's rows still fit the page cache while its rollups are built."""
_BULK_CACHE_KIB = 4_000_000


@dataclass(frozen=True)
class Incident:
    alert_class: AlertClass
    service: int
    start_ms: int

    def active(self, ts: int) -> bool:
        return self.start_ms <= ts < self.start_ms + INCIDENT_MS


def incidents(services: int, hours: float) -> tuple[Incident, ...]:
    """One incident per class, each on its own service, spread over the history."""
    span = int(hours * 3_600_000)
    return tuple(
        Incident(cls, (k * 7 + 3) % services, START_MS + span * (k + 1) // 5)
        for k, cls in enumerate(AlertClass)
    )


@dataclass(frozen=True, slots=True)
class FlushValues:
    requests: int
    failures: int
    retries: int
    exhausted: int
    available: int
    slow: int


def flush_values(s: int, ts: int, incident: AlertClass | None) -> FlushValues:
    """What service ``s`` reported (per host) in the flush at ``ts``."""
    requests = 50 + (s * 31 + ts // FLUSH_MS) % 50
    return FlushValues(
        requests=requests,
        failures=requests // 2 if incident is AlertClass.FAILURES else (s + ts) % 2,
        retries=requests // 2 if incident is AlertClass.RETRIES else (s + ts) % 3,
        exhausted=3 if incident is AlertClass.RETRIES else 0,
        available=2 if incident is AlertClass.ENDPOINTS else 10,
        slow=requests // 4 if incident is AlertClass.LATENCY else 0,
    )


def active_incidents(planned: tuple[Incident, ...], ts: int) -> dict[int, AlertClass]:
    return {i.service: i.alert_class for i in planned if i.active(ts)}


def flush_lines(services: int, ts: int, active: dict[int, AlertClass]) -> Iterator[str]:
    """Every line of one 10 s flush of both hosts."""
    for s in range(services):
        v = flush_values(s, ts, active.get(s))
        svc = f"namespace=ns{s % 20},scope=service,service=svc-{s}"
        client = f"namespace=ns{s % 20},scope=client,service=svc-{s}"
        for host in HOSTS:
            yield (
                f"linkerd_requests,host={host},{svc} count={v.requests},samples={v.requests}i {ts}"
            )
            yield f"linkerd_failures,host={host},{svc} count={v.failures},samples=1i {ts}"
            yield f"linkerd_retries_total,host={host},{svc} count={v.retries},samples=1i {ts}"
            yield (
                f"linkerd_retries_budget_exhausted,host={host},{client} "
                f"count={v.exhausted},samples=1i {ts}"
            )
            yield f"linkerd_loadbalancer_available,host={host},{client} value={v.available} {ts}"
            yield f"linkerd_loadbalancer_size,host={host},{client} value=10 {ts}"
            bucket = f"linkerd_request_latency_ms_bucket,host={host},{svc}"
            yield f"{bucket},le={FAST} count={v.requests - v.slow - 2} {ts}"
            yield f"{bucket},le={MEDIUM} count=2 {ts}"
            if v.slow:
                yield f"{bucket},le={SLOW} count={v.slow} {ts}"


def build_with_writer(path: str, services: int, hours: float) -> int:
    """The reference: one ``SqliteWriter`` transaction per flush of both hosts; returns lines."""
    writer = SqliteWriter.open(path)
    planned = incidents(services, hours)
    lines = 0
    try:
        for ts in range(START_MS, _end_ms(hours), FLUSH_MS):
            batch = list(flush_lines(services, ts, active_incidents(planned, ts)))
            writer.write(batch)
            lines += len(batch)
    finally:
        writer.close()
    return lines


# --- bulk load -------------------------------------------------------------------------

_SERIES_INSERT = (
    "INSERT INTO series (id, measurement, tagset, "
    + ", ".join(TAG_COLUMNS)
    + ", tags_json) VALUES ("
    + ", ".join("?" * (len(TAG_COLUMNS) + 4))
    + ")"
)
_POINT_INSERT = "INSERT INTO points (series_id, ts, field, value) VALUES (?, ?, ?, ?)"
_ROLLUP_TRIGGERS = tuple(s for s in ROLLUP_DDL if s.lstrip().startswith("CREATE TRIGGER"))


@dataclass(frozen=True, slots=True)
class HostSeries:
    """Series ids of one service on one host (``slow`` only where a latency incident is)."""

    requests: int
    failures: int
    retries: int
    exhausted: int
    available: int
    size: int
    fast: int
    medium: int
    slow: int | None


@dataclass(frozen=True)
class BulkLoadReport:
    series: int
    points: int
    rollups: int
    seconds: float
    rollup_seconds: float


class _SeriesTable:
    def __init__(self) -> None:
        self.rows: list[tuple[object, ...]] = []

    def add(self, measurement: str, tags: dict[str, str]) -> int:
        sid = len(self.rows) + 1
        tags_json = json.dumps(tags, sort_keys=True, separators=(",", ":"))
        columns = tuple(tags.get(c) for c in TAG_COLUMNS)
        self.rows.append((sid, measurement, tagset_of(tags.items()), *columns, tags_json))
        return sid


def _series_plan(
    services: int, slow_services: set[int]
) -> tuple[_SeriesTable, list[list[HostSeries]]]:
    table = _SeriesTable()
    plan: list[list[HostSeries]] = []
    for s in range(services):
        base = {"namespace": f"ns{s % 20}", "service": f"svc-{s}"}
        per_host = []
        for host in HOSTS:
            svc = {**base, "host": host, "scope": "service"}
            client = {**base, "host": host, "scope": "client"}
            bucket = "linkerd_request_latency_ms_bucket"
            per_host.append(
                HostSeries(
                    requests=table.add("linkerd_requests", svc),
                    failures=table.add("linkerd_failures", svc),
                    retries=table.add("linkerd_retries_total", svc),
                    exhausted=table.add("linkerd_retries_budget_exhausted", client),
                    available=table.add("linkerd_loadbalancer_available", client),
                    size=table.add("linkerd_loadbalancer_size", client),
                    fast=table.add(bucket, {**svc, "le": FAST}),
                    medium=table.add(bucket, {**svc, "le": MEDIUM}),
                    slow=table.add(bucket, {**svc, "le": SLOW}) if s in slow_services else None,
                )
            )
        plan.append(per_host)
    return table, plan


PointRow = tuple[int, int, str, float]


def _service_rows(
    s: int, hosts: list[HostSeries], times: range, planned: tuple[Incident, ...]
) -> list[PointRow]:
    """Every point row of service ``s`` over ``times`` (series-major within the chunk, so
    the primary key B-tree is filled in runs rather than one row per series per flush)."""
    mine = [i for i in planned if i.service == s]
    rows: list[PointRow] = []
    add = rows.extend
    for ts in times:
        incident = next((i.alert_class for i in mine if i.active(ts)), None) if mine else None
        v = flush_values(s, ts, incident)
        req, fast = float(v.requests), float(v.requests - v.slow - 2)
        fail, retr, exh = float(v.failures), float(v.retries), float(v.exhausted)
        avail = float(v.available)
        for h in hosts:
            add(
                (
                    (h.requests, ts, "count", req),
                    (h.requests, ts, "samples", req),
                    (h.failures, ts, "count", fail),
                    (h.failures, ts, "samples", 1.0),
                    (h.retries, ts, "count", retr),
                    (h.retries, ts, "samples", 1.0),
                    (h.exhausted, ts, "count", exh),
                    (h.exhausted, ts, "samples", 1.0),
                    (h.available, ts, "value", avail),
                    (h.size, ts, "value", 10.0),
                    (h.fast, ts, "count", fast),
                    (h.medium, ts, "count", 2.0),
                )
            )
            if v.slow and h.slow is not None:
                rows.append((h.slow, ts, "count", float(v.slow)))
    return rows


def bulk_load(
    path: str, services: int, hours: float, *, keep_triggers: bool = False, progress: bool = False
) -> BulkLoadReport:
    """Write the history into a new store at ``path`` (which must not exist)."""
    if Path(path).exists():
        raise FileExistsError(path)
    open_database(path).close()  # the schema exactly as the product creates it
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return _bulk_load(conn, services, hours, keep_triggers=keep_triggers, progress=progress)
    finally:
        conn.close()


def _bulk_load(
    conn: sqlite3.Connection, services: int, hours: float, *, keep_triggers: bool, progress: bool
) -> BulkLoadReport:
    # A scratch file being filled: no journal, no fsync; WAL is restored at the end.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute(f"PRAGMA cache_size=-{_BULK_CACHE_KIB}")
    conn.execute("PRAGMA temp_store=MEMORY")  # the rollup rebuild's GROUP BY sorter
    planned = incidents(services, hours)
    slow = {i.service for i in planned if i.alert_class is AlertClass.LATENCY}
    table, plan = _series_plan(services, slow)
    started = time.perf_counter()
    rollup_s = 0.0
    points = 0
    conn.execute("BEGIN")
    conn.executemany(_SERIES_INSERT, table.rows)
    if not keep_triggers:
        for name in _trigger_names(conn):
            conn.execute(f"DROP TRIGGER {name}")
    conn.execute("COMMIT")
    end = _end_ms(hours)
    for chunk in range(START_MS, end, CHUNK_MS):
        chunk_end = min(chunk + CHUNK_MS, end)
        times = range(chunk, chunk_end, FLUSH_MS)
        conn.execute("BEGIN")
        for s in range(services):
            rows = _service_rows(s, plan[s], times, planned)
            conn.executemany(_POINT_INSERT, rows)
            points += len(rows)
        if not keep_triggers:
            t0 = time.perf_counter()
            # The chunk ends on a minute boundary (or at the end of the data), so every
            # minute it touches is whole: the range rebuild is exact.
            conn.execute(ROLLUP_REBUILD_RANGE, (chunk, _minute_ceil(chunk_end)))
            rollup_s += time.perf_counter() - t0
        conn.execute("COMMIT")
        if progress:
            elapsed = time.perf_counter() - started
            print(
                f"  loaded {(chunk_end - START_MS) / 3_600_000:5.1f} h  points={points:,} "
                f"{elapsed:.0f}s ({points / elapsed:,.0f} rows/s, rollups {rollup_s:.0f}s)",
                flush=True,
            )
    if not keep_triggers:
        for statement in _ROLLUP_TRIGGERS:
            conn.execute(statement)
    conn.execute("PRAGMA journal_mode=WAL")
    seconds = time.perf_counter() - started
    (rollups,) = conn.execute("SELECT count(*) FROM rollup_1m").fetchone()
    return BulkLoadReport(len(table.rows), points, int(rollups), seconds, rollup_s)


def _trigger_names(conn: sqlite3.Connection, db: str = "main") -> list[str]:
    rows = conn.execute(
        f"SELECT name FROM {db}.sqlite_master WHERE type = 'trigger' AND tbl_name = 'points'"
        " ORDER BY name"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _end_ms(hours: float) -> int:
    return START_MS + int(hours * 3_600_000)


def _minute_ceil(ts: int) -> int:
    return ts + (-ts) % ROLLUP_MS


# --- verification ----------------------------------------------------------------------

_SERIES_KEY = "measurement, tagset, " + ", ".join(TAG_COLUMNS) + ", tags_json"
_COMPARE = {
    "series": f"SELECT {_SERIES_KEY} FROM {{db}}.series",
    "points": (
        "SELECT s.measurement, s.tagset, p.ts, p.field, p.value"
        " FROM {db}.points AS p JOIN {db}.series AS s ON s.id = p.series_id"
    ),
    "rollup_1m": (
        "SELECT s.measurement, s.tagset, r.field, r.minute_ms, r.sum, r.n, r.last_ts,"
        " r.last_value FROM {db}.rollup_1m AS r JOIN {db}.series AS s ON s.id = r.series_id"
    ),
}


@dataclass(frozen=True)
class Verification:
    lines: int
    points: int
    rollups: int
    writer_rate: float
    """Lines per second through ``SqliteWriter``."""
    trigger_rate: float
    """Point rows per second, bulk insert with the triggers kept."""
    rebuild_rate: float
    """Point rows per second, bulk insert without triggers plus the rollup rebuild."""


def verify_bulk_load(workdir: str, services: int = 12, hours: float = 0.5) -> Verification:
    """Build a sample three ways and assert the stores are identical; raises AssertionError."""
    ref, trig, fast = (str(Path(workdir) / f"verify-{n}.db") for n in ("writer", "trig", "bulk"))
    t0 = time.perf_counter()
    lines = build_with_writer(ref, services, hours)
    t1 = time.perf_counter()
    with_triggers = bulk_load(trig, services, hours, keep_triggers=True)
    rebuilt = bulk_load(fast, services, hours)
    conn = sqlite3.connect(ref)
    try:
        conn.execute("ATTACH DATABASE ? AS trig", (trig,))
        conn.execute("ATTACH DATABASE ? AS bulk", (fast,))
        for table, query in _COMPARE.items():
            for other in ("trig", "bulk"):
                _assert_same(conn, table, query.format(db="main"), query.format(db=other), other)
        (points,) = conn.execute("SELECT count(*) FROM points").fetchone()
        (rollups,) = conn.execute("SELECT count(*) FROM rollup_1m").fetchone()
        triggers = [_trigger_names(conn, db) for db in ("main", "bulk")]
        assert triggers[0] == triggers[1], triggers
    finally:
        conn.close()
    for name in (ref, trig, fast):
        for suffix in ("", "-wal", "-shm"):
            Path(name + suffix).unlink(missing_ok=True)
    return Verification(
        lines=lines,
        points=int(points),
        rollups=int(rollups),
        writer_rate=lines / (t1 - t0),
        trigger_rate=with_triggers.points / with_triggers.seconds,
        rebuild_rate=rebuilt.points / rebuilt.seconds,
    )


def _assert_same(conn: sqlite3.Connection, table: str, mine: str, other: str, name: str) -> None:
    (n_mine,) = conn.execute(f"SELECT count(*) FROM ({mine})").fetchone()
    (n_other,) = conn.execute(f"SELECT count(*) FROM ({other})").fetchone()
    missing = conn.execute(f"SELECT count(*) FROM ({mine} EXCEPT {other})").fetchone()[0]
    extra = conn.execute(f"SELECT count(*) FROM ({other} EXCEPT {mine})").fetchone()[0]
    assert n_mine == n_other and not missing and not extra, (
        f"{table}: writer has {n_mine} rows, {name} {n_other}; "
        f"{missing} only in the writer's, {extra} only in {name}'s"
    )
