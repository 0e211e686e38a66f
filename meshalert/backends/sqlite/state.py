"""Alert state in an embedded SQLite file (``sqlite:///path``).

WAL mode lets ``meshalert status``/``history`` read while ``run`` writes; every connection
waits up to ``busy_timeout_ms`` for the write lock, so several writers (threads or processes)
are safe. A connection is opened per operation: cheap next to an evaluation cycle, and it
keeps the store usable from any thread and across ``fork``. Claims take the write lock up
front (``BEGIN IMMEDIATE``) so the read-then-insert of a dedup key is one atomic step.
The tables are prefixed (``alert_``, ``notification_``) so they may share a file with the
embedded metrics store.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertRecord, Notification, SkippedServices
from meshalert.state.files import make_private_file
from meshalert.state.protocols import (
    ClaimInfo,
    Delivery,
    HistoryEntry,
    SilenceEndedError,
    StateUnavailableError,
    UnknownClaimError,
    UnknownSilenceError,
)
from meshalert.state.serialization import (
    history_entry_from_dict,
    history_entry_to_dict,
    notification_from_dict,
    notification_to_dict,
    record_from_dict,
    record_to_dict,
    silence_event_from_dict,
    silence_event_to_dict,
    silence_from_dict,
    silence_to_dict,
    suppressed_from_dict,
    suppressed_to_dict,
)
from meshalert.suppression import Silence, SilenceAction, SilenceEvent, Suppressed

MAX_DETAIL_CHARS = 2000

_DDL = (
    """CREATE TABLE IF NOT EXISTS alert_state (
        alert_class TEXT NOT NULL,
        service TEXT NOT NULL,
        state TEXT NOT NULL,
        since_ms INTEGER NOT NULL,
        record_json TEXT NOT NULL,
        PRIMARY KEY (alert_class, service)
    )""",
    """CREATE TABLE IF NOT EXISTS alert_history (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        alert_class TEXT NOT NULL,
        service TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        dedup_key TEXT,
        entry_json TEXT NOT NULL,
        UNIQUE (at_ms, alert_class, service, from_state, to_state)
    )""",
    "CREATE INDEX IF NOT EXISTS alert_history_service ON alert_history (service, at_ms)",
    """CREATE TABLE IF NOT EXISTS notification_claims (
        dedup_key TEXT PRIMARY KEY,
        claimed_ms INTEGER NOT NULL,
        lease_until_ms INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        sent_ms INTEGER,
        notification_json TEXT NOT NULL
    )""",
    # Open claims are looked for every cycle (to retry missing channels); final ones never.
    "CREATE INDEX IF NOT EXISTS notification_claims_open "
    "ON notification_claims (lease_until_ms) WHERE sent_ms IS NULL",
    """CREATE TABLE IF NOT EXISTS notification_deliveries (
        dedup_key TEXT NOT NULL REFERENCES notification_claims (dedup_key),
        channel TEXT NOT NULL,
        ok INTEGER NOT NULL,
        detail TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (dedup_key, channel)
    )""",
)


class SqliteStateStore:
    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 30_000) -> None:
        self._path = str(path)
        self._timeout_s = busy_timeout_ms / 1000
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()

        if self._path == ":memory:" or self._path.startswith("file:"):
            # Every operation opens its own connection; a private in-memory DB would vanish.
            raise ValueError(f"SqliteStateStore needs a file path, got {self._path!r}")
        make_private_file(self._path)
        with self._connect() as conn:
            if _has_schema(conn):
                return  # a reader (status, history) must not wait for a busy writer
            _enable_wal(conn, self._path, self._timeout_s)
            with _write(conn, self._path, self._timeout_s):
                for ddl in _DDL:
                    conn.execute(ddl)

    def __repr__(self) -> str:
        return f"SqliteStateStore({self._path!r})"

    @property
    def _records(self) -> dict[AlertClass, tuple[int, dict[str, AlertRecord]]]:
        """Records as this thread's connection last read or wrote them, per class, with its
        data_version then (per connection, so per thread): unchanged means no other
        connection has written since, and the rows need not be read and parsed again."""
        cache: dict[AlertClass, tuple[int, dict[str, AlertRecord]]] | None = getattr(
            self._local, "records", None
        )
        if cache is None:
            cache = self._local.records = {}
        return cache

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, opened once and kept: opening and closing one per
        operation cost a WAL checkpoint each time (most of a cycle's state-store time)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._path, timeout=self._timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout_s * 1000)}")
            self._local.conn = conn
            with self._opened_lock:
                self._opened.append(conn)
        yield conn

    def load(self, alert_class: AlertClass) -> dict[str, AlertRecord]:
        with self._connect() as conn:
            version = _data_version(conn)
            cached = self._records.get(alert_class)
            if cached is not None and cached[0] == version:
                return dict(cached[1])
            rows = conn.execute(
                "SELECT record_json FROM alert_state WHERE alert_class = ?", (alert_class.value,)
            ).fetchall()
        records = (record_from_dict(json.loads(row[0])) for row in rows)
        loaded = {r.service: r for r in records}
        self._records[alert_class] = (version, loaded)
        return dict(loaded)

    def load_all(self) -> list[AlertRecord]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT record_json FROM alert_state ORDER BY alert_class, service"
            ).fetchall()
        return [record_from_dict(json.loads(row[0])) for row in rows]

    def save(self, records: Sequence[AlertRecord]) -> None:
        with self._connect() as conn:
            before = _data_version(conn)
            full, values = self._split_by_change(records, before)
            with _write(conn, self._path, self._timeout_s):
                conn.executemany(
                    "INSERT OR REPLACE INTO alert_state "
                    "(alert_class, service, state, since_ms, record_json) VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            r.alert_class.value,
                            r.service,
                            r.state.value,
                            r.since_ms,
                            json.dumps(record_to_dict(r)),
                        )
                        for r in full
                    ],
                )
                conn.executemany(
                    "UPDATE alert_state SET record_json = json_set(record_json, "
                    "'$.last_value', ?, '$.last_evaluated_ms', ?) "
                    "WHERE alert_class = ? AND service = ?",
                    [
                        (r.last_value, r.last_evaluated_ms, r.alert_class.value, r.service)
                        for r in values
                    ],
                )
            self._remember(records, before, _data_version(conn))

    def _split_by_change(
        self, records: Sequence[AlertRecord], version: int
    ) -> tuple[list[AlertRecord], list[AlertRecord]]:
        """Records to write whole, and records whose stored copy (known unchanged since we
        read or wrote it) differs only in the value and time of the last evaluation: most of
        them, every cycle, and those are patched in place instead of re-encoded."""
        full: list[AlertRecord] = []
        values: list[AlertRecord] = []
        # The records known unchanged, per class, looked up once rather than per record.
        known = {
            alert_class: cached[1]
            for alert_class, cached in self._records.items()
            if cached[0] == version
        }
        nothing: dict[str, AlertRecord] = {}
        for record in records:
            previous = known.get(record.alert_class, nothing).get(record.service)
            if previous is not None and _same_durable(previous, record):
                values.append(record)
            else:
                full.append(record)
        return full, values

    def _remember(self, records: Sequence[AlertRecord], before: int, after: int) -> None:
        """Fold saved records into the read cache when nobody else wrote in between."""
        for alert_class in {r.alert_class for r in records}:
            cached = self._records.get(alert_class)
            if cached is None or cached[0] != before or before != after:
                self._records.pop(alert_class, None)
                continue
            cached[1].update((r.service, r) for r in records if r.alert_class is alert_class)

    def forget(self, alert_class: AlertClass, services: Sequence[str]) -> None:
        if not services:
            return
        with self._connect() as conn, _write(conn, self._path, self._timeout_s):
            conn.executemany(
                "DELETE FROM alert_state WHERE alert_class = ? AND service = ?",
                [(alert_class.value, s) for s in services],
            )
        self._records.pop(alert_class, None)

    def append_history(self, entries: Sequence[HistoryEntry]) -> None:
        rows = [
            (
                e.at_ms,
                e.alert_class.value,
                e.service,
                e.from_state.value,
                e.to_state.value,
                e.dedup_key,
                json.dumps(history_entry_to_dict(e)),
            )
            for e in entries
        ]
        with self._connect() as conn, _write(conn, self._path, self._timeout_s):
            conn.executemany(
                "INSERT OR IGNORE INTO alert_history (at_ms, alert_class, service, from_state, "
                "to_state, dedup_key, entry_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def history(
        self,
        *,
        since_ms: int,
        service: str | None = None,
        alert_class: AlertClass | None = None,
    ) -> list[HistoryEntry]:
        sql = "SELECT entry_json FROM alert_history WHERE at_ms >= ?"
        params: list[object] = [since_ms]
        if service is not None:
            sql += " AND service = ?"
            params.append(service)
        if alert_class is not None:
            sql += " AND alert_class = ?"
            params.append(alert_class.value)
        sql += " ORDER BY at_ms, id"
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [history_entry_from_dict(json.loads(row[0])) for row in rows]

    def claim(self, notification: Notification, *, now_ms: int, lease_ms: int) -> bool:
        if lease_ms <= 0:
            raise ValueError(f"lease_ms must be > 0, got {lease_ms}")
        key = notification.dedup_key
        doc = json.dumps(notification_to_dict(notification))
        with self._connect() as conn, _write(conn, self._path, self._timeout_s):
            row = conn.execute(
                "SELECT lease_until_ms, sent_ms FROM notification_claims WHERE dedup_key = ?",
                (key,),
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO notification_claims (dedup_key, claimed_ms, lease_until_ms, "
                    "attempts, sent_ms, notification_json) VALUES (?, ?, ?, 1, NULL, ?)",
                    (key, now_ms, now_ms + lease_ms, doc),
                )
                return True
            lease_until, sent = row
            if sent is not None or now_ms < lease_until:
                return False
            conn.execute(
                "UPDATE notification_claims SET claimed_ms = ?, lease_until_ms = ?, "
                "attempts = attempts + 1, notification_json = ? WHERE dedup_key = ?",
                (now_ms, now_ms + lease_ms, doc, key),
            )
            return True

    def mark_sent(
        self, dedup_key: str, channel: str, *, ok: bool, detail: str, now_ms: int
    ) -> None:
        with self._connect() as conn, _write(conn, self._path, self._timeout_s):
            found = conn.execute(
                "SELECT 1 FROM notification_claims WHERE dedup_key = ?", (dedup_key,)
            ).fetchone()
            if found is None:
                raise UnknownClaimError(dedup_key)
            conn.execute(
                "INSERT OR REPLACE INTO notification_deliveries "
                "(dedup_key, channel, ok, detail, at_ms) VALUES (?, ?, ?, ?, ?)",
                (dedup_key, channel, int(ok), detail[:MAX_DETAIL_CHARS], now_ms),
            )

    def finish(self, dedup_key: str, *, complete: bool, now_ms: int) -> None:
        if complete:
            sql = (
                "UPDATE notification_claims SET sent_ms = coalesce(sent_ms, ?) WHERE dedup_key = ?"
            )
        else:
            sql = (
                "UPDATE notification_claims SET lease_until_ms = min(lease_until_ms, ?) "
                "WHERE dedup_key = ?"
            )
        with self._connect() as conn, _write(conn, self._path, self._timeout_s):
            if conn.execute(sql, (now_ms, dedup_key)).rowcount == 0:
                raise UnknownClaimError(dedup_key)

    def unsent(self, alert_class: AlertClass, *, now_ms: int, since_ms: int) -> list[Notification]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT notification_json FROM notification_claims "
                "WHERE sent_ms IS NULL AND lease_until_ms <= ? AND claimed_ms >= ?",
                (now_ms, since_ms),
            ).fetchall()
        notes = (notification_from_dict(json.loads(text)) for (text,) in rows)
        return [n for n in notes if n.alert_class is alert_class and n.at_ms >= since_ms]

    def claim_info(self, dedup_key: str) -> ClaimInfo | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT claimed_ms, lease_until_ms, attempts, sent_ms FROM notification_claims "
                "WHERE dedup_key = ?",
                (dedup_key,),
            ).fetchone()
            deliveries = conn.execute(
                "SELECT channel, ok, detail, at_ms FROM notification_deliveries "
                "WHERE dedup_key = ? ORDER BY channel",
                (dedup_key,),
            ).fetchall()
        if row is None:
            return None
        return ClaimInfo(
            dedup_key=dedup_key,
            claimed_ms=row[0],
            lease_until_ms=row[1],
            attempts=row[2],
            sent_ms=row[3],
            deliveries=tuple(
                Delivery(channel=c, ok=bool(o), detail=d, at_ms=a) for c, o, d, a in deliveries
            ),
        )

    def note_skipped(self, summary: SkippedServices) -> None:
        with self._connect() as conn, _write(conn, self._path, self._timeout_s):
            # Created here, not with the schema: files made by older versions lack it.
            conn.execute(_SKIPPED_DDL)
            conn.execute(
                "INSERT OR REPLACE INTO evaluation_skipped "
                "(alert_class, cycle_ms, count, services_json) VALUES (?, ?, ?, ?)",
                (
                    summary.alert_class.value,
                    summary.cycle_ms,
                    summary.count,
                    json.dumps(list(summary.services)),
                ),
            )

    def last_skipped(self, alert_class: AlertClass) -> SkippedServices | None:
        with self._connect() as conn:
            try:
                row = conn.execute(
                    "SELECT cycle_ms, count, services_json FROM evaluation_skipped "
                    "WHERE alert_class = ?",
                    (alert_class.value,),
                ).fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return None
                raise
        if row is None:
            return None
        return SkippedServices(alert_class, row[0], row[1], tuple(json.loads(row[2])))

    # silences and held-back notifications: their tables are created on first write (and
    # read as empty before), so a state file made by an older version keeps working as is.

    def add_silence(self, silence: Silence) -> None:
        event = SilenceEvent(silence.created_ms, silence.id, SilenceAction.ADDED, silence.author)
        with self._connect() as conn, _write(conn, self._path, self._timeout_s):
            _create(conn, _SILENCE_DDL)
            try:
                conn.execute(
                    "INSERT INTO silences (id, end_ms, silence_json) VALUES (?, ?, ?)",
                    (silence.id, silence.ends_ms, json.dumps(silence_to_dict(silence))),
                )
            except sqlite3.IntegrityError:
                raise ValueError(f"silence {silence.id} already exists") from None
            _insert_event(conn, event)

    def expire_silence(self, silence_id: str, *, author: str, now_ms: int) -> Silence:
        with self._connect() as conn, _write(conn, self._path, self._timeout_s):
            _create(conn, _SILENCE_DDL)
            row = conn.execute(
                "SELECT silence_json FROM silences WHERE id = ?", (silence_id,)
            ).fetchone()
            if row is None:
                raise UnknownSilenceError(silence_id)
            held = silence_from_dict(json.loads(row[0]))
            if held.ends_ms <= now_ms:
                raise SilenceEndedError(f"silence {silence_id} has already ended")
            expired = replace(held, expired_ms=now_ms, expired_by=author)
            conn.execute(
                "UPDATE silences SET end_ms = ?, silence_json = ? WHERE id = ?",
                (expired.ends_ms, json.dumps(silence_to_dict(expired)), silence_id),
            )
            _insert_event(conn, SilenceEvent(now_ms, silence_id, SilenceAction.EXPIRED, author))
        return expired

    def silences(self, *, now_ms: int, include_ended: bool = False) -> list[Silence]:
        sql = "SELECT silence_json FROM silences"
        params: tuple[int, ...] = ()
        if not include_ended:
            sql += " WHERE end_ms > ?"
            params = (now_ms,)
        rows = self._read_optional(sql, params)
        found = [silence_from_dict(json.loads(text)) for (text,) in rows]
        return sorted(found, key=lambda s: (s.start_ms, s.id))

    def silence_audit(self, *, since_ms: int = 0) -> list[SilenceEvent]:
        rows = self._read_optional(
            "SELECT event_json FROM silence_audit WHERE at_ms >= ? ORDER BY at_ms, id",
            (since_ms,),
        )
        return [silence_event_from_dict(json.loads(text)) for (text,) in rows]

    def note_suppressed(self, entries: Sequence[Suppressed]) -> None:
        if not entries:
            return
        with self._connect() as conn, _write(conn, self._path, self._timeout_s):
            _create(conn, _SUPPRESSED_DDL)
            conn.executemany(
                "INSERT OR IGNORE INTO notification_suppressed "
                "(dedup_key, alert_class, at_ms, entry_json) VALUES (?, ?, ?, ?)",
                [
                    (e.dedup_key, e.alert_class.value, e.at_ms, json.dumps(suppressed_to_dict(e)))
                    for e in entries
                ],
            )

    def suppressed(self, alert_class: AlertClass, *, since_ms: int) -> list[Suppressed]:
        rows = self._read_optional(
            "SELECT entry_json FROM notification_suppressed "
            "WHERE alert_class = ? AND at_ms >= ? ORDER BY at_ms, dedup_key",
            (alert_class.value, since_ms),
        )
        return [suppressed_from_dict(json.loads(text)) for (text,) in rows]

    def _read_optional(self, sql: str, params: tuple[object, ...]) -> list[tuple[str]]:
        """Rows of a table created on first write: none yet when it does not exist."""
        with self._connect() as conn:
            try:
                return [(str(row[0]),) for row in conn.execute(sql, params).fetchall()]
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise

    def close(self) -> None:
        """Close every thread's connection; the store reopens them if used again."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()  # connections and their record caches


