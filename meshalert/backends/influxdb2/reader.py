"""Window queries against InfluxDB 2.x (and Cloud) in Flux, through influxdb-client.

One ``POST /api/v2/query?org=..`` per class query carries the whole Flux script from
:func:`meshalert.queries.flux.render_flux`; the annotated-CSV answer is parsed by
influxdb-client as it streams. Each record's ``result`` column is the name of the select
that produced it (the script yields once per select); group tags missing from a record
(a series without that tag) read as ``""``, as the query model expects.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.flux_csv_parser import FluxCsvParserException, FluxQueryException
from influxdb_client.rest import ApiException

from meshalert.backends.influxdb2.client import is_timeout, open_client
from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.queries.baseline import BucketQuery, BucketResult, BucketRow, assemble_buckets
from meshalert.queries.baseline_text import render_bucket_flux
from meshalert.queries.flux import FluxParams, render_flux
from meshalert.queries.model import (
    Aggregate,
    ClassAggregates,
    ClassQuery,
    SelectRow,
    WindowQueryError,
    assemble,
)

_ERROR_TEXT_LIMIT = 500


class InfluxDB2WindowReader:
    """A :class:`meshalert.queries.model.WindowReader` for an ``influxdb2://`` store."""

    def __init__(self, config: InfluxDB2Store, *, timeout_s: float = 30.0) -> None:
        self._client = open_client(config, timeout_s=timeout_s)
        self._config = config
        self._query_api = self._client.query_api()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # the token stays out of logs
        return f"InfluxDB2WindowReader({self._config!r})"

    def fetch(self, query: ClassQuery) -> ClassAggregates:
        text, params = render_flux(query, bucket=self._config.bucket)
        with self._translated_errors(), self._lock:
            rows = list(rows_from_records(query, self._records(text, params)))
        return assemble(query, rows, query_text=text, queries_issued=1)

    def fetch_buckets(self, query: BucketQuery) -> BucketResult:
        """The retries baseline's bucketed sums: one Flux script, one yield per select."""
        text = render_bucket_flux(query, bucket=self._config.bucket)
        with self._translated_errors(), self._lock:
            rows = list(bucket_rows_from_records(query, self._records(text, {})))
        return assemble_buckets(query, rows, query_text=text)

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        """Every client failure as a :class:`WindowQueryError` naming the store."""
        try:
            yield
        except ApiException as err:
            raise WindowQueryError(
                f"{self._where()} answered {err.status}: {_api_message(err)}"
            ) from None
        except FluxQueryException as err:
            raise WindowQueryError(f"{self._where()} failed the query: {err.message}") from None
        except FluxCsvParserException as err:
            raise WindowQueryError(f"{self._where()} sent unreadable CSV: {err}") from None
        except InfluxDBError as err:
            raise WindowQueryError(f"{self._where()} failed: {err.message}") from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            kind = "timed out" if is_timeout(err) else "unreachable"
            raise WindowQueryError(f"{self._where()} {kind}: {type(err).__name__}: {err}") from None

    def _records(self, text: str, params: FluxParams) -> Iterator[Any]:
        if params:  # only servers that support parameterized queries (InfluxDB Cloud)
            return self._query_api.query_stream(text, org=self._config.org, params=dict(params))
        return self._query_api.query_stream(text, org=self._config.org)

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> InfluxDB2WindowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _where(self) -> str:
        return f"InfluxDB 2 query at {self._config.base_url} (org {self._config.org!r})"


def rows_from_records(query: ClassQuery, records: Iterable[Any]) -> Iterator[SelectRow]:
    """Turn influxdb-client ``FluxRecord`` values into the model's rows (pure)."""
    selects = {sel.name: sel for sel in query.selects}
    for record in records:
        values: dict[str, Any] = record.values
        result = values.get("result")
        sel = selects.get(str(result))
        if sel is None:
            raise WindowQueryError(
                f"Flux result {result!r} names no select of the {query.alert_class.value} "
                f"query (expected one of {sorted(selects)})"
            )
        tags = {tag: _tag_text(values.get(tag)) for tag in sel.group_by}
        if sel.aggregate is Aggregate.NEWEST:  # the row's time is the answer
            moment = values.get("_time")
            if not isinstance(moment, datetime):
                raise WindowQueryError(f"select {sel.name!r} returned a row without _time")
            yield SelectRow(sel.name, tags, float((moment - _EPOCH) // _ONE_MS))
            continue
        value = values.get("_value")
        if value is None:
            continue  # an aggregate of nothing
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WindowQueryError(
                f"select {sel.name!r} ({sel.measurement}.{sel.field}) returned a "
                f"non-numeric value {value!r}"
            )
        yield SelectRow(sel.name, tags, float(value))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def bucket_rows_from_records(query: BucketQuery, records: Iterable[Any]) -> Iterator[BucketRow]:
    """``FluxRecord`` values of the baseline script -> bucket rows (``_time`` = bucket start)."""
    names = {sel.name for sel in query.selects}
    for record in records:
        values: dict[str, Any] = record.values
        result = str(values.get("result"))
        if result not in names:
            raise WindowQueryError(
                f"Flux result {result!r} names no select of the baseline query "
                f"(expected one of {sorted(names)})"
            )
        value, moment = values.get("_value"), values.get("_time")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WindowQueryError(f"select {result!r} returned a non-numeric value {value!r}")
        if not isinstance(moment, datetime):
            raise WindowQueryError(f"select {result!r} returned a row without _time")
        yield BucketRow(
            result,
            _tag_text(values.get("namespace")),
            _tag_text(values.get("service")),
            (moment - _EPOCH) // _ONE_MS,
            float(value),
            _tag_text(values.get("router")),
        )


def _tag_text(value: object) -> str:
    return "" if value is None else str(value)


def _api_message(err: ApiException) -> str:
    """The server's ``message`` when it sent one, else the raw body, shortened."""
    body = err.body.decode("utf-8", "replace") if isinstance(err.body, bytes) else err.body
    text = str(body or err.reason or "")
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict) and parsed.get("message"):
            text = str(parsed["message"])
    except ValueError:
        pass
    return text[:_ERROR_TEXT_LIMIT]
