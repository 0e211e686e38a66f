"""The pipeline watching itself (the heartbeat): freshness query text and judgements. Pure.

Two checks, each judged through the alert state machine so they fire once, remind and
resolve like any alert:

* **ingest** -- the newest point of the sidecars' own measurement (``meshalert_sidecar``) or
  of ``linkerd_requests``, per ``host``, within a bounded lookback. A host whose newest point
  is older than ``ingest_stale_ms`` fires ``meshalert/ingest:<host>``; the whole store fires
  ``meshalert/ingest`` when even the freshest host is stale or nothing at all was written
  within the lookback. A host that disappears from the lookback entirely (a removed node)
  resolves as forgotten: it has been firing and reminding for the whole lookback by then.
* **skipped** -- the latest evaluation of each class left services out (a name, rule or
  value it could not judge; see ``CycleReport.skipped``): ``meshalert/skipped:<class>``
  fires while it does, naming the first few, and resolves when a cycle skips none.
* **evaluation** -- the newest ``last_evaluated_ms`` among the state store's records of each
  alert class. Older than ``evaluation_stale_ms`` fires ``meshalert/evaluation:<class>``. A
  class without any record (no service ever evaluated) cannot be told from a dead evaluator
  and is left alone.

Carrier class. :class:`~meshalert.alerts.model.AlertClass` is closed (latency, failures,
endpoints, retries) and records, notifications and routes are typed on it, so heartbeat
alerts travel as :data:`CARRIER_CLASS` (``failures``: the pipeline itself is failing) with
service keys under the reserved ``meshalert/`` prefix. The ``:`` in those keys cannot occur
in a Kubernetes service name, so neither the keys nor their dedup keys collide with a real
service's; route them with ``service: "meshalert/*"``. Their records live apart from the
class records (see :mod:`meshalert.health_monitor`), so the failures evaluator never sees
them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshalert.alerts.model import (
    AlertClass,
    NoDataPolicy,
    Observation,
    Severity,
    ThresholdInForce,
    Verdict,
)
from meshalert.durations import format_duration_ms
from meshalert.queries.escaping import influxql_identifier, sql_literal
from meshalert.queries.flux import flux_time
from meshalert.queries.flux_escaping import flux_string
from meshalert.state.protocols import SkippedServices

CARRIER_CLASS = AlertClass.FAILURES
INGEST_KEY = "meshalert/ingest"
EVALUATION_KEY = "meshalert/evaluation"
SKIPPED_KEY = "meshalert/skipped"
UNKNOWN_HOST = "(no host tag)"
THRESHOLD_NAME = "stale_after_ms"


@dataclass(frozen=True)
class FreshnessSource:
    measurement: str
    field: str


DEFAULT_SOURCES: tuple[FreshnessSource, ...] = (
    FreshnessSource("meshalert_sidecar", "received"),
    FreshnessSource("linkerd_requests", "count"),
)
"""The sidecar writes ``meshalert_sidecar`` every flush even without traffic; requests show
that Linkerd itself is still sending."""


@dataclass(frozen=True)
class FreshnessQuery:
    """Newest point time per host over ``[start_ms, end_ms)`` of any of ``sources``."""

    sources: tuple[FreshnessSource, ...]
    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("a freshness query needs at least one source")
        if self.end_ms <= self.start_ms:
            raise ValueError(f"empty range [{self.start_ms}, {self.end_ms})")


def ingest_key(host: str) -> str:
    return f"{INGEST_KEY}:{host}"


def evaluation_key(alert_class: AlertClass) -> str:
    return f"{EVALUATION_KEY}:{alert_class.value}"


def skipped_key(alert_class: AlertClass) -> str:
    return f"{SKIPPED_KEY}:{alert_class.value}"


# --- query text -------------------------------------------------------------------------


def freshness_sql(query: FreshnessQuery) -> tuple[str, list[str | int]]:
    """One SQLite statement with bound parameters (rows: host, newest)."""
    params: list[str | int] = []
    matches = []
    for source in query.sources:
        matches.append("(s.measurement = ? AND p.field = ?)")
        params += [source.measurement, source.field]
    params += [query.start_ms, query.end_ms]
    text = (
        "SELECT s.host AS host, MAX(p.ts) AS newest FROM series AS s "
        "JOIN points AS p ON p.series_id = s.id "
        f"WHERE ({' OR '.join(matches)}) AND p.ts >= ? AND p.ts < ? GROUP BY s.host"
    )
    return text, params


def freshness_sql_inline(query: FreshnessQuery) -> str:
    """The same statement with literals, for the evidence (never executed)."""
    text, params = freshness_sql(query)
    for value in params:
        text = text.replace("?", sql_literal(value), 1)
    return text


def freshness_influxql(query: FreshnessQuery, *, retention_policy: str | None = None) -> str:
    """One ``last()`` statement per source, grouped by host; a lone selector returns the
    selected point's own time, which is the newest point of each host."""
    statements = []
    for source in query.sources:
        target = influxql_identifier(source.measurement)
        if retention_policy:
            target = f"{influxql_identifier(retention_policy)}.{target}"
        statements.append(
            f"SELECT last({influxql_identifier(source.field)}) AS {influxql_identifier('value')}"
            f" FROM {target} WHERE time >= {query.start_ms}ms AND time < {query.end_ms}ms"
            f" GROUP BY {influxql_identifier('host')}"
        )
    return ";\n".join(statements)


