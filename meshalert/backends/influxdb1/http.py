"""The InfluxDB 1.x backend's one HTTP client: base address, basic auth and transport errors.

The reader (``/query``) and the writer (``/write``, ``/ping``) share it, so credentials are
encoded in one place. It is urllib3 (already installed: influxdb-client and the sidecar's
admin poller use it) rather than the standard library: urllib3 keeps the connection alive,
checks a pooled connection is still open before reusing it, and separates connect from
read timeouts, which the hand-written ``http.client`` and ``urllib.request`` code redid.
influxdb-client itself is not used here: it needs InfluxDB 1.8+ for its compatibility
endpoints. Nothing here retries except once when a kept-alive connection turns out closed;
callers own their retry policy (the sidecar's spool, the next evaluation cycle).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

from meshalert.backends.influxdb1.url import InfluxDB1Store


@dataclass(frozen=True)
class Answer:
    status: int
    text: str
    version: str | None
    """``X-Influxdb-Version``, when the server sent it."""


class TransportError(Exception):
    """No answer: refused, unreachable, reset or timed out (``timed_out`` says which)."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class InfluxDB1Http:
    def __init__(self, config: InfluxDB1Store, *, timeout_s: float) -> None:
        parts = urlsplit(config.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"InfluxDB 1.x base URL must be http(s)://host:port: {config.base_url!r}"
            )
        self.base_url = config.base_url
        self._auth = basic_auth(config.username, config.password)
        # One kept-alive connection per client; a concurrent caller gets a second one,
        # dropped after use (block=False), rather than waiting.
        self._pool = urllib3.connection_from_url(
            config.base_url,
            maxsize=1,
            block=False,
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
            retries=False,
        )

    def request(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str]
    ) -> Answer:
        """One request (sent again once if a kept-alive connection was found closed)."""
        try:
            return self._send(method, path, body, headers)
        except urllib3.exceptions.ProtocolError:
            pass  # the server closed the kept-alive socket first; urllib3 dropped it
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise _transport_error(err) from err
        try:
            return self._send(method, path, body, headers)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise _transport_error(err) from err

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        resp = self._pool.urlopen(
            method, path, body=body, headers={**headers, **self._auth}, redirect=False
        )
        text = resp.data.decode("utf-8", errors="replace")
        return Answer(resp.status, text, resp.headers.get("X-Influxdb-Version"))

    def close(self) -> None:
        self._pool.close()


def basic_auth(username: str | None, password: str | None) -> dict[str, str]:
    """The ``Authorization`` header for these credentials (none without any)."""
    if not username and not password:
        return {}
    token = base64.b64encode(f"{username or ''}:{password or ''}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def _transport_error(err: BaseException) -> TransportError:
    # urllib3 derives NewConnectionError (refused, no route) from ConnectTimeoutError.
    timed_out = isinstance(err, urllib3.exceptions.TimeoutError | TimeoutError) and not isinstance(
        err, urllib3.exceptions.NewConnectionError
    )
    return TransportError(f"{type(err).__name__}: {err}", timed_out=timed_out)
