"""``MESHALERT_STATE`` URLs -> a state store: ``sqlite:///path`` or ``dynamodb://TABLE``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from meshalert.state.dynamodb_state import DynamoDBStateStore
from meshalert.state.protocols import StateStore
from meshalert.state.sqlite_state import SqliteStateStore
from meshalert.store_url import SqliteStore, StoreUrlError, parse_store_url

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any

_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")


class StateUrlError(ValueError):
    """A state URL that cannot be used; the message names the part that is wrong."""


def open_state_store(url: str, *, dynamodb_client: DynamoDBClient | None = None) -> StateStore:
    """Open the store a state URL names. Without ``dynamodb_client`` a boto3 client is built
    from the usual AWS environment (region, credentials)."""
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme == "sqlite":
        try:
            config = parse_store_url(url)
        except StoreUrlError as exc:
            raise StateUrlError(str(exc)) from None
        assert isinstance(config, SqliteStore)  # the sqlite scheme only parses to SqliteStore
        return SqliteStateStore(config.path)
    if scheme == "dynamodb":
        parts = urlsplit(url.strip())
        table = parts.netloc
        if parts.path not in ("", "/") or parts.query:
            raise StateUrlError(f"dynamodb URL must be dynamodb://TABLE, got {url!r}")
        if not _TABLE_NAME.match(table):
            raise StateUrlError(
                f"dynamodb URL table name {table!r} must be 3-255 of A-Z a-z 0-9 _ . -"
            )
        if dynamodb_client is None:
            import boto3

            dynamodb_client = boto3.client("dynamodb")
        return DynamoDBStateStore(table, dynamodb_client)
    raise StateUrlError(
        f"state URL must start with sqlite:/// or dynamodb://, got scheme {scheme or '(none)'!r}"
    )
