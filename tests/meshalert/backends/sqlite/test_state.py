"""SQLite specifics: several processes, readers during a write, file handling."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert.state.protocols import StateUnavailableError
from tests.meshalert.state._build import notification, record

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
    from meshalert.alert_classes import AlertClass
    from meshalert.alerts.model import AlertRecord, AlertState

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

    from meshalert.alert_classes import AlertClass
    from meshalert.alerts.model import AlertRecord, AlertState

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


_HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("CREATE TABLE IF NOT EXISTS other_writer (x)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def _lock_in_another_process(path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_fresh_file_locked_by_another_process_is_waited_for(tmp_path: Path) -> None:
    # Two runs starting together: the other one is creating the file's first tables.
    path = tmp_path / "state.db"
    holder = _lock_in_another_process(path, 1.0)
    try:
        store = SqliteStateStore(path, busy_timeout_ms=30_000)
        store.save([record(service="ns/a")])
        assert set(store.load(AlertClass.LATENCY)) == {"ns/a"}
        (mode,) = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()
        assert mode == "wal"
    finally:
        holder.wait(timeout=30)


def test_a_lock_held_past_the_busy_timeout_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    holder = _lock_in_another_process(path, 5.0)
    try:
        with pytest.raises(StateUnavailableError) as info:
            SqliteStateStore(path, busy_timeout_ms=300)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert str(info.value) == (
        f"state database {path} is locked by another process (still busy after 0.3s)"
    )


@pytest.fixture
def no_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("no_umask")
def test_the_database_and_its_wal_and_shm_are_owner_only_whatever_the_umask(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new-dir" / "state.db"
    store = SqliteStateStore(path)
    store.save([record(service="ns/a")])
    store.append_history([])
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    store.close()


@pytest.mark.usefixtures("no_umask")
def test_a_state_file_left_world_readable_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStateStore(path).close()
    os.chmod(path, 0o644)
    SqliteStateStore(path).load(AlertClass.LATENCY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.usefixtures("no_umask")
def test_the_heartbeat_records_in_the_state_file_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStateStore(path)
    store.save([record(service="meshalert/ingest", alert_class=AlertClass.INGEST)])
    store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
