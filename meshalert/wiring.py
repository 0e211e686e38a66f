"""The composition root: the one module that knows every adapter.

Settings name a store and a state URL; :mod:`meshalert.backends.urls` parses them into a
backend's config value; the tables here map each config type to the function that opens its
adapter (reader, writer, state store). ``meshalert run``, the Lambda handlers, the backtest
and the ingest sidecar all open their adapters here, and the notification channels too.
Adapters are imported when chosen: a Lambda that reads InfluxDB 2 never imports the SQLite
or InfluxDB 1.x modules, and a SQLite deployment never imports influxdb-client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from meshalert.backends.dynamodb.url import DynamoDBState
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.backends.memory.url import MemoryState
from meshalert.backends.sqlite.url import SqliteState, SqliteStore
from meshalert.backends.urls import StateConfig, StoreConfig
from meshalert.queries.model import WindowReader
from meshalert.state.protocols import StateStore
from meshalert.stores.protocols import LineWriter

if TYPE_CHECKING:
    from meshalert.history_sink import HistorySink
    from meshalert.notify.router import Router
    from meshalert.settings import Settings


def _sqlite_reader(store: SqliteStore, readonly: bool) -> WindowReader:
    from meshalert.backends.sqlite.reader import SqliteWindowReader
    from meshalert.backends.sqlite.writer import open_database

    return SqliteWindowReader(open_database(store.path, readonly=readonly))


# The HTTP stores' readers only read; ``readonly`` matters to the embedded file alone.
def _influxdb1_reader(store: InfluxDB1Store, readonly: bool) -> WindowReader:
    from meshalert.backends.influxdb1.reader import InfluxDB1WindowReader

    return InfluxDB1WindowReader(store)


def _influxdb2_reader(store: InfluxDB2Store, readonly: bool) -> WindowReader:
    from meshalert.backends.influxdb2.reader import InfluxDB2WindowReader

    return InfluxDB2WindowReader(store)


_READERS: Mapping[type, Callable[[Any, bool], WindowReader]] = {
    SqliteStore: _sqlite_reader,
    InfluxDB1Store: _influxdb1_reader,
    InfluxDB2Store: _influxdb2_reader,
}


def open_reader(store: StoreConfig, *, readonly: bool = False) -> WindowReader:
    """The window reader of the store ``store`` names; ``readonly`` opens the embedded file
    so that nothing (not even a schema migration) can write to it. Readers that hold a
    connection have ``close()``."""
    return _READERS[type(store)](store, readonly)


def _sqlite_writer(store: SqliteStore, timeout_s: float, max_series: int | None) -> LineWriter:
    from meshalert.backends.sqlite.writer import SqliteWriter

    if max_series is None:
        return SqliteWriter.open(store.path)
    return SqliteWriter.open(store.path, series_cache_max=max_series)


def _influxdb1_writer(
    store: InfluxDB1Store, timeout_s: float, max_series: int | None
) -> LineWriter:
    from meshalert.backends.influxdb1.writer import InfluxDB1Writer

    return InfluxDB1Writer(store, timeout_s=timeout_s)


def _influxdb2_writer(
    store: InfluxDB2Store, timeout_s: float, max_series: int | None
) -> LineWriter:
    from meshalert.backends.influxdb2.writer import InfluxDB2Writer

    return InfluxDB2Writer(store, timeout_s=timeout_s)


_WRITERS: Mapping[type, Callable[[Any, float, int | None], LineWriter]] = {
    SqliteStore: _sqlite_writer,
    InfluxDB1Store: _influxdb1_writer,
    InfluxDB2Store: _influxdb2_writer,
}


def open_writer(
    store: StoreConfig, *, timeout_s: float = 10, max_series: int | None = None
) -> LineWriter:
    """The line writer of ``store``; ``timeout_s`` applies to the HTTP stores only,
    ``max_series`` bounds the embedded store's series-id cache."""
    return _WRITERS[type(store)](store, timeout_s, max_series)


def _sqlite_state(config: SqliteState, dynamodb_client: Any) -> StateStore:
    from meshalert.backends.sqlite.state import SqliteStateStore

    return SqliteStateStore(config.path)


