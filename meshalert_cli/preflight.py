"""Start-up checks of ``meshalert run``: can it reach its store and its channels?

Run once before the first cycle, so an operator reads one plain sentence per problem (and
what happens meanwhile) instead of the same error every cycle. Nothing here sends a
notification or writes data: the store gets one small read, a webhook a TCP connection,
SNS a look for a region and credentials.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from meshalert.alert_classes import AlertClass
from meshalert.queries.model import WindowQueryError, WindowReader, class_query
from meshalert.settings import Settings
from meshalert.wiring import is_embedded

CONNECT_TIMEOUT_S = 3.0


def store_problem(settings: Settings, reader: WindowReader) -> str | None:
    """None when the store answers a one-minute window query, else why not."""
    if is_embedded(settings.store):
        return None  # embedded: the sidecar has just opened (or created) it
    end_ms = int(time.time() * 1000)
    try:
        reader.fetch(class_query(AlertClass.ENDPOINTS, window_ms=60_000, end_ms=end_ms))
    except WindowQueryError as err:
        return " ".join(str(err).split())
    return None


def tcp_problem(url: str, connect: Callable[..., socket.socket] | None = None) -> str | None:
    """None when a TCP connection to the URL's host and port opens, else why not."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    opener = connect or socket.create_connection
    try:
        opener((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        return f"{host}:{port} {err.strerror or err}"
    return None


def sns_problem() -> str | None:
    import boto3

    if boto3.session.Session().get_credentials() is None:
        return (
            "no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run where an IAM role provides them)"
        )
    return None


def problems(settings: Settings, reader: WindowReader, channels: tuple[str, ...]) -> list[str]:
    """One sentence per unreachable part, saying what meshalert does meanwhile."""
    found = []
    trouble = store_problem(settings, reader)
    if trouble:
        found.append(
            f"cannot reach the store {settings.store_display}: {trouble}. The sidecar keeps "
            "what it receives in its spool and writes it once the store answers; evaluation "
            "tries again every cycle."
        )
    urls = {"slack": settings.slack_webhook_url, "webhook": settings.webhook_url}
    for name in channels:
        secret = urls.get(name)
        trouble = tcp_problem(secret.get_secret_value()) if secret is not None else None
        if name == "sns":
            trouble = sns_problem()
        if trouble:
            found.append(
                f"cannot reach the {name} channel: {trouble}. Its notifications will fail "
                "(and be counted) until it can; the other channels still get them."
            )
    return found
