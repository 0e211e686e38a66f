"""Writes line protocol to InfluxDB 1.x's ``/write`` (also InfluxDB 3 and 2's v1 API).

influxdb-client needs InfluxDB 1.8+ for its compatibility endpoints, so this is a small
stdlib HTTP adapter instead. It never retries by itself except once on a kept-alive
connection the server had already closed; the caller (the sidecar's spool) owns retries.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import threading
from collections.abc import Sequence
from urllib.parse import urlencode, urlsplit

from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.stores.partial_write import rejected_indices
from meshalert.stores.protocols import LineWriter, StoreWriteError

_GZIP_LEVEL = 1  # line protocol compresses well even at the cheapest level
_MAX_ERROR_TEXT = 1000
_RETRYABLE_STATUSES = frozenset({408, 429})


class InfluxDB1Writer(LineWriter):
    """POSTs each batch, gzipped, to ``{base}/write?db=..&rp=..&precision=ms``."""

    def __init__(self, config: InfluxDB1Store, timeout_s: float = 10) -> None:
        parts = urlsplit(config.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"InfluxDB 1.x base URL must be http(s)://host:port: {config.base_url!r}"
            )
        self._config = config
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._timeout_s = timeout_s
        query = {"db": config.database, "precision": "ms"}
        if config.retention_policy:
            query["rp"] = config.retention_policy
        self._write_path = "/write?" + urlencode(query)
        self._auth = _basic_auth(config.username, config.password)
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InfluxDB1Writer({self._config!r})"

    def write(self, lines: Sequence[str]) -> None:
        payload = "\n".join(lines).encode("utf-8")
        if not payload.strip():
            return
        body = gzip.compress(payload, compresslevel=_GZIP_LEVEL)
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Encoding": "gzip",
            **self._auth,
        }
        status, text, _ = self._request("POST", self._write_path, body, headers)
        if 200 <= status < 300:
            return
        raise self._error_for(status, text, lines)

    def ping(self) -> str:
        """The server's version (``X-Influxdb-Version``); raises StoreWriteError if unreachable."""
        status, _, version = self._request("GET", "/ping", None, dict(self._auth))
        if status != 204:
            raise self._error_for(status, "")
        return version or "unknown"

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str, str | None]:
        with self._lock:
            reused = self._conn is not None
            try:
                return self._send(method, path, body, headers)
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as err:
                self._drop_connection()
                if not reused:
                    raise self._transport_error(err) from err
            except (OSError, http.client.HTTPException) as err:
                self._drop_connection()
                raise self._transport_error(err) from err
            # The kept-alive socket had gone stale; one fresh attempt is not a retry policy.
            try:
                return self._send(method, path, body, headers)
            except (OSError, http.client.HTTPException) as err:
                self._drop_connection()
                raise self._transport_error(err) from err

    def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str, str | None]:
        conn = self._connection()
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", errors="replace")
        if resp.will_close:
            self._drop_connection()
        return resp.status, text, resp.getheader("X-Influxdb-Version")

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._tls else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout_s)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _where(self) -> str:
        return f"InfluxDB at {self._config.base_url} database {self._config.database!r}"

    def _transport_error(self, err: BaseException) -> StoreWriteError:
        kind = "timed out" if isinstance(err, TimeoutError) else "unreachable"
        return StoreWriteError(
            f"{self._where()} {kind}: {type(err).__name__}: {err}", retryable=True
        )

    def _error_for(self, status: int, text: str, lines: Sequence[str] = ()) -> StoreWriteError:
        detail = _influx_error_text(text)
        where = self._where()
        if status == 400:
            return StoreWriteError(
                f"{where} rejected the batch (400): {detail}",
                retryable=False,
                rejected=rejected_indices(lines, text),
            )
        if status in (401, 403):
            user = self._config.username or "(none)"
            return StoreWriteError(
                f"{where} refused the credentials of user {user!r} ({status}): {detail}",
                retryable=False,
            )
        if status == 404:
            return StoreWriteError(
                f"{where}: database not found (404): {detail}; create it with "
                f'CREATE DATABASE "{self._config.database}"',
                retryable=True,
            )
        if status == 413:
            return StoreWriteError(
                f"{where}: batch too large (413), send smaller batches: {detail}", retryable=False
            )
        return StoreWriteError(
            f"{where} answered {status}: {detail}", retryable=retryable_status(status)
        )


def retryable_status(status: int) -> bool:
    """Whether sending the same batch again may succeed (timeouts, throttling, server faults).

    404 is handled by each writer: a missing database or bucket can be created meanwhile.
    """
    return status in _RETRYABLE_STATUSES or status >= 500


def shorten_error_text(text: str) -> str:
    message = text.strip()
    if len(message) > _MAX_ERROR_TEXT:
        message = message[:_MAX_ERROR_TEXT] + "..."
    return message or "(no error text)"


def _basic_auth(username: str | None, password: str | None) -> dict[str, str]:
    if not username and not password:
        return {}
    token = base64.b64encode(f"{username or ''}:{password or ''}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def _influx_error_text(text: str) -> str:
    """InfluxDB answers ``{"error": "..."}``; anything else is shown as sent, shortened."""
    message = text.strip()
    try:
        parsed = json.loads(message)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        message = parsed["error"]
    return shorten_error_text(message)
