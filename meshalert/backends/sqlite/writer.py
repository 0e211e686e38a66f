"""The embedded store: line protocol into SQLite (schema in :mod:`.schema`).

Threads: connections are opened with ``check_same_thread=False`` so a writer built in one
thread may be used from another (the sidecar's flush thread), but a connection must never be
used by two threads at once. :class:`SqliteWriter` serialises its own calls with a lock;
readers should open their own connection (WAL lets them read while the writer writes).

String fields are not stored: the ``points`` table holds numbers only and the series schema
has no string fields. Booleans are stored as 1.0/0.0. Blank lines are ignored, as InfluxDB
does.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from meshalert.backends.sqlite.schema import (
    DDL,
    DELETE_TRIGGER,
    DELETE_TRIGGER_DDL,
    ROLLUP_BACKFILL,
    ROLLUP_REBUILD_RANGE,
    ROLLUP_VERSION,
    SCHEMA_VERSION,
)
from meshalert.lineprotocol import LineProtocolError, Point, decode, escape_key
from meshalert.queries.sql_schema import ROLLUP_MS, TAG_COLUMNS
from meshalert.stores.protocols import LineWriter, StoreWriteError

_BUSY_TIMEOUT_S = 10.0
_MAX_SHOWN_LINE = 300

SeriesRowKey = tuple[str, str]
"""A stored series row: (measurement, tagset text). Not the sidecar's SeriesKey."""
PointRow = tuple[int, int, str, float]  # (series_id, ts, field, value)

_SERIES_INSERT = (
    "INSERT OR IGNORE INTO series (measurement, tagset, "
    + ", ".join(TAG_COLUMNS)
    + ", tags_json) VALUES ("
    + ", ".join("?" * (len(TAG_COLUMNS) + 3))
    + ")"
)
_SERIES_SELECT = "SELECT id FROM series WHERE measurement = ? AND tagset = ?"
_POINT_UPSERT = "INSERT OR REPLACE INTO points (series_id, ts, field, value) VALUES (?, ?, ?, ?)"


