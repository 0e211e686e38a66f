"""The same points, written to every store, must give the same baseline buckets and medians."""

from __future__ import annotations

import random

import pytest

from meshalert.lineprotocol import Point
from meshalert.queries.baseline import (
    Baseline,
    BucketQuery,
    BucketReader,
    BucketResult,
    RatioBucket,
    baseline_of,
    baseline_query,
)
from tests.contract.backends import Backend

W = 300_000
END = 1_700_000_460_000  # not a multiple of the window: buckets carry an offset
QUERY = baseline_query(W, END)


def counter(measurement: str, ts: int, count: float, **tags: str) -> Point:
    return Point.make(measurement, tags, {"count": float(count), "samples": 1}, ts)


def svc(
    host: str,
    namespace: str = "prod",
    service: str = "web",
    scope: str = "service",
    router: str = "outgoing",
) -> dict[str, str]:
    tags = {"host": host, "namespace": namespace, "service": service, "scope": scope}
    return tags | ({"router": router} if router else {})


def fetch(backend: Backend, query: BucketQuery) -> BucketResult:
    reader = backend.reader
    assert isinstance(reader, BucketReader)
    result = reader.fetch_buckets(query)
    assert result.queries_issued == 1
    assert result.query_text
    return result


def test_sums_per_bucket_over_hosts_with_the_span_half_open(backend: Backend) -> None:
    first, last = QUERY.start_ms, QUERY.stop_ms - W
    points = [
        # Two hosts in the first bucket, at its very start and just before its end.
        counter("linkerd_requests", first, 100, **svc("a")),
        counter("linkerd_requests", first + W - 1, 50, **svc("b")),
        counter("linkerd_retries_total", first, 6, **svc("a")),
        counter("linkerd_retries_total", first + W - 1, 3, **svc("b")),
        # The last bucket ends where the current window starts.
        counter("linkerd_requests", last, 40, **svc("a")),
        counter("linkerd_retries_total", QUERY.stop_ms - 1, 4, **svc("a")),
        # Outside the span: before it, and the current window itself.
        counter("linkerd_requests", first - 1, 1000, **svc("a")),
        counter("linkerd_retries_total", QUERY.stop_ms, 1000, **svc("a")),
        # Client-scope retries are not the service's ratio parts.
        counter("linkerd_retries_total", first, 500, **svc("a", scope="client")),
        # A service without namespace or router (an old one-router point), with retries
        # but no requests in its bucket.
        counter(
            "linkerd_retries_total",
            first + 3 * W,
            2,
            **svc("a", namespace="", service="x", router=""),
        ),
    ]
    backend.write(points)

    result = fetch(backend, QUERY)

    assert result.services == {
        "prod/web": {
            "outgoing": (RatioBucket(first, 9.0, 150.0), RatioBucket(last, 4.0, 40.0)),
        },
        "x": {"": (RatioBucket(first + 3 * W, 2.0, 0.0),)},
    }
    assert result.baselines(min_buckets=2) == {
        "prod/web": {"outgoing": Baseline((9 / 150 + 4 / 40) / 2, 2)},
        "x": {"": Baseline(None, 0)},
    }
    assert result.baselines() == {
        "prod/web": {"outgoing": Baseline(None, 2)},
        "x": {"": Baseline(None, 0)},
    }


def test_two_routers_are_never_summed(backend: Backend) -> None:
    """Issue 10 item 1 for the retries baseline, on every store: in a DaemonSet mesh the
    caller's ``outgoing`` router retries 30 % and the callee's ``incoming`` router sees each
    request and each retry as a request of its own and retries nothing. Summed per service
    the day's median would read 30 / 230 = 13 %; per router it is 30 % and 0 %."""
    points = []
    for b in range(0, 24):
        start = QUERY.start_ms + b * W
        for host in ("a", "b"):
            points += [
                counter("linkerd_requests", start + 1000, 50, **svc(host, router="outgoing")),
                counter("linkerd_retries_total", start + 2000, 15, **svc(host, router="outgoing")),
                counter("linkerd_requests", start + 3000, 65, **svc(host, router="incoming")),
            ]
    backend.write(points)

    baselines = fetch(backend, QUERY).baselines()

    assert baselines == {
        "prod/web": {"outgoing": Baseline(0.3, 24), "incoming": Baseline(0.0, 24)},
    }


def _traffic(seed: int) -> tuple[list[Point], dict[str, dict[int, list[float]]]]:
    """A day of 10 s points for three services on two hosts, some buckets silent; and the
    per-bucket sums computed here from the points themselves."""
    rng = random.Random(seed)
    points: list[Point] = []
    expected: dict[str, dict[int, list[float]]] = {}
    services = {"prod/web": 0.05, "prod/api": 0.2, "pay/ledger": 0.01}
    for key, rate in services.items():
        namespace, service = key.split("/")
        for b in range(0, QUERY.bucket_count, 7):  # every 7th bucket: 41 buckets
            start = QUERY.start_ms + b * W
            for ts in range(start + rng.randrange(0, 10_000), start + W, 60_000):
                host = rng.choice(["a", "b"])
                requests = float(rng.randrange(0, 40))
                retries = float(round(requests * rate * rng.uniform(0.5, 1.5)))
                tags = svc(host, namespace, service)
                points.append(counter("linkerd_requests", ts, requests, **tags))
                points.append(counter("linkerd_retries_total", ts, retries, **tags))
                sums = expected.setdefault(key, {}).setdefault(start, [0.0, 0.0])
                sums[0] += retries
                sums[1] += requests
    return points, expected


@pytest.mark.parametrize("seed", [1])
def test_every_store_gives_the_baseline_computed_from_the_points(
    backend: Backend, seed: int
) -> None:
    points, expected = _traffic(seed)
    backend.write(points)

    result = fetch(backend, QUERY)

    want = {
        key: tuple(RatioBucket(start, r, n) for start, (r, n) in sorted(buckets.items()))
        for key, buckets in expected.items()
    }
    assert result.services == {key: {"outgoing": b} for key, b in want.items()}
    baselines = {key: b["outgoing"] for key, b in result.baselines().items()}
    assert baselines == {key: baseline_of(b) for key, b in want.items()}
    assert baselines["prod/api"].ratio == pytest.approx(0.2, abs=0.03)
    assert all(b.buckets >= 12 for b in baselines.values())


def test_an_empty_day_gives_no_services(backend: Backend) -> None:
    backend.write([counter("linkerd_requests", END - 1, 10, **svc("a"))])  # current window
    assert fetch(backend, QUERY).services == {}
