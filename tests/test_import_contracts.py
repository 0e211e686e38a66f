"""The import direction (README "Architecture"): import-linter's contracts in pyproject.toml.

The pure core imports no I/O adapter, entry points sit above the sidecar and the sidecar
above the meshalert library, and no sibling packages import each other in a cycle.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from importlinter.cli import lint_imports

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_every_import_contract_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{len(_contracts())} kept, 0 broken" in out


def test_the_pure_core_may_not_import_io_adapters_or_their_libraries() -> None:
    core = _contracts()["pure-core"]
    assert {
        "ingest_sidecar.statsd",
        "ingest_sidecar.linkerd_names",
        "ingest_sidecar.aggregate",
        "meshalert.histogram",
        "meshalert.alerts",
        "meshalert.rules.models",
        "meshalert.queries",
    } <= set(core["source_modules"])
    assert {
        "meshalert.stores",
        "meshalert.backends",
        "meshalert.wiring",
        "meshalert.notify.slack",
        "meshalert.notify.sns",
        "meshalert.notify.webhook",
        "boto3",
        "influxdb_client",
        "sqlite3",
        "socket",
        "urllib",
    } <= set(core["forbidden_modules"])


def test_layers_put_the_entry_points_on_top_and_cycles_are_checked() -> None:
    contracts = _contracts()
    assert contracts["layers"]["layers"] == [
        "meshalert_cli | functions",
        "ingest_sidecar",
        "meshalert",
    ]
    assert set(contracts["acyclic"]["ancestors"]) == {
        "meshalert",
        "ingest_sidecar",
        "meshalert_cli",
        "functions",
    }


def test_no_contract_excuses_an_import() -> None:
    # An ignored import is a cycle or a layer breach kept on purpose; there are none left.
    assert {name: c.get("ignore_imports") for name, c in _contracts().items()} == {
        name: None for name in _contracts()
    }
