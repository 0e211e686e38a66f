"""structlog configuration: JSON lines in Lambda or when output is not a terminal, readable
colour-free key=value lines in a terminal. Secret values are redacted from every event."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import TextIO

import structlog

from meshalert.notify.redact import redact_secrets
from meshalert.safe_text import printable


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
    # JSON escapes every control character itself; a terminal would obey them (service names
    # from data reach many events, e.g. inside dedup keys), so escape them there first.
    terminal_safe: list[structlog.types.Processor] = [] if json else [_printable_values]
    lvl = logging.getLevelName((level or os.environ.get("MESHALERT_LOG_LEVEL", "INFO")).upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets(secrets),
            *terminal_safe,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl if isinstance(lvl, int) else 20),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def _printable_values(
    _logger: object, _name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    out: structlog.types.EventDict = {}
    for key, value in event.items():
        if key == "exception" and isinstance(value, str):
            out[key] = "\n".join(printable(line) for line in value.split("\n"))  # a traceback
        else:
            out[key] = printable(value) if isinstance(value, str) else value
    return out
