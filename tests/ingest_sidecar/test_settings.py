from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ingest_sidecar.settings import SettingsError, SidecarSettings, parse_listen, parse_size_bytes


def test_defaults() -> None:
    s = SidecarSettings.from_env({})
    assert s.listen == ("127.0.0.1", 8125)
    assert s.flush_interval_ms == 10_000
    assert s.statsd_prefix == "linkerd"
    assert s.store_url.get_secret_value() == "sqlite:///./meshalert.db"
    assert s.spool_max_bytes_value == 320 * 1024 * 1024
    assert s.dead_letter_max_bytes_value == 32 * 1024 * 1024
    assert s.host and s.write_batch_lines == 5000


def test_from_env_values() -> None:
    s = SidecarSettings.from_env(
        {
            "MESHALERT_STATSD_LISTEN": "[::1]:9125",
            "MESHALERT_FLUSH_INTERVAL": "500ms",
            "MESHALERT_SERVICE_DEPTH": "incoming=3, outgoing=1",
            "MESHALERT_SERVICE_NAMESPACE": "outgoing=production",
            "MESHALERT_SPOOL_MAX_BYTES": "64MB",
            "MESHALERT_HOST": "node-7",
            "MESHALERT_MAX_SERIES": "20000",
            "MESHALERT_STORE": "influxdb2://db:8086?org=o&bucket=b",
            "MESHALERT_INFLUXDB_TOKEN": "tok-very-secret",
            "MESHALERT_STATSD_PREFIX": "",
        }
    )
    assert s.listen == ("::1", 9125) and s.flush_interval_ms == 500
    assert s.service_depths == {"incoming": 3, "outgoing": 1}
    assert s.service_namespaces == {"outgoing": "production"}
    assert s.spool_max_bytes_value == 64_000_000 and s.max_series == 20_000
    assert s.store.token == "tok-very-secret"  # type: ignore[union-attr]
    assert "tok-very-secret" not in repr(s) and s.secrets() == ["tok-very-secret"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MESHALERT_STATSD_LISTEN", "8125"),
        ("MESHALERT_STATSD_LISTEN", "host:99999"),
        ("MESHALERT_FLUSH_INTERVAL", "ten"),
        ("MESHALERT_FLUSH_INTERVAL", "10ms"),
        ("MESHALERT_STORE", "mysql://x"),
        ("MESHALERT_SPOOL_MAX_BYTES", "lots"),
        ("MESHALERT_MAX_SERIES", "0"),
        ("MESHALERT_SERVICE_DEPTH", "incoming"),
        ("MESHALERT_SERVICE_NAMESPACE", "outgoing"),
        ("MESHALERT_WRITE_BATCH_LINES", "-1"),
    ],
)
def test_errors_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        SidecarSettings.from_env({variable: value, "MESHALERT_INFLUXDB_TOKEN": "hidden-tok"})


def test_secret_never_in_errors() -> None:
    with pytest.raises(SettingsError) as info:
        SidecarSettings.from_env(
            {"MESHALERT_STORE": "influxdb1://:8086/db", "MESHALERT_INFLUXDB_PASSWORD": "pw-secret"}
        )
    assert "pw-secret" not in str(info.value)


def test_parsers() -> None:
    assert parse_listen("0.0.0.0:0") == ("0.0.0.0", 0)
    assert parse_size_bytes("512MiB") == parse_size_bytes("512M") == 512 * 1024**2


_K8S_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "M": 1000**2, "G": 1000**3}


def _k8s_bytes(quantity: str) -> int:
    for suffix, factor in _K8S_UNITS.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def test_spool_directory_fits_the_daemonsets_empty_dir_with_room_to_spare() -> None:
    """The kubelet evicts a pod whose emptyDir exceeds its sizeLimit: everything the sidecar
    may keep in the spool directory (with the manifest's own settings) stays below 90 % of it."""
    manifest = Path(__file__).resolve().parents[2] / "infra" / "k8s" / "daemonset.yaml"
    daemonset = next(
        d for d in yaml.safe_load_all(manifest.read_text()) if d and d["kind"] == "DaemonSet"
    )
    pod = daemonset["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "meshalert-sidecar"]
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    (mount,) = [
        m for m in container["volumeMounts"] if m["mountPath"] == env["MESHALERT_SPOOL_DIR"]
    ]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    limit = _k8s_bytes(volume["emptyDir"]["sizeLimit"])
    settings = SidecarSettings.from_env(env)
    assert settings.spool_max_bytes_value < limit
    assert settings.disk_budget_bytes() <= 0.9 * limit, (settings.disk_budget_bytes(), limit)
