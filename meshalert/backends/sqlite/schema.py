"""Layout of the embedded SQLite store (``sqlite:///path``).

A series is one measurement plus one tag set. The tags that queries filter or group on are
columns of ``series`` (NULL when absent); every tag, known or not, is also kept in
``tags_json``. Points are narrow: one row per (series, timestamp, field), so a point written
twice overwrites itself (``INSERT OR REPLACE`` on the primary key), exactly like InfluxDB.
Timestamps are epoch milliseconds.

Schema version 2 adds ``rollup_1m``: per (series, field, minute) the sum and number of the
points in ``[minute_ms, minute_ms + 60 s)`` and the latest of them (``last_ts``,
``last_value``). Window queries read whole minutes from it and only the ragged ends of a
window from ``points``. Triggers on ``points`` keep it exact whatever writes: a point later
than its minute's latest is added to the minute; any other insert, and every update or
delete, recomputes the affected minute from ``points`` (a few rows: one series, one minute),
so ``INSERT OR REPLACE`` (whose implicit delete fires no trigger), ``INSERT OR IGNORE``,
upserts and plain deletes all leave the rollup equal to the points.
Readers that predate version 2 ignore the table; writers that predate it keep it right
through the triggers stored in the file.

Schema version 3 only rebuilds the series index to cover ``router`` and ``client``, which
window queries group by (routers and load balancers are judged apart).
"""

from __future__ import annotations

from meshalert.queries.sql_schema import ROLLUP_MS, TAG_COLUMNS

WINDOW_TAGS: tuple[str, ...] = (
    "namespace",
    "service",
    "router",
    "host",
    "client",
    "le",
    "exception",
    "failure_flag",
)
"""Tags window queries filter or group on besides ``scope`` (indexed with it)."""

SCHEMA_VERSION = 3
ROLLUP_VERSION = 2
"""The first schema version whose files carry ``rollup_1m`` (readers check ``user_version``)."""


def minute_of(ts_sql: str) -> str:
    """SQL for the start of the rollup minute holding ``ts_sql`` (floor, also below 0)."""
    return f"({ts_sql} - ((({ts_sql}) % {ROLLUP_MS}) + {ROLLUP_MS}) % {ROLLUP_MS})"


# Upserts, never ``INSERT OR REPLACE``: inside a trigger, the conflict policy of the
# statement that fired it (``OR IGNORE``, plain ``ABORT``) would replace ``OR REPLACE``.
_SET_ALL = (
    "ON CONFLICT (series_id, field, minute_ms) DO UPDATE SET sum = excluded.sum,"
    " n = excluded.n, last_ts = excluded.last_ts, last_value = excluded.last_value"
)


def _refresh(row: str) -> tuple[str, str]:
    """Statements that make the rollup of ``row``'s (series, field, minute) equal its points:
    delete it when the minute has no point left, else upsert it.

    ``row`` is ``NEW`` or ``OLD``. The bare ``value`` next to ``MAX(ts)`` is the latest
    point's value (SQLite takes bare columns from the row holding the single min/max).
    """
    minute = minute_of(f"{row}.ts")
    in_minute = (
        f"p.series_id = {row}.series_id AND p.ts >= {minute}"
        f" AND p.ts < {minute} + {ROLLUP_MS} AND p.field = {row}.field"
    )
    key = f"series_id = {row}.series_id AND field = {row}.field AND minute_ms = {minute}"
    delete = (
        f"DELETE FROM rollup_1m WHERE {key}"
        f" AND NOT EXISTS (SELECT 1 FROM points AS p WHERE {in_minute});"
    )
    upsert = (
        "INSERT INTO rollup_1m (series_id, field, minute_ms, sum, n, last_ts, last_value)"
        f" SELECT {row}.series_id, {row}.field, {minute},"
        " SUM(p.value), COUNT(*), MAX(p.ts), p.value"
        f" FROM points AS p WHERE {in_minute} HAVING COUNT(*) > 0"
        f" {_SET_ALL};"
    )
    return delete, upsert


