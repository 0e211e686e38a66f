"""The sidecar's settings, from ``MESHALERT_*`` environment variables.

Empty variables count as unset. Secrets are ``SecretStr``: never in ``repr`` or errors.
Errors name the variable, e.g. ``MESHALERT_FLUSH_INTERVAL: bad duration 'ten'; ...``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError

from ingest_sidecar.admin_poller import metrics_url
from ingest_sidecar.linkerd_names import parse_service_depths, parse_service_namespaces
from meshalert.backends.url_parts import StoreUrlError
from meshalert.backends.urls import DEFAULT_STORE, StoreConfig, parse_store_url
from meshalert.durations import DurationError, parse_duration_ms

ENV_NAMES: Mapping[str, str] = {
    "statsd_listen": "MESHALERT_STATSD_LISTEN",
    "statsd_prefix": "MESHALERT_STATSD_PREFIX",
    "flush_interval": "MESHALERT_FLUSH_INTERVAL",
    "store_url": "MESHALERT_STORE",
    "influxdb_token": "MESHALERT_INFLUXDB_TOKEN",
    "influxdb_username": "MESHALERT_INFLUXDB_USERNAME",
    "influxdb_password": "MESHALERT_INFLUXDB_PASSWORD",
    "spool_dir": "MESHALERT_SPOOL_DIR",
    "spool_max_bytes": "MESHALERT_SPOOL_MAX_BYTES",
    "dead_letter_max_bytes": "MESHALERT_DEAD_LETTER_MAX_BYTES",
    "host": "MESHALERT_HOST",
    "max_series": "MESHALERT_MAX_SERIES",
    "service_depth": "MESHALERT_SERVICE_DEPTH",
    "service_namespace": "MESHALERT_SERVICE_NAMESPACE",
    "write_batch_lines": "MESHALERT_WRITE_BATCH_LINES",
    "linkerd_admin_url": "MESHALERT_LINKERD_ADMIN_URL",
}
"""Setting -> environment variable."""

_SIZE = re.compile(r"(\d+)\s*(b|kb|kib|mb|mib|gb|gib|k|m|g)?", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_MIN_FLUSH_MS = 100
_MIN_SPOOL_BYTES = 64 * 1024


class SettingsError(ValueError):
    """A bad setting; the message names the variable and never echoes a secret."""


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); port 0 asks for any free port."""
    value = text.strip()
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"write [IPv6]:PORT, got {text!r}")
    else:
        host, sep, port = value.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"write HOST:PORT (IPv6 as [::1]:8125), got {text!r}")
    if not host:
        raise ValueError(f"no host in {text!r} (write 0.0.0.0:8125 to listen everywhere)")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be 0..65535, got {port!r}")
    return host, int(port)


