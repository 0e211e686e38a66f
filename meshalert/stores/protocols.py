"""Ports between the pure core and the stores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class StoreWriteError(Exception):
    """A batch the store did not accept.

    ``retryable`` is False when sending the same batch again cannot succeed (for example a
    400 for malformed line protocol); the message then names the offending line when the
    store says which.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class LineWriter(Protocol):
    """Writes line-protocol lines (ms precision) to a store; all or nothing per call."""

    def write(self, lines: Sequence[str]) -> None: ...

    def close(self) -> None: ...
