from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshalert.backends.dynamodb.url import DynamoDBState
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.backends.memory.url import MemoryState
from meshalert.backends.sqlite.url import SqliteState, SqliteStore
from meshalert.backends.url_parts import StoreUrlError
from meshalert.backends.urls import (
    STATE_SCHEMES,
    STORE_SCHEMES,
    StateUrlError,
    parse_state_url,
    parse_store_url,
)


def test_sqlite_relative_and_absolute() -> None:
    assert parse_store_url("sqlite:///./meshalert.db") == SqliteStore("./meshalert.db")
    assert parse_store_url("sqlite:////var/lib/m.db") == SqliteStore("/var/lib/m.db")
    assert parse_store_url("sqlite:///../up.db") == SqliteStore("../up.db")
    assert parse_store_url("sqlite:///tmp/m.db") == SqliteStore("/tmp/m.db")


def test_influxdb2_with_token_hidden_from_repr() -> None:
    cfg = parse_store_url("influxdb2s://influx.example:443?org=acme&bucket=mesh", token="s3cret")
    assert cfg == InfluxDB2Store("https://influx.example:443", "acme", "mesh", "s3cret")
    assert "s3cret" not in repr(cfg)


def test_influxdb1_credentials_from_url_win_and_stay_hidden() -> None:
    cfg = parse_store_url("influxdb1://bob:pw@db:8087/linkerd?rp=week", username="x", password="y")
    assert isinstance(cfg, InfluxDB1Store)
    assert cfg.base_url == "http://db:8087"
    assert (cfg.database, cfg.retention_policy) == ("linkerd", "week")
    assert (cfg.username, cfg.password) == ("bob", "pw")
    assert "pw" not in repr(cfg)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("influxdb2://h:8086?bucket=b", "org"),
        ("influxdb2://h:8086?org=o", "bucket"),
        ("influxdb1://h:8086", "database"),
        ("postgres://h/db", "unknown store scheme"),
        ("sqlite://", "no database path"),
        ("influxdb1://:pw@/db", "no host"),
    ],
)
def test_errors_name_the_missing_part(url: str, needle: str) -> None:
    with pytest.raises(StoreUrlError, match=needle):
        parse_store_url(url)


def test_password_is_redacted_in_errors() -> None:
    with pytest.raises(StoreUrlError) as err:
        parse_store_url("influxdb2://u:topsecret@h:8086?org=o")
    assert "topsecret" not in str(err.value)


def test_one_registry_names_every_scheme() -> None:
    assert set(STORE_SCHEMES) == {"sqlite", "influxdb1", "influxdb1s", "influxdb2", "influxdb2s"}
    assert set(STATE_SCHEMES) == {"sqlite", "dynamodb", "memory"}
    with pytest.raises(StoreUrlError) as info:
        parse_store_url("postgres://h/db")
    assert all(f"{scheme}://" in str(info.value) for scheme in STORE_SCHEMES)


def test_state_urls_parse_to_their_backend() -> None:
    assert parse_state_url("sqlite:///./s.db") == SqliteState("./s.db")
    assert parse_state_url(" SQLITE:////var/s.db ") == SqliteState("/var/s.db")
    assert parse_state_url("dynamodb://meshalert-state") == DynamoDBState("meshalert-state")
    assert parse_state_url("dynamodb://meshalert-state/") == DynamoDBState("meshalert-state")
    assert parse_state_url("memory://") == MemoryState()


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("influxdb1://h/db", "not scheme 'influxdb1'"),
        ("dynamodb://ab", "table name 'ab'"),
        ("dynamodb://t-able?x=1", "dynamodb://TABLE"),
        ("sqlite://host/s.db", "host"),
        ("memory://x", "memory://"),
    ],
)
def test_state_url_errors_name_the_part(url: str, needle: str) -> None:
    with pytest.raises(StateUrlError, match=needle):
        parse_state_url(url)


@given(st.from_regex(r"[A-Za-z0-9_.-]{3,255}", fullmatch=True))
def test_every_valid_table_name_round_trips(table: str) -> None:
    assert parse_state_url(f"dynamodb://{table}") == DynamoDBState(table)


@given(st.text(alphabet="abc:/?#@ .-_%", max_size=30))
def test_any_state_text_parses_or_fails_with_a_state_url_error(text: str) -> None:
    try:
        parse_state_url(text)
    except StateUrlError as err:
        assert str(err)
