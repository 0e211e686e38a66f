"""meshalert/health.py and health_readers.py parsing: query text, judgements, CSV/JSON."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.alerts.model import AlertClass
from meshalert.backends.sqlite.writer import SqliteWriter, open_database
from meshalert.health import (
    DEFAULT_SOURCES,
    INGEST_KEY,
    FreshnessQuery,
    HeartbeatPolicy,
    evaluation_checks,
    freshness_flux,
    freshness_influxql,
    ingest_checks,
)
from meshalert.health_readers import SqliteFreshnessReader, flux_csv_newest, rfc3339_ms
from meshalert.lineprotocol import Point, encode

POLICY = HeartbeatPolicy.for_interval(60_000, 4 * 3_600_000)
Q = FreshnessQuery(DEFAULT_SOURCES, 0, 3_600_000)


def _checks(newest: dict[str, int], known: tuple[str, ...] = ()) -> dict[str, object]:
    checks = ingest_checks(
        newest, known_keys=known, cycle_ms=1_000_000, policy=POLICY, query_text="q", window="6h"
    )
    return {c.observation.service: c.verdict.breached for c in checks}


def test_ingest_judges_each_host_and_the_store() -> None:
    assert _checks({"a": 1_000_000 - 60_000, "b": 1_000_000 - 181_000}) == {
        f"{INGEST_KEY}:a": False,
        f"{INGEST_KEY}:b": True,
        INGEST_KEY: False,
    }
    # A host known from earlier runs and absent now has no data; nothing at all: no data.
    assert _checks({}, (f"{INGEST_KEY}:gone",)) == {f"{INGEST_KEY}:gone": None, INGEST_KEY: None}


def test_evaluation_checks_every_class() -> None:
    checks = evaluation_checks(
        {AlertClass.LATENCY: 1_000_000 - 301_000, AlertClass.FAILURES: 1_000_000},
        cycle_ms=1_000_000,
        policy=POLICY,
        query_text="q",
        window="5m",
    )
    assert [c.verdict.breached for c in checks] == [True, False, None, None]


def test_sqlite_freshness_newest_per_host(tmp_path: object) -> None:
    path = f"{tmp_path}/s.db"
    writer = SqliteWriter.open(path)
    writer.write(
        [
            encode(Point.make("meshalert_sidecar", {"host": "a"}, {"received": 1}, 1_000)),
            encode(Point.make("meshalert_sidecar", {"host": "a"}, {"received": 1}, 2_000)),
            encode(Point.make("linkerd_requests", {"host": "b"}, {"count": 1.0}, 5_000)),
            encode(Point.make("linkerd_failures", {"host": "c"}, {"count": 1.0}, 9_000)),
            encode(Point.make("linkerd_requests", {"host": "b"}, {"count": 1.0}, 4_000_000)),
        ]
    )
    writer.close()
    got = SqliteFreshnessReader(open_database(path)).newest_by_host(Q)
    assert got.newest_by_host == {"a": 2_000, "b": 5_000}
    assert "'meshalert_sidecar'" in got.query_text


def test_query_text_escapes_names() -> None:
    q = FreshnessQuery(DEFAULT_SOURCES, 0, 60_000)
    assert 'FROM "r\\"p"."meshalert_sidecar"' in freshness_influxql(q, retention_policy='r"p')
    flux = freshness_flux(q, bucket='b"${x}')
    assert 'from(bucket: "b\\"\\x24{x}")' in flux
    assert (
        'range(start: time(v: "1970-01-01T00:00:00Z"), stop: time(v: "1970-01-01T00:01:00Z"))'
        in flux
    )


def test_flux_csv_newest_takes_max_per_host_over_tables() -> None:
    body = (
        ",result,table,_time,host\r\n,_result,0,2026-01-01T00:00:10.123456789Z,a\r\n\r\n"
        ",result,table,_time,host\r\n,_result,1,2026-01-01T00:00:20Z,a\r\n"
        ",_result,1,2026-01-01T00:00:05Z,b\r\n"
    )
    assert flux_csv_newest(body) == {"a": 1_767_225_620_000, "b": 1_767_225_605_000}


@settings(max_examples=50)
@given(st.integers(0, 4_000_000_000_000))
def test_rfc3339_round_trip(ms: int) -> None:
    from meshalert.queries.flux import flux_time

    assert rfc3339_ms(flux_time(ms)) == ms