def open_database(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """Open (and, when writable, create and migrate) the embedded store at ``path``.

    The connection is in autocommit mode (``isolation_level=None``): callers that need a
    transaction issue ``BEGIN`` themselves, as :class:`SqliteWriter` does.
    """
    if readonly:
        if path != ":memory:" and not Path(path).exists():
            raise FileNotFoundError(f"sqlite store {path!r} does not exist (nothing written yet?)")
        uri = f"{Path(path).absolute().as_uri()}?mode=ro"
        conn = sqlite3.connect(
            uri, uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA query_only=ON")
        return conn
    if path != ":memory:":
        _create_private(Path(path))
    conn = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    _create_or_migrate(conn)
    return conn


def _create_private(path: Path) -> None:
    """Create the store file 0600 whatever the umask (it holds the service topology); SQLite
    gives its -wal and -shm files the main file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


_PRAGMAS = tuple(s for s in DDL if s.startswith("PRAGMA") and "user_version" not in s)
_CREATES = tuple(s for s in DDL if not s.startswith("PRAGMA"))


def _create_or_migrate(conn: sqlite3.Connection) -> None:
    """Bring the file to :data:`SCHEMA_VERSION` in one transaction (a no-op when it is).

    A version 1 file gets the rollup table, its triggers and its rows built from the points
    it holds. ``BEGIN IMMEDIATE`` serialises two processes opening one old file: the second
    finds the work done. A newer file is left as it is.
    """
    for pragma in _PRAGMAS:  # journal mode cannot change inside a transaction
        conn.execute(pragma)
    if schema_version(conn) >= SCHEMA_VERSION:
        return
    with _transaction(conn, immediate=True):
        version = schema_version(conn)
        if version >= SCHEMA_VERSION:
            return
        for statement in _CREATES:
            conn.execute(statement)
        if version < ROLLUP_VERSION:
            conn.execute(ROLLUP_BACKFILL)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def schema_version(conn: sqlite3.Connection) -> int:
    """The file's schema version (``PRAGMA user_version``; 0 for a new, empty file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def tagset_of(tags: Iterable[tuple[str, str]]) -> str:
    """Canonical tag section: sorted ``k=v`` pairs, escaped as in line protocol, joined by ``,``."""
    return ",".join(f"{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags))


PRUNE_CHUNK_MS = 60_000


def prune(conn: sqlite3.Connection, older_than_ms: int, *, chunk_ms: int = PRUNE_CHUNK_MS) -> int:
    """Delete points with ``ts < older_than_ms``, their rollups, and series left without
    points. Returns the number of point rows deleted.

    One transaction per ``chunk_ms`` of data, oldest first: an hour of a large mesh is
    millions of rows, and one transaction would hold the write lock longer than the
    sidecar's busy timeout. Each chunk is complete on its own, so a prune interrupted
    half-way leaves a consistent store that simply kept more.
    """
    deleted = 0
    while True:
        (first,) = conn.execute("SELECT min(ts) FROM points").fetchone()
        if first is None or first >= older_than_ms:
            break
        deleted += _prune_before(conn, min(first - first % chunk_ms + chunk_ms, older_than_ms))
    with _transaction(conn, immediate=True):
        conn.execute(
            "DELETE FROM series WHERE NOT EXISTS "
            "(SELECT 1 FROM points WHERE points.series_id = series.id)"
        )
    return deleted


def _prune_before(conn: sqlite3.Connection, older_than_ms: int) -> int:
    """One transaction. The per-row delete trigger is dropped for it (it would recompute
    each deleted point's minute): rollups of minutes before the cutoff go in one statement,
    and a minute cut in two is rebuilt from the points it keeps."""
    cut_minute = older_than_ms - older_than_ms % ROLLUP_MS
    with _transaction(conn, immediate=True):
        conn.execute(f"DROP TRIGGER IF EXISTS {DELETE_TRIGGER}")
        conn.execute("DELETE FROM rollup_1m WHERE minute_ms < ?", (older_than_ms,))
        deleted = conn.execute("DELETE FROM points WHERE ts < ?", (older_than_ms,)).rowcount
        if cut_minute != older_than_ms:
            conn.execute(ROLLUP_REBUILD_RANGE, (older_than_ms, cut_minute + ROLLUP_MS))
        conn.execute(DELETE_TRIGGER_DDL)
    return int(deleted)


@dataclass(frozen=True, slots=True)
class _Decoded:
    key: SeriesRowKey
    point: Point


DEFAULT_SERIES_CACHE_MAX = 100_000


class SqliteWriter(LineWriter):
    """Writes line-protocol batches into the embedded store; one transaction per batch.

    Series ids are cached in memory, least recently used first out beyond
    ``series_cache_max`` ids (a cardinality attack must not grow the process: 1.3 GB after
    2M series unbounded). The cache is dropped whenever another connection has committed
    since our last write (``PRAGMA data_version``), because a :func:`prune` there may have
    deleted series we remember.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        close_connection: bool = True,
        series_cache_max: int = DEFAULT_SERIES_CACHE_MAX,
    ) -> None:
        if series_cache_max < 1:
            raise ValueError(f"series_cache_max must be >= 1, got {series_cache_max}")
        self._conn = conn
        self._close_connection = close_connection
        self._series_cache_max = series_cache_max
        self._series_ids: OrderedDict[SeriesRowKey, int] = OrderedDict()
        self._data_version: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str, *, series_cache_max: int = DEFAULT_SERIES_CACHE_MAX) -> SqliteWriter:
        return cls(open_database(path), series_cache_max=series_cache_max)

    @property
    def cached_series(self) -> int:
        return len(self._series_ids)

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    def write(self, lines: Sequence[str]) -> None:
        decoded = _decode_batch(lines)
        if not decoded:
            return
        with self._lock:
            try:
                self._write_decoded(decoded)
            except sqlite3.OperationalError as err:
                # "database is locked" and disk-full style problems may clear up.
                raise StoreWriteError(f"sqlite write failed: {err}", retryable=True) from err
            except sqlite3.DatabaseError as err:
                raise StoreWriteError(f"sqlite write failed: {err}", retryable=False) from err

    def prune(self, older_than_ms: int) -> int:
        """:func:`prune` on this writer's connection, keeping the series cache honest."""
        with self._lock:
            self._series_ids.clear()
            return prune(self._conn, older_than_ms)

    def close(self) -> None:
        with self._lock:
            if self._close_connection:
                self._conn.close()

    def _write_decoded(self, decoded: list[_Decoded]) -> None:
        fresh: dict[SeriesRowKey, int] = {}
        cache = self._series_ids
        with _transaction(self._conn, immediate=True):
            self._drop_cache_if_others_wrote()
            rows: list[PointRow] = []
            for item in decoded:
                values = _numeric_fields(item.point)
                if not values:
                    continue
                sid = cache.get(item.key)
                if sid is not None:
                    cache.move_to_end(item.key)
                else:
                    sid = fresh.get(item.key)
                if sid is None:
                    sid = self._upsert_series(item.key, item.point)
                    fresh[item.key] = sid
                ts = item.point.timestamp_ms
                rows.extend((sid, ts, name, value) for name, value in values)
            self._conn.executemany(_POINT_UPSERT, rows)
        # Only ids that were committed may be remembered; a rolled-back insert is gone.
        cache.update(fresh)
        while len(cache) > self._series_cache_max:
            cache.popitem(last=False)
        self._data_version = self._read_data_version()

    def _drop_cache_if_others_wrote(self) -> None:
        version = self._read_data_version()
        if version != self._data_version:
            self._series_ids.clear()
            self._data_version = version

    def _read_data_version(self) -> int:
        row = self._conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def _upsert_series(self, key: SeriesRowKey, point: Point) -> int:
        tags = point.tag_dict()
        params = (
            key[0],
            key[1],
            *(tags.get(column) for column in TAG_COLUMNS),
            json.dumps(tags, sort_keys=True, separators=(",", ":")),
        )
        self._conn.execute(_SERIES_INSERT, params)
        row = self._conn.execute(_SERIES_SELECT, key).fetchone()
        return int(row[0])


class _transaction:  # noqa: N801 - used like a function: ``with _transaction(conn):``
    def __init__(self, conn: sqlite3.Connection, *, immediate: bool = False) -> None:
        self._conn = conn
        self._begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    def __enter__(self) -> None:
        self._conn.execute(self._begin)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                self._rollback()
                raise
        else:
            self._rollback()

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


_HEADS_MAX = 50_000  # cleared when full: about 40 MB at most (500,000 was 400 MB)
_Head = tuple[str, tuple[tuple[str, str], ...], str]  # measurement, sorted tags, tagset
_heads: dict[str, _Head] = {}
"""Parsed series sections of fast-path lines by their raw text: a sidecar writes the same
series every flush, and parsing, sorting and escaping tags was most of a write's cost."""


def _decode_batch(lines: Sequence[str]) -> list[_Decoded]:
    """Decode every line before anything is written, so a bad line rejects the whole batch."""
    out: list[_Decoded] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        cached = _decode_known_series(line)
        if cached is not None:
            out.append(cached)
            continue
        try:
            point = _fast_decode(line) or decode(line)
        except LineProtocolError as err:
            shown = line if len(line) <= _MAX_SHOWN_LINE else line[:_MAX_SHOWN_LINE] + "..."
            raise StoreWriteError(
                f"line {index} rejected, batch not written: {err} (line: {shown!r})",
                retryable=False,
                rejected=(index,),
            ) from err
        out.append(_Decoded((point.measurement, tagset_of(point.tags)), point))
    return out


def _decode_known_series(line: str) -> _Decoded | None:
    """The fast path for a line whose series section was seen before; None otherwise.

    Only lines :func:`_fast_decode` accepts are remembered, so the result is the same as
    decoding the line afresh (a malformed field section still returns None).
    """
    if "\\" in line or '"' in line:
        return None
    sections = line.strip().split(" ")
    if len(sections) != 3:
        return None
    head = _heads.get(sections[0])
    if head is None:
        point = _fast_decode(line)
        if point is None:
            return None
        if len(_heads) >= _HEADS_MAX:
            _heads.clear()
        head = (point.measurement, point.tags, tagset_of(point.tags))
        _heads[sections[0]] = head
        return _Decoded((head[0], head[2]), point)
    try:
        fields = tuple((k, _number(v)) for k, v in map(_pair, sections[1].split(",")))
        point = Point(head[0], head[1], fields, int(sections[2]))
    except ValueError:
        return None
    return _Decoded((head[0], head[2]), point)


_TRUE = frozenset(("t", "T", "true", "True", "TRUE"))
_FALSE = frozenset(("f", "F", "false", "False", "FALSE"))


def _fast_decode(line: str) -> Point | None:
    """:func:`decode` for the common line with no escapes and no string fields (about 5x
    faster); None sends anything else, including every malformed line, to :func:`decode`."""
    if "\\" in line or '"' in line:
        return None
    sections = line.strip().split(" ")
    if len(sections) != 3:
        return None
    head = sections[0].split(",")
    if not head[0]:
        return None
    try:
        tags = sorted(_pair(item) for item in head[1:])
        fields = tuple((k, _number(v)) for k, v in map(_pair, sections[1].split(",")))
        return Point(head[0], tuple(tags), fields, int(sections[2]))
    except ValueError:
        return None


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep:
        raise ValueError(item)
    return key, value


def _number(raw: str) -> float | int | bool:
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    if raw.endswith("i"):
        return int(raw[:-1])
    return float(raw)


def _numeric_fields(point: Point) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for name, value in point.fields:
        if isinstance(value, bool):
            out.append((name, 1.0 if value else 0.0))
        elif isinstance(value, int | float):
            out.append((name, float(value)))
    return out
