"""Ports between the pure core and the stores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class StoreWriteError(Exception):
    """A batch the store did not accept.

    ``retryable`` is False when sending the same batch again cannot succeed (for example a
    400 for malformed line protocol); the message then names the offending line when the
    store says which.

    ``rejected`` holds the indices (into the lines given to ``write``) of the lines the
    store named as refused, when it named any: the other lines may then be sent again (the
    store kept them, or refused the batch because of the named lines only). Empty when the
    store did not say which.
    """

    def __init__(self, message: str, *, retryable: bool, rejected: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.rejected = rejected


class LineWriter(Protocol):
    """Writes line-protocol lines (ms precision) to a store; all or nothing per call."""

    def write(self, lines: Sequence[str]) -> None: ...

    def close(self) -> None: ...
