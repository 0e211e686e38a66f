"""Writes line protocol to InfluxDB 2.x (and Cloud) through influxdb-client's ``/api/v2/write``.

Lines are handed over as pre-built strings: ``influxdb_client.Point`` costs about 7 us a
point. The client comes from :func:`.client.open_client` (one attempt per call: the
sidecar's spool owns retries and must see failures at once).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import cast

import urllib3
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision

from meshalert.backends.influxdb2.client import is_timeout, open_client
from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.stores.partial_write import rejected_indices, retryable_status, shorten_error_text
from meshalert.stores.protocols import LineWriter, StoreWriteError

# The library declares the constant as ``str`` while its signature asks for WritePrecision.
_PRECISION_MS = cast(WritePrecision, WritePrecision.MS)


class InfluxDB2Writer(LineWriter):
    """One ``POST /api/v2/write?org=..&bucket=..&precision=ms`` per batch, gzipped."""

    def __init__(self, config: InfluxDB2Store, timeout_s: float = 10) -> None:
        self._client = open_client(config, timeout_s=timeout_s, gzip=True)
        self._config = config
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InfluxDB2Writer({self._config!r})"

    def write(self, lines: Sequence[str]) -> None:
        kept = [i for i, line in enumerate(lines) if line.strip()]
        records = [lines[i] for i in kept]
        if not records:
            return
        try:
            with self._lock:
                self._write_api.write(
                    bucket=self._config.bucket,
                    org=self._config.org,
                    record=records,
                    write_precision=_PRECISION_MS,
                )
        except InfluxDBError as err:
            error = self._api_error(err)
            if not error.retryable:
                named = rejected_indices(records, _body_text(err) or (err.message or ""))
                error.rejected = tuple(kept[i] for i in named)
            raise error from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            kind = "timed out" if is_timeout(err) else "unreachable"
            raise StoreWriteError(
                f"{self._where()} {kind}: {type(err).__name__}: {err}",
                retryable=True,
            ) from err

    def close(self) -> None:
        with self._lock:
            self._write_api.close()  # type: ignore[no-untyped-call]
            self._client.close()  # type: ignore[no-untyped-call]

    def _where(self) -> str:
        c = self._config
        return f"InfluxDB at {c.base_url} org {c.org!r} bucket {c.bucket!r}"

    def _api_error(self, err: InfluxDBError) -> StoreWriteError:
        status = _status_of(err)
        detail = shorten_error_text(err.message or _body_text(err))
        where = self._where()
        if status is None:
            return StoreWriteError(f"{where}: {detail}", retryable=True)
        if status in (400, 422):  # 422: InfluxDB 2.x's partial write
            return StoreWriteError(
                f"{where} rejected the batch ({status}): {detail}", retryable=False
            )
        if status in (401, 403):
            return StoreWriteError(
                f"{where} refused the token ({status}): {detail}; check "
                "MESHALERT_INFLUXDB_TOKEN has write access to the bucket",
                retryable=False,
            )
        if status == 404:
            return StoreWriteError(
                f"{where}: org or bucket not found (404): {detail}; create the bucket",
                retryable=True,
            )
        return StoreWriteError(
            f"{where} answered {status}: {detail}", retryable=retryable_status(status)
        )


def _status_of(err: InfluxDBError) -> int | None:
    status = getattr(err, "status", None)
    if isinstance(status, int):
        return status
    response = err.response
    code = getattr(response, "status", None)
    return code if isinstance(code, int) else None


def _body_text(err: InfluxDBError) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return str(body or "")
