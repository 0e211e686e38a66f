"""Durable alert state: records, transition history and exactly-once notification claims.

The ports live here; the stores live with their backends (``meshalert/backends/*/state.py``)
and are opened by :func:`meshalert.wiring.open_state`.
"""

from meshalert.state.protocols import (
    ClaimInfo,
    Delivery,
    HistoryEntry,
    StateStore,
    UnknownClaimError,
)

__all__ = [
    "ClaimInfo",
    "Delivery",
    "HistoryEntry",
    "StateStore",
    "UnknownClaimError",
]