_, _NEW_UPSERT = _refresh("NEW")
_NEW_KEY = f"series_id = NEW.series_id AND field = NEW.field AND minute_ms = {minute_of('NEW.ts')}"
# A point later than the minute's latest cannot have replaced one (the rollup is exact, so
# no point of that minute has a later timestamp): add it. Anything else, an overwrite
# (``INSERT OR REPLACE`` deletes the old row without firing a trigger) or a late point,
# recomputes the minute.
_NEW_RECOMPUTE_IF_NOT_LATEST = (
    "UPDATE rollup_1m SET (sum, n, last_ts, last_value) ="
    " (SELECT SUM(p.value), COUNT(*), MAX(p.ts), p.value FROM points AS p"
    f" WHERE p.series_id = NEW.series_id AND p.ts >= {minute_of('NEW.ts')}"
    f" AND p.ts < {minute_of('NEW.ts')} + {ROLLUP_MS} AND p.field = NEW.field)"
    f" WHERE {_NEW_KEY} AND last_ts >= NEW.ts;"
)
_NEW_APPEND_IF_LATEST = (
    "INSERT INTO rollup_1m (series_id, field, minute_ms, sum, n, last_ts, last_value)"
    f" VALUES (NEW.series_id, NEW.field, {minute_of('NEW.ts')}, NEW.value, 1, NEW.ts, NEW.value)"
    " ON CONFLICT (series_id, field, minute_ms) DO UPDATE SET sum = sum + excluded.sum,"
    " n = n + 1, last_ts = excluded.last_ts, last_value = excluded.last_value"
    " WHERE excluded.last_ts > rollup_1m.last_ts;"
)
_OLD_DELETE, _OLD_UPSERT = _refresh("OLD")
DELETE_TRIGGER = "points_rollup_delete"
DELETE_TRIGGER_DDL = f"""CREATE TRIGGER IF NOT EXISTS {DELETE_TRIGGER} AFTER DELETE ON points
    BEGIN
        {_OLD_DELETE}
        {_OLD_UPSERT}
    END"""
"""Recomputes a deleted point's minute. Bulk deletes (``prune``) drop it for their
transaction and fix the rollups themselves: a trigger per deleted row tripled a prune."""

ROLLUP_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS rollup_1m (
        series_id INTEGER NOT NULL,
        field TEXT NOT NULL,
        minute_ms INTEGER NOT NULL,
        sum REAL NOT NULL,
        n INTEGER NOT NULL,
        last_ts INTEGER NOT NULL,
        last_value REAL NOT NULL,
        PRIMARY KEY (series_id, field, minute_ms)
    ) WITHOUT ROWID""",
    # For prune: the rollups of the pruned minutes, in one range delete.
    "CREATE INDEX IF NOT EXISTS rollup_by_minute ON rollup_1m (minute_ms)",
    f"""CREATE TRIGGER IF NOT EXISTS points_rollup_insert AFTER INSERT ON points
    BEGIN
        {_NEW_RECOMPUTE_IF_NOT_LATEST}
        {_NEW_APPEND_IF_LATEST}
    END""",
    DELETE_TRIGGER_DDL,
    f"""CREATE TRIGGER IF NOT EXISTS points_rollup_update AFTER UPDATE ON points
    BEGIN
        {_OLD_DELETE}
        {_OLD_UPSERT}
        {_NEW_UPSERT}
    END""",
)
"""The rollup table, its index and the triggers that maintain it; idempotent."""

_BUILD = (
    "INSERT OR REPLACE INTO rollup_1m (series_id, field, minute_ms, sum, n, last_ts, last_value)"
    f" SELECT series_id, field, {minute_of('ts')} AS m, SUM(value), COUNT(*), MAX(ts), value"
    " FROM points {where} GROUP BY series_id, field, m"
)
ROLLUP_BACKFILL = _BUILD.format(where="")
"""Builds every rollup row from ``points`` (the migration from version 1)."""
ROLLUP_REBUILD_RANGE = _BUILD.format(where="WHERE ts >= ? AND ts < ?")
"""Builds the rollup rows of the points with ``?1 <= ts < ?2``; right only when the range
holds every point of each minute it touches (``prune``: from the cutoff to the end of the
minute it cuts, after deleting what lies before)."""

DDL: tuple[str, ...] = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    """CREATE TABLE IF NOT EXISTS series (
        id INTEGER PRIMARY KEY,
        measurement TEXT NOT NULL,
        tagset TEXT NOT NULL,
        """
    + ",\n        ".join(f"{c} TEXT" for c in TAG_COLUMNS)
    + """,
        tags_json TEXT NOT NULL,
        UNIQUE (measurement, tagset)
    )""",
    # Covers what window queries read of a series (filter, group and id), so finding a
    # class's series never visits the wide table rows: about 10% of a 10k-service cycle.
    # Version 1 had the (measurement, scope) prefix of it alone; version 2 lacked router
    # and client, which window queries group by since routers and balancers stay apart.
    "DROP INDEX IF EXISTS series_by_measurement",
    "DROP INDEX IF EXISTS series_for_windows",
    "CREATE INDEX IF NOT EXISTS series_for_windows3 ON series (measurement, scope, "
    + ", ".join(WINDOW_TAGS)
    + ")",
    """CREATE TABLE IF NOT EXISTS points (
        series_id INTEGER NOT NULL REFERENCES series (id),
        ts INTEGER NOT NULL,
        field TEXT NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (series_id, ts, field)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS points_by_ts ON points (ts)",
    *ROLLUP_DDL,
    f"PRAGMA user_version={SCHEMA_VERSION}",
)
"""Statements that create the schema of a new, empty store; idempotent. An existing file is
opened with ``writer.open_database``, which also migrates it (a version 1 file needs
its rollups built from its points). ``tagset`` is the canonical line-protocol tag section
(sorted ``k=v`` pairs joined by ``,``, escaped as in line protocol)."""
