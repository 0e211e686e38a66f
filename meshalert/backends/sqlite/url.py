"""``sqlite:///path``: the embedded store and the embedded state store."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote

from meshalert.backends.url_parts import StoreUrlError


@dataclass(frozen=True)
class SqliteStore:
    path: str

    def identity(self) -> str:
        """What names this store without secrets (the sidecar's spool directory)."""
        return f"sqlite:{os.path.abspath(self.path)}"


@dataclass(frozen=True)
class SqliteState:
    path: str


def parse_path(parts: SplitResult) -> str:
    path = unquote(parts.path)
    if parts.netloc not in ("",):
        raise StoreUrlError(f"sqlite URL must be sqlite:///path, got host {parts.netloc!r}")
    # sqlite:///./rel.db is relative; sqlite:///abs.db and sqlite:////abs.db are absolute
    path = path[1:] if path.startswith(("/./", "/../")) else "/" + path.lstrip("/")
    if not path or path == "/":
        raise StoreUrlError("sqlite URL has no database path (write sqlite:///./meshalert.db)")
    return path
