"""Lambda handler: the pipeline watching itself (see :mod:`meshalert.health`).

Runs on its own schedule with the full EventBridge scheduled event; the cycle is the event's
``time`` aligned down to ``MESHALERT_EVAL_INTERVAL``. Thresholds default to 3 (ingest) and 5
(evaluation) evaluation intervals; ``MESHALERT_HEARTBEAT_INGEST_STALE`` and
``MESHALERT_HEARTBEAT_EVALUATION_STALE`` (durations) override them.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import structlog

from functions import runtime
from functions.events import cycle_of
from meshalert.health import HeartbeatPolicy
from meshalert.settings import LambdaSettings

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
    from meshalert.health_monitor import HeartbeatMonitor

    line: dict[str, Any] = {"request_id": runtime.request_id(context), "cold_start": cold_start}
    if cold_start:
        line["container_build_ms"] = round(container.built_ms, 1)
    try:
        interval = container.settings.eval_interval_ms
        cycle = cycle_of(event, interval_ms=interval, now_ms=int(time.time() * 1000))
        line.update(cycle_ms=cycle.cycle_ms, cycle_source=cycle.source)
        monitor = HeartbeatMonitor(
            container.freshness, container.state, container.health_records, container.router
        )
        report = monitor.run(
            cycle.cycle_ms,
            heartbeat_policy(container.settings),
            query_end_ms=cycle.cycle_ms + interval,
            deadline_s=runtime.deadline_s(context, now_s=time.monotonic()),
        )
    except Exception as exc:
        line["duration_ms"] = round((time.monotonic() - started_s) * 1000, 1)
        log.error("heartbeat", outcome="error", error=f"{type(exc).__name__}: {exc}", **line)
        raise
    line.update(report.as_log())
    line["duration_ms"] = round((time.monotonic() - started_s) * 1000, 1)
    log.info("heartbeat", outcome="ok", **line)
    return {
        **report.as_log(),
        "cycle_source": cycle.source,
        "transitions": [list(t) for t in report.transitions],
        "notifications": list(report.notifications),
    }
