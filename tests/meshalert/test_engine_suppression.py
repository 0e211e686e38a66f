"""Suppression through the real engine: synthetic Linkerd traffic in the real embedded store,
real SQLite state, the real router and webhook notifier posting to a real HTTP server on
127.0.0.1. A silenced alert fires and is recorded but sends nothing; when the silence ends
while it still fires, exactly one notification goes out, however often the cycle runs."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertRecord, AlertState
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert.backends.sqlite.writer import SqliteWriter, open_database
from meshalert.engine import CycleReport, Engine
from meshalert.evaluation import evaluate_class
from meshalert.notify.retry import RetryPolicy
from meshalert.notify.router import Router
from meshalert.notify.webhook import WebhookNotifier
from meshalert.rules import LoadedRules, load_rules
from meshalert.simulator.traffic import Incident, IncidentKind, ServiceSpec
from meshalert.suppression import Silence, Suppressed
from tests.fixtures.http_server import RecordingHttpServer
from tests.meshalert.scenario import T0_MS, Scenario, ingest

MIN = 60_000
KEY = "checkout"  # the scenario's single router names services without a namespace
RULES_TEXT = """
defaults:
  latency:   {percentile: 99, above_ms: 500, window: 2m, for: 1m, renotify: 4h}
  failures:  {enabled: false}
  endpoints: {enabled: false}
  retries:   {enabled: false}
