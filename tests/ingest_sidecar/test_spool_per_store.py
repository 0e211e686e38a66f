"""One spool per store: the subdirectory name, and batches left by a version without it."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from ingest_sidecar.settings import SidecarSettings, spool_subdirectory
from ingest_sidecar.sidecar import Sidecar
from meshalert.backends.urls import parse_store_url


def test_the_spool_name_follows_the_store_not_its_credentials(tmp_path: Path) -> None:
    with_password = parse_store_url("influxdb1://ops:s3cret@db.example:8086/linkerd?rp=week")
    other_password = parse_store_url("influxdb1://ops:other@db.example:8086/linkerd?rp=week")
    name = spool_subdirectory(with_password)
    assert name == spool_subdirectory(other_password)
    assert name.startswith("influxdb1-") and "s3cret" not in name and "ops" not in name
    assert name != spool_subdirectory(parse_store_url("influxdb1://db.example:8086/other"))
    assert name != spool_subdirectory(
        parse_store_url("influxdb2://db.example:8086?org=o&bucket=linkerd")
    )
    relative = spool_subdirectory(parse_store_url("sqlite:///./m.db"))
    assert relative != spool_subdirectory(parse_store_url(f"sqlite:///{tmp_path}/m.db"))
    settings = SidecarSettings.from_env(
        {}, store_url="sqlite:///./m.db", spool_dir=str(tmp_path / "spool")
    )
    assert settings.spool_path == str(tmp_path / "spool" / relative)


def test_batches_spooled_without_a_store_are_reported_not_replayed(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    root.mkdir()
    (root / "segment-000000000001.spool").write_bytes(b"MSP1")
    settings = SidecarSettings.from_env(
        {},
        statsd_listen="127.0.0.1:0",
        store_url=f"sqlite:///{tmp_path / 'm.db'}",
        spool_dir=str(root),
    )
    sidecar = Sidecar(settings)
    with capture_logs() as logs:
        sidecar.start()
        sidecar.stop()
    (warning,) = [e for e in logs if e["event"] == "spool_without_store_not_replayed"]
    assert warning["segments"] == 1 and warning["directory"] == str(root)
    assert settings.spool_path in warning["hint"]
    started = next(e for e in logs if e["event"] == "sidecar_started")
    assert started["spool_replay_batches"] == 0
