"""The four alert classes on a real Linkerd 1.7.5 (two routers) with ``meshalert run`` on
SQLite, influxd 1.x and InfluxDB 2 (Flux), from each source: ``io.l5d.statsd`` at
sampleRate 1.0 and at 0.01, and pull (``/admin/metrics.json``). Each incident is caused
physically and must fire its own class once for its own service and resolve once; healthy
services stay silent. See :mod:`tests.e2e.real_linkerd` for the timeline and the traffic
each source gets.

One timeline per source (one Linkerd, restarted only for another sampleRate); within it one
``meshalert run`` per store, so every (source, store) pair is judged on the same incidents.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.e2e.real_linkerd import (
    HEALTHY,
    INCIDENTS,
    LATENCY_ABOVE_S,
    PULL,
    SAMPLED,
    SOURCES,
    STORES,
    Outcome,
    RealMesh,
    Source,
    StoreTarget,
    real_mesh,
    run_real_linkerd_scenario,
)
from tests.fixtures.influxd import InfluxdServer
from tests.fixtures.influxd2 import Influxd2Server
from tests.fixtures.linkerd import skip_without_linkerd

pytestmark = [pytest.mark.e2e, pytest.mark.linkerd, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealMesh]:
    skip_without_linkerd()
    with real_mesh(tmp_path_factory.mktemp("real-linkerd-mesh")) as m:
        yield m


@pytest.fixture(scope="module", params=SOURCES, ids=lambda s: s.name)
def outcomes(
    request: pytest.FixtureRequest, mesh: RealMesh, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Outcome]]:
    source: Source = request.param
    tmp_path = tmp_path_factory.mktemp(f"real-linkerd-{source.name}")
    influxd: InfluxdServer = request.getfixturevalue("influxd")
    influxd2: Influxd2Server = request.getfixturevalue("influxd2")
    database = "t_" + uuid.uuid4().hex[:12]
    influxd.create_database(database)
    bucket = influxd2.create_bucket("t_" + uuid.uuid4().hex[:12])
    targets = {
        "sqlite": StoreTarget(f"sqlite:///{tmp_path / 'meshalert.db'}"),
        "influxdb1": StoreTarget(influxd.store_url(database)),
        "influxdb2": StoreTarget(  # the real Flux engine
            influxd2.store_url(bucket), {"MESHALERT_INFLUXDB_TOKEN": influxd2.token}
        ),
    }
    with ExitStack() as cleanup:
        cleanup.callback(influxd.drop_database, database)
        yield run_real_linkerd_scenario(mesh, source, targets, tmp_path)


@pytest.fixture(params=STORES)
def outcome(request: pytest.FixtureRequest, outcomes: dict[str, Outcome]) -> Outcome:
    return outcomes[request.param]


def _fires_and_resolves_once(outcome: Outcome, alert_class: str) -> None:
    service = INCIDENTS[alert_class]
    assert outcome.count(alert_class, service, "firing") == 1, outcome.describe()
    assert outcome.count(alert_class, service, "resolved") == 1, outcome.describe()
    # Other incident services may fire this class too, physically: a refused connection and
    # a 503 storm also make Linkerd's failure accrual mark endpoints dead (endpoints), answer
    # 5xx (failures) and retry until the budget is spent (retries). Healthy services may not.


def test_latency_fires_for_the_slow_backend(outcome: Outcome) -> None:
    _fires_and_resolves_once(outcome, "latency")


def test_failures_fire_for_refused_connections(outcome: Outcome) -> None:
    _fires_and_resolves_once(outcome, "failures")


def test_endpoints_fire_when_endpoints_leave_the_disco_file(outcome: Outcome) -> None:
    # Issue 10 item 3: size falls with available (5/5 -> 2/2 on the incoming router), so
    # only the learned count (the balancer's recent largest size) sees it, and only on the
    # incoming balancer (the outgoing one holds the node): auto judges every balancer.
    _fires_and_resolves_once(outcome, "endpoints")


def test_retries_fire_when_the_budget_is_exhausted(outcome: Outcome) -> None:
    _fires_and_resolves_once(outcome, "retries")


def test_healthy_services_stay_silent(outcome: Outcome) -> None:
    # A latency alert on a healthy service is right when Linkerd really served it slowly:
    # on this shared 2-core machine whole-machine stalls have pushed every service's p90
    # past 2 s at once. The caller's own timings decide; every other class must stay silent.
    slow = {s for s, p90 in outcome.worst_p90_s.items() if p90 > LATENCY_ABOVE_S}
    noisy = {
        k: n
        for k, n in outcome.deliveries.items()
        if k[1] in HEALTHY and not (k[0] == "latency" and k[1] in slow)
    }
    assert not noisy, outcome.describe()
    for service in HEALTHY:
        assert outcome.statuses.get(service, {}).get(200, 0) > 0, outcome.describe()


def test_stored_counts_match_what_linkerd_counted(outcomes: dict[str, Outcome]) -> None:
    """The SQLite store's outgoing service-scope request totals over the timeline against
    Linkerd's own exact counters: equal when pulled, equal bar lost datagrams from statsd at
    1.0, an estimate resting on about 1 % as many lines at 0.01."""
    outcome = outcomes["sqlite"]
    source = outcome.source
    busy = ("cart", "checkout") if source == SAMPLED.name else ("web", "cart")
    for service in busy:
        exact = outcome.exact_requests[service]
        count, lines = outcome.stored_requests[service]
        # Shown with -rA: the figures README quotes.
        print(f"{source} {service}: Linkerd counted {exact:.0f}, stored {count:.0f} on {lines:.0f}")
        assert exact > 0, outcome.describe()
        if source == SAMPLED.name:
            # Lines ~ Poisson(0.01 * exact): 5 standard deviations either side.
            mean = 0.01 * exact
            assert abs(lines - mean) <= 5 * math.sqrt(mean) + 1, outcome.describe()
            assert count == pytest.approx(lines / 0.01), outcome.describe()
        elif source == PULL.name:
            assert count == exact, outcome.describe()  # exact, as the issue asks
            assert lines == count, outcome.describe()
        else:
            # Every increment sent once over UDP: a datagram lost on the busy machine is
            # the only allowed difference (statsd cannot resend it).
            assert 0.99 * exact <= count <= exact, outcome.describe()
            assert lines == count, outcome.describe()
