"""structlog configuration: JSON lines in Lambda or when output is not a terminal, readable
colour-free key=value lines in a terminal. Secret values are redacted from every event."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "***"


def redact_values(secrets: Iterable[str]) -> structlog.types.Processor:
    """A processor replacing every occurrence of a secret inside string event values."""
    known = tuple(s for s in secrets if s and len(s) >= 4)

    def processor(
        _logger: object, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not known:
            return event
        for key, value in event.items():
            text = value if isinstance(value, str) else None
            if text is None and not isinstance(value, int | float | bool | type(None)):
                text = str(value)
            if text is not None and any(s in text for s in known):
                for secret in known:
                    text = text.replace(secret, REDACTED)
                event[key] = text
        return event

    return processor


def configure_logging(
    *,
    secrets: Iterable[str] = (),
    json: bool | None = None,
    level: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog once per process (CLI start, Lambda cold start)."""
    out = stream or sys.stderr
    if json is None:
        json = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) or not out.isatty()
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    lvl = logging.getLevelName((level or os.environ.get("MESHALERT_LOG_LEVEL", "INFO")).upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_values(secrets),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl if isinstance(lvl, int) else 20),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
