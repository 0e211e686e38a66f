"""SQLite specifics: several processes, readers during a write, file handling."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from meshalert.alerts.model import AlertClass
from meshalert.state.sqlite_state import SqliteStateStore

from ._build import notification, record

T0 = 1_700_000_000_000
KEYS = 40


def _claim_all(path: str, barrier: object, results: object) -> None:
    store = SqliteStateStore(path)
    barrier.wait()  # type: ignore[attr-defined]
    won = [
        i
        for i in range(KEYS)
        if store.claim(notification(service=f"ns/svc-{i}"), now_ms=T0, lease_ms=60_000)
    ]
    results.put(won)  # type: ignore[attr-defined]


def test_two_processes_claim_each_key_once(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    SqliteStateStore(path)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(path, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    won = [results.get(timeout=60), results.get(timeout=60)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(won[0] + won[1]) == list(range(KEYS))


def test_wal_lets_a_reader_see_committed_state_during_a_write(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStateStore(path)
    store.save([record("a")])
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM alert_state")
    try:
        # Another store object (as `meshalert status` in another process) reads meanwhile.
        reader = SqliteStateStore(path, busy_timeout_ms=200)
        assert list(reader.load(AlertClass.LATENCY)) == ["a"]
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "state.db"
    SqliteStateStore(path).save([record("a")])
    assert SqliteStateStore(path).load(AlertClass.LATENCY)["a"] == record("a")


def test_rejects_in_memory_database() -> None:
    with pytest.raises(ValueError, match="file path"):
        SqliteStateStore(":memory:")


def test_corrupt_row_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStateStore(path)
    store.save([record("a")])
    conn = sqlite3.connect(path)
    conn.execute('UPDATE alert_state SET record_json = \'{"alert_class": "latency"}\'')
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match="service"):
        store.load(AlertClass.LATENCY)


def test_a_write_by_another_store_is_seen_despite_the_record_cache(tmp_path: Path) -> None:
    from meshalert.alerts.model import AlertClass, AlertRecord, AlertState

    path = tmp_path / "state.db"
    mine, other = SqliteStateStore(path), SqliteStateStore(path)
    first = AlertRecord(AlertClass.LATENCY, "checkout", AlertState.OK, 1)
    mine.save([first])
    assert mine.load(AlertClass.LATENCY) == {"checkout": first}
    mine.save([first.__class__(AlertClass.LATENCY, "checkout", AlertState.PENDING, 2)])
    assert mine.load(AlertClass.LATENCY)["checkout"].state is AlertState.PENDING
    other.save([AlertRecord(AlertClass.LATENCY, "checkout", AlertState.FIRING, 3)])
    assert mine.load(AlertClass.LATENCY)["checkout"].state is AlertState.FIRING
    loaded = mine.load(AlertClass.LATENCY)
    loaded.clear()  # callers get a copy: the cache is not theirs to change
    assert "checkout" in mine.load(AlertClass.LATENCY)


def test_value_only_changes_are_patched_and_read_back_by_another_store(tmp_path: Path) -> None:
    from dataclasses import replace

    from meshalert.alerts.model import AlertClass, AlertRecord, AlertState

    path = tmp_path / "state.db"
    writer = SqliteStateStore(path)
    first = AlertRecord(AlertClass.FAILURES, "cart", AlertState.PENDING, 10, episode_start_ms=10)
    writer.save([first])
    writer.load(AlertClass.FAILURES)
    later = replace(first, last_value=0.125, last_evaluated_ms=70)
    writer.save([later])
    moved = replace(later, state=AlertState.FIRING, since_ms=130, last_evaluated_ms=130)
    other = AlertRecord(AlertClass.FAILURES, "web", AlertState.OK, 5, last_value=0.5)
    writer.save([moved, other])
    reader = SqliteStateStore(path)
    assert reader.load(AlertClass.FAILURES) == {"cart": moved, "web": other}
    writer.save([replace(moved, last_value=None, last_evaluated_ms=190)])
    got = SqliteStateStore(path).load(AlertClass.FAILURES)["cart"]
    assert (got.state, got.last_value, got.last_evaluated_ms) == (AlertState.FIRING, None, 190)