"""
FAST = RetryPolicy(base_delay_s=0.05, max_delay_s=0.1, attempt_timeout_s=2.0, max_attempts=2)
SERVICES = (
    ServiceSpec("production", "checkout", rps=40.0, latency_ms=20.0),
    ServiceSpec("production", "cart", rps=40.0, latency_ms=20.0),
)


@dataclass
class Setup:
    store: Path
    state: Path
    webhook: RecordingHttpServer
    rules: LoadedRules

    def engine(self, **kwargs: object) -> tuple[Engine, SqliteStateStore]:
        state = SqliteStateStore(self.state)
        reader = SqliteWindowReader(open_database(str(self.store), readonly=True))
        router = Router({"webhook": WebhookNotifier(self.webhook.url + "/hook", policy=FAST)})
        return Engine(reader, state, router, **kwargs), state  # type: ignore[arg-type]

    def cycle(self, engine: Engine, minute: int) -> CycleReport:
        return evaluate_class(
            engine,
            self.rules,
            AlertClass.LATENCY,
            T0_MS + minute * MIN,
            deadline_s=time.monotonic() + 10,
        )

    def sent(self) -> Counter[tuple[str, str]]:
        return Counter(
            (json.loads(r.text)["dedup_key"].split("|")[1], json.loads(r.text)["state"])
            for r in list(self.webhook.requests)
        )


def _setup(tmp_path: Path, webhook: RecordingHttpServer, incident_end_s: int) -> Setup:
    store = tmp_path / "meshalert.db"
    writer = SqliteWriter.open(str(store))
    incident = Incident(IncidentKind.LATENCY, "checkout", 120, incident_end_s)
    ingest(Scenario(SERVICES, (incident,), 40 * 60), writer)
    writer.close()
    return Setup(
        store,
        tmp_path / "state.db",
        webhook,
        load_rules({"MESHALERT_RULES": RULES_TEXT}, now_s=0.0),
    )


@pytest.fixture
def webhook() -> Iterator[RecordingHttpServer]:
    server = RecordingHttpServer()
    server.start()
    yield server
    server.close()


def _silence(end_minute: int) -> Silence:
    return Silence(
        "s1",
        "check*",
        AlertClass.LATENCY,
        T0_MS,
        T0_MS + end_minute * MIN,
        "deploy",
        "alice",
        T0_MS,
    )


def test_silence_ending_while_firing_sends_exactly_one(
    tmp_path: Path, webhook: RecordingHttpServer
) -> None:
    setup = _setup(tmp_path, webhook, incident_end_s=25 * 60)
    engine, state = setup.engine()
    state.add_silence(_silence(end_minute=15))
    fired_at = None
    for minute in range(1, 15):
        report = setup.cycle(engine, minute)
        if report.states.get(KEY) is AlertState.FIRING and fired_at is None:
            fired_at = minute
            assert list(report.suppressed.values()) == ["silenced by s1: deploy"]
    assert fired_at is not None, "the incident never fired"
    assert webhook.requests == []  # silenced: nothing sent
    # The transition is recorded, marked silenced.
    (to_firing,) = [
        e for e in state.history(since_ms=0, service=KEY) if e.to_state is AlertState.FIRING
    ]
    assert to_firing.evidence["suppressed"] == "silenced by s1: deploy"

    # The silence ends at minute 15 while the alert still fires: two concurrent runs of the
    # cycle (two engines, two connections to the state file) and a retried run.
    other, other_state = setup.engine()
    reports: list[CycleReport] = []
    threads = [
        threading.Thread(target=lambda e=e: reports.append(setup.cycle(e, 15)))
        for e in (engine, other)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    setup.cycle(engine, 15)
    for minute in range(16, 20):
        setup.cycle(engine, minute)
    assert setup.sent() == Counter({("checkout", "firing"): 1})
    assert sum(len(r.caught_up) for r in reports) >= 1

    # The incident ends (minute 25): the RESOLVED goes out as usual, once.
    for minute in range(20, 32):
        setup.cycle(engine, minute)
    assert setup.sent() == Counter({("checkout", "firing"): 1, ("checkout", "resolved"): 1})
    other_state.close()
    state.close()


def test_silence_ending_after_the_alert_resolved_sends_nothing(
    tmp_path: Path, webhook: RecordingHttpServer
) -> None:
    setup = _setup(tmp_path, webhook, incident_end_s=12 * 60)
    engine, state = setup.engine()
    state.add_silence(_silence(end_minute=20))
    states = [setup.cycle(engine, minute).states.get(KEY) for minute in range(1, 30)]
    assert AlertState.FIRING in states and states[-1] is AlertState.OK
    assert webhook.requests == []
    held = {h.kind.value for h in state.suppressed(AlertClass.LATENCY, since_ms=0)}
    assert held == {"firing", "resolved"}
    marks = [e.evidence.get("suppressed") for e in state.history(since_ms=0, service=KEY)]
    assert marks and all(m == "silenced by s1: deploy" for m in marks)
    state.close()


def test_expiring_a_silence_early_releases_the_page(
    tmp_path: Path, webhook: RecordingHttpServer
) -> None:
    setup = _setup(tmp_path, webhook, incident_end_s=25 * 60)
    engine, state = setup.engine()
    state.add_silence(_silence(end_minute=120))
    for minute in range(1, 10):
        setup.cycle(engine, minute)
    assert webhook.requests == []
    state.expire_silence("s1", author="bob", now_ms=T0_MS + 10 * MIN)
    for minute in range(10, 14):
        setup.cycle(engine, minute)
    assert setup.sent() == Counter({("checkout", "firing"): 1})
    state.close()


def test_inhibition_by_endpoints_and_by_a_dead_pipeline(
    tmp_path: Path, webhook: RecordingHttpServer
) -> None:
    setup = _setup(tmp_path, webhook, incident_end_s=25 * 60)
    # The heartbeat's ingest alert, kept in the same state store as every class's records.
    ingest_alert = AlertRecord(
        AlertClass.INGEST, "meshalert/ingest:node-b", AlertState.FIRING, T0_MS
    )
    engine, state = setup.engine()
    state.save([ingest_alert])
    endpoints = AlertRecord(AlertClass.ENDPOINTS, KEY, AlertState.FIRING, T0_MS)
    # A service that sends nothing any more, judged with no_data: alert.
    gone = AlertRecord(AlertClass.LATENCY, "gone", AlertState.OK, T0_MS)
    state.save([endpoints, gone])
    rules = load_rules(
        {"MESHALERT_RULES": RULES_TEXT + "services:\n  gone: {no_data: alert}\n"},
        now_s=0.0,
    )
    setup.rules = rules
    reasons: dict[str, str] = {}
    for minute in range(1, 12):
        report = setup.cycle(engine, minute)
        reasons.update(report.suppressed)
    assert webhook.requests == []
    assert sorted(set(reasons.values())) == [
        "inhibited by endpoints/checkout",
        "inhibited by ingest/meshalert/ingest:node-b",
    ]
    # The endpoints alert and the pipeline alert resolve: each held page goes out once.
    state.save([AlertRecord(AlertClass.ENDPOINTS, KEY, AlertState.OK, T0_MS + 12 * MIN)])
    state.save([replace(ingest_alert, state=AlertState.OK, since_ms=T0_MS + 12 * MIN)])
    for minute in range(12, 16):
        setup.cycle(engine, minute)
    assert setup.sent() == Counter({("checkout", "firing"): 1, ("gone", "firing"): 1})
    state.close()


def test_a_maintenance_window_in_the_rules_has_the_same_semantics(
    tmp_path: Path, webhook: RecordingHttpServer
) -> None:
    setup = _setup(tmp_path, webhook, incident_end_s=25 * 60)
    # 2026-01-01 is a Thursday; 01:00 in Berlin is 00:00 UTC, T0.
    setup.rules = load_rules(
        {
            "MESHALERT_RULES": RULES_TEXT
            + "maintenance:\n"
            + "  - name: thursday-patching\n"
            + "    service: 'check*'\n"
            + "    classes: [latency]\n"
            + "    timezone: Europe/Berlin\n"
            + "    weekly: {days: [thu], start: '01:00', duration: 15m}\n"
        },
        now_s=0.0,
    )
    engine, state = setup.engine()
    held: set[str] = set()
    for minute in range(1, 15):
        held |= set(setup.cycle(engine, minute).suppressed.values())
    assert held == {"maintenance thursday-patching"}
    assert webhook.requests == []
    for minute in range(15, 20):
        setup.cycle(engine, minute)
    setup.cycle(engine, 15)  # a retried cycle
    assert setup.sent() == Counter({("checkout", "firing"): 1})
    state.close()


class _DiesOnce(SqliteStateStore):
    """The real SQLite state, except that the process "dies" the first time the cycle
    records a held notification, or saves its records (``at``)."""

    at = "note_suppressed"
    died = False

    def _maybe_die(self, where: str) -> None:
        if where == self.at and not self.died:
            self.died = True
            raise RuntimeError("killed")

    def note_suppressed(self, entries: Sequence[Suppressed]) -> None:
        self._maybe_die("note_suppressed")
        super().note_suppressed(entries)

    def save(self, records: Sequence[AlertRecord]) -> None:
        if any(r.state is AlertState.FIRING for r in records):
            self._maybe_die("save")
        super().save(records)


@pytest.mark.parametrize("where", ["note_suppressed", "save"])
def test_a_cycle_dying_while_it_holds_the_page_still_owes_it(
    tmp_path: Path, webhook: RecordingHttpServer, where: str
) -> None:
    setup = _setup(tmp_path, webhook, incident_end_s=25 * 60)
    state = _DiesOnce(setup.state)
    state.at = where
    reader = SqliteWindowReader(open_database(str(setup.store), readonly=True))
    router = Router({"webhook": WebhookNotifier(webhook.url + "/hook", policy=FAST)})
    engine = Engine(reader, state, router)
    state.add_silence(_silence(end_minute=15))
    for minute in range(1, 15):
        try:
            setup.cycle(engine, minute)
        except RuntimeError:
            setup.cycle(engine, minute)  # the scheduler's retry of the same cycle
    assert state.died
    assert webhook.requests == []
    for minute in range(15, 18):
        setup.cycle(engine, minute)
    assert setup.sent() == Counter({("checkout", "firing"): 1})
    state.close()