def freshness_flux(query: FreshnessQuery, *, bucket: str) -> str:
    """Last point per series, then the newest per host; rows carry ``host`` and ``_time``."""
    matches = " or ".join(
        f"(r._measurement == {flux_string(s.measurement)} and r._field == {flux_string(s.field)})"
        for s in query.sources
    )
    return (
        f"from(bucket: {flux_string(bucket)})\n"
        f"  |> range(start: time(v: {flux_string(flux_time(query.start_ms))}), "
        f"stop: time(v: {flux_string(flux_time(query.end_ms))}))\n"
        f"  |> filter(fn: (r) => {matches})\n"
        "  |> last()\n"
        '  |> group(columns: ["host"])\n'
        '  |> sort(columns: ["_time"], desc: true)\n'
        "  |> limit(n: 1)\n"
        '  |> keep(columns: ["host", "_time"])\n'
    )


# --- judgements -------------------------------------------------------------------------


@dataclass(frozen=True)
class HeartbeatPolicy:
    ingest_stale_ms: int
    evaluation_stale_ms: int
    lookback_ms: int
    renotify_ms: int
    severity: Severity = Severity.CRITICAL
    source: str = "default"
    """Where the thresholds came from (``default`` or ``env:MESHALERT_HEARTBEAT_*``)."""

    @staticmethod
    def for_interval(
        eval_interval_ms: int, renotify_ms: int, *, source: str = "default"
    ) -> HeartbeatPolicy:
        """Ingest: 3 evaluation intervals (the sidecar flushes every 10 s and its spool
        replays a short store outage); evaluation: 5 intervals (a couple of failed or
        throttled runs are not yet an outage); lookback: 6 h bounds the query."""
        return HeartbeatPolicy(
            ingest_stale_ms=3 * eval_interval_ms,
            evaluation_stale_ms=5 * eval_interval_ms,
            lookback_ms=max(6 * 3_600_000, 10 * eval_interval_ms),
            renotify_ms=renotify_ms,
            source=source,
        )


@dataclass(frozen=True)
class Check:
    """One judged heartbeat subject, ready for the state machine."""

    observation: Observation
    verdict: Verdict
    threshold: ThresholdInForce
    no_data: NoDataPolicy
    query: str
    window: str


def _judge(age_ms: int | None, limit_ms: int) -> Verdict:
    if age_ms is None:
        return Verdict(breached=None, recovered=False)
    return Verdict(breached=age_ms > limit_ms, recovered=age_ms <= limit_ms)


