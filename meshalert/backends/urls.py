"""The URL registry: every store and state URL scheme, and the one parse of each setting.

``MESHALERT_STORE`` names the metrics store every component reads or writes;
``MESHALERT_STATE`` names where alert state is kept. Each scheme maps to its backend's
parser (``meshalert/backends/<backend>/url.py``), which returns that backend's config value;
:mod:`meshalert.wiring` opens the adapter a config value names. Parsing is pure and light:
nothing here imports an adapter or a client library. A new backend adds its scheme here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qs, urlsplit

from meshalert.backends.dynamodb import url as dynamodb_url
from meshalert.backends.dynamodb.url import DynamoDBState
from meshalert.backends.influxdb1 import url as influxdb1_url
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb2 import url as influxdb2_url
from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.backends.memory import url as memory_url
from meshalert.backends.memory.url import MemoryState
from meshalert.backends.sqlite.url import SqliteState, SqliteStore, parse_path
from meshalert.backends.url_parts import StoreUrlError

DEFAULT_STORE = "sqlite:///./meshalert.db"
DEFAULT_STATE = "sqlite:///./meshalert-state.db"

StoreConfig = SqliteStore | InfluxDB2Store | InfluxDB1Store
StateConfig = SqliteState | DynamoDBState | MemoryState


class StateUrlError(StoreUrlError):
    """A state URL that cannot be used; the message names the part that is wrong."""


@dataclass(frozen=True)
class _Credentials:
    """Store credentials from the settings (never read from the environment here)."""

    token: str | None
    username: str | None
    password: str | None


_StoreParser = Callable[[SplitResult, str, dict[str, str], _Credentials], StoreConfig]
_StateParser = Callable[[SplitResult, str], StateConfig]


def _influxdb1(parts: SplitResult, url: str, query: dict[str, str], c: _Credentials) -> StoreConfig:
    return influxdb1_url.parse(parts, url, query, username=c.username, password=c.password)


def _influxdb2(parts: SplitResult, url: str, query: dict[str, str], c: _Credentials) -> StoreConfig:
    return influxdb2_url.parse(parts, url, query, token=c.token)


STORE_SCHEMES: Mapping[str, _StoreParser] = {
    "sqlite": lambda parts, _url, _query, _c: SqliteStore(parse_path(parts)),
    "influxdb1": _influxdb1,
    "influxdb1s": _influxdb1,
    "influxdb2": _influxdb2,
    "influxdb2s": _influxdb2,
}
"""``MESHALERT_STORE`` schemes (the ``s`` variants speak TLS)."""

STATE_SCHEMES: Mapping[str, _StateParser] = {
    "sqlite": lambda parts, _url: SqliteState(parse_path(parts)),
    "dynamodb": dynamodb_url.parse,
    "memory": memory_url.parse,
}
"""``MESHALERT_STATE`` schemes."""


def parse_store_url(
    url: str,
    *,
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> StoreConfig:
    """Parse a store URL; credentials from the settings are passed in, never read here."""
    parts = urlsplit(url.strip())
    parser = STORE_SCHEMES.get(parts.scheme.lower())
    if parser is None:
        raise StoreUrlError(
            f"unknown store scheme {parts.scheme.lower()!r}; use "
            + ", ".join(f"{s}://" for s in STORE_SCHEMES)
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return parser(parts, url, query, _Credentials(token, username, password))


def parse_state_url(url: str) -> StateConfig:
    """Parse a state URL: ``sqlite:///path``, ``dynamodb://TABLE`` or ``memory://``."""
    parts = urlsplit(url.strip())
    parser = STATE_SCHEMES.get(parts.scheme.lower())
    if parser is None:
        raise StateUrlError(
            "write sqlite:///path/to/state.db, dynamodb://TABLE or memory://, not scheme "
            f"{parts.scheme.lower() or '(none)'!r}"
        )
    try:
        return parser(parts, url)
    except StateUrlError:
        raise
    except StoreUrlError as exc:
        raise StateUrlError(str(exc)) from None
