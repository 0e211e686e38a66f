"""InfluxDB1WindowReader.fetch_buckets on a real influxd: retention policy, errors, chunks."""

from __future__ import annotations

import pytest

from meshalert.backends.influxdb1.reader import InfluxDB1WindowReader, parse_bucket_results
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb1.writer import InfluxDB1Writer
from meshalert.queries.baseline import RatioBucket, baseline_query
from meshalert.queries.model import WindowQueryError
from tests.fixtures.influxd import InfluxdServer

pytestmark = pytest.mark.influxd
W = 120_000
QUERY = baseline_query(W, 1_700_000_461_250)  # bucket edges 1.25 s past the minute


def _config(server: InfluxdServer, db: str, rp: str | None = None) -> InfluxDB1Store:
    return InfluxDB1Store(server.url, db, rp, None, None)


def _line(measurement: str, service: str, ts: int, count: float) -> str:
    return f"{measurement},host=h,scope=service,service={service} count={count} {ts}"


def test_buckets_from_a_named_retention_policy_with_an_offset(
    influxd: InfluxdServer, influx_db: str
) -> None:
    influxd.query(f'CREATE RETENTION POLICY "day" ON "{influx_db}" DURATION 1000w REPLICATION 1')
    config = _config(influxd, influx_db, "day")
    writer = InfluxDB1Writer(config)
    b = QUERY.start_ms + 5 * W
    writer.write(
        [
            _line("linkerd_requests", "web", b - 1, 1.0),  # the bucket before
            _line("linkerd_requests", "web", b, 10.0),
            _line("linkerd_requests", "web", b + W - 1, 5.0),
            _line("linkerd_retries_total", "web", b + 1, 3.0),
        ]
    )
    writer.close()

    result = InfluxDB1WindowReader(config).fetch_buckets(QUERY)

    assert result.services == {
        "web": {"": (RatioBucket(b - W, 0.0, 1.0), RatioBucket(b, 3.0, 15.0))},
    }
    assert 'FROM "day"."linkerd_requests"' in result.query_text
    assert InfluxDB1WindowReader(_config(influxd, influx_db)).fetch_buckets(QUERY).services == {}


def test_many_services_come_back_across_chunks(influxd: InfluxdServer, influx_db: str) -> None:
    config = _config(influxd, influx_db)
    writer = InfluxDB1Writer(config)
    ts = QUERY.stop_ms - 1
    writer.write([_line("linkerd_requests", f"s{i}", ts, float(i)) for i in range(6_000)])
    writer.close()
    result = InfluxDB1WindowReader(config).fetch_buckets(QUERY)
    assert len(result.services) == 6_000
    assert result.services["s5999"] == {"": (RatioBucket(QUERY.stop_ms - W, 0.0, 5999.0),)}


def test_errors_name_the_store_and_reason(influxd: InfluxdServer) -> None:
    with pytest.raises(WindowQueryError, match="database not found"):
        InfluxDB1WindowReader(_config(influxd, "no_such_db")).fetch_buckets(QUERY)
    with pytest.raises(WindowQueryError, match="influxql error: boom"):
        list(parse_bucket_results(QUERY, '{"results": [{"statement_id": 0, "error": "boom"}]}'))
