"""``influxdb2://host[:port]?org=ORG&bucket=BUCKET`` (``influxdb2s`` for TLS)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult

from meshalert.backends.url_parts import StoreUrlError, http_base, redact


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

    def identity(self) -> str:
        """What names this store without secrets (the sidecar's spool directory)."""
        return f"influxdb2:{self.base_url}?org={self.org}&bucket={self.bucket}"


def parse(
    parts: SplitResult, url: str, query: dict[str, str], *, token: str | None
) -> InfluxDB2Store:
    base = http_base(parts.hostname, parts.port, parts.scheme.lower().endswith("s"), url)
    org, bucket = query.get("org"), query.get("bucket")
    if not org:
        raise StoreUrlError(f"influxdb2 URL lacks ?org=...: {redact(url)}")
    if not bucket:
        raise StoreUrlError(f"influxdb2 URL lacks &bucket=...: {redact(url)}")
    return InfluxDB2Store(base_url=base, org=org, bucket=bucket, token=token)
