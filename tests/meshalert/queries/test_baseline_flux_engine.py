"""The retries baseline's Flux on the real engine (InfluxDB 2.7): window first, pushed down.

InfluxDB answers ``range |> filter |> aggregateWindow`` inside its storage engine (the
window-aggregate pushdown) only when nothing stands between them; the previous form put
``group`` first and made Flux read every raw point of the day. Both must give the same
buckets; only the new one may show the pushed-down read in the query plan.
"""

from __future__ import annotations

from benchmarks.baseline_query import FluxTextReader, group_first_flux
from meshalert.backends.influxdb2.reader import InfluxDB2WindowReader
from meshalert.queries.baseline import BucketResult, RatioBucket, baseline_query
from meshalert.queries.baseline_text import render_bucket_flux
from tests.fixtures.influxd2 import Influxd2Server

W = 300_000
END = 1_700_000_460_000  # not a multiple of the window: bucket edges carry an offset
STEP = 10_000
QUERY = baseline_query(W, END)
SERVICES = ("web", "api", "db")
HOSTS = ("node-a", "node-b")
PROFILE = 'import "profiler"\noption profiler.enabledProfilers = ["query", "operator"]\n'


def _day(server: Influxd2Server, bucket: str) -> dict[str, dict[int, tuple[float, float]]]:
    """A day of 10 s points (and some that must not count); the expected sums per bucket."""
    lines: list[str] = []
    expected: dict[str, dict[int, list[float]]] = {}
    for ts in range(QUERY.start_ms - 5 * STEP, END, STEP):
        for s, service in enumerate(SERVICES):
            for h, host in enumerate(HOSTS):
                tags = f"host={host},namespace=prod,router=outgoing,scope=service,service={service}"
                requests = 50 + (ts // STEP + s + h) % 7
                retries = (ts // STEP * (s + 1) + h) % 5
                lines.append(f"linkerd_requests,{tags} count={requests},samples=1i {ts}")
                lines.append(f"linkerd_retries_total,{tags} count={retries},samples=1i {ts}")
                client = tags.replace("scope=service", "scope=client")
                lines.append(f"linkerd_retries_total,{client} count=1000,samples=1i {ts}")
                start = QUERY.bucket_start(ts)
                if start is not None:
                    slot = expected.setdefault(f"prod/{service}", {}).setdefault(start, [0, 0])
                    slot[0] += retries
                    slot[1] += requests
    for i in range(0, len(lines), 50_000):
        server.write(lines[i : i + 50_000], bucket=bucket)
    return {k: {t: (v[0], v[1]) for t, v in b.items()} for k, b in expected.items()}


def _buckets(result: BucketResult) -> dict[str, dict[int, tuple[float, float]]]:
    def pair(b: RatioBucket) -> tuple[float, float]:
        return (b.retries, b.requests)

    assert all(set(v) == {"outgoing"} for v in result.services.values())
    return {k: {b.start_ms: pair(b) for b in v["outgoing"]} for k, v in result.services.items()}


def _plan(server: Influxd2Server, flux: str) -> str:
    """The query profiler's part of the answer (its ``flux/query-plan`` names each physical
    operator: ``ReadWindowAggregateByTime`` when storage computes the windows)."""
    csv = server.query_csv(PROFILE + flux)
    return csv[csv.index("_profiler") :]


def test_window_first_baseline_gives_the_same_buckets_and_is_pushed_down(
    influxd2: Influxd2Server, influxd2_bucket: str
) -> None:
    expected = _day(influxd2, influxd2_bucket)
    store = influxd2.store(influxd2_bucket)

    with InfluxDB2WindowReader(store) as reader:
        now = reader.fetch_buckets(QUERY)
    before_reader = FluxTextReader(store, group_first_flux)
    try:
        before = before_reader.fetch_buckets(QUERY)
    finally:
        before_reader.close()

    assert _buckets(now) == expected
    assert _buckets(before) == expected
    assert len(expected["prod/web"]) == QUERY.bucket_count

    text_now = render_bucket_flux(QUERY, bucket=influxd2_bucket)
    text_before = group_first_flux(QUERY, bucket=influxd2_bucket)
    plan_now, plan_before = _plan(influxd2, text_now), _plan(influxd2, text_before)
    assert plan_now.count("ReadWindowAggregateByTime") >= 2, plan_now  # one per select
    assert "ReadGroup" not in plan_now, plan_now
    # Before: storage only grouped raw points; Flux windowed them.
    assert "ReadWindowAggregate" not in plan_before, plan_before
    assert "ReadGroup" in plan_before, plan_before