def ingest_checks(
    newest_by_host: Mapping[str, int],
    *,
    known_keys: Iterable[str],
    cycle_ms: int,
    policy: HeartbeatPolicy,
    query_text: str,
    window: str,
) -> list[Check]:
    """One check per host seen (or known from an earlier run) plus the whole-store check."""
    threshold = ThresholdInForce(THRESHOLD_NAME, float(policy.ingest_stale_ms), policy.source)
    checks = []
    hosts = {ingest_key(h): h for h in newest_by_host}
    prefix = INGEST_KEY + ":"
    for key in sorted(set(hosts) | {k for k in known_keys if k.startswith(prefix)}):
        host = key.removeprefix(prefix)
        newest = newest_by_host.get(host)
        age = None if newest is None else max(cycle_ms - newest, 0)
        detail: dict[str, float | str | None] = {"host": host, "newest_point_ms": newest}
        checks.append(
            Check(
                Observation(CARRIER_CLASS, key, _float(age), 1.0 if newest else 0.0, detail),
                _judge(age, policy.ingest_stale_ms),
                threshold,
                NoDataPolicy.OK,  # gone from the whole lookback: forgotten
                query_text,
                window,
            )
        )
    freshest = max(newest_by_host.values(), default=None)
    age = None if freshest is None else max(cycle_ms - freshest, 0)
    store_detail: dict[str, float | str | None] = {
        "hosts": len(newest_by_host),
        "newest_point_ms": freshest,
    }
    checks.append(
        Check(
            Observation(
                CARRIER_CLASS, INGEST_KEY, _float(age), float(len(newest_by_host)), store_detail
            ),
            _judge(age, policy.ingest_stale_ms),
            threshold,
            NoDataPolicy.ALERT,  # nothing written within the lookback at all
            query_text,
            window,
        )
    )
    return checks


def evaluation_checks(
    newest_by_class: Mapping[AlertClass, int | None],
    *,
    cycle_ms: int,
    policy: HeartbeatPolicy,
    query_text: str,
    window: str,
) -> list[Check]:
    threshold = ThresholdInForce(THRESHOLD_NAME, float(policy.evaluation_stale_ms), policy.source)
    checks = []
    for alert_class in AlertClass:
        newest = newest_by_class.get(alert_class)
        age = None if newest is None else max(cycle_ms - newest, 0)
        detail: dict[str, float | str | None] = {
            "alert_class": alert_class.value,
            "last_evaluated_ms": newest,
        }
        checks.append(
            Check(
                Observation(
                    CARRIER_CLASS,
                    evaluation_key(alert_class),
                    _float(age),
                    1.0 if newest is not None else 0.0,
                    detail,
                ),
                _judge(age, policy.evaluation_stale_ms),
                threshold,
                NoDataPolicy.KEEP,  # never evaluated anything: cannot tell
                query_text,
                window,
            )
        )
    return checks


def skipped_checks(
    latest: Mapping[AlertClass, SkippedServices | None],
    *,
    cycle_ms: int,
    policy: HeartbeatPolicy,
) -> list[Check]:
    """One check per class: breached while its latest evaluation skipped any service. A
    summary older than ``evaluation_stale_ms`` says nothing (the evaluation check fires)."""
    threshold = ThresholdInForce("skipped_above", 0.0, policy.source)
    checks = []
    for alert_class in AlertClass:
        summary = latest.get(alert_class)
        if summary is not None and cycle_ms - summary.cycle_ms > policy.evaluation_stale_ms:
            summary = None
        count = None if summary is None else summary.count
        detail: dict[str, float | str | None] = {
            "alert_class": alert_class.value,
            "cycle_ms": None if summary is None else summary.cycle_ms,
            "services": None if summary is None else ", ".join(summary.services),
        }
        checks.append(
            Check(
                Observation(
                    CARRIER_CLASS,
                    skipped_key(alert_class),
                    _float(count),
                    1.0 if summary is not None else 0.0,
                    detail,
                ),
                Verdict(breached=None, recovered=False)
                if count is None
                else Verdict(breached=count > 0, recovered=count == 0),
                threshold,
                NoDataPolicy.KEEP,
                "state store: the skipped-services summary of the class's latest evaluation",
                format_duration_ms(policy.evaluation_stale_ms),
            )
        )
    return checks


def _float(value: int | None) -> float | None:
    return None if value is None else float(value)
