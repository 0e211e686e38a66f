"""The composition root alone opens adapters: product code outside ``meshalert/backends``
and ``meshalert/wiring.py`` imports only a backend's URL module (its config value)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("meshalert", "meshalert_cli", "functions", "ingest_sidecar")
BACKENDS = {p.name for p in (ROOT / "meshalert" / "backends").iterdir() if p.is_dir()}
ALLOWED_FROM_OUTSIDE = {"url"}


# The heartbeat's own store adapters, which the heartbeat rewrite removes.
def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def adapter_imports_outside_the_root() -> list[str]:
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("meshalert/backends/") or rel == "meshalert/wiring.py":
                continue
            for name in _imported_modules(path):
                parts = name.split(".")
                if (
                    parts[:2] == ["meshalert", "backends"]
                    and len(parts) >= 4
                    and parts[2] in BACKENDS
                    and parts[3] not in ALLOWED_FROM_OUTSIDE
                ):
                    found.append(f"{rel}: {name}")
    return found


def test_only_the_composition_root_imports_adapters() -> None:
    assert {"sqlite", "influxdb1", "influxdb2", "dynamodb", "memory"} <= BACKENDS
    assert adapter_imports_outside_the_root() == []


def test_the_check_sees_an_adapter_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from meshalert.backends.sqlite.writer import SqliteWriter\n")
    assert "meshalert.backends.sqlite.writer" in _imported_modules(module)
