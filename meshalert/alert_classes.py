"""The alert classes: what meshalert judges. A value below both the query model (which
selects per class) and the alert values (which carry their class), so neither imports the
other for it."""

from __future__ import annotations

from enum import StrEnum


class AlertClass(StrEnum):
    LATENCY = "latency"
    FAILURES = "failures"
    ENDPOINTS = "endpoints"
    RETRIES = "retries"
    INGEST = "ingest"
    """Pipeline health: metrics stopped arriving (per sidecar host, or the whole store)."""
    EVALUATION = "evaluation"
    """Pipeline health: a class's evaluations stalled, or skipped services they could not
    judge."""


SERVICE_CLASSES: tuple[AlertClass, ...] = (
    AlertClass.LATENCY,
    AlertClass.FAILURES,
    AlertClass.ENDPOINTS,
    AlertClass.RETRIES,
)
"""The classes judged per mesh service from its Linkerd metrics, with rules per service."""

PIPELINE_CLASSES: tuple[AlertClass, ...] = (AlertClass.INGEST, AlertClass.EVALUATION)
"""The classes judged about meshalert itself (the heartbeat), keyed under ``meshalert/``."""
