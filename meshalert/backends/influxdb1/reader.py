"""Window queries against InfluxDB 1.x / 3 (and InfluxDB 2's v1 API) over HTTP ``/query``.

One POST per class query carries all of its InfluxQL statements; results come back as
``epoch=ms`` JSON, chunked so a result with many groups never hits a server row limit.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from meshalert.backends.influxdb1.http import InfluxDB1Http, TransportError
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.queries.baseline import BucketQuery, BucketResult, BucketRow, assemble_buckets
from meshalert.queries.baseline_text import render_bucket_influxql
from meshalert.queries.influxql import VALUE_COLUMN, render_influxql
from meshalert.queries.model import (
    Aggregate,
    ClassAggregates,
    ClassQuery,
    SelectRow,
    WindowQueryError,
    assemble,
)

_CHUNK_SIZE = 10_000


class InfluxDB1WindowReader:
    def __init__(self, config: InfluxDB1Store, *, timeout_s: float = 30.0) -> None:
        self._http = InfluxDB1Http(config, timeout_s=timeout_s)
        self._config = config

    def __repr__(self) -> str:  # credentials stay out of logs
        return f"InfluxDB1WindowReader({self._config!r})"

    def fetch(self, query: ClassQuery) -> ClassAggregates:
        text = render_influxql(query, retention_policy=self._config.retention_policy)
        body = self._post(text)
        rows = list(parse_results(query, body))
        return assemble(query, rows, query_text=text, queries_issued=1)

    def fetch_buckets(self, query: BucketQuery) -> BucketResult:
        """The retries baseline's bucketed sums: all statements in one POST."""
        text = render_bucket_influxql(query, retention_policy=self._config.retention_policy)
        rows = list(parse_bucket_results(query, self._post(text)))
        return assemble_buckets(query, rows, query_text=text)

    def _post(self, text: str) -> str:
        form = {
            "q": text,
            "db": self._config.database,
            "epoch": "ms",
            "chunked": "true",
            "chunk_size": str(_CHUNK_SIZE),
        }
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        body = urllib.parse.urlencode(form).encode()
        try:
            answer = self._http.request("POST", "/query", body=body, headers=headers)
        except TransportError as exc:
            raise WindowQueryError(f"{self._config.base_url}/query failed: {exc}") from None
        if not 200 <= answer.status < 300:
            raise WindowQueryError(
                f"{self._config.base_url}/query answered {answer.status}: {answer.text[:500]}"
            )
        return answer.text

    def close(self) -> None:
        self._http.close()


def _documents(body: str) -> Iterator[Mapping[str, Any]]:
    """Chunked responses are JSON documents one after another."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(body) and body[pos].isspace():
            pos += 1
        if pos >= len(body):
            return
        try:
            doc, pos = decoder.raw_decode(body, pos)
        except json.JSONDecodeError as exc:
            raise WindowQueryError(f"unreadable /query response: {exc}") from None
        yield doc


def _results(body: str) -> Iterator[dict[str, Any]]:
    """Each statement's result in a (chunked) /query JSON response; an error anywhere is
    raised."""
    for doc in _documents(body):
        if "error" in doc:
            raise WindowQueryError(f"influxql error: {doc['error']}")
        for result in doc.get("results", []):
            if "error" in result:
                raise WindowQueryError(f"influxql error: {result['error']}")
            yield result


def parse_results(query: ClassQuery, body: str) -> Iterator[SelectRow]:
    """Rows of a (chunked) /query JSON response; statement ``i`` is ``query.selects[i]``."""
    for result in _results(body):
        sel = query.selects[int(result.get("statement_id", 0))]
        for series in result.get("series", []):
            tags = series.get("tags") or {}
            group = {tag: str(tags.get(tag, "")) for tag in sel.group_by}
            newest = sel.aggregate is Aggregate.NEWEST  # the selected point's own time
            column = series["columns"].index("time" if newest else VALUE_COLUMN)
            for values in series.get("values", []):
                if values[column] is not None:
                    yield SelectRow(sel.name, group, float(values[column]))


def parse_bucket_results(query: BucketQuery, body: str) -> Iterator[BucketRow]:
    """Rows of a ``GROUP BY time()`` response; each row's ``time`` is its bucket's start."""
    for result in _results(body):
        sel = query.selects[int(result.get("statement_id", 0))]
        for series in result.get("series", []):
            tags = series.get("tags") or {}
            namespace, service = str(tags.get("namespace", "")), str(tags.get("service", ""))
            time_col = series["columns"].index("time")
            value_col = series["columns"].index(VALUE_COLUMN)
            for values in series.get("values", []):
                if values[value_col] is not None:
                    yield BucketRow(
                        sel.name,
                        namespace,
                        service,
                        int(values[time_col]),
                        float(values[value_col]),
                        str(tags.get("router", "")),
                    )
