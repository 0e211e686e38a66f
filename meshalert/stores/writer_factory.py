"""Builds the LineWriter a store URL names; the only place that knows every write adapter."""

from __future__ import annotations

from meshalert.store_url import InfluxDB1Store, InfluxDB2Store, SqliteStore, StoreConfig
from meshalert.stores.protocols import LineWriter


def open_writer(
    config: StoreConfig, *, timeout_s: float = 10, max_series: int | None = None
) -> LineWriter:
    """Open a writer for ``config``; ``timeout_s`` applies to the HTTP stores only,
    ``max_series`` bounds the embedded store's series-id cache.

    Adapters are imported lazily so a SQLite deployment never imports influxdb-client.
    """
    if isinstance(config, SqliteStore):
        from meshalert.stores.sqlite_store import SqliteWriter

        if max_series is None:
            return SqliteWriter.open(config.path)
        return SqliteWriter.open(config.path, series_cache_max=max_series)
    if isinstance(config, InfluxDB2Store):
        from meshalert.stores.influxdb2_writer import InfluxDB2Writer

        return InfluxDB2Writer(config, timeout_s=timeout_s)
    if isinstance(config, InfluxDB1Store):
        from meshalert.stores.influxdb1_writer import InfluxDB1Writer

        return InfluxDB1Writer(config, timeout_s=timeout_s)
    raise TypeError(f"unknown store config {config!r}")
