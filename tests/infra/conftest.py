"""Stores holding twenty minutes of simulated traffic for the dashboard tests.

Fed once per session (about half a minute of sidecar work each) and shared by the InfluxDB 2
template tests and the Grafana dashboard tests; each gets its own bucket or database on the
session's servers, so nothing else in the run sees or changes it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from meshalert.backends.influxdb1.reader import InfluxDB1WindowReader
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb1.writer import InfluxDB1Writer
from meshalert.backends.influxdb2.reader import InfluxDB2WindowReader
from meshalert.backends.influxdb2.writer import InfluxDB2Writer
from tests.fixtures.influxd import InfluxdServer
from tests.fixtures.influxd2 import Influxd2Server
from tests.infra.sidecar_traffic import Fed, Transition, feed_sidecars, record_alert_history


@dataclass(frozen=True)
class FedInfluxDB2:
    server: Influxd2Server
    bucket: str
    fed: Fed
    history: list[Transition]


@dataclass(frozen=True)
class FedInfluxDB1:
    server: InfluxdServer
    database: str
    fed: Fed
    history: list[Transition]


@pytest.fixture(scope="session")
def fed_influxd2(
    influxd2: Influxd2Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FedInfluxDB2]:
    if not influxd2.running:
        influxd2.start()
    bucket = influxd2.create_bucket("dash_" + uuid.uuid4().hex[:10])
    writer = InfluxDB2Writer(influxd2.store(bucket))
    try:
        fed = feed_sidecars(
            writer, tmp_path_factory.mktemp("spool2"), end_ms=int(time.time() * 1000)
        )
        history = record_alert_history(InfluxDB2WindowReader(influxd2.store(bucket)), writer, fed)
    finally:
        writer.close()
    yield FedInfluxDB2(influxd2, bucket, fed, history)
    if influxd2.running:
        influxd2.delete_bucket(bucket)


@pytest.fixture(scope="session")
def fed_influxd1(
    influxd: InfluxdServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FedInfluxDB1]:
    database = "dash_" + uuid.uuid4().hex[:10]
    influxd.create_database(database)
    store = InfluxDB1Store(influxd.url, database, None, None, None)
    writer = InfluxDB1Writer(store)
    try:
        fed = feed_sidecars(
            writer, tmp_path_factory.mktemp("spool1"), end_ms=int(time.time() * 1000)
        )
        history = record_alert_history(InfluxDB1WindowReader(store), writer, fed)
    finally:
        writer.close()
    yield FedInfluxDB1(influxd, database, fed, history)
    influxd.drop_database(database)
