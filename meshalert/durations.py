"""Durations as written in meshalert configuration: ``500ms``, ``10s``, ``5m``, ``1h``, ``1d``."""

from __future__ import annotations

import re
from functools import lru_cache

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


class DurationError(ValueError):
    """A duration string that does not follow the ``<number><unit>`` form."""


@lru_cache(maxsize=1024)
def parse_duration_ms(text: str) -> int:
    """Return the duration in whole milliseconds; ``1m30s`` combinations are allowed.

    Cached: rules read their durations for every service on every cycle."""
    cleaned = text.strip().lower()
    if not cleaned:
        raise DurationError("empty duration; write e.g. 500ms, 10s, 5m, 1h")
    pos = 0
    total = 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS_MS[match.group(2)]
        pos = match.end()
    if pos != len(cleaned):
        raise DurationError(f"bad duration {text!r}; write e.g. 500ms, 10s, 5m, 1h")
    return round(total)


def parse_duration_s(text: str) -> float:
    return parse_duration_ms(text) / 1000.0


@lru_cache(maxsize=1024)
def format_duration_ms(ms: int) -> str:
    """Shortest exact rendering, e.g. 300000 -> '5m', 1500 -> '1500ms'."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
