"""DynamoDB specifics: table shape, TTL, number encoding, batching."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertState
from meshalert.backends.dynamodb.state import (
    RETENTION_DAYS,
    TTL_ATTRIBUTE,
    DynamoDBStateStore,
    from_attribute,
    table_definition,
    to_attribute,
)
from meshalert.state.protocols import HistoryEntry
from meshalert.state.serialization import record_to_dict
from tests.fixtures.dynamodb import SerializedClient
from tests.meshalert.state._build import notification, record
from tests.meshalert.state.conftest import TABLE

T0 = 1_700_000_000_000


def test_created_table_matches_definition(dynamodb_client: Any) -> None:
    described = dynamodb_client.describe_table(TableName=TABLE)["Table"]
    definition = table_definition(TABLE)
    assert described["KeySchema"] == definition["KeySchema"]
    assert sorted(described["AttributeDefinitions"], key=str) == sorted(
        definition["AttributeDefinitions"], key=str
    )
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb_client.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": TTL_ATTRIBUTE}


def test_claims_and_history_expire_records_do_not(dynamodb_client: Any) -> None:
    store = DynamoDBStateStore(TABLE, dynamodb_client, clock_ms=lambda: T0)
    n = notification()
    store.claim(n, now_ms=T0, lease_ms=60_000)
    store.append_history(
        [HistoryEntry(T0, AlertClass.LATENCY, "a", AlertState.OK, AlertState.PENDING, {})]
    )
    store.save([record("a")])
    items = dynamodb_client.scan(TableName=TABLE)["Items"]
    by_pk = {i["pk"]["S"].split("#")[0]: i for i in items}
    assert set(by_pk) == {"notif", "open", "hist", "alert"}
    expected = str(T0 // 1000 + RETENTION_DAYS * 86_400)
    assert by_pk["notif"][TTL_ATTRIBUTE] == {"N": expected}
    assert by_pk["open"][TTL_ATTRIBUTE] == {"N": expected}
    assert by_pk["hist"][TTL_ATTRIBUTE] == {"N": expected}
    assert TTL_ATTRIBUTE not in by_pk["alert"]
    assert by_pk["alert"]["pk"] == {"S": "alert#latency"}
    assert by_pk["hist"]["pk"] == {"S": "hist#2023-11-14"}


def test_floats_travel_as_exact_decimals() -> None:
    assert to_attribute(0.1) == {"N": "0.1"}
    assert to_attribute(812.5) == {"N": "812.5"}
    assert to_attribute(3) == {"N": "3"}
    assert Decimal(to_attribute(1 / 3)["N"]) == Decimal(repr(1 / 3))
    assert to_attribute(float("nan")) == {"M": {"__float__": {"S": "nan"}}}
    assert to_attribute(1e-300) == {"M": {"__float__": {"S": "1e-300"}}}
    assert math.isnan(from_attribute(to_attribute(float("nan"))))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_attribute_round_trip(value: object) -> None:
    assert from_attribute(to_attribute(value)) == value


class _FlakyBatchClient:
    """Accepts one item per BatchWriteItem and returns the rest as unprocessed."""

    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []
        self.calls = 0

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls += 1
        ((table, requests),) = RequestItems.items()
        self.written.append(requests[0]["PutRequest"]["Item"])
        rest = requests[1:]
        return {"UnprocessedItems": {table: rest} if rest else {}}


def test_unprocessed_items_are_retried() -> None:
    client = _FlakyBatchClient()
    sleeps: list[float] = []
    store = DynamoDBStateStore(TABLE, cast(Any, client), sleep=sleeps.append)
    store.save([record(f"s{i}") for i in range(3)])
    assert sorted(i["sk"]["S"] for i in client.written) == ["svc#s0", "svc#s1", "svc#s2"]
    assert client.calls == 3
    assert len(sleeps) == 2


def test_items_written_in_the_old_encoding_still_decode(dynamodb_client: Any) -> None:
    """An alert record exactly as the hand-written encoder stored it (before boto3's
    TypeSerializer): ``N`` strings, an integral float as "500.0", a non-finite float in
    the tagged map, NULLs for absent values."""
    n = {"NULL": True}
    dynamodb_client.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": "alert#latency"},
            "sk": {"S": "svc#production/checkout"},
            "state": {"S": "firing"},
            "since_ms": {"N": "1700000000000"},
            "record": {
                "M": {
                    "alert_class": {"S": "latency"},
                    "service": {"S": "production/checkout"},
                    "state": {"S": "firing"},
                    "since_ms": {"N": "1700000000000"},
                    "episode_start_ms": {"N": "1699999880000"},
                    "last_notified_ms": {"N": "1700000000000"},
                    "last_value": {"M": {"__float__": {"S": "inf"}}},
                    "last_evaluated_ms": {"N": "1700000000000"},
                    "threshold": {
                        "M": {
                            "name": {"S": "above_ms"},
                            "value": {"N": "500.0"},
                            "source": {"S": "default"},
                        }
                    },
                    "flaps": {"N": "1"},
                    "reminder_seq": {"N": "2"},
                    "recovering_since_ms": n,
                    "last_resolved_ms": n,
                }
            },
        },
    )
    store = DynamoDBStateStore(TABLE, dynamodb_client)
    (loaded,) = store.load(AlertClass.LATENCY).values()
    assert loaded == replace(record(), last_value=math.inf)
    assert from_attribute({"M": {"__float__": {"S": "nan"}}}) != from_attribute({"N": "0"})
    assert math.isnan(from_attribute({"M": {"__float__": {"S": "nan"}}}))
    # Written again, the same item comes out byte for byte.
    store.save([loaded])
    item = dynamodb_client.get_item(
        TableName=TABLE, Key={"pk": {"S": "alert#latency"}, "sk": {"S": "svc#production/checkout"}}
    )["Item"]
    assert item["record"]["M"]["last_value"] == {"M": {"__float__": {"S": "inf"}}}
    assert item["record"]["M"]["threshold"]["M"]["value"] == {"N": "500.0"}
    assert item["record"] == to_attribute(record_to_dict(loaded))


def test_non_json_values_are_refused_with_their_type() -> None:
    """boto3's serializer would store sets and bytes; state never reads them back."""
    with pytest.raises(TypeError, match="cannot store set"):
        to_attribute({"a": {1, 2}})
    with pytest.raises(TypeError, match="cannot store bytes"):
        to_attribute([b"x"])
    with pytest.raises(ValueError, match="unsupported DynamoDB attribute value of type set"):
        from_attribute({"SS": ["a"]})


class _SmallPages(SerializedClient):
    """Query answers two items a page, so every read must follow LastEvaluatedKey."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.pages = 0

    def get_paginator(self, operation: str) -> Any:
        inner = super().get_paginator(operation)
        outer = self

        class _Paginator:
            def paginate(self, **kwargs: Any) -> Any:
                for page in inner.paginate(**kwargs, PaginationConfig={"PageSize": 2}):
                    outer.pages += 1
                    yield page

        return _Paginator()


def test_queries_read_every_page(dynamodb_client: Any) -> None:
    client = _SmallPages(dynamodb_client)
    store = DynamoDBStateStore(TABLE, cast(Any, client), clock_ms=lambda: T0)
    store.save([record(f"s{i}") for i in range(5)])
    assert sorted(store.load(AlertClass.LATENCY)) == [f"s{i}" for i in range(5)]
    assert client.pages >= 3
