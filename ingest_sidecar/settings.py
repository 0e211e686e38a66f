"""The sidecar's settings, from ``MESHALERT_*`` environment variables.

Empty variables count as unset. Secrets are ``SecretStr``: never in ``repr`` or errors.
Errors name the variable, e.g. ``MESHALERT_FLUSH_INTERVAL: bad duration 'ten'; ...``.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field

from ingest_sidecar.admin_poller import metrics_url
from ingest_sidecar.linkerd_names import parse_service_depths, parse_service_namespaces
from meshalert.backends.urls import StoreConfig
from meshalert.settings import (
    Bytes,
    MeshalertSettings,
    PositiveDurationMs,
    SettingsError,
    _var,
    min_bytes,
)

__all__ = ["SettingsError", "SidecarSettings", "parse_listen", "parse_size_bytes"]

_MIN_FLUSH_MS = 100
_MIN_SPOOL_BYTES = 64 * 1024


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
    from pydantic import TypeAdapter, ValidationError

    try:
        return int(TypeAdapter(Bytes).validate_python(text))
    except ValidationError:
        raise ValueError(
            f"bad size {text!r}; write e.g. 512MiB, 64MB or a number of bytes"
        ) from None


def _check_listen(text: str) -> str:
    parse_listen(text)
    return text


def _check_flush(ms: int) -> int:
    if ms < _MIN_FLUSH_MS:
        raise ValueError(f"must be at least {_MIN_FLUSH_MS}ms, got {ms}ms")
    return ms


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


SpoolBytes = Annotated[Bytes, AfterValidator(min_bytes(_MIN_SPOOL_BYTES, "64KiB"))]


class SidecarSettings(MeshalertSettings):
    """The sidecar's settings (the store and its credentials come from the shared base)."""

    statsd_listen: Annotated[str, AfterValidator(_check_listen)] = Field(
        "127.0.0.1:8125", validation_alias=_var("STATSD_LISTEN")
    )
    statsd_prefix: Annotated[str, AfterValidator(_check_prefix)] = Field(
        "linkerd", validation_alias=_var("STATSD_PREFIX")
    )
    flush_interval_ms: Annotated[PositiveDurationMs, AfterValidator(_check_flush)] = Field(
        10_000, validation_alias=_var("FLUSH_INTERVAL")
    )
    spool_dir: str = Field("./meshalert-spool", validation_alias=_var("SPOOL_DIR"))
    # With the spool directory's other files (see disk_budget_bytes) this stays well below
    # the DaemonSet's 512Mi emptyDir sizeLimit: the kubelet evicts a pod that exceeds it.
    spool_max_bytes: SpoolBytes = Field(
        "320MiB",  # validated like the variable
        validate_default=True,
        validation_alias=_var("SPOOL_MAX_BYTES"),
    )
    dead_letter_max_bytes: SpoolBytes = Field(
        "32MiB",
        validate_default=True,
        validation_alias=_var("DEAD_LETTER_MAX_BYTES"),
    )
    host: str = Field(
        default_factory=socket.gethostname, min_length=1, validation_alias=_var("HOST")
    )
    max_series: int = Field(100_000, ge=1, validation_alias=_var("MAX_SERIES"))
    service_depth: Annotated[str, AfterValidator(_check_depths)] = Field(
        "", validation_alias=_var("SERVICE_DEPTH")
    )
    service_namespace: Annotated[str, AfterValidator(_check_namespaces)] = Field(
        "", validation_alias=_var("SERVICE_NAMESPACE")
    )
    write_batch_lines: int = Field(
        5000, ge=1, le=1_000_000, validation_alias=_var("WRITE_BATCH_LINES")
    )
    linkerd_admin_url: Annotated[str, AfterValidator(_check_admin_url)] | None = Field(
        None, validation_alias=_var("LINKERD_ADMIN_URL")
    )
    """Pull mode: poll Linkerd's ``/admin/metrics.json`` here each flush (off when unset)."""

    @property
    def listen(self) -> tuple[str, int]:
        return parse_listen(self.statsd_listen)

    @property
    def spool_max_bytes_value(self) -> int:
        return int(self.spool_max_bytes)

    @property
    def dead_letter_max_bytes_value(self) -> int:
        return int(self.dead_letter_max_bytes)

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
