from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
from moto import mock_aws

from meshalert.backends.dynamodb.state import DynamoDBStateStore, create_table
from meshalert.backends.memory.state import MemoryStateStore
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert.state.protocols import StateStore
from tests.fixtures.dynamodb import SerializedClient

TABLE = "meshalert-state-test"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def dynamodb_client(aws_env: None) -> Iterator[object]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_table(client, TABLE)
        yield client


@pytest.fixture(params=["sqlite", "dynamodb", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "memory":
        yield MemoryStateStore()
    elif request.param == "sqlite":
        sqlite_store = SqliteStateStore(tmp_path / "state.db")
        yield sqlite_store
        sqlite_store.close()
    else:
        client = request.getfixturevalue("dynamodb_client")
        yield DynamoDBStateStore(
            TABLE,
            cast(Any, SerializedClient(client)),
            clock_ms=lambda: 1_700_000_000_000 + 86_400_000,
        )
