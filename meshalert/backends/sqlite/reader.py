"""Window queries against the embedded SQLite store (a thin adapter over ``render_sql``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from meshalert.backends.sqlite.schema import ROLLUP_VERSION
from meshalert.backends.sqlite.writer import schema_version
from meshalert.queries.baseline import BucketQuery, BucketResult, BucketRow, assemble_buckets
from meshalert.queries.baseline_text import render_bucket_sql, render_bucket_sql_inline
from meshalert.queries.model import ClassAggregates, ClassQuery, SelectRow, assemble
from meshalert.queries.sql import RESULT_PREFIX, render_sql, render_sql_inline, result_tags
from meshalert.queries.sql_schema import ROLLUP_MS

_MMAP_BYTES = 1 << 30
_CACHE_KIB = 65_536


class SqliteWindowReader:
    """Runs each class query as one statement on ``connection`` (any thread that owns it).

    The connection is tuned for window scans: memory-mapped reads and a larger page cache
    (both per connection; they change nothing on disk).
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        # A cycle reads the same few hundred MB of point pages every minute: mmap spares a
        # copy per page read (about 15% of a 10k-service cycle), the cache keeps hot pages.
        connection.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
        connection.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")

    def close(self) -> None:
        self._conn.close()

    def fetch(self, query: ClassQuery) -> ClassAggregates:
        # Asked every time: a writer may migrate the file to rollups while we hold it open
        # (a read-only connection cannot migrate it, and a version 1 file has no rollups).
        rollup_ms = ROLLUP_MS if schema_version(self._conn) >= ROLLUP_VERSION else None
        text, params = render_sql(query, rollup_ms=rollup_ms)
        cursor = self._conn.execute(text, params)
        try:
            rows = list(_select_rows(cursor, result_tags(query)))
        finally:
            cursor.close()
        inline = render_sql_inline(query, rollup_ms=rollup_ms)
        return assemble(query, rows, query_text=inline, queries_issued=1)

    def fetch_buckets(self, query: BucketQuery) -> BucketResult:
        """The retries baseline's bucketed sums in one statement (see ``baseline_text``)."""
        text, params = render_bucket_sql(query)
        cursor = self._conn.execute(text, params)
        try:
            rows = list(_bucket_rows(cursor, query))
        finally:
            cursor.close()
        return assemble_buckets(query, rows, query_text=render_bucket_sql_inline(query))


def _select_rows(cursor: sqlite3.Cursor, tags: tuple[str, ...]) -> Iterator[SelectRow]:
    names = [d[0] for d in cursor.description]
    tag_index = [(t, names.index(RESULT_PREFIX + t)) for t in tags]
    value_index = names.index("value")
    for record in cursor:
        value = record[value_index]
        if value is None:
            continue
        yield SelectRow(
            select=record[0],
            tags={t: record[i] for t, i in tag_index},
            value=float(value),
        )


def _bucket_rows(cursor: sqlite3.Cursor, query: BucketQuery) -> Iterator[BucketRow]:
    names = [d[0] for d in cursor.description]
    router_index = names.index(RESULT_PREFIX + "router")
    for record in cursor:
        sel, namespace, service = record[0], record[1], record[2]
        index, value = record[-2], record[-1]
        if value is not None:
            start = query.start_ms + int(index) * query.window_ms
            yield BucketRow(sel, namespace, service, start, float(value), record[router_index])
