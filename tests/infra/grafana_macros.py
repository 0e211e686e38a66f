"""What Grafana does to an InfluxDB panel query before the store sees it, for the tests.

Followed from Grafana's source (pkg/tsdb/influxdb), not guessed:

* template variables are substituted by the front end; a single-value variable (neither
  ``multi`` nor ``includeAll``) outside a ``/regex/`` goes in as it is
  (``interpolateQueryExpr``: "should return the value as it is");
* Flux (flux/macros.go): every ``<word>.<word>`` match of ``([a-zA-Z]+)\\.([a-zA-Z]+)``
  whose second word is ``timeRangeStart``/``timeRangeStop`` becomes the range's RFC 3339
  (nanosecond) UTC text, unquoted; ``windowPeriod`` becomes Go's ``Duration.String()`` of
  the interval; ``bucket``/``defaultBucket``/``organization`` become quoted strings; then
  ``$__interval_ms`` (milliseconds) and ``$__interval`` (``gtime.FormatInterval``);
* InfluxQL (models/query.go ``Build``): ``$timeFilter`` becomes
  ``time >= <from>ms and time <= <to>ms``, then ``$interval``, ``$__interval_ms`` and
  ``$__interval`` in that order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

_FLUX_VARIABLE = re.compile(r"([a-zA-Z]+)\.([a-zA-Z]+)", re.MULTILINE)
_TEMPLATE_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}|\[\[(\w+)\]\]")


def go_duration(ms: int) -> str:
    """Go's ``time.Duration.String()`` for a whole number of milliseconds."""
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = f"{seconds}.{millis:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def format_interval(ms: int) -> str:
    """grafana-plugin-sdk-go ``gtime.FormatInterval``: the largest whole unit only."""
    for unit, size in (("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    if ms >= 60_000:
        return f"{ms // 60_000}m"
    if ms >= 1000:
        return f"{ms // 1000}s"
    return f"{ms}ms" if ms >= 1 else "1ms"


def rfc3339_nano(moment: datetime) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC instant (trailing zeros of the fraction dropped)."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def substitute_variables(text: str, variables: Mapping[str, str]) -> str:
    """The front end's template variables: single values, not in a regex, go in as they are."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return variables.get(name, match.group(0))

    return _TEMPLATE_VARIABLE.sub(value, text)


def interpolate_flux(
    text: str,
    *,
    start: datetime,
    stop: datetime,
    interval_ms: int,
    bucket: str,
    organization: str,
    variables: Mapping[str, str],
) -> str:
    flux = substitute_variables(text, variables)
    replacements = {
        "timeRangeStart": rfc3339_nano(start),
        "timeRangeStop": rfc3339_nano(stop),
        "windowPeriod": go_duration(interval_ms),
        "bucket": f'"{bucket}"',
        "defaultBucket": f'"{bucket}"',
        "organization": f'"{organization}"',
    }
    for match in _FLUX_VARIABLE.finditer(flux):
        if match.group(2) in replacements:
            flux = flux.replace(match.group(0), replacements[match.group(2)])
    flux = flux.replace("$__interval_ms", str(interval_ms))
    return flux.replace("$__interval", format_interval(interval_ms))


def interpolate_influxql(
    text: str,
    *,
    start: datetime,
    stop: datetime,
    interval_ms: int,
    variables: Mapping[str, str],
) -> str:
    query = substitute_variables(text, variables)
    from_ms, to_ms = int(start.timestamp() * 1000), int(stop.timestamp() * 1000)
    query = query.replace("$timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    interval = format_interval(interval_ms)
    query = query.replace("$interval", interval)
    query = query.replace("$__interval_ms", str(interval_ms))
    return query.replace("$__interval", interval)
