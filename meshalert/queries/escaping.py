"""Quoting for InfluxQL and SQL; with :mod:`meshalert.queries.flux_escaping` (Flux), the only
places values are turned into query text.

Tag values come from telemetry and service names from configuration, so every one of them
is quoted here (InfluxQL) or bound as a parameter (SQL). ``sql_literal`` exists only to show
a replayable statement in alert evidence; execution always binds.
"""

from __future__ import annotations

import math

_INFLUXQL_STRING_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n"})
_INFLUXQL_IDENT_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def influxql_string(value: str) -> str:
    """A single-quoted InfluxQL string literal.

    InfluxQL's scanner rejects a raw newline inside a string and understands ``\\\\``,
    ``\\'`` and ``\\n``; everything else stands for itself.
    """
    return "'" + value.translate(_INFLUXQL_STRING_ESCAPES) + "'"


def influxql_identifier(name: str) -> str:
    """A double-quoted InfluxQL identifier (measurement, tag key, field key, alias)."""
    return '"' + name.translate(_INFLUXQL_IDENT_ESCAPES) + '"'


def sql_identifier(name: str) -> str:
    """A double-quoted SQL identifier (embedded quotes doubled)."""
    if "\x00" in name:
        raise ValueError(f"identifier {name!r} contains NUL")
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str | int | float | None) -> str:
    """A SQLite literal for display/replay of a bound statement (quotes doubled)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no SQL literal")
        return repr(value)
    if "\x00" in value:
        # SQLite string literals stop at NUL; spell the value as a blob cast instead.
        return "CAST(X'" + value.encode().hex() + "' AS TEXT)"
    return "'" + value.replace("'", "''") + "'"
