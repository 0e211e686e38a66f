"""Pull mode, I/O part: fetch Linkerd's metrics tree once per flush and convert it.

:class:`AdminPullSource` is what the flusher calls at each interval boundary; it asks a
:class:`MetricsFetcher` (HTTP here, anything in tests of the pure parts) for the tree and
hands it to :class:`~ingest_sidecar.admin_metrics.AdminConverter`. A failed poll writes no
counter points for that interval and loses nothing: counters are cumulative, so the next
successful poll's deltas carry the gap.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import structlog
import urllib3

from ingest_sidecar.admin_metrics import AdminConverter, AdminMetricsError, parse_tree
from meshalert.lineprotocol import FieldValue, Point

log = structlog.get_logger(__name__)

METRICS_PATH = "/admin/metrics.json"
HEALTH_MEASUREMENT = "meshalert_sidecar_pull"
MAX_BODY_BYTES = 64 * 1024 * 1024


class FetchError(Exception):
    """The admin endpoint could not be read; the message names the URL and the reason."""


class MetricsFetcher(Protocol):
    def fetch(self) -> object:
        """The decoded JSON of ``/admin/metrics.json?tree=1``; :class:`FetchError` if not."""
        ...


def metrics_url(admin_url: str) -> str:
    """``http://127.0.0.1:9990`` (or any path under it) -> the tree endpoint's URL."""
    parts = urlsplit(admin_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected http://HOST:PORT of Linkerd's admin server, got {admin_url!r}")
    return urlunsplit((parts.scheme, parts.netloc, METRICS_PATH, "tree=1", ""))


class HttpMetricsFetcher:
    """GET the tree over HTTP with urllib3 (pooled keep-alive, bounded timeouts)."""

    def __init__(self, admin_url: str, *, timeout_s: float = 5.0) -> None:
        self.url = metrics_url(admin_url)
        self._pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout_s, 2.0), read=timeout_s),
            retries=False,
        )

    def fetch(self) -> object:
        try:
            response = self._pool.request("GET", self.url, preload_content=False)
        except urllib3.exceptions.HTTPError as err:
            raise FetchError(f"{self.url}: {err}") from None
        complete = False
        try:
            if response.status != 200:
                raise FetchError(f"{self.url}: HTTP {response.status}")
            body = response.read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                raise FetchError(f"{self.url}: answer larger than {MAX_BODY_BYTES} bytes")
            complete = True
        except urllib3.exceptions.HTTPError as err:
            raise FetchError(f"{self.url}: {err}") from None
        finally:
            if not complete:
                # Unread bytes would be taken for the next answer on a kept-alive connection.
                response.close()
            response.release_conn()
        try:
            return json.loads(body)
        except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
            raise FetchError(f"{self.url}: not JSON ({err})") from None

    def close(self) -> None:
        self._pool.clear()


@dataclass(frozen=True)
class PullCounts:
    polls: int = 0
    poll_failures: int = 0
    counter_resets: int = 0
    restarts: int = 0
    bad_leaves: int = 0
    rejected_series: int = 0


class AdminPullSource:
    """One poll per flush: fetch, convert, count. Thread-safe for the flusher's one thread
    plus readers of :meth:`counts`."""

    def __init__(self, fetcher: MetricsFetcher, converter: AdminConverter) -> None:
        self._fetcher = fetcher
        self._converter = converter
        self._lock = threading.Lock()
        self._counts = PullCounts()

    def counts(self) -> PullCounts:
        with self._lock:
            return self._counts

    def collect(self, interval_start_ms: int, host: str) -> list[Point]:
        """Points for the interval that just ended, plus one ``meshalert_sidecar_pull``
        health point (so a poll that keeps failing is visible in the store)."""
        c = self.counts()
        points: list[Point] = []
        try:
            snapshot = parse_tree(self._fetcher.fetch())
        except (FetchError, AdminMetricsError) as err:
            c = PullCounts(
                c.polls + 1,
                c.poll_failures + 1,
                c.counter_resets,
                c.restarts,
                c.bad_leaves,
                c.rejected_series,
            )
            log.warning("admin_poll_failed", error=str(err))
            ok = False
        else:
            result = self._converter.convert(snapshot, interval_start_ms, host)
            points = result.points
            c = PullCounts(
                c.polls + 1,
                c.poll_failures,
                c.counter_resets + result.resets,
                c.restarts + int(result.restarted),
                c.bad_leaves + result.bad_leaves,
                c.rejected_series + result.rejected_series,
            )
            if result.resets or result.restarted:
                log.info("linkerd_counters_reset", resets=result.resets, restart=result.restarted)
            ok = True
        with self._lock:
            self._counts = c
        fields: dict[str, FieldValue] = {
            "ok": int(ok),
            "points": len(points),
            "polls": c.polls,
            "poll_failures": c.poll_failures,
            "counter_resets": c.counter_resets,
            "restarts": c.restarts,
            "bad_leaves": c.bad_leaves,
            "rejected_series": c.rejected_series,
        }
        tags = (("host", host),) if host else ()
        points.append(Point(HEALTH_MEASUREMENT, tags, tuple(fields.items()), interval_start_ms))
        return points
