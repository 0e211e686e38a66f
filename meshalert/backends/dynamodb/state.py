"""Alert state in one DynamoDB table (``dynamodb://TABLE``), single-table design.

Keys (``pk``/``sk``, both strings):

=========================  ===========================  ==========================  ========
item                       pk                           sk                          TTL
=========================  ===========================  ==========================  ========
alert record               ``alert#<class>``            ``svc#<service>``           no
notification claim         ``notif#<dedup key>``        ``claim``                   30 days
open claim (to retry)      ``open#<class>``             ``<at_ms:015>#<dedup key>``  30 days
skipped services           ``skipped``                  ``<class>``                 no
history entry              ``hist#<YYYY-MM-DD>`` (UTC)  ``<at_ms:015>#<class>#...``  30 days
silence                    ``silence``                  ``<id>``                    30 d after end
silence audit event        ``silence_audit``            ``<at_ms:015>#<id>#<act>``  30 days
held-back notification     ``supp#<class>``             ``<at_ms:015>#<dedup key>``  30 days
=========================  ===========================  ==========================  ========

Records of one class share a partition so ``load`` is one Query, not a Scan. History is
partitioned by day so no partition grows without bound; ``history`` queries the days from
``since_ms`` to tomorrow, clamped to the retention (older items are expired anyway).
The history sort key ends in ``<from>#<to>``, so a duplicated cycle overwrites its own entry.
A claim is one conditional UpdateItem (an upsert): it succeeds only if the item does not exist
or its lease has lapsed and the claim is not final. Channel outcomes live in the claim
item's ``deliveries`` map. While a claim is not final an ``open#<class>`` item points at it,
so ``unsent`` is one Query of a small partition rather than a Scan; ``finish(complete)``
deletes it. Numbers go over the wire as DynamoDB ``N`` strings built from
``Decimal(repr(float))``; values DynamoDB cannot hold (NaN, infinities, magnitudes outside
1e-130..1e126) are stored as ``{"__float__": "<repr>"}`` and read back as floats.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertRecord, Notification, SkippedServices
from meshalert.state.protocols import (
    ClaimInfo,
    Delivery,
    HistoryEntry,
    SilenceEndedError,
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

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any

TTL_ATTRIBUTE = "expires_at"
RETENTION_DAYS = 30
MAX_DETAIL_CHARS = 2000
_DAY_MS = 86_400_000
_BATCH = 25
_FLOAT_TAG = "__float__"
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()

AttributeValue = dict[str, Any]


def table_definition(table_name: str) -> dict[str, Any]:
    """The table as CloudFormation ``AWS::DynamoDB::Table`` Properties (also used by
    :func:`create_table`, which drops the TTL part that CreateTable does not accept)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
    }


def create_table(client: DynamoDBClient, table_name: str) -> None:
    """Create the table and enable TTL (for tests and `meshalert` without CloudFormation)."""
    definition = table_definition(table_name)
    ttl = definition.pop("TimeToLiveSpecification")
    client.create_table(**definition)
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(TableName=table_name, TimeToLiveSpecification=ttl)


def to_attribute(value: Any) -> AttributeValue:
    """A JSON-able value as a DynamoDB attribute value (boto3's ``TypeSerializer``)."""
    return cast(AttributeValue, _SERIALIZER.serialize(_storable(value)))


