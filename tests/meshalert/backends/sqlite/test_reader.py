"""SqliteWindowReader: sums from rollups plus raw ends equal sums over the raw points, for
any window; a version 1 file is read from points until a writer migrates it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshalert.alert_classes import AlertClass
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.writer import SqliteWriter, open_database, prune
from meshalert.queries.model import (
    EndpointHost,
    EndpointsAggregate,
    FailuresAggregate,
    class_query,
)
from tests.meshalert.backends.sqlite.test_schema import V1_DDL

SERVICES = ("web", "api")
HOSTS = ("h1", "h2")
PointKey = tuple[str, str, int]  # service, host, ts


def _line(measurement: str, scope: str, field: str, key: PointKey, value: float) -> str:
    service, host, ts = key
    return (
        f"{measurement},host={host},namespace=prod,scope={scope},service={service}"
        f" {field}={value} {ts}"
    )


_values = st.integers(-400, 400).map(lambda k: k / 4)  # exact sums in any order
_ts = st.one_of(
    st.integers(-8, 40).map(lambda k: k * 10_000),
    st.integers(-90_000, 420_000),
)
_key = st.tuples(st.sampled_from(SERVICES), st.sampled_from(HOSTS), _ts)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.lists(st.tuples(_key, _values), min_size=1, max_size=8)),
        st.tuples(st.just("prune"), _ts),
    ),
    min_size=1,
    max_size=8,
)
_minute = st.integers(-2, 7).map(lambda k: k * 60_000)
_windows = st.one_of(
    st.tuples(_minute, _minute.filter(lambda w: w > 0)),  # aligned, as evaluation cycles are
    st.tuples(st.integers(-100_000, 480_000), st.integers(1, 400_000)),  # ragged, as tests
)


def _expected_sums(model: dict[PointKey, float], start: int, end: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for (service, _, ts), value in model.items():
        if start <= ts < end:
            out[f"prod/{service}"] = out.get(f"prod/{service}", 0.0) + value
    return out


def _expected_last(
    model: dict[PointKey, float], start: int, end: int
) -> dict[str, dict[str, float]]:
    latest: dict[tuple[str, str], tuple[int, float]] = {}
    for (service, host, ts), value in model.items():
        if start <= ts < end and ts >= latest.get((service, host), (ts, 0.0))[0]:
            latest[(service, host)] = (ts, value)
    out: dict[str, dict[str, float]] = {}
    for (service, host), (_, value) in latest.items():
        out.setdefault(f"prod/{service}", {})[host] = value
    return out


def _expected_max(
    model: dict[PointKey, float], start: int, end: int
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for (service, host, ts), value in model.items():
        if start <= ts < end:
            hosts = out.setdefault(f"prod/{service}", {})
            hosts[host] = max(value, hosts.get(host, value))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops, windows=st.lists(_windows, min_size=1, max_size=4))
def test_rollup_sums_and_lasts_equal_raw_points_for_any_window(
    ops: list[tuple[str, object]], windows: list[tuple[int, int]]
) -> None:
    conn = open_database(":memory:")
    writer = SqliteWriter(conn, close_connection=False)
    reader = SqliteWindowReader(conn)
    model: dict[PointKey, float] = {}
    for op, arg in ops:
        if op == "write":
            assert isinstance(arg, list)
            lines = []
            for key, value in arg:
                lines.append(_line("linkerd_requests", "service", "count", key, value))
                lines.append(_line("linkerd_loadbalancer_size", "client", "value", key, value))
                model[key] = value  # a later line of the batch overwrites an earlier one
            writer.write(lines)
        else:
            assert isinstance(arg, int)
            writer.prune(arg)
            model = {k: v for k, v in model.items() if k[2] >= arg}
    for end, window in windows:
        start = end - window
        failures = reader.fetch(class_query(AlertClass.FAILURES, window_ms=window, end_ms=end))
        assert failures.services == {
            key: {"": FailuresAggregate(requests=total)}
            for key, total in _expected_sums(model, start, end).items()
        }
        endpoints = reader.fetch(
            class_query(AlertClass.ENDPOINTS, window_ms=window, end_ms=end, lookback_ms=1)
        )
        highest = _expected_max(model, start, end)
        assert endpoints.services == {
            key: {
                "": EndpointsAggregate(
                    tuple(
                        EndpointHost(h, None, v, highest[key][h]) for h, v in sorted(hosts.items())
                    )
                )
            }
            for key, hosts in _expected_last(model, start, end).items()
        }


def _v1_store(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in V1_DDL:
        conn.execute(statement)
    conn.close()


def test_a_version_1_file_is_read_raw_until_a_writer_migrates_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _v1_store(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "INSERT INTO series (id, measurement, tagset, scope, namespace, service, host, tags_json)"
        " VALUES (1, 'linkerd_requests', 'x', 'service', 'prod', 'web', 'h1', '{}')"
    )
    conn.executemany(
        "INSERT INTO points VALUES (1, ?, 'count', 1.5)", [(t,) for t in range(0, 300_000, 10_000)]
    )
    conn.close()
    reader = SqliteWindowReader(open_database(str(path), readonly=True))
    query = class_query(AlertClass.FAILURES, window_ms=120_000, end_ms=180_000)
    before = reader.fetch(query)
    assert before.services == {"prod/web": {"": FailuresAggregate(requests=18.0)}}
    assert "rollup_1m" not in before.query_text

    open_database(str(path)).close()  # a writer opens (and migrates) it meanwhile
    after = reader.fetch(query)
    assert after.services == before.services
    assert "rollup_1m" in after.query_text


def test_prune_from_another_connection_is_seen_by_rollup_reads(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    writer = SqliteWriter.open(path)
    writer.write(
        [
            _line("linkerd_requests", "service", "count", ("web", "h1", ts), 2.0)
            for ts in range(0, 180_000, 10_000)
        ]
    )
    reader = SqliteWindowReader(open_database(path, readonly=True))
    query = class_query(AlertClass.FAILURES, window_ms=180_000, end_ms=180_000)
    assert reader.fetch(query).services == {"prod/web": {"": FailuresAggregate(requests=36.0)}}
    other = open_database(path)
    prune(other, 75_000)  # drops minute 0 and the first half of minute 1
    other.close()
    assert reader.fetch(query).services == {"prod/web": {"": FailuresAggregate(requests=20.0)}}
    writer.close()
