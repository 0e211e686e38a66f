"""Layout of the embedded SQLite store (``sqlite:///path``).

A series is one measurement plus one tag set. The tags that queries filter or group on are
columns of ``series`` (NULL when absent); every tag, known or not, is also kept in
``tags_json``. Points are narrow: one row per (series, timestamp, field), so a point written
twice overwrites itself (``INSERT OR REPLACE`` on the primary key), exactly like InfluxDB.
Timestamps are epoch milliseconds.
"""

from __future__ import annotations

TAG_COLUMNS: tuple[str, ...] = (
    "host",
    "router",
    "scope",
    "namespace",
    "port",
    "service",
    "client",
    "via",
    "exception",
    "failure_flag",
    "status_code",
    "le",
)

SCHEMA_VERSION = 1

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
    "CREATE INDEX IF NOT EXISTS series_by_measurement ON series (measurement, scope)",
    """CREATE TABLE IF NOT EXISTS points (
        series_id INTEGER NOT NULL REFERENCES series (id),
        ts INTEGER NOT NULL,
        field TEXT NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (series_id, ts, field)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS points_by_ts ON points (ts)",
    f"PRAGMA user_version={SCHEMA_VERSION}",
)
"""Statements that create the schema; idempotent. ``tagset`` is the canonical line-protocol
tag section (sorted ``k=v`` pairs joined by ``,``, escaped as in line protocol)."""
