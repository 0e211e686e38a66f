"""The contract suite's InfluxDB 2 backend: a real InfluxDB 2.7 and its Flux engine.

By default it is the session's own server (:mod:`tests.fixtures.influxd2`, built by
``make deps-influxdb2``) with a fresh bucket per test. To run the same cases against another
InfluxDB 2 (a newer release, Cloud), set ``MESHALERT_TEST_INFLUXDB2_URL``
(``http://host:8086``, or an ``influxdb2://host:8086?org=..&bucket=..`` store URL), with
``MESHALERT_TEST_INFLUXDB2_TOKEN``, ``MESHALERT_TEST_INFLUXDB2_ORG`` and
``MESHALERT_TEST_INFLUXDB2_BUCKET`` (the last two may come from a store URL instead).
That bucket must be a throwaway one: every test empties it first (``/api/v2/delete``).
Points go in through :class:`meshalert.backends.influxdb2.writer.InfluxDB2Writer` and come
back through :class:`meshalert.backends.influxdb2.reader.InfluxDB2WindowReader`.

Registered in :data:`tests.contract.backends.BACKENDS` as ``"influxdb2"``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from influxdb_client.client.influxdb_client import InfluxDBClient

from meshalert.backends.influxdb2.reader import InfluxDB2WindowReader
from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.backends.influxdb2.writer import InfluxDB2Writer
from meshalert.backends.urls import parse_store_url

if TYPE_CHECKING:
    from tests.contract.backends import Backend

URL_VAR = "MESHALERT_TEST_INFLUXDB2_URL"
TOKEN_VAR = "MESHALERT_TEST_INFLUXDB2_TOKEN"
ORG_VAR = "MESHALERT_TEST_INFLUXDB2_ORG"
BUCKET_VAR = "MESHALERT_TEST_INFLUXDB2_BUCKET"

# Wider than any timestamp the contract tests write.
_DELETE_START = "1970-01-01T00:00:00Z"
_DELETE_STOP = "2200-01-01T00:00:00Z"


def influxdb2_config() -> InfluxDB2Store | None:
    """The test server from the environment; None when no URL is set.

    A URL without the rest is a broken setup, not an absent server: that fails, naming
    the missing variable, rather than skipping silently.
    """
    url = os.environ.get(URL_VAR, "").strip()
    if not url:
        return None
    token = os.environ.get(TOKEN_VAR) or None
    if url.startswith(("influxdb2://", "influxdb2s://")):
        parsed = parse_store_url(url, token=token)
        assert isinstance(parsed, InfluxDB2Store)
        org = os.environ.get(ORG_VAR) or parsed.org
        bucket = os.environ.get(BUCKET_VAR) or parsed.bucket
        base_url = parsed.base_url
    else:
        org, bucket = os.environ.get(ORG_VAR, ""), os.environ.get(BUCKET_VAR, "")
        base_url = url.rstrip("/")
    missing = [
        name
        for name, value in ((TOKEN_VAR, token), (ORG_VAR, org), (BUCKET_VAR, bucket))
        if not value
    ]
    if missing:
        pytest.fail(f"{URL_VAR} is set but {', '.join(missing)} is not")
    return InfluxDB2Store(base_url=base_url, org=org, bucket=bucket, token=token)


def empty_bucket(config: InfluxDB2Store) -> None:
    # Deleting a large bucket can take longer than the client's 10 s default.
    with InfluxDBClient(
        url=config.base_url, token=config.token or "", org=config.org, timeout=60_000
    ) as client:
        client.delete_api().delete(
            _DELETE_START, _DELETE_STOP, "", bucket=config.bucket, org=config.org
        )


def influxdb2_backend(request: pytest.FixtureRequest) -> Backend:
    # Imported here: backends.py imports this module to register it.
    from tests.contract.backends import Backend

    config = influxdb2_config()
    if config is None:
        server = request.getfixturevalue("influxd2")
        config = server.store(request.getfixturevalue("influxd2_bucket"))
    else:
        empty_bucket(config)
    writer = InfluxDB2Writer(config)
    reader = InfluxDB2WindowReader(config)
    request.addfinalizer(writer.close)
    request.addfinalizer(reader.close)
    return Backend("influxdb2", writer, reader)
