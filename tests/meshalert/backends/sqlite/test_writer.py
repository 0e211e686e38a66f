from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.backends.sqlite.writer import (
    SqliteWriter,
    _decode_known_series,
    _fast_decode,
    open_database,
    prune,
    tagset_of,
)
from meshalert.lineprotocol import Point, decode, encode, sanitize
from meshalert.stores.protocols import StoreWriteError


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "nested" / "dir" / "meshalert.db")


def _rows(conn: sqlite3.Connection) -> list[tuple[str, str, str | None, int, str, float]]:
    return conn.execute(
        "SELECT s.measurement, s.tagset, s.service, p.ts, p.field, p.value "
        "FROM points p JOIN series s ON s.id = p.series_id ORDER BY 1, 2, 4, 5"
    ).fetchall()


def test_open_database_creates_parents_schema_and_wal(db_path: str) -> None:
    conn = open_database(db_path)
    assert Path(db_path).exists()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"series", "points"} <= tables
    conn.close()
    ro = open_database(db_path, readonly=True)
    with pytest.raises(sqlite3.OperationalError):
        ro.execute("DELETE FROM points")
    ro.close()


def test_readonly_open_of_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_database(str(tmp_path / "nope.db"), readonly=True)


def test_round_trip(db_path: str) -> None:
    writer = SqliteWriter.open(db_path)
    writer.write(
        [
            "linkerd_requests,host=n1,service=web,scope=service count=12.5,samples=3i 60000",
            "linkerd_requests,host=n1,service=api,scope=service count=2.0,samples=1i 60000",
            'linkerd_loadbalancer_available,host=n1,custom=x value=3i,up=true,note="s" 60000',
        ]
    )
    writer.close()
    conn = open_database(db_path, readonly=True)
    assert _rows(conn) == [
        ("linkerd_loadbalancer_available", "custom=x,host=n1", None, 60000, "up", 1.0),
        ("linkerd_loadbalancer_available", "custom=x,host=n1", None, 60000, "value", 3.0),
        ("linkerd_requests", "host=n1,scope=service,service=api", "api", 60000, "count", 2.0),
        ("linkerd_requests", "host=n1,scope=service,service=api", "api", 60000, "samples", 1.0),
        ("linkerd_requests", "host=n1,scope=service,service=web", "web", 60000, "count", 12.5),
        ("linkerd_requests", "host=n1,scope=service,service=web", "web", 60000, "samples", 3.0),
    ]
    host, scope, tags_json = conn.execute(
        "SELECT host, scope, tags_json FROM series WHERE tagset = 'custom=x,host=n1'"
    ).fetchone()
    assert (host, scope) == ("n1", None)
    assert json.loads(tags_json) == {"custom": "x", "host": "n1"}


def test_same_series_and_timestamp_overwrites(db_path: str) -> None:
    writer = SqliteWriter.open(db_path)
    writer.write(["m,host=a v=1 1000"])
    writer.write(["m,host=a v=2 1000", "m,host=a v=3 2000"])
    # Tag order in the line does not make a new series.
    writer.write(["m,service=s,host=a v=9 1000", "m,host=a,service=s v=10 1000"])
    assert writer.connection.execute("SELECT count(*) FROM series").fetchone()[0] == 2
    assert _rows(writer.connection) == [
        ("m", "host=a", None, 1000, "v", 2.0),
        ("m", "host=a", None, 2000, "v", 3.0),
        ("m", "host=a,service=s", "s", 1000, "v", 10.0),
    ]
    writer.close()


def test_bad_line_rejects_whole_batch_and_names_it(db_path: str) -> None:
    writer = SqliteWriter.open(db_path)
    with pytest.raises(StoreWriteError) as info:
        writer.write(["m,host=a v=1 1000", "m,host=a v=oops 2000", "m v=3 3000"])
    assert info.value.retryable is False
    assert "line 1" in str(info.value) and "v=oops" in str(info.value)
    assert _rows(writer.connection) == []
    writer.write(["m,host=a v=1 1000"])  # the writer is still usable
    assert len(_rows(writer.connection)) == 1


@pytest.mark.parametrize("service", ["a b,c=d", 'q"uo"te', "back\\slash\\"])
def test_escaped_tags_keep_exact_values(db_path: str, service: str) -> None:
    tags = {"service": service, "host": "h"}
    line = encode(Point.make("m x", tags, {"v": 1.0}, 5))
    writer = SqliteWriter.open(db_path)
    writer.write([line])
    stored, tagset, tags_json = writer.connection.execute(
        "SELECT service, tagset, tags_json FROM series"
    ).fetchone()
    # Names and tag values pass through lineprotocol.sanitize (backslash -> "/") on every store.
    assert stored == sanitize(service)
    assert json.loads(tags_json) == {"service": sanitize(service), "host": "h"}
    assert tagset == tagset_of(tags.items())


def test_prune_removes_old_points_and_orphan_series(db_path: str) -> None:
    writer = SqliteWriter.open(db_path)
    writer.write(["old,host=a v=1 1000", "both,host=a v=1 1000", "both,host=a v=2 5000"])
    other = open_database(db_path)  # pruning from another connection, as a CLI would
    assert prune(other, 2000) == 2
    assert other.execute("SELECT measurement FROM series").fetchall() == [("both",)]
    other.close()
    # The writer's cached id for "old" is stale now; writing it again must still land.
    writer.write(["old,host=a v=7 9000"])
    assert ("old", "host=a", None, 9000, "v", 7.0) in _rows(writer.connection)
    assert writer.prune(10_000) == 2
    writer.write(["old,host=a v=8 11000"])
    assert _rows(writer.connection) == [("old", "host=a", None, 11000, "v", 8.0)]


