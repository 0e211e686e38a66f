"""``influxdb1://[user:password@]host[:port]/database[?rp=policy]`` (``influxdb1s`` for TLS)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, unquote

from meshalert.backends.url_parts import StoreUrlError, http_base, redact


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

    def identity(self) -> str:
        """What names this store without secrets (the sidecar's spool directory)."""
        return f"influxdb1:{self.base_url}/{self.database}?rp={self.retention_policy or ''}"


def parse(
    parts: SplitResult,
    url: str,
    query: dict[str, str],
    *,
    username: str | None,
    password: str | None,
) -> InfluxDB1Store:
    """Credentials in the URL win over those passed in (from the settings)."""
    base = http_base(parts.hostname, parts.port, parts.scheme.lower().endswith("s"), url)
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise StoreUrlError(f"influxdb1 URL lacks the database path: {redact(url)}")
    return InfluxDB1Store(
        base_url=base,
        database=database,
        retention_policy=query.get("rp") or None,
        username=unquote(parts.username) if parts.username else username,
        password=unquote(parts.password) if parts.password else password,
    )
