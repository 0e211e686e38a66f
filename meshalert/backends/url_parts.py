"""What every backend's URL parser shares: the error type and the HTTP base address."""

from __future__ import annotations

from urllib.parse import urlsplit


class StoreUrlError(ValueError):
    """A store or state URL that cannot be used; the message names the part that is wrong."""


def http_base(host: str | None, port: int | None, tls: bool, url: str) -> str:
    if not host:
        raise StoreUrlError(f"store URL has no host: {redact(url)}")
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port or 8086}"


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(parts.password, "***")
    return url
