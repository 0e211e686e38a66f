"""The silence part of the StateStore contract, on every store (SQLite, DynamoDB under moto,
memory; the ``store`` fixture of this directory's conftest)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import NotificationKind
from meshalert.backends.dynamodb.state import RETENTION_DAYS, TTL_ATTRIBUTE, DynamoDBStateStore
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert.state.protocols import SilenceEndedError, StateStore, UnknownSilenceError
from meshalert.suppression import Silence, Suppressed

from ._build import notification

T0 = 1_700_000_000_000
HOUR = 3_600_000


def _silence(sid: str = "s1", **changes: Any) -> Silence:
    values: dict[str, Any] = {
        "id": sid,
        "service": "production/checkout",
        "alert_class": AlertClass.LATENCY,
        "start_ms": T0,
        "end_ms": T0 + 2 * HOUR,
        "reason": "deploy",
        "author": "alice",
        "created_ms": T0,
    }
    values.update(changes)
    return Silence(**values)


def test_no_silences_at_first(store: StateStore) -> None:
    assert store.silences(now_ms=T0) == []
    assert store.silences(now_ms=T0, include_ended=True) == []
    assert store.silence_audit() == []
    assert store.suppressed(AlertClass.LATENCY, since_ms=0) == []


def test_add_list_round_trip(store: StateStore) -> None:
    a = _silence("a")
    b = _silence(
        "b",
        service="staging/*",
        alert_class=None,
        start_ms=T0 + HOUR,
        end_ms=T0 + 3 * HOUR,
        reason="ünïcode",
    )
    store.add_silence(b)
    store.add_silence(a)
    assert store.silences(now_ms=T0) == [a, b]
    # Future silences are listed too (not over yet); ended ones only with include_ended.
    assert store.silences(now_ms=T0 + 2 * HOUR) == [b]
    assert store.silences(now_ms=T0 + 3 * HOUR) == []
    assert store.silences(now_ms=T0 + 3 * HOUR, include_ended=True) == [a, b]
    assert not a.active(T0 + 2 * HOUR)
    assert b.active(T0 + 2 * HOUR)


def test_duplicate_id_is_refused(store: StateStore) -> None:
    store.add_silence(_silence("dup"))
    with pytest.raises(ValueError, match="already exists"):
        store.add_silence(_silence("dup", reason="other"))
    assert [s.reason for s in store.silences(now_ms=T0)] == ["deploy"]


def test_expire_ends_it_now_and_audits_who(store: StateStore) -> None:
    store.add_silence(_silence("s1", author="alice"))
    expired = store.expire_silence("s1", author="bob", now_ms=T0 + HOUR)
    assert (expired.expired_ms, expired.expired_by, expired.ends_ms) == (
        T0 + HOUR,
        "bob",
        T0 + HOUR,
    )
    assert not expired.active(T0 + HOUR)
    assert expired.active(T0 + HOUR - 1)
    assert store.silences(now_ms=T0 + HOUR) == []
    assert store.silences(now_ms=T0 + HOUR, include_ended=True) == [expired]
    audit = store.silence_audit()
    assert [(e.action, e.author, e.silence_id, e.at_ms) for e in audit] == [
        ("added", "alice", "s1", T0),
        ("expired", "bob", "s1", T0 + HOUR),
    ]
    assert [e.action for e in store.silence_audit(since_ms=T0 + 1)] == ["expired"]


def test_expire_unknown_or_ended_is_an_error(store: StateStore) -> None:
    with pytest.raises(UnknownSilenceError):
        store.expire_silence("nope", author="bob", now_ms=T0)
    store.add_silence(_silence("s1"))
    with pytest.raises(SilenceEndedError):
        store.expire_silence("s1", author="bob", now_ms=T0 + 2 * HOUR)
    store.expire_silence("s1", author="bob", now_ms=T0 + 1)
    with pytest.raises(SilenceEndedError):
        store.expire_silence("s1", author="carol", now_ms=T0 + 2)
    assert [e.author for e in store.silence_audit()] == ["alice", "bob"]


def test_suppressed_are_kept_once_per_dedup_key_by_class(store: StateStore) -> None:
    firing = notification()
    held = Suppressed.of(firing, "silenced by s1: deploy")
    store.note_suppressed([held])
    store.note_suppressed([held])  # a retried cycle
    reminder = replace(
        notification(kind=NotificationKind.REMINDER, reminder_seq=1), at_ms=firing.at_ms + HOUR
    )
    other = Suppressed.of(reminder, "maintenance db")
    store.note_suppressed([other])
    store.note_suppressed([])
    assert store.suppressed(firing.alert_class, since_ms=0) == sorted(
        [held, other], key=lambda h: h.at_ms
    )
    assert store.suppressed(firing.alert_class, since_ms=other.at_ms) == [other]
    assert store.suppressed(AlertClass.RETRIES, since_ms=0) == []


def test_sqlite_file_from_an_older_version_gains_the_tables(tmp_path: Path) -> None:
    """Migration: a state file written before silences existed (no such tables) reads as
    empty and accepts silences, its records untouched."""
    path = tmp_path / "old.db"
    SqliteStateStore(path).close()
    conn = sqlite3.connect(path)
    for table in ("silences", "silence_audit", "notification_suppressed"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.commit()
    conn.close()
    store = SqliteStateStore(path)
    assert store.silences(now_ms=T0) == []
    assert store.silence_audit() == []
    assert store.suppressed(AlertClass.LATENCY, since_ms=0) == []
    store.add_silence(_silence())
    assert [s.id for s in store.silences(now_ms=T0)] == ["s1"]
    store.close()


def test_dynamodb_silence_items_expire_by_ttl(dynamodb_client: Any) -> None:
    store = DynamoDBStateStore("meshalert-state-test", dynamodb_client)
    store.add_silence(_silence())
    item = dynamodb_client.get_item(
        TableName="meshalert-state-test", Key={"pk": {"S": "silence"}, "sk": {"S": "s1"}}
    )["Item"]
    assert int(item[TTL_ATTRIBUTE]["N"]) == (T0 + 2 * HOUR) // 1000 + RETENTION_DAYS * 86_400
    store.expire_silence("s1", author="bob", now_ms=T0 + HOUR)
    item = dynamodb_client.get_item(
        TableName="meshalert-state-test", Key={"pk": {"S": "silence"}, "sk": {"S": "s1"}}
    )["Item"]
    # Kept for the audit's retention after it ended, then DynamoDB removes it.
    assert int(item[TTL_ATTRIBUTE]["N"]) == (T0 + HOUR) // 1000 + RETENTION_DAYS * 86_400