def _dynamodb_state(config: DynamoDBState, dynamodb_client: Any) -> StateStore:
    from meshalert.backends.dynamodb.state import DynamoDBStateStore

    if dynamodb_client is None:
        import boto3

        dynamodb_client = boto3.client("dynamodb")
    return DynamoDBStateStore(config.table, dynamodb_client)


def _memory_state(config: MemoryState, dynamodb_client: Any) -> StateStore:
    from meshalert.backends.memory.state import MemoryStateStore

    return MemoryStateStore()


_STATES: Mapping[type, Callable[[Any, Any], StateStore]] = {
    SqliteState: _sqlite_state,
    DynamoDBState: _dynamodb_state,
    MemoryState: _memory_state,
}


def open_state(config: StateConfig, *, dynamodb_client: Any = None) -> StateStore:
    """The state store ``config`` names. A DynamoDB table without ``dynamodb_client`` gets a
    boto3 client built from AWS's usual environment (region, credentials)."""
    return _STATES[type(config)](config, dynamodb_client)


def _sqlite_retention(store: SqliteStore, retention_ms: int) -> Callable[[int], None]:
    from meshalert.backends.sqlite.retention import Pruner

    return Pruner(store.path, retention_ms)


_RETENTION: Mapping[type, Callable[[Any, int], Callable[[int], None]]] = {
    SqliteStore: _sqlite_retention,
}
"""Stores whose retention this process enforces (InfluxDB servers have their own)."""


def open_retention(store: StoreConfig, retention_ms: int) -> Callable[[int], None] | None:
    """The per-cycle job that deletes points older than ``retention_ms``, if the store
    needs one from us."""
    opener = _RETENTION.get(type(store))
    return opener(store, retention_ms) if opener is not None else None


def needs_dynamodb(config: StateConfig) -> bool:
    """Whether opening ``config`` takes a DynamoDB client (the Lambda handlers share one)."""
    return type(config) is DynamoDBState


def is_embedded(store: StoreConfig) -> bool:
    """Whether the store lives in a local file (no server, no network)."""
    return type(store) is SqliteStore


def build_router(
    settings: Settings,
    *,
    console: TextIO | None = None,
    sns_client: Any = None,
) -> Router:
    """Channels configured in ``settings`` (plus the console when given), routed by
    ``MESHALERT_ROUTES`` and grouped by ``MESHALERT_GROUP_*`` (parsed by the settings)."""
    from meshalert.notify.base import Notifier
    from meshalert.notify.router import Router

    channels: dict[str, Notifier] = {}
    if console is not None:
        from meshalert.notify.console import ConsoleNotifier

        channels["console"] = ConsoleNotifier(console)
    if settings.slack_webhook_url is not None:
        from meshalert.notify.slack import SlackWebhookNotifier

        channels["slack"] = SlackWebhookNotifier(settings.slack_webhook_url, settings.runbook_url)
    if settings.sns_topic_arn:
        from meshalert.notify.sns import SnsNotifier

        if sns_client is None:
            import boto3

            # The topic's region is in its ARN: no AWS_REGION needed to publish to it.
            sns_client = boto3.client("sns", region_name=settings.sns_topic_arn.split(":")[3])
        channels["sns"] = SnsNotifier(settings.sns_topic_arn, sns_client)
    if settings.webhook_url is not None:
        from meshalert.notify.webhook import WebhookNotifier

        channels["webhook"] = WebhookNotifier(settings.webhook_url)
    return Router(channels, settings.routing, grouping=settings.grouping)


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the settings, for the log redaction processor."""
    return settings.secrets()


def open_history_sink(settings: Settings) -> HistorySink | None:
    """The ``meshalert_alert`` writer when ``MESHALERT_HISTORY_TO_STORE`` asks for it (by
    default only for the embedded store), with a short timeout so a slow store costs a
    cycle at most a few seconds."""
    from meshalert.history_sink import DEFAULT_TIMEOUT_S, StoreHistorySink

    if not settings.history_enabled():
        return None
    return StoreHistorySink(open_writer(settings.store, timeout_s=DEFAULT_TIMEOUT_S))
