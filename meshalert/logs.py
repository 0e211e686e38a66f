"""structlog configuration: JSON lines in Lambda or when output is not a terminal, readable
colour-free key=value lines in a terminal. Secret values are redacted from every event.

On a terminal the periodic per-flush and per-cycle lines are folded into one summary line a
minute (they come back with ``MESHALERT_LOG_LEVEL=debug``); JSON output keeps every line for
machines. Identical warnings and errors (same event, same error text) are rate-limited in
every mode: the first goes out, repeats within five minutes are counted on the next one.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import structlog

from meshalert.durations import format_duration_ms
from meshalert.notify.redact import redact_secrets
from meshalert.safe_text import printable
from meshalert.settings import LoggingSettings, parse_log_level

EventDict = MutableMapping[str, Any]
PERIODIC_EVENTS = frozenset({"sidecar_flush", "evaluation.cycle"})
REPEAT_WINDOW_S = 300.0
SUMMARY_EVERY_S = 60.0


@dataclass
class RepeatLimiter:
    """Drops a warning or error already logged within ``window_s`` (same event and error)."""

    window_s: float = REPEAT_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    _seen: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        if event_dict.get("level") not in ("warning", "error", "critical"):
            return event_dict
        key = (str(event_dict.get("event")), str(event_dict.get("error", "")))
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window_s:
            seen[1] += 1
            raise structlog.DropEvent
        if seen is not None and seen[1]:
            event_dict["repeated"] = int(seen[1])
            event_dict["repeated_within"] = format_duration_ms(int(self.window_s * 1000))
        if len(self._seen) >= 1000:  # error texts can vary without end: keep memory bounded
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
        self._seen[key] = [now, 0.0]
        return event_dict


@dataclass
class PeriodicSummary:
    """Folds ``sidecar_flush`` and ``evaluation.cycle`` lines into one line per ``every_s``."""

    every_s: float = SUMMARY_EVERY_S
    clock: Callable[[], float] = time.monotonic
    _since: float | None = None
    _totals: dict[str, float] = field(default_factory=dict)
    _firing: dict[str, int] = field(default_factory=dict)

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        event = event_dict.get("event")
        if event not in PERIODIC_EVENTS:
            return event_dict
        now = self.clock()
        if self._since is None:
            self._since = now
        if event == "sidecar_flush":
            self._add("statsd_lines", event_dict.get("lines"))
            self._add("bad_lines", event_dict.get("bad"))
            self._add("points", event_dict.get("points"))
            self._totals["spooled_batches"] = float(event_dict.get("spooled_batches") or 0)
        else:
            self._add("services_evaluated", event_dict.get("services_evaluated"))
            self._add("transitions", event_dict.get("transitions"))
            self._add("notifications", event_dict.get("notifications"))
            self._add("send_failures", event_dict.get("send_failures"))
            self._firing[str(event_dict.get("alert_class"))] = int(event_dict.get("firing") or 0)
        if now - self._since < self.every_s:
            raise structlog.DropEvent
        summary: EventDict = {
            "event": "meshalert.summary",
            "level": "info",
            "period": format_duration_ms(round(now - self._since) * 1000),
            **{k: int(v) for k, v in self._totals.items()},
            "firing": sum(self._firing.values()),
        }
        self._since, self._totals = now, {}
        return summary

    def _add(self, key: str, value: object) -> None:
        if isinstance(value, int | float):
            self._totals[key] = self._totals.get(key, 0.0) + value


def configure_logging(
    *,
    secrets: Iterable[str] = (),
    json: bool | None = None,
    level: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog once per process (CLI start, Lambda cold start).

    Raises :class:`meshalert.settings.SettingsError` for an unknown ``MESHALERT_LOG_LEVEL``."""
    out = stream or sys.stderr
    process = LoggingSettings.read() if json is None or level is None else None
    if json is None:
        json = bool(process and process.lambda_function) or not out.isatty()
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    name = parse_log_level(level or (process.log_level if process else None))
    lvl = logging.getLevelName(name)
    quiet: list[structlog.types.Processor] = (
        [PeriodicSummary()] if not json and lvl > logging.DEBUG else []
    )
    # JSON escapes every control character itself; a terminal would obey them (service names
    # from data reach many events, e.g. inside dedup keys), so escape them there first.
    terminal_safe: list[structlog.types.Processor] = [] if json else [_printable_values]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            RepeatLimiter(),
            *quiet,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets(secrets),
            *terminal_safe,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
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
