from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshalert.alerts.model import AlertClass
from meshalert.state import StateUrlError, open_state_store
from meshalert.state.dynamodb_state import DynamoDBStateStore
from meshalert.state.sqlite_state import SqliteStateStore

from ._build import record
from .conftest import TABLE


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
        ("redis://x", "sqlite:/// or dynamodb://"),
        ("dynamodb://ab", "table name 'ab'"),
        ("dynamodb://table/extra", "dynamodb://TABLE"),
        ("sqlite://host/x.db", "host"),
        ("/plain/path.db", "scheme '\\(none\\)'"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(StateUrlError, match=message):
        open_state_store(url)
