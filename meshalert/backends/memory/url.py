"""``memory://``: alert state held in this process only (backtests, tests, dry runs)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult

from meshalert.backends.url_parts import StoreUrlError


@dataclass(frozen=True)
class MemoryState:
    pass


def parse(parts: SplitResult, url: str) -> MemoryState:
    if parts.netloc or parts.path not in ("", "/") or parts.query:
        raise StoreUrlError(f"write memory:// with nothing after it, not {url.strip()!r}")
    return MemoryState()
