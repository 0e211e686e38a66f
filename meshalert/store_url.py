"""``MESHALERT_STORE`` URLs: one value that names the store every component reads or writes."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_STORE = "sqlite:///./meshalert.db"
DEFAULT_STATE = "sqlite:///./meshalert-state.db"


class StoreUrlError(ValueError):
    """A store URL that cannot be used; the message names the part that is wrong."""


@dataclass(frozen=True)
class SqliteStore:
    path: str


@dataclass(frozen=True)
class InfluxDB2Store:
    base_url: str
    org: str
    bucket: str
    token: str | None

    def __repr__(self) -> str:  # the token never reaches logs
        return (
            f"InfluxDB2Store(base_url={self.base_url!r}, org={self.org!r}, bucket={self.bucket!r})"
        )


@dataclass(frozen=True)
class InfluxDB1Store:
    base_url: str
    database: str
    retention_policy: str | None
    username: str | None
    password: str | None

    def __repr__(self) -> str:
        return (
            f"InfluxDB1Store(base_url={self.base_url!r}, database={self.database!r}, "
            f"retention_policy={self.retention_policy!r})"
        )


StoreConfig = SqliteStore | InfluxDB2Store | InfluxDB1Store


def parse_store_url(
    url: str,
    *,
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> StoreConfig:
    """Parse a store URL; credentials from the environment are passed in, never read here."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path)
        if parts.netloc not in ("",):
            raise StoreUrlError(f"sqlite URL must be sqlite:///path, got host {parts.netloc!r}")
        # sqlite:///./rel.db is relative; sqlite:///abs.db and sqlite:////abs.db are absolute
        path = path[1:] if path.startswith(("/./", "/../")) else "/" + path.lstrip("/")
        if not path or path == "/":
            raise StoreUrlError("sqlite URL has no database path (write sqlite:///./meshalert.db)")
        return SqliteStore(path=path)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if scheme in ("influxdb2", "influxdb2s"):
        base = _http_base(parts.hostname, parts.port, scheme.endswith("s"), url)
        org, bucket = query.get("org"), query.get("bucket")
        if not org:
            raise StoreUrlError(f"influxdb2 URL lacks ?org=...: {_redact(url)}")
        if not bucket:
            raise StoreUrlError(f"influxdb2 URL lacks &bucket=...: {_redact(url)}")
        return InfluxDB2Store(base_url=base, org=org, bucket=bucket, token=token)
    if scheme in ("influxdb1", "influxdb1s"):
        base = _http_base(parts.hostname, parts.port, scheme.endswith("s"), url)
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise StoreUrlError(f"influxdb1 URL lacks the database path: {_redact(url)}")
        return InfluxDB1Store(
            base_url=base,
            database=database,
            retention_policy=query.get("rp") or None,
            username=unquote(parts.username) if parts.username else username,
            password=unquote(parts.password) if parts.password else password,
        )
    raise StoreUrlError(
        f"unknown store scheme {scheme!r}; use sqlite://, influxdb2://, influxdb2s://, "
        "influxdb1:// or influxdb1s://"
    )


def _http_base(host: str | None, port: int | None, tls: bool, url: str) -> str:
    if not host:
        raise StoreUrlError(f"store URL has no host: {_redact(url)}")
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port or 8086}"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(parts.password, "***")
    return url
