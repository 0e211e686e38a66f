"""The one way this backend talks to InfluxDB 2: an influxdb-client built after the token check.

Both the reader and the writer take their client from :func:`open_client`, so the token
check, the timeout and the no-retry policy are written once. ``retries=False``: in
SYNCHRONOUS mode the library's only retry mechanism is urllib3's; a failed write goes back
to the sidecar's spool at once and a failed query waits for the next cycle, and a hung
store must not stretch one call into several.
"""

from __future__ import annotations

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient

from meshalert.backends.influxdb2.url import InfluxDB2Store


def check_token(config: InfluxDB2Store) -> str:
    """The token, or a clear error naming the setting and the store."""
    if not config.token:
        raise ValueError(
            "InfluxDB 2 needs a token: set MESHALERT_INFLUXDB_TOKEN "
            f"(store {config.base_url}, org {config.org!r}, bucket {config.bucket!r})"
        )
    return config.token


def open_client(config: InfluxDB2Store, *, timeout_s: float, gzip: bool = False) -> InfluxDBClient:
    return InfluxDBClient(
        url=config.base_url,
        token=check_token(config),
        org=config.org,
        enable_gzip=gzip,
        timeout=max(1, int(timeout_s * 1000)),
        retries=False,
    )


def is_timeout(err: BaseException) -> bool:
    """Whether a transport failure was a timeout (not a refusal): the message says which."""
    # urllib3 derives NewConnectionError (refused, no route) from ConnectTimeoutError.
    reason = getattr(err, "reason", None)
    return any(
        isinstance(e, urllib3.exceptions.TimeoutError | TimeoutError)
        and not isinstance(e, urllib3.exceptions.NewConnectionError)
        for e in (err, reason)
    )
