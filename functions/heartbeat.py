"""Lambda handler: the pipeline watching itself, the ``ingest`` and ``evaluation`` classes
(see :mod:`meshalert.alerts.pipeline`), evaluated by the same engine as the service classes.

Runs on its own schedule with the full EventBridge scheduled event; the cycle is the event's
``time`` aligned down to ``MESHALERT_EVAL_INTERVAL``. Both classes are evaluated, then their
notifications are sent together. Thresholds default to 3 (ingest) and 5
(evaluation) evaluation intervals; ``MESHALERT_HEARTBEAT_INGEST_STALE`` and
``MESHALERT_HEARTBEAT_EVALUATION_STALE`` (durations) override them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog

from functions import runtime
from functions.events import cycle_of
from meshalert.alerts.model import AlertState
from meshalert.alerts.pipeline import INGEST_KEY, SKIPPED_KEY, HeartbeatPolicy
from meshalert.settings import LambdaSettings

if TYPE_CHECKING:
    from meshalert.engine import CycleReport

ENV_INGEST_STALE = "MESHALERT_HEARTBEAT_INGEST_STALE"
ENV_EVALUATION_STALE = "MESHALERT_HEARTBEAT_EVALUATION_STALE"

log = structlog.get_logger("functions.heartbeat")


def handler(event: Any, context: runtime.LambdaContext) -> dict[str, Any]:
    started = time.monotonic()
    container, cold = runtime.current()
    return invoke(container, event, context, cold_start=cold, started_s=started)


def heartbeat_policy(settings: LambdaSettings) -> HeartbeatPolicy:
    """The policy for the evaluation interval, with the environment's overrides."""
    policy = HeartbeatPolicy.for_interval(settings.eval_interval_ms, settings.renotify_ms)
    sources = []
    if (ingest := settings.heartbeat_ingest_stale_ms) is not None:
        policy = replace(policy, ingest_stale_ms=ingest)
        sources.append(f"env:{ENV_INGEST_STALE}")
    if (evaluation := settings.heartbeat_evaluation_stale_ms) is not None:
        policy = replace(policy, evaluation_stale_ms=evaluation)
        sources.append(f"env:{ENV_EVALUATION_STALE}")
    return replace(policy, source=",".join(sources)) if sources else policy


def invoke(
    container: runtime.Container,
    event: Any,
    context: runtime.LambdaContext,
    *,
    cold_start: bool,
    started_s: float,
) -> dict[str, Any]:
    from meshalert.alert_classes import PIPELINE_CLASSES
    from meshalert.engine import Engine

    line: dict[str, Any] = {"request_id": runtime.request_id(context), "cold_start": cold_start}
    if cold_start:
        line["container_build_ms"] = round(container.built_ms, 1)
    try:
        interval = container.settings.eval_interval_ms
        cycle = cycle_of(event, interval_ms=interval, now_ms=int(time.time() * 1000))
        line.update(cycle_ms=cycle.cycle_ms, cycle_source=cycle.source)
        engine = Engine(container.reader, container.state, container.router)
        policy = heartbeat_policy(container.settings)
        reports = [
            engine.evaluate_pipeline(
                alert_class,
                policy,
                cycle.cycle_ms,
                query_end_ms=cycle.cycle_ms + interval,
                deliver=False,
            )
            for alert_class in PIPELINE_CLASSES
        ]
        engine.deliver(reports, runtime.deadline_s(context, now_s=time.monotonic()))
        summary = heartbeat_summary(reports)
    except Exception as exc:
        line["duration_ms"] = round((time.monotonic() - started_s) * 1000, 1)
        log.error("heartbeat", outcome="error", error=f"{type(exc).__name__}: {exc}", **line)
        raise
    line.update(summary)
    line["duration_ms"] = round((time.monotonic() - started_s) * 1000, 1)
    log.info("heartbeat", outcome="ok", **line)
    return {
        **summary,
        "cycle_source": cycle.source,
        "transitions": [list(t) for r in reports for t in r.transitions],
        "notifications": [n for r in reports for n in r.notifications],
    }


def heartbeat_summary(reports: Sequence[CycleReport]) -> dict[str, Any]:
    """The canonical line of one heartbeat run (both classes): what was judged and sent,
    how many hosts wrote within the lookback, what each class's latest evaluation skipped."""
    observations = {k: o for r in reports for k, o in r.observations.items()}
    store = observations.get(INGEST_KEY)
    skipped = {
        key.removeprefix(SKIPPED_KEY + ":"): int(obs.value)
        for key, obs in observations.items()
        if key.startswith(SKIPPED_KEY + ":") and obs.value
    }
    return {
        "cycle_ms": reports[0].cycle_ms if reports else None,
        "hosts_seen": int(store.samples) if store is not None else 0,
        "checks": sum(r.services_evaluated for r in reports),
        "queries_issued": sum(r.queries_issued for r in reports),
        "transitions": sum(len(r.transitions) for r in reports),
        "notifications": sum(len(r.notifications) for r in reports),
        "duplicates_skipped": sum(r.duplicates_skipped for r in reports),
        "send_failures": sum(r.send_failures for r in reports),
        "firing": sorted(k for r in reports for k, s in r.states.items() if s is AlertState.FIRING),
        "services_skipped": dict(sorted(skipped.items())),
    }