_SKIPPED_DDL = """CREATE TABLE IF NOT EXISTS evaluation_skipped (
    alert_class TEXT PRIMARY KEY,
    cycle_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    services_json TEXT NOT NULL
)"""

_SILENCE_DDL = (
    """CREATE TABLE IF NOT EXISTS silences (
        id TEXT PRIMARY KEY,
        end_ms INTEGER NOT NULL,
        silence_json TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS silence_audit (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        event_json TEXT NOT NULL
    )""",
)

_SUPPRESSED_DDL = (
    """CREATE TABLE IF NOT EXISTS notification_suppressed (
        dedup_key TEXT PRIMARY KEY,
        alert_class TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        entry_json TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS notification_suppressed_class "
    "ON notification_suppressed (alert_class, at_ms)",
)


def _create(conn: sqlite3.Connection, ddl: tuple[str, ...]) -> None:
    for statement in ddl:
        conn.execute(statement)


def _insert_event(conn: sqlite3.Connection, event: SilenceEvent) -> None:
    conn.execute(
        "INSERT INTO silence_audit (at_ms, event_json) VALUES (?, ?)",
        (event.at_ms, json.dumps(silence_event_to_dict(event))),
    )


_OBJECTS = ("alert_state", "alert_history", "notification_claims", "notification_deliveries")


_VOLATILE = {"last_value": None, "last_evaluated_ms": None}
"""The fields every evaluation changes, masked out of the comparison."""


def _same_durable(a: AlertRecord, b: AlertRecord) -> bool:
    """Whether two records differ at most in the volatile fields (one dict merge each, in C:
    this runs for every record of every class each cycle)."""
    return (a.__dict__ | _VOLATILE) == (b.__dict__ | _VOLATILE)


def _data_version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA data_version").fetchone()
    return int(version)


def _has_schema(conn: sqlite3.Connection) -> bool:
    marks = ",".join("?" * len(_OBJECTS))
    sql = f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({marks})"
    (found,) = conn.execute(sql, _OBJECTS).fetchone()
    return bool(found == len(_OBJECTS))


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _enable_wal(conn: sqlite3.Connection, path: str, timeout_s: float) -> None:
    """``PRAGMA journal_mode=WAL`` needs the file to itself and, unlike every other
    statement, fails at once instead of waiting out the busy timeout (two runs starting
    together on a fresh file): retry it until the busy timeout has passed."""
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        try:
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if str(mode).lower() == "wal":
                return
        except sqlite3.OperationalError as exc:
            if not _locked(exc):
                raise
        if time.monotonic() >= deadline:
            raise StateUnavailableError(
                f"state database {path} is locked by another process "
                f"(still busy after {timeout_s:g}s)"
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


@contextmanager
def _write(conn: sqlite3.Connection, path: str, timeout_s: float) -> Iterator[None]:
    """One write transaction holding the lock from its start (no upgrade deadlocks)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if not _locked(exc):
            raise
        raise StateUnavailableError(
            f"state database {path} is locked by another process (still busy after {timeout_s:g}s)"
        ) from None
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
