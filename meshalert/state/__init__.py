"""Durable alert state: records, transition history and exactly-once notification claims."""

from meshalert.state.factory import StateUrlError, open_state_store
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
    "StateUrlError",
    "UnknownClaimError",
    "open_state_store",
]