def _storable(value: Any) -> Any:
    """The value as ``TypeSerializer`` takes it: floats as ``Decimal`` (it refuses floats) or,
    where DynamoDB cannot hold them, the tagged form; anything not JSON-able is refused here,
    since the serializer would otherwise store sets and bytes that state never reads back."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _float_value(value)
    if isinstance(value, Mapping):
        return {str(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB: {value!r}")


def _float_value(value: float) -> Decimal | dict[str, str]:
    if math.isfinite(value):
        number = Decimal(repr(value))
        if number.is_zero() or -130 <= number.adjusted() <= 125:
            return number
    return {_FLOAT_TAG: repr(value)}


def from_attribute(attribute: Mapping[str, Any]) -> Any:
    """The JSON-able value of a DynamoDB attribute value (boto3's ``TypeDeserializer``;
    numbers: int when integral, tagged floats read back as floats)."""
    return _json_value(_DESERIALIZER.deserialize(cast(Any, attribute)))


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Decimal):
        # The deserializer keeps the stored text, so "3" is an int and "3.0" a float.
        text = str(value)
        integral = value == value.to_integral_value() and not any(c in text for c in ".eE")
        return int(value) if integral else float(value)
    if isinstance(value, dict):
        tagged = value.get(_FLOAT_TAG) if len(value) == 1 else None
        if isinstance(tagged, str):
            return float(tagged)
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    raise ValueError(f"unsupported DynamoDB attribute value of type {type(value).__name__}")


def _day(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _expires_at(now_ms: int) -> int:
    return now_ms // 1000 + RETENTION_DAYS * 86_400


class DynamoDBStateStore:
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        *,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table_name
        self._client = client
        self._clock_ms = clock_ms
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"DynamoDBStateStore({self._table!r})"

    # records

    def load(self, alert_class: AlertClass) -> dict[str, AlertRecord]:
        items = self._query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"alert#{alert_class.value}"}},
        )
        records = (record_from_dict(from_attribute({"M": i})["record"]) for i in items)
        return {r.service: r for r in records}

    def load_all(self) -> list[AlertRecord]:
        out: list[AlertRecord] = []
        for alert_class in AlertClass:
            out.extend(sorted(self.load(alert_class).values(), key=lambda r: r.service))
        return out

    def save(self, records: Sequence[AlertRecord]) -> None:
        items = {
            (f"alert#{r.alert_class.value}", f"svc#{r.service}"): {
                "state": r.state.value,
                "since_ms": r.since_ms,
                "record": record_to_dict(r),
            }
            for r in records
        }
        self._batch_put(items)

    def forget(self, alert_class: AlertClass, services: Sequence[str]) -> None:
        requests = [
            {
                "DeleteRequest": {
                    "Key": {"pk": {"S": f"alert#{alert_class.value}"}, "sk": {"S": f"svc#{s}"}}
                }
            }
            for s in dict.fromkeys(services)  # a batch may not name one key twice
        ]
        for start in range(0, len(requests), _BATCH):
            self._write_batch(requests[start : start + _BATCH])

    # history

    def append_history(self, entries: Sequence[HistoryEntry]) -> None:
        items = {
            (
                f"hist#{_day(e.at_ms)}",
                f"{e.at_ms:015d}#{e.alert_class.value}#{e.service}#"
                f"{e.from_state.value}#{e.to_state.value}",
            ): {
                "alert_class": e.alert_class.value,
                "service": e.service,
                "at_ms": e.at_ms,
                "entry": history_entry_to_dict(e),
                TTL_ATTRIBUTE: _expires_at(e.at_ms),
            }
            for e in entries
        }
        self._batch_put(items)

    def history(
        self,
        *,
        since_ms: int,
        service: str | None = None,
        alert_class: AlertClass | None = None,
    ) -> list[HistoryEntry]:
        now_ms = self._clock_ms()
        start = max(since_ms, now_ms - (RETENTION_DAYS + 2) * _DAY_MS)
        filters: list[str] = []
        values: dict[str, AttributeValue] = {":since": {"S": f"{max(since_ms, 0):015d}"}}
        names: dict[str, str] = {}
        if service is not None:
            filters.append("#svc = :svc")
            names["#svc"] = "service"
            values[":svc"] = {"S": service}
        if alert_class is not None:
            filters.append("#cls = :cls")
            names["#cls"] = "alert_class"
            values[":cls"] = {"S": alert_class.value}
        out: list[HistoryEntry] = []
        day_ms = start - start % _DAY_MS
        while day_ms <= now_ms + _DAY_MS:
            query: dict[str, Any] = {
                "KeyConditionExpression": "pk = :pk AND sk >= :since",
                "ExpressionAttributeValues": {**values, ":pk": {"S": f"hist#{_day(day_ms)}"}},
            }
            if filters:
                query["FilterExpression"] = " AND ".join(filters)
                query["ExpressionAttributeNames"] = names
            for item in self._query(**query):
                out.append(history_entry_from_dict(from_attribute({"M": item})["entry"]))
            day_ms += _DAY_MS
        return out

    # notification claims

    def claim(self, notification: Notification, *, now_ms: int, lease_ms: int) -> bool:
        if lease_ms <= 0:
            raise ValueError(f"lease_ms must be > 0, got {lease_ms}")
        errors = self._client.exceptions
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._claim_key(notification.dedup_key),
                UpdateExpression=(
                    "SET claimed_ms = :now, lease_until_ms = :until, notification = :n, "
                    "deliveries = if_not_exists(deliveries, :empty), #ttl = :exp "
                    "ADD attempts :one"
                ),
                ConditionExpression=(
                    "attribute_not_exists(pk) OR "
                    "(attribute_not_exists(sent_ms) AND lease_until_ms <= :now)"
                ),
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":now": to_attribute(now_ms),
                    ":until": to_attribute(now_ms + lease_ms),
                    ":n": to_attribute(notification_to_dict(notification)),
                    ":empty": {"M": {}},
                    ":exp": to_attribute(_expires_at(now_ms)),
                    ":one": {"N": "1"},
                },
            )
        except errors.ConditionalCheckFailedException:
            return False
        self._client.put_item(
            TableName=self._table,
            Item={
                **self._open_key(
                    notification.alert_class, notification.at_ms, notification.dedup_key
                ),
                "notification": to_attribute(notification_to_dict(notification)),
                TTL_ATTRIBUTE: to_attribute(_expires_at(now_ms)),
            },
        )
        return True

    def finish(self, dedup_key: str, *, complete: bool, now_ms: int) -> None:
        if complete:
            update = "SET sent_ms = if_not_exists(sent_ms, :now)"
            condition = "attribute_exists(pk)"
        else:
            update = "SET lease_until_ms = :now"
            condition = "attribute_exists(pk) AND lease_until_ms > :now"
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=self._claim_key(dedup_key),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues={":now": to_attribute(now_ms)},
                ReturnValues="ALL_NEW",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            if self.claim_info(dedup_key) is None:
                raise UnknownClaimError(dedup_key) from None
            return  # the lease had already lapsed: nothing to release
        if complete:
            note = notification_from_dict(from_attribute(answer["Attributes"]["notification"]))
            self._client.delete_item(
                TableName=self._table,
                Key=self._open_key(note.alert_class, note.at_ms, dedup_key),
            )

    def unsent(self, alert_class: AlertClass, *, now_ms: int, since_ms: int) -> list[Notification]:
        out: list[Notification] = []
        for item in self._query(
            KeyConditionExpression="pk = :pk AND sk >= :since",
            ExpressionAttributeValues={
                ":pk": {"S": f"open#{alert_class.value}"},
                ":since": {"S": f"{max(since_ms, 0):015d}"},
            },
        ):
            note = notification_from_dict(from_attribute(item["notification"]))
            info = self.claim_info(note.dedup_key)
            if info is None or info.sent_ms is not None:
                # Final (or expired) since: the pointer is stale.
                self._client.delete_item(
                    TableName=self._table, Key={"pk": item["pk"], "sk": item["sk"]}
                )
                continue
            if info.lease_until_ms <= now_ms:
                out.append(note)
        return out

    def mark_sent(
        self, dedup_key: str, channel: str, *, ok: bool, detail: str, now_ms: int
    ) -> None:
        update = "SET deliveries.#ch = :d"
        values: dict[str, AttributeValue] = {
            ":d": to_attribute({"ok": ok, "detail": detail[:MAX_DETAIL_CHARS], "at_ms": now_ms})
        }
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._claim_key(dedup_key),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#ch": channel},
                ExpressionAttributeValues=values,
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise UnknownClaimError(dedup_key) from None

    def claim_info(self, dedup_key: str) -> ClaimInfo | None:
        found = self._client.get_item(
            TableName=self._table, Key=self._claim_key(dedup_key), ConsistentRead=True
        )
        if "Item" not in found:
            return None
        item = from_attribute({"M": found["Item"]})
        deliveries = sorted(item.get("deliveries", {}).items())
        return ClaimInfo(
            dedup_key=dedup_key,
            claimed_ms=item["claimed_ms"],
            lease_until_ms=item["lease_until_ms"],
            attempts=item["attempts"],
            sent_ms=item.get("sent_ms"),
            deliveries=tuple(
                Delivery(channel=ch, ok=d["ok"], detail=d["detail"], at_ms=d["at_ms"])
                for ch, d in deliveries
            ),
        )

    def note_skipped(self, summary: SkippedServices) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": "skipped"},
                "sk": {"S": summary.alert_class.value},
                "cycle_ms": to_attribute(summary.cycle_ms),
                "count": to_attribute(summary.count),
                "services": to_attribute(list(summary.services)),
            },
        )

    def last_skipped(self, alert_class: AlertClass) -> SkippedServices | None:
        found = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": "skipped"}, "sk": {"S": alert_class.value}},
            ConsistentRead=True,
        )
        if "Item" not in found:
            return None
        item = from_attribute({"M": found["Item"]})
        return SkippedServices(
            alert_class, item["cycle_ms"], item["count"], tuple(item["services"])
        )

    # silences

    def add_silence(self, silence: Silence) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": "silence"},
                    "sk": {"S": silence.id},
                    "ends_ms": to_attribute(silence.ends_ms),
                    "silence": to_attribute(silence_to_dict(silence)),
                    TTL_ATTRIBUTE: to_attribute(_expires_at(silence.ends_ms)),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise ValueError(f"silence {silence.id} already exists") from None
        self._put_event(
            SilenceEvent(silence.created_ms, silence.id, SilenceAction.ADDED, silence.author)
        )

    def expire_silence(self, silence_id: str, *, author: str, now_ms: int) -> Silence:
        key = {"pk": {"S": "silence"}, "sk": {"S": silence_id}}
        found = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        if "Item" not in found:
            raise UnknownSilenceError(silence_id)
        held = silence_from_dict(from_attribute(found["Item"]["silence"]))
        if held.ends_ms <= now_ms:
            raise SilenceEndedError(f"silence {silence_id} has already ended")
        expired = replace(held, expired_ms=now_ms, expired_by=author)
        try:
            # Conditional on the end read above: of two concurrent expiries, one is audited.
            self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET ends_ms = :ends, silence = :silence, #ttl = :exp",
                ConditionExpression="ends_ms = :before",
                ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":ends": to_attribute(expired.ends_ms),
                    ":silence": to_attribute(silence_to_dict(expired)),
                    ":exp": to_attribute(_expires_at(expired.ends_ms)),
                    ":before": to_attribute(held.ends_ms),
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise SilenceEndedError(f"silence {silence_id} was expired meanwhile") from None
        self._put_event(SilenceEvent(now_ms, silence_id, SilenceAction.EXPIRED, author))
        return expired

    def silences(self, *, now_ms: int, include_ended: bool = False) -> list[Silence]:
        items = self._query(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "silence"}}
        )
        found = [silence_from_dict(from_attribute(i["silence"])) for i in items]
        return sorted(
            (s for s in found if include_ended or s.ends_ms > now_ms),
            key=lambda s: (s.start_ms, s.id),
        )

    def silence_audit(self, *, since_ms: int = 0) -> list[SilenceEvent]:
        items = self._query(
            KeyConditionExpression="pk = :pk AND sk >= :since",
            ExpressionAttributeValues={
                ":pk": {"S": "silence_audit"},
                ":since": {"S": f"{max(since_ms, 0):015d}"},
            },
        )
        return [silence_event_from_dict(from_attribute(i["event"])) for i in items]

    def _put_event(self, event: SilenceEvent) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": "silence_audit"},
                "sk": {"S": f"{max(event.at_ms, 0):015d}#{event.silence_id}#{event.action}"},
                "event": to_attribute(silence_event_to_dict(event)),
                TTL_ATTRIBUTE: to_attribute(_expires_at(event.at_ms)),
            },
        )

    # held-back notifications

    def note_suppressed(self, entries: Sequence[Suppressed]) -> None:
        self._batch_put(
            {
                (f"supp#{e.alert_class.value}", f"{max(e.at_ms, 0):015d}#{e.dedup_key}"): {
                    "entry": suppressed_to_dict(e),
                    TTL_ATTRIBUTE: _expires_at(e.at_ms),
                }
                for e in entries
            }
        )

    def suppressed(self, alert_class: AlertClass, *, since_ms: int) -> list[Suppressed]:
        items = self._query(
            KeyConditionExpression="pk = :pk AND sk >= :since",
            ExpressionAttributeValues={
                ":pk": {"S": f"supp#{alert_class.value}"},
                ":since": {"S": f"{max(since_ms, 0):015d}"},
            },
        )
        return [suppressed_from_dict(from_attribute(i["entry"])) for i in items]

    def close(self) -> None:
        """The client belongs to the caller."""

    # plumbing

    @staticmethod
    def _open_key(alert_class: AlertClass, at_ms: int, dedup_key: str) -> dict[str, AttributeValue]:
        return {
            "pk": {"S": f"open#{alert_class.value}"},
            "sk": {"S": f"{max(at_ms, 0):015d}#{dedup_key}"},
        }

    @staticmethod
    def _claim_key(dedup_key: str) -> dict[str, AttributeValue]:
        return {"pk": {"S": f"notif#{dedup_key}"}, "sk": {"S": "claim"}}

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table, ConsistentRead=True, **kwargs
        )
        for page in pages:
            yield from page.get("Items", [])

    def _batch_put(self, items: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        requests = [
            {"PutRequest": {"Item": {**to_attribute(doc)["M"], "pk": {"S": pk}, "sk": {"S": sk}}}}
            for (pk, sk), doc in items.items()
        ]
        for start in range(0, len(requests), _BATCH):
            self._write_batch(requests[start : start + _BATCH])

    def _write_batch(self, batch: list[Any]) -> None:
        pending: list[Any] = batch
        for attempt in range(8):
            result = self._client.batch_write_item(RequestItems={self._table: pending})
            pending = list(result.get("UnprocessedItems", {}).get(self._table, []))
            if not pending:
                return
            self._sleep(min(0.05 * 2**attempt, 2.0))
        raise RuntimeError(
            f"DynamoDB table {self._table}: {len(pending)} items still unprocessed after retries"
        )
