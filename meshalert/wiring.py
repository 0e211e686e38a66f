"""Builds the engine's adapters from validated settings.

Shared by the two composition roots (the ``meshalert`` command and the Lambda handlers) so
both choose stores, state and channels the same way. Adapters are imported where chosen:
a Lambda that reads InfluxDB 2 never imports the SQLite or InfluxDB 1.x modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from meshalert.queries.model import WindowReader
from meshalert.settings import Settings
from meshalert.state.protocols import StateStore
from meshalert.store_url import InfluxDB1Store, InfluxDB2Store, SqliteStore, StoreConfig

if TYPE_CHECKING:
    from meshalert.history_sink import HistorySink
    from meshalert.notify.router import Router


def open_reader(store: StoreConfig) -> WindowReader:
    if isinstance(store, SqliteStore):
        from meshalert.stores.sqlite_reader import SqliteWindowReader
        from meshalert.stores.sqlite_store import open_database

        return SqliteWindowReader(open_database(store.path))
    if isinstance(store, InfluxDB1Store):
        from meshalert.stores.influxdb1_reader import InfluxDB1WindowReader

        return InfluxDB1WindowReader(store)
    if isinstance(store, InfluxDB2Store):
        from meshalert.stores.influxdb2_reader import InfluxDB2WindowReader

        return InfluxDB2WindowReader(store)
    raise TypeError(f"no reader for {store!r}")


def open_state(settings: Settings, *, dynamodb_client: Any = None) -> StateStore:
    from meshalert.state.factory import open_state_store

    return open_state_store(settings.state, dynamodb_client=dynamodb_client)


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
    from meshalert.stores.writer_factory import open_writer

    if not settings.history_enabled():
        return None
    return StoreHistorySink(open_writer(settings.store, timeout_s=DEFAULT_TIMEOUT_S))
