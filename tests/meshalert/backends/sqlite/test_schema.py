"""Rollups (schema version 2): kept equal to the points by every way of writing, migrated
from version 1 files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshalert.backends.sqlite.schema import DDL, SCHEMA_VERSION
from meshalert.backends.sqlite.writer import SqliteWriter, open_database, prune, schema_version
from meshalert.queries.sql_schema import ROLLUP_MS, TAG_COLUMNS

RollupRow = tuple[int, str, int, float, int, int, float]
PointKey = tuple[int, int, str]  # series_id, ts, field

# The version 1 schema as it shipped (no rollups, narrow series index).
V1_DDL: tuple[str, ...] = (
    "PRAGMA journal_mode=WAL",
    "CREATE TABLE series (id INTEGER PRIMARY KEY, measurement TEXT NOT NULL, tagset TEXT NOT NULL, "
    + ", ".join(f"{c} TEXT" for c in TAG_COLUMNS)
    + ", tags_json TEXT NOT NULL, UNIQUE (measurement, tagset))",
    "CREATE INDEX series_by_measurement ON series (measurement, scope)",
    "CREATE TABLE points (series_id INTEGER NOT NULL REFERENCES series (id), ts INTEGER NOT NULL,"
    " field TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (series_id, ts, field)) WITHOUT ROWID",
    "CREATE INDEX points_by_ts ON points (ts)",
    "PRAGMA user_version=1",
)


def expected_rollups(points: dict[PointKey, float]) -> list[RollupRow]:
    """What ``rollup_1m`` must hold for ``points``, computed the plain way."""
    minutes: dict[tuple[int, str, int], list[tuple[int, float]]] = {}
    for (sid, ts, fld), value in points.items():
        minutes.setdefault((sid, fld, ts - ts % ROLLUP_MS), []).append((ts, value))
    out: list[RollupRow] = []
    for (sid, fld, minute), rows in sorted(minutes.items()):
        last_ts, last_value = max(rows)
        out.append((sid, fld, minute, sum(v for _, v in rows), len(rows), last_ts, last_value))
    return out


def stored_rollups(conn: sqlite3.Connection) -> list[RollupRow]:
    return conn.execute(
        "SELECT series_id, field, minute_ms, sum, n, last_ts, last_value FROM rollup_1m"
        " ORDER BY series_id, field, minute_ms"
    ).fetchall()


def stored_points(conn: sqlite3.Connection) -> dict[PointKey, float]:
    return {(s, t, f): v for s, t, f, v in conn.execute("SELECT * FROM points")}


def _new_store() -> sqlite3.Connection:
    conn = open_database(":memory:")
    for sid in (1, 2):
        conn.execute(
            "INSERT INTO series (id, measurement, tagset, tags_json) VALUES (?, 'm', ?, '{}')",
            (sid, f"host=h{sid}"),
        )
    return conn


# Values are multiples of 1/4 so any order of summation is exact and sums compare with ==.
_values = st.integers(-400, 400).map(lambda k: k / 4)
# A small pool of timestamps (overwrites are common), some below 0, straddling minutes.
_ts = st.one_of(
    st.integers(-12, 30).map(lambda k: k * 10_000),
    st.integers(-130_000, 300_000),
)
_key = st.tuples(st.sampled_from([1, 2]), _ts, st.sampled_from(["count", "value"]))
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("replace"), _key, _values),
        st.tuples(st.just("plain"), _key, _values),
        st.tuples(st.just("ignore"), _key, _values),
        st.tuples(st.just("upsert"), _key, _values),
        st.tuples(st.just("update"), _key, _values),
        st.tuples(st.just("delete"), _key, _values),
        st.tuples(st.just("shift"), _key, st.integers(-70_000, 70_000)),
        st.tuples(st.just("prune"), _key, _values),
    ),
    min_size=1,
    max_size=40,
)


def _apply(
    conn: sqlite3.Connection, model: dict[PointKey, float], op: str, key: PointKey, arg: float
) -> None:
    sid, ts, fld = key
    if op == "replace":
        conn.execute("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?)", (*key, arg))
        model[key] = arg
    elif op == "plain":
        try:
            conn.execute("INSERT INTO points VALUES (?, ?, ?, ?)", (*key, arg))
            model[key] = arg
        except sqlite3.IntegrityError:
            assert key in model
    elif op == "ignore":
        conn.execute("INSERT OR IGNORE INTO points VALUES (?, ?, ?, ?)", (*key, arg))
        model.setdefault(key, arg)
    elif op == "upsert":
        conn.execute(
            "INSERT INTO points VALUES (?, ?, ?, ?)"
            " ON CONFLICT (series_id, ts, field) DO UPDATE SET value = value + excluded.value",
            (*key, arg),
        )
        model[key] = model.get(key, 0.0) + arg
    elif op == "update":
        conn.execute("UPDATE points SET value = ? WHERE series_id = ? AND ts >= ?", (arg, sid, ts))
        for k in [k for k in model if k[0] == sid and k[1] >= ts]:
            model[k] = arg
    elif op == "delete":
        conn.execute("DELETE FROM points WHERE series_id = ? AND ts <= ?", (sid, ts))
        for k in [k for k in model if k[0] == sid and k[1] <= ts]:
            del model[k]
    elif op == "shift":
        # Moves one point across minutes, overwriting whatever sits at the target.
        if key in model:
            target = (sid, ts + int(arg), fld)
            conn.execute(
                "UPDATE OR REPLACE points SET ts = ? WHERE series_id = ? AND ts = ? AND field = ?",
                (target[1], sid, ts, fld),
            )
            model[target] = model.pop(key)
    elif op == "prune":
        prune(conn, ts)
        for k in [k for k in model if k[1] < ts]:
            del model[k]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops)
def test_rollups_equal_the_points_after_any_writes(ops: list[tuple[str, PointKey, float]]) -> None:
    conn = _new_store()
    model: dict[PointKey, float] = {}
    for op, key, arg in ops:
        _apply(conn, model, op, key, arg)
    assert stored_points(conn) == model
    assert stored_rollups(conn) == expected_rollups(model)


def test_writer_batches_and_overwrites_keep_rollups_exact(tmp_path: Path) -> None:
    writer = SqliteWriter.open(str(tmp_path / "s.db"))
    # Out of order within a minute, a late point, then a resent batch with new values.
    writer.write(["m,host=a v=1,w=2 20000", "m,host=a v=2 10000", "m,host=a v=4 70000"])
    writer.write(["m,host=a v=8 5000"])
    writer.write(["m,host=a v=16 20000", "m,host=a v=32 70000"])
    conn = writer.connection
    assert stored_rollups(conn) == expected_rollups(stored_points(conn))
    assert [(r[1], r[2], r[3], r[4], r[6]) for r in stored_rollups(conn)] == [
        ("v", 0, 26.0, 3, 16.0),
        ("v", 60_000, 32.0, 1, 32.0),
        ("w", 0, 2.0, 1, 2.0),
    ]
    writer.close()


def test_prune_drops_whole_minutes_and_recomputes_the_cut_one() -> None:
    conn = _new_store()
    for ts in range(0, 180_000, 10_000):
        conn.execute("INSERT INTO points VALUES (1, ?, 'count', 1.0)", (ts,))
    assert prune(conn, 90_000) == 9
    assert [(r[2], r[3], r[4]) for r in stored_rollups(conn)] == [
        (60_000, 3.0, 3),
        (120_000, 6.0, 6),
    ]
    # Prune runs without the per-row delete trigger; it must be back afterwards.
    conn.execute("DELETE FROM points WHERE ts = 170000")
    assert stored_rollups(conn) == expected_rollups(stored_points(conn))
    assert prune(conn, 120_000) == 3
    assert [(r[2], r[3], r[4]) for r in stored_rollups(conn)] == [(120_000, 5.0, 5)]


def _v1_file(path: Path, points: dict[PointKey, float]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in V1_DDL:
        conn.execute(statement)
    for sid in (1, 2):
        conn.execute(
            "INSERT INTO series (id, measurement, tagset, tags_json) VALUES (?, 'm', ?, '{}')",
            (sid, f"host=h{sid}"),
        )
    conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?)", [(*k, v) for k, v in points.items()])
    conn.close()


V1_POINTS: dict[PointKey, float] = {
    (sid, ts, fld): float(sid * ts % 7) + 0.5
    for sid in (1, 2)
    for ts in range(-30_000, 200_000, 7_000)
    for fld in ("count", "value")
}


def test_v1_file_is_migrated_once_with_rollups_built_from_its_points(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _v1_file(path, V1_POINTS)
    conn = open_database(str(path))
    assert schema_version(conn) == SCHEMA_VERSION
    assert stored_rollups(conn) == expected_rollups(V1_POINTS)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "series_for_windows3" in indexes and "series_by_measurement" not in indexes
    assert "series_for_windows" not in indexes  # version 2: no router, client
    # Writes after the migration keep the rollups, and a second open changes nothing.
    conn.execute("INSERT OR REPLACE INTO points VALUES (1, 0, 'count', 100.0)")
    before = stored_rollups(conn)
    conn.close()
    again = open_database(str(path))
    assert stored_rollups(again) == before == expected_rollups(stored_points(again))
    again.close()


def test_migration_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    _v1_file(path, V1_POINTS)
    import meshalert.backends.sqlite.writer as store

    monkeypatch.setattr(store, "ROLLUP_BACKFILL", "INSERT INTO no_such_table VALUES (1)")
    with pytest.raises(sqlite3.OperationalError):
        store.open_database(str(path))
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert schema_version(conn) == 1 and "rollup_1m" not in tables
    conn.close()
    monkeypatch.undo()
    assert stored_rollups(open_database(str(path))) == expected_rollups(V1_POINTS)


def test_a_version_1_writer_on_a_migrated_file_keeps_rollups_exact(tmp_path: Path) -> None:
    # Old code reopening the file re-runs its DDL (user_version back to 1) and writes with
    # INSERT OR REPLACE: the triggers live in the file, and the next open rebuilds anyway.
    path = tmp_path / "old.db"
    _v1_file(path, V1_POINTS)
    open_database(str(path)).close()
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA user_version=1")
    old.execute("INSERT OR REPLACE INTO points VALUES (2, 7000, 'count', -3.25)")
    old.execute("INSERT OR REPLACE INTO points VALUES (2, 900000, 'count', 1.0)")
    assert stored_rollups(old) == expected_rollups(stored_points(old))
    old.close()
    conn = open_database(str(path))
    assert schema_version(conn) == SCHEMA_VERSION
    assert stored_rollups(conn) == expected_rollups(stored_points(conn))


def test_fresh_ddl_statements_build_the_current_version() -> None:
    conn = sqlite3.connect(":memory:")
    for statement in DDL:
        conn.execute(statement)
    assert schema_version(conn) == SCHEMA_VERSION
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert triggers == {"points_rollup_insert", "points_rollup_delete", "points_rollup_update"}


def test_a_newer_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    open_database(str(path)).execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    assert schema_version(open_database(str(path))) == SCHEMA_VERSION + 1


def test_v2_file_gets_the_router_and_client_index(tmp_path: Path) -> None:
    """Schema 3: window queries group by router and client; a version 2 file's series index
    is replaced by one that covers them, once, when a writer opens it."""
    path = tmp_path / "v2.db"
    open_database(str(path)).close()
    old = sqlite3.connect(path)  # back to what version 2 wrote
    old.executescript(
        "DROP INDEX series_for_windows3;"
        "CREATE INDEX series_for_windows ON series (measurement, scope, namespace, service);"
        "PRAGMA user_version=2;"
    )
    old.close()
    conn = open_database(str(path))
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "series_for_windows3" in indexes and "series_for_windows" not in indexes
    assert schema_version(conn) == SCHEMA_VERSION == 3
