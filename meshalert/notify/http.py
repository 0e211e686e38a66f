"""One HTTP POST with a timeout, turned into an :class:`AttemptOutcome` (never raises).

http.client rather than urllib: urllib puts the full URL into some exceptions, and the
webhook URL is a secret.
"""

from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import replace
from urllib.parse import urlsplit

from pydantic import SecretStr

from meshalert.notify.base import REDACTED
from meshalert.notify.retry import AttemptOutcome, parse_retry_after

_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def post_json(url: SecretStr, body: bytes, timeout_s: float) -> AttemptOutcome:
    parts = urlsplit(url.get_secret_value())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return AttemptOutcome(ok=False, error="webhook URL is not an http(s) URL")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    conn = _connection(parts.scheme, parts.hostname, parts.port, timeout_s)
    try:
        conn.request(
            "POST",
            target,
            body=body,
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "meshalert"},
        )
        response = conn.getresponse()
        answer = response.read(2048)
        retry_after = parse_retry_after(response.getheader("Retry-After"), time.time())
        outcome = _outcome(response.status, answer, retry_after)
        return replace(outcome, error=_redact(outcome.error, url)) if outcome.error else outcome
    except (OSError, http.client.HTTPException) as exc:
        # Timeouts, refused connections, resets: the far side may be fine a moment later.
        return AttemptOutcome(ok=False, retryable=True, error=_redact(_describe(exc), url))
    finally:
        conn.close()


def _connection(
    scheme: str, host: str, port: int | None, timeout_s: float
) -> http.client.HTTPConnection:
    if scheme == "https":
        context = ssl.create_default_context()
        return http.client.HTTPSConnection(host, port, timeout=timeout_s, context=context)
    return http.client.HTTPConnection(host, port, timeout=timeout_s)


def _outcome(status: int, answer: bytes, retry_after: float | None) -> AttemptOutcome:
    if 200 <= status < 300:
        return AttemptOutcome(ok=True, status=status)
    snippet = answer.decode("utf-8", "replace").strip()[:200]
    return AttemptOutcome(
        ok=False,
        retryable=status in _RETRYABLE_STATUS,
        status=status,
        error=f"HTTP {status}" + (f": {snippet}" if snippet else ""),
        retry_after_s=retry_after if status in (429, 503) else None,
    )


def _describe(exc: BaseException) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _redact(text: str, url: SecretStr) -> str:
    """Remove the URL and the parts a server may echo back alone (path, query)."""
    parts = urlsplit(url.get_secret_value())
    fragments = [
        url.get_secret_value(),
        parts.query,
        parts.path + ("?" + parts.query if parts.query else ""),
    ]
    if len(parts.path) > 1:
        fragments.append(parts.path)
    for fragment in sorted(filter(None, fragments), key=len, reverse=True):
        text = text.replace(fragment, REDACTED)
    return text
