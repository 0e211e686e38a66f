from __future__ import annotations

import threading
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

TABLE = "meshalert-state-test"


class SerializedClient:
    """Forwards to a moto client one request at a time.

    Real DynamoDB applies each single-item write, condition included, atomically; moto's
    in-process backend checks and writes without a lock, so two threads can both pass
    ``attribute_not_exists``. Serializing requests restores the service's guarantee, so the
    concurrency tests exercise our use of conditional writes rather than moto's internals.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.exceptions = client.exceptions

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call

    def get_paginator(self, operation: str) -> Any:
        """The paginator is bound to the moto client, so its pages would bypass the lock:
        each page is fetched under it instead."""
        return _LockedPaginator(self._client.get_paginator(operation), self._lock)


class _LockedPaginator:
    def __init__(self, paginator: Any, lock: threading.Lock) -> None:
        self._paginator = paginator
        self._lock = lock

    def paginate(self, **kwargs: Any) -> Iterator[Any]:
        pages = iter(self._paginator.paginate(**kwargs))
        while True:
            with self._lock:
                page = next(pages, None)
            if page is None:
                return
            yield page


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
