"""The page served over real HTTP on 127.0.0.1 from a real SQLite store and state."""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.error
import urllib.request
from html import escape
from http.client import HTTPResponse

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertState
from meshalert.backends.influxdb1.reader import InfluxDB1WindowReader
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert.backends.sqlite.writer import open_database
from meshalert.charts import MILLISECONDS
from meshalert.statuspage.collect import SignalSampler, StoreSnapshotSource, build_snapshot
from meshalert.statuspage.server import StatusPage
from tests.meshalert.statuspage.conftest import HOSTILE_SERVICE, source_opener
from tests.meshalert.statuspage.stores import HOLE, PageStores

MIN = 60_000


def _get(url: str) -> HTTPResponse:
    response: HTTPResponse = urllib.request.urlopen(url, timeout=60)
    return response


def test_the_page_shows_the_stores_alerts_evidence_and_charts(
    page: StatusPage, page_stores: PageStores
) -> None:
    host, port = page.address
    assert host == "127.0.0.1" and port > 0
    with _get(page.url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        html = response.read().decode()
    state = SqliteStateStore(page_stores.state)
    try:
        firing = [r for r in state.load_all() if r.state is AlertState.FIRING]
        history = state.history(since_ms=0, service="checkout")
    finally:
        state.close()
    assert [(r.alert_class, r.service) for r in firing] == [(AlertClass.LATENCY, "checkout")]
    observed = history[-1].evidence["observed"]
    assert history[-1].to_state is AlertState.FIRING
    firing_block = html.split('<h2 id="firing">')[1].split('<h2 id="pending">')[0]
    assert "latency &middot; checkout" in firing_block
    assert escape(MILLISECONDS.format(observed)) in firing_block  # its evidence
    assert "latency.above_ms 500 ms" in firing_block
    assert "env:MESHALERT_RULES" in firing_block  # the threshold's source
    assert "<summary>query</summary>" in firing_block
    resolved = html.split('<h2 id="resolved">')[1].split('<h2 id="ok">')[0]
    assert "<td>failures</td><td>cart</td>" in resolved
    signals = html.split('<h2 id="signals">')[1].split('<h2 id="history">')[0]
    for service in ("checkout", "cart", "catalog"):
        section = signals.split(f'data-service="{service}"')[1].split("</section>")[0]
        assert section.count("<svg") == 4
    checkout = signals.split('data-service="checkout"')[1].split("</section>")[0]
    latency_chart = checkout.split('data-class="latency"')[1].split("</figure>")[0]
    assert latency_chart.count('class="firing"') == 1
    assert latency_chart.count('class="series"') == 2  # broken where no data came
    # the hostile name is shown as text, never as markup
    assert HOSTILE_SERVICE not in html
    assert escape(HOSTILE_SERVICE) in html.split('<h2 id="pending">')[1]


def test_signals_are_the_values_the_engine_computed(page_stores: PageStores) -> None:
    state = SqliteStateStore(page_stores.state)
    conn = open_database(str(page_stores.store), readonly=True)
    try:
        sampler = SignalSampler(SqliteWindowReader(conn))
        snapshot = build_snapshot(state, sampler, page_stores.rules, page_stores.end_ms)
        records = {(r.alert_class, r.service): r for r in state.load_all()}
        assert sampler.queries_issued == 4 * 61  # one query per class and minute, any services
        compared = 0
        for group, per_class in snapshot.signals.items():
            for cls, series in per_class.items():
                record = records.get((cls, series.service))
                if record is None or series.service == HOSTILE_SERVICE:  # a record, no data
                    continue
                assert record.last_evaluated_ms == page_stores.end_ms
                last_ms, last_value = series.points[-1]
                assert last_ms == page_stores.end_ms
                assert last_value == pytest.approx(record.last_value), (group, cls)
                compared += 1
        assert compared == 12  # 3 services x 4 classes
        # No traffic came from 30m to 35m: the 2-minute windows ending at 32m..35m saw
        # nothing, and the chart has no value there (the first step precedes all traffic).
        latency = snapshot.signals["checkout"][AlertClass.LATENCY].points
        t0 = latency[0][0]
        assert [t for t, v in latency if v is None] == [
            t0,
            *(t0 + minute * MIN for minute in range(HOLE[0] // 60 + 2, HOLE[1] // 60 + 1)),
        ]
        # later refreshes read only the newest steps again
        build_snapshot(state, sampler, page_stores.rules, page_stores.end_ms + MIN)
        assert sampler.queries_issued == 4 * 61 + 4 * 2
    finally:
        state.close()
        conn.close()


def test_other_paths_are_404_and_other_methods_refused(page: StatusPage) -> None:
    with pytest.raises(urllib.error.HTTPError) as missing:
        _get(page.url + "state.db")
    assert missing.value.code == 404
    request = urllib.request.Request(page.url, data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as post:
        urllib.request.urlopen(request, timeout=30)
    assert post.value.code == 501


def test_a_rebound_host_name_is_refused(page: StatusPage) -> None:
    host, port = page.address
    for name, status in (("evil.example:%d", 403), ("localhost:%d", 200), ("127.0.0.1:%d", 200)):
        connection = http.client.HTTPConnection(host, port, timeout=60)
        try:
            connection.request("GET", "/", headers={"Host": name % port})
            response = connection.getresponse()
            response.read()
            assert response.status == status, name
        finally:
            connection.close()


def test_an_idle_page_reads_nothing_and_many_clients_share_one_snapshot(
    page_stores: PageStores,
) -> None:
    opened: list[StoreSnapshotSource] = []
    builds = 0
    opener = source_opener(page_stores)

    class Counting:
        def __init__(self, inner: StoreSnapshotSource) -> None:
            self.inner = inner

        def snapshot(self):  # type: ignore[no-untyped-def]
            nonlocal builds
            builds += 1
            return self.inner.snapshot()

        def close(self) -> None:
            self.inner.close()

    def open_source() -> Counting:
        source = opener()
        opened.append(source)
        return Counting(source)

    page = StatusPage(open_source, port=0, max_age_s=300)
    page.start()
    try:
        assert not opened  # nothing read before anyone asks
        bodies: list[str] = []
        threads = [
            threading.Thread(target=lambda: bodies.append(_get(page.url).read().decode()))
            for _ in range(5)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(bodies) == 5 and all("checkout" in b for b in bodies)
        assert builds == 1 and len(opened) == 1
    finally:
        page.stop()


def test_a_store_that_cannot_answer_leaves_the_states_on_the_page(
    page_stores: PageStores,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    reader = InfluxDB1WindowReader(
        InfluxDB1Store(f"http://127.0.0.1:{dead}", "linkerd", None, None, None), timeout_s=2
    )
    state = SqliteStateStore(page_stores.state)
    try:
        snapshot = build_snapshot(state, SignalSampler(reader), page_stores.rules, 0)
    finally:
        state.close()
    assert snapshot.problems and "signals could not be read" in snapshot.problems[0]
    assert [v.record.service for v in snapshot.firing] == ["checkout"]


def test_stop_releases_the_port(page_stores: PageStores) -> None:
    page = StatusPage(source_opener(page_stores), port=0)
    page.start()
    host, port = page.address
    _get(page.url).read()
    page.stop()
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect((host, port))
