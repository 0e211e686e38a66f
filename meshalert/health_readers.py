"""Freshness queries against each store kind: newest point time per host.

The window readers only run class queries, so the heartbeat has its own thin adapters: the
SQLite file, InfluxDB 1.x ``/query`` (InfluxQL) and InfluxDB 2 ``/api/v2/query`` (Flux,
plain CSV) over the standard library's HTTP client, which keeps ``influxdb_client`` off the
heartbeat's import path.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.backends.sqlite.url import SqliteStore
from meshalert.backends.urls import StoreConfig
from meshalert.health import (
    UNKNOWN_HOST,
    FreshnessQuery,
    freshness_flux,
    freshness_influxql,
    freshness_sql,
    freshness_sql_inline,
)
from meshalert.queries.model import WindowQueryError

_ERROR_TEXT_LIMIT = 500


@dataclass(frozen=True)
class Freshness:
    newest_by_host: dict[str, int]
    query_text: str


class FreshnessReader(Protocol):
    def newest_by_host(self, query: FreshnessQuery) -> Freshness: ...


def open_freshness_reader(store: StoreConfig, *, timeout_s: float = 10.0) -> FreshnessReader:
    if isinstance(store, SqliteStore):
        from meshalert.backends.sqlite.writer import open_database

        return SqliteFreshnessReader(open_database(store.path))
    if isinstance(store, InfluxDB1Store):
        return InfluxDB1FreshnessReader(store, timeout_s=timeout_s)
    if isinstance(store, InfluxDB2Store):
        return InfluxDB2FreshnessReader(store, timeout_s=timeout_s)
    raise TypeError(f"no freshness reader for {store!r}")


class SqliteFreshnessReader:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection

    def newest_by_host(self, query: FreshnessQuery) -> Freshness:
        text, params = freshness_sql(query)
        try:
            rows = self._conn.execute(text, params).fetchall()
        except sqlite3.Error as exc:
            raise WindowQueryError(f"sqlite freshness query failed: {exc}") from None
        newest = {(host or UNKNOWN_HOST): int(ts) for host, ts in rows if ts is not None}
        return Freshness(newest, freshness_sql_inline(query))


class InfluxDB1FreshnessReader:
    def __init__(self, config: InfluxDB1Store, *, timeout_s: float) -> None:
        self._config = config
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"InfluxDB1FreshnessReader({self._config!r})"

    def newest_by_host(self, query: FreshnessQuery) -> Freshness:
        text = freshness_influxql(query, retention_policy=self._config.retention_policy)
        form = {"q": text, "db": self._config.database, "epoch": "ms"}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self._config.username is not None:
            pair = f"{self._config.username}:{self._config.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        body = _post(
            self._config.base_url + "/query",
            urllib.parse.urlencode(form).encode(),
            headers,
            self._timeout_s,
        )
        return Freshness(influxql_newest(body), text)


def influxql_newest(body: str) -> dict[str, int]:
    """Newest ``time`` per ``host`` tag across every statement of an ``epoch=ms`` answer."""
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise WindowQueryError(f"unreadable /query response: {exc}") from None
    if "error" in doc:
        raise WindowQueryError(f"influxql error: {doc['error']}")
    newest: dict[str, int] = {}
    for result in doc.get("results", []):
        if "error" in result:
            raise WindowQueryError(f"influxql error: {result['error']}")
        for series in result.get("series", []):
            host = str((series.get("tags") or {}).get("host") or UNKNOWN_HOST)
            column = series["columns"].index("time")
            for values in series.get("values", []):
                newest[host] = max(newest.get(host, 0), int(values[column]))
    return newest


class InfluxDB2FreshnessReader:
    def __init__(self, config: InfluxDB2Store, *, timeout_s: float) -> None:
        if not config.token:
            raise ValueError(
                "InfluxDB 2 needs a token: set MESHALERT_INFLUXDB_TOKEN "
                f"(store {config.base_url}, org {config.org!r})"
            )
        self._config = config
        self._timeout_s = timeout_s

    def __repr__(self) -> str:  # the token stays out of logs
        return f"InfluxDB2FreshnessReader({self._config!r})"

    def newest_by_host(self, query: FreshnessQuery) -> Freshness:
        text = freshness_flux(query, bucket=self._config.bucket)
        payload = {
            "query": text,
            "type": "flux",
            "dialect": {"header": True, "annotations": [], "delimiter": ","},
        }
        url = f"{self._config.base_url}/api/v2/query?" + urllib.parse.urlencode(
            {"org": self._config.org}
        )
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/csv",
            "Authorization": f"Token {self._config.token}",
        }
        body = _post(url, json.dumps(payload).encode(), headers, self._timeout_s)
        return Freshness(flux_csv_newest(body), text)


def flux_csv_newest(body: str) -> dict[str, int]:
    """Newest ``_time`` per ``host`` from Flux's plain CSV (tables separated by blank lines,
    each with its own header row)."""
    newest: dict[str, int] = {}
    for row in _csv_tables(body):
        if "error" in row and row.get("error"):
            raise WindowQueryError(f"flux error: {row['error']}")
        raw = row.get("_time")
        if not raw:
            continue
        host = row.get("host") or UNKNOWN_HOST
        newest[host] = max(newest.get(host, 0), rfc3339_ms(raw))
    return newest


def _csv_tables(body: str) -> Iterator[Mapping[str, str]]:
    for block in body.replace("\r\n", "\n").split("\n\n"):
        if block.strip():
            yield from csv.DictReader(io.StringIO(block))


def rfc3339_ms(text: str) -> int:
    """Epoch ms of an RFC 3339 time with up to nanosecond digits."""
    raw = text.strip().replace("Z", "+00:00")
    main, dot, rest = raw.partition(".")
    if dot:
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits) :]
        raw = f"{main}.{(digits + '000000')[:6]}{zone}"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise WindowQueryError(f"unreadable time {text!r} in a Flux answer") from None
    return epoch_ms(moment)


def _post(url: str, data: bytes, headers: Mapping[str, str], timeout_s: float) -> str:
    request = urllib.request.Request(url, data=data, headers=dict(headers), method="POST")
    where = url.split("?", 1)[0]
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return str(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:_ERROR_TEXT_LIMIT]
        raise WindowQueryError(f"{where} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise WindowQueryError(f"{where} failed: {exc}") from None


def epoch_ms(moment: datetime) -> int:
    """Exact epoch milliseconds (float seconds would round 8.149 s down to 8148 ms)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
