"""The names the SQL renderer writes against: the embedded store's tag columns and rollup width.

Pure values shared by :mod:`meshalert.queries.sql` (which renders queries) and
:mod:`meshalert.backends.sqlite.schema` (which creates the tables), so the renderer never
imports a store module and the two cannot drift apart.
"""

from __future__ import annotations

TAG_COLUMNS: tuple[str, ...] = (
    "host",
    "router",
    "scope",
    "namespace",
    "port",
    "service",
    "client",
    "via",
    "exception",
    "failure_flag",
    "status_code",
    "le",
)

ROLLUP_MS = 60_000
"""Width of a ``rollup_1m`` row: sums over whole minutes come from the rollup."""
