"""``dynamodb://TABLE``: alert state in a DynamoDB table (region and credentials from AWS's
usual environment)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult

from meshalert.backends.url_parts import StoreUrlError

_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


@dataclass(frozen=True)
class DynamoDBState:
    table: str


def parse(parts: SplitResult, url: str) -> DynamoDBState:
    table = parts.netloc
    if parts.path not in ("", "/") or parts.query:
        raise StoreUrlError(f"write dynamodb://TABLE, not {url.strip()!r}")
    if not _TABLE_NAME.fullmatch(table):
        raise StoreUrlError(
            f"write dynamodb://TABLE: table name {table!r} must be 3-255 of A-Z a-z 0-9 _ . -"
        )
    return DynamoDBState(table=table)
