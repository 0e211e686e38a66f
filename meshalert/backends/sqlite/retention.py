"""Retention of the embedded store: InfluxDB servers keep their own retention policies."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from meshalert.backends.sqlite.writer import open_database, prune
from meshalert.durations import format_duration_ms

log = structlog.get_logger("meshalert.run")

PRUNE_EVERY_MS = 3_600_000


@dataclass
class Pruner:
    """Deletes embedded-store points older than the retention, at most once an hour."""

    path: str
    retention_ms: int
    last_ms: int = field(default=0, init=False)

    def __call__(self, cycle_ms: int) -> None:
        if cycle_ms - self.last_ms < PRUNE_EVERY_MS:
            return
        self.last_ms = cycle_ms
        conn = open_database(self.path)
        try:
            deleted = prune(conn, cycle_ms - self.retention_ms)
        finally:
            conn.close()
        log.info(
            "retention.pruned",
            points_deleted=deleted,
            retention=format_duration_ms(self.retention_ms),
        )
