"""Alert history in the metrics store: each state transition as one ``meshalert_alert`` point.

The state store stays the record of truth (claims, ``meshalert history``, the status page);
this copy lets dashboards draw transitions next to the signals that caused them. Writing it
is best-effort: a failed or slow write is logged and counted, never a failed cycle.

Re-sending a transition is harmless: its point has the same measurement, tags and timestamp,
so every store keeps one point (InfluxDB overwrites the fields; the embedded store upserts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from meshalert.alerts.model import AlertState
from meshalert.lineprotocol import FieldValue, Point, encode
from meshalert.queries.model import ServiceRef
from meshalert.state.protocols import HistoryEntry
from meshalert.stores.protocols import LineWriter

MEASUREMENT = "meshalert_alert"
STATE_CODES: Mapping[AlertState, int] = {
    AlertState.OK: 0,
    AlertState.PENDING: 1,
    AlertState.FIRING: 2,
}
"""``state_code``: ordered so a timeline or a ``max()`` over a window shows the worst state."""
MAX_TEXT = 256
"""String fields are cut here: a reason is for a person reading a table cell."""
DEFAULT_TIMEOUT_S = 3.0
"""HTTP timeout of the sink's own writer: bounds how long a dead store delays a cycle."""


class HistorySink(Protocol):
    """Where the engine copies the transitions it appends to the state store's history."""

    def write(self, entries: Sequence[HistoryEntry]) -> None: ...


def _text(value: object) -> str:
    # Line protocol 1.x cannot carry a raw line break even inside a quoted string.
    return str(value).replace("\r", " ").replace("\n", " ")[:MAX_TEXT]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def history_point(entry: HistoryEntry) -> Point:
    """The ``meshalert_alert`` point of one transition (pure; see the README's schema).

    Tags: ``class``, ``namespace`` and ``service`` (the service key split on its first
    ``/``, as the ``linkerd_*`` series tag them), ``from_state``, ``to_state``. Fields:
    ``state_code`` always; ``value``, ``threshold`` and ``threshold_source`` when the
    evidence has them; ``suppressed`` (why no notification went out) when it was held.
    """
    try:
        ref = ServiceRef.parse(entry.service)
    except ValueError:  # "ns/" or "": keep the whole key rather than lose the transition
        ref = ServiceRef("", entry.service or "-")
    evidence = entry.evidence
    fields: dict[str, FieldValue] = {"state_code": STATE_CODES[entry.to_state]}
    if (observed := _finite(evidence.get("observed"))) is not None:
        fields["value"] = observed
    threshold = evidence.get("threshold")
    if isinstance(threshold, Mapping):
        if (limit := _finite(threshold.get("value"))) is not None:
            fields["threshold"] = limit
        if threshold.get("source"):
            fields["threshold_source"] = _text(threshold["source"])
    if evidence.get("suppressed"):
        fields["suppressed"] = _text(evidence["suppressed"])
    return Point.make(
        MEASUREMENT,
        {
            "class": entry.alert_class.value,
            "namespace": ref.namespace,
            "service": ref.service,
            "from_state": entry.from_state.value,
            "to_state": entry.to_state.value,
        },
        fields,
        entry.at_ms,
    )


def history_lines(entries: Sequence[HistoryEntry]) -> list[str]:
    return [encode(history_point(e)) for e in entries]


@dataclass
class StoreHistorySink:
    """Writes transitions through one of the store writers (``open_writer``)."""

    writer: LineWriter

    def write(self, entries: Sequence[HistoryEntry]) -> None:
        if entries:
            self.writer.write(history_lines(entries))

    def close(self) -> None:
        self.writer.close()
