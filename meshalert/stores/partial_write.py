"""Which lines of a batch an InfluxDB write error names as refused (pure: text in, indices out).

A refused batch is often refused because of a few lines, and InfluxDB may have stored the
others already ("partial write"). Knowing the refused lines lets the caller dead-letter only
them and send the rest again (a re-sent point overwrites itself). Answers understood:

* InfluxDB 1.x (checked against 1.6.7), 400 ``{"error": "..."}``:
  ``partial write: unable to parse '<line>': <why>\\nunable to parse '<line>': ... dropped=0``
  and ``partial write: field type conflict: input field "<f>" on measurement "<m>" is type
  <t>, already exists as type <u> dropped=<n>``.
* InfluxDB 2.x, 400/422 ``{"code": ..., "message": "...", "line": <n>}``: the same message
  texts (``failure writing points to database: partial write: ...``), and ``line``, the
  1-based number of the first malformed line.
* InfluxDB 3 / Cloud Serverless, 400 ``{"code": "invalid", "message": "partial write of line
  protocol occurred", "data": [{"error_message": ..., "line_number": <n>, "original_line":
  ...}, ...]}``.

Anything not understood gives no indices (the caller then narrows the batch down itself).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

from meshalert.lineprotocol import LineProtocolError, decode

_UNABLE = "unable to parse '"
_CONFLICT = re.compile(
    r'field type conflict: input field \\?"(?P<field>(?:[^"\\]|\\.)*?)\\?" on measurement '
    r'\\?"(?P<measurement>(?:[^"\\]|\\.)*?)\\?" is type (?P<type>\w+)'
)


def rejected_indices(lines: Sequence[str], body: str) -> tuple[int, ...]:
    """Indices of ``lines`` the error ``body`` names as refused, ascending; () if none."""
    found: set[int] = set()
    messages: list[str] = [body]
    parsed = _json(body)
    if isinstance(parsed, dict):
        messages.extend(str(parsed[k]) for k in ("error", "message") if k in parsed)
        found.update(_from_v3_data(lines, parsed.get("data")))
        line_no = parsed.get("line")
        if isinstance(line_no, int) and not isinstance(line_no, bool) and 0 < line_no <= len(lines):
            found.add(line_no - 1)
    for message in messages:
        found.update(_unparsable(lines, message))
        found.update(_type_conflicts(lines, message))
    return tuple(sorted(found))


def _json(body: str) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _from_v3_data(lines: Sequence[str], data: object) -> Iterable[int]:
    if not isinstance(data, list):
        return
    for item in data:
        if not isinstance(item, dict):
            continue
        raw_number = item.get("line_number")
        number = raw_number if isinstance(raw_number, int) else 0
        original = item.get("original_line")
        in_range = 0 < number <= len(lines)
        if in_range and (not isinstance(original, str) or lines[number - 1].startswith(original)):
            yield number - 1
            continue
        if isinstance(original, str) and original:
            yield from (i for i, line in enumerate(lines) if line == original)


def _unparsable(lines: Sequence[str], message: str) -> Iterable[int]:
    """``unable to parse '<line>': ...``: the quoted line may itself hold ``': ``, so each
    candidate end is tried until the quoted text is one of the lines."""
    if _UNABLE not in message:
        return
    by_text: dict[str, list[int]] = {}
    for index, line in enumerate(lines):
        by_text.setdefault(line, []).append(index)
    start = message.find(_UNABLE)
    while start >= 0:
        begin = start + len(_UNABLE)
        end = message.find("': ", begin)
        while end >= 0:
            indices = by_text.get(message[begin:end])
            if indices is not None:
                yield from indices
                break
            end = message.find("': ", end + 1)
        start = message.find(_UNABLE, begin)


_TYPE_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string"}


def _type_conflicts(lines: Sequence[str], message: str) -> Iterable[int]:
    for match in _CONFLICT.finditer(message):
        field = match.group("field").replace('\\"', '"')
        measurement = match.group("measurement").replace('\\"', '"')
        wanted = match.group("type")
        for index, line in enumerate(lines):
            if measurement not in line or field not in line:
                continue  # cheap pre-filter before decoding
            try:
                point = decode(line)
            except LineProtocolError:
                continue
            if point.measurement != measurement:
                continue
            value = point.field_dict().get(field)
            if value is not None and _TYPE_NAMES.get(type(value)) == wanted:
                yield index


_MAX_ERROR_TEXT = 1000
_RETRYABLE_STATUSES = frozenset({408, 429})


def retryable_status(status: int) -> bool:
    """Whether sending the same batch again may succeed (timeouts, throttling, server faults).

    404 is handled by each writer: a missing database or bucket can be created meanwhile.
    """
    return status in _RETRYABLE_STATUSES or status >= 500


def shorten_error_text(text: str) -> str:
    message = text.strip()
    if len(message) > _MAX_ERROR_TEXT:
        message = message[:_MAX_ERROR_TEXT] + "..."
    return message or "(no error text)"