def test_concurrent_reader_sees_committed_batches(db_path: str) -> None:
    writer = SqliteWriter.open(db_path)
    reader = open_database(db_path, readonly=True)
    writer.write(["m v=1 1"])
    assert reader.execute("SELECT count(*) FROM points").fetchone()[0] == 1
    writer.write(["m v=1 2", "m v=1 3"])
    assert reader.execute("SELECT count(*) FROM points").fetchone()[0] == 3


_names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(
    points=st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from(["host", "service", "le", "zz"]), _names, max_size=3),
            st.integers(0, 5),
            st.floats(allow_nan=False, allow_infinity=False, width=32),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_last_write_wins_like_a_dict_model(
    points: list[tuple[dict[str, str], int, float]],
) -> None:
    conn = open_database(":memory:")
    writer = SqliteWriter(conn)
    model: dict[tuple[str, int], float] = {}
    for tags, ts, value in points:
        writer.write([encode(Point.make("m", tags, {"v": value}, ts))])
        model[(tagset_of((k, sanitize(v)) for k, v in tags.items()), ts)] = value
    got = {(tagset, ts): value for _, tagset, _, ts, _, value in _rows(conn)}
    assert got == model


_line_text = st.text(st.sampled_from(list('ab=, i1.5-tTfeE\\"\nx')), max_size=30)


@settings(max_examples=300, deadline=None)
@given(text=_line_text)
def test_fast_decode_agrees_with_decode_on_any_text(text: str) -> None:
    fast = _fast_decode(text)
    if fast is None:
        return
    assert fast == decode(text)


@settings(max_examples=200, deadline=None)
@given(
    tags=st.dictionaries(_names, _names, max_size=4),
    fields=st.dictionaries(
        _names,
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**63), 2**63 - 1),
            st.booleans(),
        ),
        min_size=1,
        max_size=4,
    ),
    ts=st.integers(0, 2**53),
)
def test_fast_decode_agrees_with_decode_on_encoded_points(
    tags: dict[str, str], fields: dict[str, float | int | bool], ts: int
) -> None:
    line = encode(Point.make("m", tags, fields, ts))
    fast = _fast_decode(line)
    assert fast is None or fast == decode(line)
    if "\\" not in line and '"' not in line:
        assert fast is not None  # the fast path does take plain lines


@settings(max_examples=300, deadline=None)
@given(first=_line_text, second_fields=_line_text)
def test_remembered_series_decode_like_a_fresh_line(first: str, second_fields: str) -> None:
    # The second line reuses the first one's series section with other fields: whether the
    # section came from the cache or not, the result is what decode() says (or a fallback).
    head = first.strip().split(" ")[0]
    for line in (first, f"{head} {second_fields}", f"{head} {second_fields}"):
        got = _decode_known_series(line)
        if got is None:
            continue
        point = decode(line)
        assert got.point == point
        assert got.key == (point.measurement, tagset_of(point.tags))


def test_prune_in_chunks_removes_exactly_the_old_points_and_orphan_series(tmp_path: Path) -> None:
    writer = SqliteWriter.open(str(tmp_path / "m.db"))
    lines = [f"m,host=a,service=old v=1.0 {t}" for t in range(0, 600_000, 10_000)]
    lines += [f"m,host=a,service=new v=2.0 {t}" for t in range(300_000, 900_000, 10_000)]
    writer.write(lines)
    conn = writer.connection
    deleted = prune(conn, 605_000, chunk_ms=120_000)
    assert deleted == 60 + 31  # every point of "old", "new" from 300 s to 600 s
    (left,) = conn.execute("SELECT count(*) FROM points").fetchone()
    assert left == 29
    services = [r[0] for r in conn.execute("SELECT service FROM series")]
    assert services == ["new"]
    (rolled,) = conn.execute("SELECT sum(sum) FROM rollup_1m").fetchone()
    assert rolled == 2.0 * 29
    writer.close()


def test_store_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    import os

    path = tmp_path / "sub" / "m.db"
    old = os.umask(0)
    try:
        writer = SqliteWriter.open(str(path))
        writer.write(["m,host=a v=1 1000"])
        modes = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()}
        writer.close()
    finally:
        os.umask(old)
    assert modes["m.db"] == 0o600
    assert {name for name in modes} >= {"m.db", "m.db-wal"}
    assert set(modes.values()) == {0o600}, modes


def test_series_id_cache_is_bounded_and_evicted_ids_still_resolve(tmp_path: Path) -> None:
    writer = SqliteWriter.open(str(tmp_path / "m.db"), series_cache_max=10)
    for ts in (1000, 2000):
        writer.write([f"m,service=s{i} v={i} {ts}" for i in range(100)])
        assert writer.cached_series == 10
    rows = writer.connection.execute(
        "SELECT s.service, count(*), sum(p.value) FROM points p JOIN series s "
        "ON s.id = p.series_id GROUP BY s.service"
    ).fetchall()
    assert len(rows) == 100
    assert all(n == 2 and total == 2 * int(svc[1:]) for svc, n, total in rows)
    (n_series,) = writer.connection.execute("SELECT count(*) FROM series").fetchone()
    assert n_series == 100
    writer.close()
