"""InfluxDB1WindowReader against a real influxd: retention policies, errors, many groups."""

from __future__ import annotations

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.backends.influxdb1.reader import InfluxDB1WindowReader, parse_results
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb1.writer import InfluxDB1Writer
from meshalert.queries.model import FailuresAggregate, WindowQueryError, class_query
from tests.fixtures.influxd import InfluxdServer

pytestmark = pytest.mark.influxd
END = 1_700_000_400_000


def _config(server: InfluxdServer, db: str, rp: str | None = None) -> InfluxDB1Store:
    return InfluxDB1Store(server.url, db, rp, None, None)


def _requests_line(service: str, ts: int, count: float) -> str:
    return f"linkerd_requests,host=h,scope=service,service={service} count={count} {ts}"


def test_reads_from_a_named_retention_policy(influxd: InfluxdServer, influx_db: str) -> None:
    influxd.query(
        f'CREATE RETENTION POLICY "short rp" ON "{influx_db}" DURATION 1000w REPLICATION 1'
    )
    config = _config(influxd, influx_db, "short rp")
    writer = InfluxDB1Writer(config)
    writer.write([_requests_line("web", END - 10_000, 4.0)])
    writer.close()
    query = class_query(AlertClass.FAILURES, window_ms=60_000, end_ms=END)

    assert InfluxDB1WindowReader(config).fetch(query).services == {
        "web": {"": FailuresAggregate(requests=4.0)}
    }
    # The default policy holds nothing: the reader really did read "short rp".
    assert InfluxDB1WindowReader(_config(influxd, influx_db)).fetch(query).services == {}


def test_many_groups_come_back_across_chunks(influxd: InfluxdServer, influx_db: str) -> None:
    config = _config(influxd, influx_db)
    writer = InfluxDB1Writer(config)
    writer.write([_requests_line(f"s{i}", END - 10_000, float(i)) for i in range(12_000)])
    writer.close()
    result = InfluxDB1WindowReader(config).fetch(
        class_query(AlertClass.FAILURES, window_ms=60_000, end_ms=END)
    )
    assert len(result.services) == 12_000
    assert result.services["s11999"] == {"": FailuresAggregate(requests=11999.0)}
    assert result.queries_issued == 1


def test_store_errors_name_the_store(influxd: InfluxdServer) -> None:
    reader = InfluxDB1WindowReader(_config(influxd, "no_such_db"))
    with pytest.raises(WindowQueryError, match="database not found"):
        reader.fetch(class_query(AlertClass.FAILURES, window_ms=1, end_ms=2))
    down = InfluxDB1WindowReader(InfluxDB1Store("http://127.0.0.1:9", "db", None, None, None))
    with pytest.raises(WindowQueryError, match=r"127\.0\.0\.1:9"):
        down.fetch(class_query(AlertClass.FAILURES, window_ms=1, end_ms=2))


def test_unreadable_response_is_an_error() -> None:
    query = class_query(AlertClass.FAILURES, window_ms=1, end_ms=2)
    with pytest.raises(WindowQueryError, match="unreadable"):
        list(parse_results(query, '{"results": ['))


def test_credentials_stay_out_of_repr() -> None:
    reader = InfluxDB1WindowReader(InfluxDB1Store("http://h:1", "db", None, "me", "s3cret"))
    assert "s3cret" not in repr(reader)
