from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.backends.dynamodb.state import DynamoDBStateStore
from meshalert.backends.memory.state import MemoryStateStore
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert.backends.urls import StateUrlError, parse_state_url
from meshalert.wiring import needs_dynamodb, open_state
from tests.meshalert.state._build import record
from tests.meshalert.state.conftest import TABLE


def open_state_store(url: str, *, dynamodb_client: Any = None) -> Any:
    """The way every process opens its state: one parse, then the composition root."""
    return open_state(parse_state_url(url), dynamodb_client=dynamodb_client)


def test_sqlite_url(tmp_path: Path) -> None:
    store = open_state_store(f"sqlite:///{tmp_path}/state.db")
    assert isinstance(store, SqliteStateStore)
    store.save([record("a")])
    assert (tmp_path / "state.db").exists()


def test_relative_sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    open_state_store("sqlite:///./here.db").save([record("a")])
    assert (tmp_path / "here.db").exists()


def test_dynamodb_url_with_client(dynamodb_client: Any) -> None:
    store = open_state_store(f"dynamodb://{TABLE}", dynamodb_client=dynamodb_client)
    assert isinstance(store, DynamoDBStateStore)
    store.save([record("a")])
    assert store.load(AlertClass.LATENCY)["a"] == record("a")


def test_dynamodb_url_builds_its_own_client(dynamodb_client: Any) -> None:
    store = open_state_store(f"dynamodb://{TABLE}")
    store.save([record("b")])
    assert list(store.load(AlertClass.LATENCY)) == ["b"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://x", "dynamodb://TABLE or memory://, not scheme 'redis'"),
        ("memory://somewhere", "memory://"),
        ("dynamodb://ab", "table name 'ab'"),
        ("dynamodb://table/extra", "dynamodb://TABLE"),
        ("sqlite://host/x.db", "host"),
        ("/plain/path.db", "scheme '\\(none\\)'"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(StateUrlError, match=message):
        open_state_store(url)


def test_memory_url_opens_a_store_of_its_own() -> None:
    first, second = open_state_store("memory://"), open_state_store("memory://")
    assert isinstance(first, MemoryStateStore)
    first.save([record("a")])
    assert list(first.load(AlertClass.LATENCY)) == ["a"]
    assert list(second.load(AlertClass.LATENCY)) == []


def test_only_a_dynamodb_state_needs_a_dynamodb_client(tmp_path: Path) -> None:
    assert needs_dynamodb(parse_state_url(f"dynamodb://{TABLE}"))
    assert not needs_dynamodb(parse_state_url(f"sqlite:///{tmp_path}/s.db"))
    assert not needs_dynamodb(parse_state_url("memory://"))
