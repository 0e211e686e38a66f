"""Lambda handler: evaluate one alert class for one scheduled cycle.

Deployed four times (``evaluate-latency`` ... ``evaluate-retries`` in serverless.yml), each
on its own schedule whose input names the class. Returns a small JSON-able summary and logs
exactly one canonical line per invocation (``event="evaluate"``), errors included.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from functions import runtime
from functions.events import alert_class_of, cycle_of

log = structlog.get_logger("functions.evaluate")


def handler(event: Any, context: runtime.LambdaContext) -> dict[str, Any]:
    started = time.monotonic()
    container, cold = runtime.current()
    return invoke(container, event, context, cold_start=cold, started_s=started)


def invoke(
    container: runtime.Container,
    event: Any,
    context: runtime.LambdaContext,
    *,
    cold_start: bool,
    started_s: float,
) -> dict[str, Any]:
    """One evaluation with an already built container (the handler's body)."""
    line: dict[str, Any] = {
        "request_id": runtime.request_id(context),
        "cold_start": cold_start,
        "alert_class": None,
    }
    if cold_start:
        line["container_build_ms"] = round(container.built_ms, 1)
    try:
        summary = _evaluate(container, event, context, started_s, line)
    except Exception as exc:
        line["duration_ms"] = round((time.monotonic() - started_s) * 1000, 1)
        log.error("evaluate", outcome="error", error=f"{type(exc).__name__}: {exc}", **line)
        raise
    line["duration_ms"] = round((time.monotonic() - started_s) * 1000, 1)
    log.info("evaluate", outcome="ok", **line)
    return summary


def _evaluate(
    container: runtime.Container,
    event: Any,
    context: runtime.LambdaContext,
    started_s: float,
    line: dict[str, Any],
) -> dict[str, Any]:
    from meshalert.engine import Engine
    from meshalert.evaluation import evaluate_class

    alert_class = alert_class_of(event)
    line["alert_class"] = alert_class.value
    cycle = cycle_of(
        event,
        interval_ms=container.settings.eval_interval_ms,
        now_ms=int(time.time() * 1000),
    )
    line.update(cycle_ms=cycle.cycle_ms, cycle_source=cycle.source)
    snapshot = container.rules.current(time.monotonic())
    line["rules_sources"] = list(snapshot.rules.sources)
    if snapshot.stale:
        line["rules_error"] = str(snapshot.error)
    engine = Engine(
        container.reader,
        container.state,
        container.router,
        settle_ms=container.settings.window_settle_ms,
        lookback_ms=container.settings.endpoints_lookback_ms,
        history_sink=container.history_sink,
    )
    report = evaluate_class(
        engine,
        snapshot.rules,
        alert_class,
        cycle.cycle_ms,
        deadline_s=runtime.deadline_s(context, now_s=time.monotonic()),
    )
    line.update(report.as_log())
    return {
        **report.as_log(),
        "cycle_source": cycle.source,
        "transitions": [list(t) for t in report.transitions],
        "notifications": list(report.notifications),
    }
