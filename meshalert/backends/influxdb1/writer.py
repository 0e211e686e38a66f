"""Writes line protocol to InfluxDB 1.x's ``/write`` (also InfluxDB 3 and 2's v1 API).

Through the backend's one HTTP client (:mod:`.http`); the caller (the sidecar's spool) owns
retries.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from urllib.parse import urlencode

from meshalert.backends.influxdb1.http import Answer, InfluxDB1Http, TransportError
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.stores.partial_write import rejected_indices, retryable_status, shorten_error_text
from meshalert.stores.protocols import LineWriter, StoreWriteError

_GZIP_LEVEL = 1  # line protocol compresses well even at the cheapest level


class InfluxDB1Writer(LineWriter):
    """POSTs each batch, gzipped, to ``{base}/write?db=..&rp=..&precision=ms``."""

    def __init__(self, config: InfluxDB1Store, timeout_s: float = 10) -> None:
        self._http = InfluxDB1Http(config, timeout_s=timeout_s)
        self._config = config
        query = {"db": config.database, "precision": "ms"}
        if config.retention_policy:
            query["rp"] = config.retention_policy
        self._write_path = "/write?" + urlencode(query)

    def __repr__(self) -> str:
        return f"InfluxDB1Writer({self._config!r})"

    def write(self, lines: Sequence[str]) -> None:
        payload = "\n".join(lines).encode("utf-8")
        if not payload.strip():
            return
        body = gzip.compress(payload, compresslevel=_GZIP_LEVEL)
        headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"}
        answer = self._request("POST", self._write_path, body, headers)
        if 200 <= answer.status < 300:
            return
        raise self._error_for(answer.status, answer.text, lines)

    def ping(self) -> str:
        """The server's version (``X-Influxdb-Version``); raises StoreWriteError if unreachable."""
        answer = self._request("GET", "/ping", None, {})
        if answer.status != 204:
            raise self._error_for(answer.status, "")
        return answer.version or "unknown"

    def close(self) -> None:
        self._http.close()

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> Answer:
        try:
            return self._http.request(method, path, body=body, headers=headers)
        except TransportError as err:
            kind = "timed out" if err.timed_out else "unreachable"
            raise StoreWriteError(f"{self._where()} {kind}: {err}", retryable=True) from err

    def _where(self) -> str:
        return f"InfluxDB at {self._config.base_url} database {self._config.database!r}"

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