def parse_size_bytes(text: str) -> int:
    """``536870912``, ``512MiB``, ``512M`` (binary), ``500MB`` (decimal) -> bytes."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"bad size {text!r}; write e.g. 512MiB, 64MB or a number of bytes")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]


def _check_listen(text: str) -> str:
    parse_listen(text)
    return text


def _check_flush(text: str) -> str:
    try:
        ms = parse_duration_ms(text)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    if ms < _MIN_FLUSH_MS:
        raise ValueError(f"must be at least {_MIN_FLUSH_MS}ms, got {text!r}")
    return text


def _check_store(url: str) -> str:
    try:
        parse_store_url(url)
    except StoreUrlError as exc:
        raise ValueError(str(exc)) from None
    return url


def _check_spool_size(text: str) -> str:
    if parse_size_bytes(text) < _MIN_SPOOL_BYTES:
        raise ValueError(f"must be at least 64KiB, got {text!r}")
    return text


def _check_depths(text: str) -> str:
    parse_service_depths(text)
    return text


def _check_namespaces(text: str) -> str:
    parse_service_namespaces(text)
    return text


def _check_prefix(text: str) -> str:
    if "\n" in text or "|" in text:
        raise ValueError("must not contain '|' or a newline")
    return text


def _check_admin_url(text: str) -> str:
    metrics_url(text)
    return text


class SidecarSettings(BaseModel):
    """Validated once; build with :meth:`from_env`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    statsd_listen: Annotated[str, AfterValidator(_check_listen)] = "127.0.0.1:8125"
    statsd_prefix: Annotated[str, AfterValidator(_check_prefix)] = "linkerd"
    flush_interval: Annotated[str, AfterValidator(_check_flush)] = "10s"
    store_url: Annotated[str, AfterValidator(_check_store)] = Field(
        default=DEFAULT_STORE, repr=False
    )
    influxdb_token: SecretStr | None = None
    influxdb_username: SecretStr | None = None
    influxdb_password: SecretStr | None = None
    spool_dir: str = "./meshalert-spool"
    # With the spool directory's other files (see disk_budget_bytes) this stays well below
    # the DaemonSet's 512Mi emptyDir sizeLimit: the kubelet evicts a pod that exceeds it.
    spool_max_bytes: Annotated[str, AfterValidator(_check_spool_size)] = "320MiB"
    dead_letter_max_bytes: Annotated[str, AfterValidator(_check_spool_size)] = "32MiB"
    host: str = Field(default_factory=socket.gethostname, min_length=1)
    max_series: int = Field(default=100_000, ge=1)
    service_depth: Annotated[str, AfterValidator(_check_depths)] = ""
    service_namespace: Annotated[str, AfterValidator(_check_namespaces)] = ""
    write_batch_lines: int = Field(default=5000, ge=1, le=1_000_000)
    linkerd_admin_url: Annotated[str, AfterValidator(_check_admin_url)] | None = None
    """Pull mode: poll Linkerd's ``/admin/metrics.json`` here each flush (off when unset)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: object) -> SidecarSettings:
        """Settings from ``env`` (``MESHALERT_*``); keyword ``overrides`` win (tests, CLI)."""
        values: dict[str, object] = {}
        for name, variable in ENV_NAMES.items():
            if env.get(variable, "").strip():
                values[name] = env[variable].strip()
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise _settings_error(exc) from None

    @property
    def listen(self) -> tuple[str, int]:
        return parse_listen(self.statsd_listen)

    @property
    def flush_interval_ms(self) -> int:
        return parse_duration_ms(self.flush_interval)

    @property
    def spool_max_bytes_value(self) -> int:
        return parse_size_bytes(self.spool_max_bytes)

    @property
    def dead_letter_max_bytes_value(self) -> int:
        return parse_size_bytes(self.dead_letter_max_bytes)

    def disk_budget_bytes(self) -> int:
        """Most bytes the spool directory can hold: pending batches, one segment of
        acknowledged records plus one record of rotation overshoot (at most a segment's
        worth at the default batch size), the dead-letter files, the damaged-segment copies
        and the small ledger and lock files."""
        from ingest_sidecar.spool import MAX_DAMAGED_COPIES, MAX_SEGMENT_BYTES

        return (
            self.spool_max_bytes_value
            + 2 * MAX_SEGMENT_BYTES
            + self.dead_letter_max_bytes_value
            + MAX_DAMAGED_COPIES * MAX_SEGMENT_BYTES
            + 64 * 1024
        )

    @property
    def spool_path(self) -> str:
        """The spool of this store: a subdirectory of ``spool_dir`` named after the store."""
        return str(Path(self.spool_dir) / spool_subdirectory(self.store))

    @property
    def service_depths(self) -> dict[str, int]:
        return parse_service_depths(self.service_depth) if self.service_depth.strip() else {}

    @property
    def service_namespaces(self) -> dict[str, str]:
        return parse_service_namespaces(self.service_namespace)

    @property
    def store(self) -> StoreConfig:
        """The store with its credentials (the store types hide them from repr)."""
        return parse_store_url(
            self.store_url,
            token=_reveal(self.influxdb_token),
            username=_reveal(self.influxdb_username),
            password=_reveal(self.influxdb_password),
        )

    def secrets(self) -> list[str]:
        """Secret values, for log redaction."""
        found = [_reveal(s) for s in (self.influxdb_token, self.influxdb_password)]
        return [s for s in found if s]


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def _settings_error(exc: ValidationError) -> SettingsError:
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        where = ENV_NAMES.get(name, name)
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return SettingsError("; ".join(problems))


def store_identity(store: StoreConfig) -> str:
    """What names a store, without its secrets: the same store always gives the same text."""
    return store.identity()


def spool_subdirectory(store: StoreConfig) -> str:
    """``<kind>-<hash>``: each store's batches wait in a directory of their own, so a run
    against another store never replays them into the wrong one."""
    import hashlib

    identity = store_identity(store)
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    return f"{identity.partition(':')[0]}-{digest}"
