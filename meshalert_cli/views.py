"""Rendering of alert records and history for terminals and ``--json``."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from meshalert.alerts.model import AlertRecord, AlertState
from meshalert.safe_text import printable
from meshalert.state.protocols import HistoryEntry
from meshalert.units import format_class_value, format_threshold, format_value

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
        "value_text": record_value_text(record),
        "threshold_text": format_threshold(threshold.value, threshold.name) if threshold else "-",
    }


def record_value_text(record: AlertRecord) -> str:
    if record.threshold is not None:
        return format_value(record.last_value, record.threshold.name)
    return format_class_value(record.last_value, record.alert_class)


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
        "observed_text": observed_text(entry),
        "threshold_text": threshold_text_of(entry),
    }


def _threshold_of(entry: HistoryEntry) -> tuple[str, float | None]:
    raw = entry.evidence.get("threshold")
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        return raw["name"], _float(raw.get("value"))
    return "", None


def observed_text(entry: HistoryEntry) -> str:
    name, _ = _threshold_of(entry)
    observed = _float(entry.evidence.get("observed"))
    if name:
        return format_value(observed, name)
    return format_class_value(observed, entry.alert_class)


def threshold_text_of(entry: HistoryEntry) -> str:
    name, value = _threshold_of(entry)
    return format_threshold(value, name) if name else "-"


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Aligned columns for a terminal; every cell is escaped (names come from data).

    Rendered by rich (the demo's live board uses it too), which measures cells in terminal
    columns, so wide characters still line up. Cells are ``Text``, never markup, and the
    columns never wrap or truncate: a pipe into grep sees whole values."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=None, pad_edge=False, padding=(0, 1), show_header=True, header_style="")
    for header in headers:
        grid.add_column(Text(header), no_wrap=True, overflow="ignore")
    for row in rows:
        grid.add_row(*(Text(printable(cell)) for cell in row))
    out = io.StringIO()
    Console(file=out, width=1_000_000, color_system=None, emoji=False, highlight=False).print(
        grid, crop=False
    )
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def status_rows(records: Sequence[AlertRecord], *, show_all: bool) -> list[AlertRecord]:
    """What ``status`` shows (table and ``--json`` alike): pending and firing, or all."""
    shown = records if show_all else [r for r in records if r.state is not AlertState.OK]
    return sorted_records(shown)


def status_text(records: Sequence[AlertRecord], *, show_all: bool = False) -> str:
    if not records:
        return (
            "no alerts evaluated yet: `meshalert run` judges each class once one full window "
            "has passed after start-up (5m by default; its log says evaluation.warming_up)"
        )
    shown = status_rows(records, show_all=show_all)
    ok = [r for r in records if r.state is AlertState.OK]
    services = len({r.service for r in records})
    classes = len({r.alert_class for r in records})
    counts = (
        f"{_plural(len(records), 'alert')} evaluated ({_plural(services, 'service')}, "
        f"{_plural(classes, 'class')}), {len(ok)} OK"
    )
    if not shown:
        last = max((r.last_evaluated_ms or 0 for r in records), default=0)
        return (
            f"all OK: {counts}, none pending or firing; last evaluated {iso(last) or '-'} "
            "(--all lists them)"
        )
    rows = [
        [
            r.state.value.upper(),
            r.alert_class.value,
            r.service,
            record_value_text(r),
            format_threshold(r.threshold.value, r.threshold.name) if r.threshold else "-",
            iso(r.since_ms) or "-",
        ]
        for r in shown
    ]
    text = table(rows, ["STATE", "CLASS", "SERVICE", "VALUE", "THRESHOLD", "SINCE"])
    hidden = len(records) - len(shown)
    return text + (f"\n\n{counts}; {hidden} OK not shown (--all lists them)" if hidden else "")


def _plural(count: int, word: str) -> str:
    suffix = "" if count == 1 else "es" if word.endswith("s") else "s"
    return f"{count} {word}{suffix}"


def history_text(entries: Sequence[HistoryEntry]) -> str:
    rows = [
        [
            iso(e.at_ms) or "-",
            e.alert_class.value,
            e.service,
            f"{e.from_state.value} -> {e.to_state.value}{suppressed_mark(e)}",
            observed_text(e),
            threshold_text_of(e),
        ]
        for e in entries
    ]
    if not rows:
        return "no transitions in that period"
    return table(rows, ["AT", "CLASS", "SERVICE", "TRANSITION", "OBSERVED", "THRESHOLD"])


def suppressed_mark(entry: HistoryEntry) -> str:
    """`` (silenced)``, `` (maintenance)`` or `` (inhibited)`` for a transition whose
    notification was held back (meshalert.suppression), else nothing."""
    reason = entry.evidence.get("suppressed")
    if not isinstance(reason, str) or not reason:
        return ""
    word = reason.split()[0]
    return f" ({word if word in ('silenced', 'maintenance', 'inhibited') else 'suppressed'})"


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def dumps(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)
