from __future__ import annotations

import pytest

from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.backends.sqlite.url import SqliteStore
from meshalert.backends.url_parts import StoreUrlError
from meshalert.backends.urls import parse_store_url


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
