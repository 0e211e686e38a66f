"""One heartbeat cycle: query freshness, judge, step the state machine, claim, notify.

Heartbeat records live apart from the class records (``load(alert_class)`` of the state
store would hand them to an evaluator): DynamoDB items ``pk=health#heartbeat``,
``sk=svc#<key>`` in the state table, a ``health_records`` table in a SQLite state file, or a
dict. Notification claims and history go through the ordinary state store, so a duplicated
heartbeat run sends each notification once, exactly as an evaluation does.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from meshalert.alerts.model import AlertClass, AlertRecord, AlertState, Evidence, Notification
from meshalert.alerts.state_machine import StepPolicy, step
from meshalert.backends.dynamodb.url import DynamoDBState
from meshalert.backends.sqlite.url import SqliteState
from meshalert.backends.urls import StateConfig
from meshalert.delivery import Dispatcher, deliver_all
from meshalert.durations import format_duration_ms
from meshalert.health import (
    DEFAULT_SOURCES,
    INGEST_KEY,
    Check,
    FreshnessQuery,
    HeartbeatPolicy,
    evaluation_checks,
    ingest_checks,
    skipped_checks,
)
from meshalert.health_readers import FreshnessReader
from meshalert.state.protocols import HistoryEntry, StateStore
from meshalert.state.serialization import (
    history_entry_from_step,
    record_from_dict,
    record_to_dict,
)

HEALTH_PK = "health#heartbeat"


class HealthRecordStore(Protocol):
    def load(self) -> dict[str, AlertRecord]: ...

    def save(self, records: Sequence[AlertRecord]) -> None: ...

    def forget(self, keys: Sequence[str]) -> None: ...


@dataclass
class MemoryHealthRecords:
    records: dict[str, AlertRecord] = field(default_factory=dict)

    def load(self) -> dict[str, AlertRecord]:
        return dict(self.records)

    def save(self, records: Sequence[AlertRecord]) -> None:
        self.records.update((r.service, r) for r in records)

    def forget(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.records.pop(key, None)


class DynamoDBHealthRecords:
    def __init__(self, table: str, client: Any) -> None:
        self._table = table
        self._client = client

    def __repr__(self) -> str:
        return f"DynamoDBHealthRecords({self._table!r})"

    def load(self) -> dict[str, AlertRecord]:
        from meshalert.backends.dynamodb.state import from_attribute

        request: dict[str, Any] = {
            "TableName": self._table,
            "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": HEALTH_PK}},
        }
        out: dict[str, AlertRecord] = {}
        while True:
            page = self._client.query(**request)
            for item in page.get("Items", []):
                record = record_from_dict(from_attribute(item["record"]))
                out[record.service] = record
            if not page.get("LastEvaluatedKey"):
                return out
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def save(self, records: Sequence[AlertRecord]) -> None:
        from meshalert.backends.dynamodb.state import to_attribute

        self._write(
            {"PutRequest": {"Item": {**self._key(r.service), "record": to_attribute(d)}}}
            for r in records
            for d in [record_to_dict(r)]
        )

    def forget(self, keys: Sequence[str]) -> None:
        self._write({"DeleteRequest": {"Key": self._key(k)}} for k in keys)

    @staticmethod
    def _key(service: str) -> dict[str, Any]:
        return {"pk": {"S": HEALTH_PK}, "sk": {"S": f"svc#{service}"}}

    def _write(self, requests: Iterable[dict[str, Any]]) -> None:
        pending = list(requests)
        retries = 0
        while pending:
            batch, pending = pending[:25], pending[25:]
            answer = self._client.batch_write_item(RequestItems={self._table: batch})
            unprocessed = list(answer.get("UnprocessedItems", {}).get(self._table, []))
            if unprocessed:
                retries += 1
                if retries > 8:
                    raise RuntimeError(
                        f"DynamoDB table {self._table}: heartbeat records not written"
                    )
                pending = unprocessed + pending
                time.sleep(min(0.05 * 2**retries, 1.0))


class SqliteHealthRecords:
    def __init__(self, path: str) -> None:
        if path != ":memory:":
            from meshalert.state.files import make_private_file

            make_private_file(path)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS health_records "
            "(service TEXT PRIMARY KEY, record TEXT NOT NULL)"
        )

    def load(self) -> dict[str, AlertRecord]:
        rows = self._conn.execute("SELECT record FROM health_records").fetchall()
        records = (record_from_dict(json.loads(text)) for (text,) in rows)
        return {r.service: r for r in records}

    def save(self, records: Sequence[AlertRecord]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO health_records (service, record) VALUES (?, ?)",
            [(r.service, json.dumps(record_to_dict(r))) for r in records],
        )

    def forget(self, keys: Sequence[str]) -> None:
        self._conn.executemany("DELETE FROM health_records WHERE service = ?", [(k,) for k in keys])


def open_health_records(config: StateConfig, *, dynamodb_client: Any = None) -> HealthRecordStore:
    if isinstance(config, DynamoDBState):
        if dynamodb_client is None:
            raise ValueError("a DynamoDB state needs a dynamodb client for heartbeat records")
        return DynamoDBHealthRecords(config.table, dynamodb_client)
    if isinstance(config, SqliteState):
        return SqliteHealthRecords(config.path)
    raise TypeError(f"no heartbeat record store for {config!r}")


@dataclass
class HeartbeatReport:
    cycle_ms: int
    hosts_seen: int = 0
    checks: int = 0
    transitions: list[tuple[str, str, str]] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)
    duplicates_skipped: int = 0
    send_failures: int = 0
    firing: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    """Services the latest evaluation of each class skipped (class -> count), when any."""

    def as_log(self) -> dict[str, object]:
        return {
            "cycle_ms": self.cycle_ms,
            "hosts_seen": self.hosts_seen,
            "checks": self.checks,
            "transitions": len(self.transitions),
            "notifications": len(self.notifications),
            "duplicates_skipped": self.duplicates_skipped,
            "send_failures": self.send_failures,
            "firing": sorted(self.firing),
            "services_skipped": dict(sorted(self.skipped.items())),
        }


@dataclass
class HeartbeatMonitor:
    freshness: FreshnessReader
    state: StateStore
    records: HealthRecordStore
    dispatcher: Dispatcher | None
    lease_ms: int = 300_000
    clock: Callable[[], float] = time.monotonic

    def run(
        self, cycle_ms: int, policy: HeartbeatPolicy, *, query_end_ms: int, deadline_s: float
    ) -> HeartbeatReport:
        """Judge both checks at ``cycle_ms``; points up to ``query_end_ms`` count as fresh."""
        report = HeartbeatReport(cycle_ms)
        previous = self.records.load()
        query = FreshnessQuery(DEFAULT_SOURCES, cycle_ms - policy.lookback_ms, query_end_ms)
        fresh = self.freshness.newest_by_host(query)
        report.hosts_seen = len(fresh.newest_by_host)
        checks = ingest_checks(
            fresh.newest_by_host,
            known_keys=previous,
            cycle_ms=cycle_ms,
            policy=policy,
            query_text=fresh.query_text,
            window=format_duration_ms(policy.lookback_ms),
        )
        checks += evaluation_checks(
            self._last_evaluated(),
            cycle_ms=cycle_ms,
            policy=policy,
            query_text="state store: newest last_evaluated_ms of the class's alert records",
            window=format_duration_ms(policy.evaluation_stale_ms),
        )
        latest_skipped = {c: self.state.last_skipped(c) for c in AlertClass}
        report.skipped = {
            c.value: s.count for c, s in latest_skipped.items() if s is not None and s.count
        }
        checks += skipped_checks(latest_skipped, cycle_ms=cycle_ms, policy=policy)
        self._apply(
            checks, previous, policy=policy, cycle_ms=cycle_ms, deadline_s=deadline_s, report=report
        )
        return report

    def _last_evaluated(self) -> dict[AlertClass, int | None]:
        out: dict[AlertClass, int | None] = {}
        for alert_class in AlertClass:
            times = [
                r.last_evaluated_ms
                for r in self.state.load(alert_class).values()
                if r.last_evaluated_ms is not None
            ]
            out[alert_class] = max(times, default=None)
        return out

    def _apply(
        self,
        checks: Sequence[Check],
        previous: dict[str, AlertRecord],
        *,
        policy: HeartbeatPolicy,
        cycle_ms: int,
        deadline_s: float,
        report: HeartbeatReport,
    ) -> None:
        keep: list[AlertRecord] = []
        forget: list[str] = []
        history: list[HistoryEntry] = []
        outbox: list[Notification] = []
        for check in checks:
            obs = check.observation
            evidence = Evidence(
                alert_class=obs.alert_class,
                service=obs.service,
                observed=obs.value,
                threshold=check.threshold,
                window=check.window,
                query=check.query,
                samples=obs.samples,
                detail=dict(obs.detail),
                previous_state=AlertState.OK,
                replay="",
            )
            step_policy = StepPolicy(
                for_ms=0,
                renotify_ms=policy.renotify_ms,
                no_data=check.no_data,
                severity=policy.severity,
            )
            result = step(
                previous.get(obs.service), obs, check.verdict, evidence, step_policy, cycle_ms
            )
            report.checks += 1
            record = result.record
            if record.state is AlertState.FIRING:
                report.firing.append(record.service)
            if _forgotten_host(record, obs.value):
                forget.append(record.service)
            else:
                keep.append(record)
            if (entry := history_entry_from_step(result)) is not None:
                report.transitions.append(
                    (record.service, entry.from_state.value, entry.to_state.value)
                )
                history.append(entry)
            outbox.extend(result.notifications)
        self.records.save(keep)
        if forget:
            self.records.forget(forget)
        if history:
            self.state.append_history(history)
        deliver_all(
            outbox,
            state=self.state,
            dispatcher=self.dispatcher,
            now_ms=cycle_ms,
            lease_ms=self.lease_ms,
            deadline_s=deadline_s,
            tally=report,
        )


def _forgotten_host(record: AlertRecord, value: float | None) -> bool:
    """A host gone from the whole lookback whose alert has resolved: drop its record."""
    return (
        record.service.startswith(INGEST_KEY + ":")
        and value is None
        and record.state is AlertState.OK
    )
