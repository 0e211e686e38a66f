"""Pipeline health (the heartbeat): judgements of the ``ingest`` and ``evaluation`` classes.

Pure: values in, checks out; :meth:`meshalert.engine.Engine.evaluate_pipeline` reads the
inputs (the ingest class query through the store's window reader, the evaluation inputs from
the state store) and steps each check through the same state machine, state store, claims
and channels as any alert, so they fire once, remind and resolve like any alert.

* **ingest** -- the newest point of the sidecars' own measurement (``meshalert_sidecar``) or
  of ``linkerd_requests``, per ``host``, within a bounded lookback (the ingest class query
  of :mod:`meshalert.queries.model`). A host whose newest point is older than
  ``ingest_stale_ms`` fires ``meshalert/ingest:<host>``; the whole store fires
  ``meshalert/ingest`` when even the freshest host is stale or nothing at all was written
  within the lookback. A host that disappears from the lookback entirely (a removed node)
  resolves as forgotten: it has been firing and reminding for the whole lookback by then.
* **evaluation** -- ``meshalert/evaluation:<class>``: the newest ``last_evaluated_ms`` among
  the state store's records of each service class is older than ``evaluation_stale_ms``. A
  class without any record (no service ever evaluated) cannot be told from a dead evaluator
  and is left alone. ``meshalert/skipped:<class>``: the latest evaluation of the class left
  services out (a name, rule or value it could not judge; see ``CycleReport.skipped``),
  naming the first few; it resolves when a cycle skips none.

Service keys sit under the reserved ``meshalert/`` prefix; the ``:`` in them cannot occur in
a Kubernetes service name, so neither the keys nor their dedup keys collide with a real
service's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.alerts.model import (
    NoDataPolicy,
    Observation,
    Severity,
    SkippedServices,
    ThresholdInForce,
    Verdict,
)
from meshalert.durations import format_duration_ms

INGEST_KEY = "meshalert/ingest"
EVALUATION_KEY = "meshalert/evaluation"
SKIPPED_KEY = "meshalert/skipped"
UNKNOWN_HOST = "(no host tag)"
THRESHOLD_NAME = "stale_after_ms"


def ingest_key(host: str) -> str:
    return f"{INGEST_KEY}:{host or UNKNOWN_HOST}"


def evaluation_key(alert_class: AlertClass) -> str:
    return f"{EVALUATION_KEY}:{alert_class.value}"


def skipped_key(alert_class: AlertClass) -> str:
    return f"{SKIPPED_KEY}:{alert_class.value}"


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
    by_key = {ingest_key(h): newest for h, newest in newest_by_host.items()}
    prefix = INGEST_KEY + ":"
    for key in sorted(set(by_key) | {k for k in known_keys if k.startswith(prefix)}):
        host = key.removeprefix(prefix)
        newest = by_key.get(key)
        age = None if newest is None else max(cycle_ms - newest, 0)
        detail: dict[str, float | str | None] = {"host": host, "newest_point_ms": newest}
        checks.append(
            Check(
                Observation(AlertClass.INGEST, key, _float(age), 1.0 if newest else 0.0, detail),
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
                AlertClass.INGEST, INGEST_KEY, _float(age), float(len(newest_by_host)), store_detail
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
    for alert_class in SERVICE_CLASSES:
        newest = newest_by_class.get(alert_class)
        age = None if newest is None else max(cycle_ms - newest, 0)
        detail: dict[str, float | str | None] = {
            "alert_class": alert_class.value,
            "last_evaluated_ms": newest,
        }
        checks.append(
            Check(
                Observation(
                    AlertClass.EVALUATION,
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
    for alert_class in SERVICE_CLASSES:
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
                    AlertClass.EVALUATION,
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


def forgotten_host(service: str, value: float | None, resolved: bool) -> bool:
    """A host gone from the whole lookback whose alert has resolved: drop its record."""
    return service.startswith(INGEST_KEY + ":") and value is None and resolved
