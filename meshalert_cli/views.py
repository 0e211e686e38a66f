"""Rendering of alert records and history for terminals and ``--json``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from meshalert.alerts.model import AlertRecord, AlertState
from meshalert.safe_text import printable
from meshalert.state.protocols import HistoryEntry

_STATE_ORDER = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.OK: 2}


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def record_view(record: AlertRecord) -> dict[str, Any]:
    threshold = record.threshold
    return {
        "class": record.alert_class.value,
        "service": record.service,
        "state": record.state.value,
        "value": record.last_value,
        "threshold": threshold.value if threshold else None,
        "threshold_name": threshold.name if threshold else None,
        "threshold_source": threshold.source if threshold else None,
        "since": iso(record.since_ms),
        "episode_start": iso(record.episode_start_ms),
        "last_evaluated": iso(record.last_evaluated_ms),
    }


def sorted_records(records: Sequence[AlertRecord]) -> list[AlertRecord]:
    return sorted(records, key=lambda r: (_STATE_ORDER[r.state], r.service, r.alert_class.value))


def history_view(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "at": iso(entry.at_ms),
        "class": entry.alert_class.value,
        "service": entry.service,
        "from": entry.from_state.value,
        "to": entry.to_state.value,
        "dedup_key": entry.dedup_key,
        "evidence": dict(entry.evidence),
    }


def fmt_value(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Aligned columns for a terminal; every cell is escaped (names come from data)."""
    rows = [[printable(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def status_text(records: Sequence[AlertRecord]) -> str:
    rows = [
        [
            r.state.value.upper(),
            r.alert_class.value,
            r.service,
            fmt_value(r.last_value),
            fmt_value(r.threshold.value) if r.threshold else "-",
            iso(r.since_ms) or "-",
        ]
        for r in sorted_records(records)
    ]
    if not rows:
        return "no alerts evaluated yet"
    return table(rows, ["STATE", "CLASS", "SERVICE", "VALUE", "THRESHOLD", "SINCE"])


def history_text(entries: Sequence[HistoryEntry]) -> str:
    rows = [
        [
            iso(e.at_ms) or "-",
            e.alert_class.value,
            e.service,
            f"{e.from_state.value} -> {e.to_state.value}",
            fmt_value(_float(e.evidence.get("observed"))),
        ]
        for e in entries
    ]
    if not rows:
        return "no transitions in that period"
    return table(rows, ["AT", "CLASS", "SERVICE", "TRANSITION", "OBSERVED"])


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def dumps(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)
