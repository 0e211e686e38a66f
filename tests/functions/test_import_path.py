"""The Lambda cold start: what importing the handlers and reading the settings loads.

Each check runs in a fresh interpreter, so modules this test session already imported
cannot hide a regression (see benchmarks/cold_start.py for the timings).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("botocore", "boto3", "yaml", "influxdb_client", "numpy", "pandas")
"""Loaded only when a setting needs them (AWS state or SNS, rules documents, InfluxDB)."""

_PROBE = """
import json, sys
{code}
print(json.dumps(sorted(m for m in {heavy!r} if sys.modules.get(m) is not None)))
"""


def _loaded(code: str, env: dict[str, str] | None = None) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MESHALERT_", "AWS_"))}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(code=code, heavy=HEAVY)],
        cwd=REPO,
        env={**clean, **(env or {}), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    "module", ["meshalert.settings", "functions.evaluate", "functions.heartbeat"]
)
def test_importing_the_lambda_path_loads_no_heavy_module(module: str) -> None:
    assert _loaded(f"import {module}") == []


def test_reading_the_lambda_settings_loads_no_heavy_module() -> None:
    code = (
        "from meshalert.settings import LambdaSettings\n"
        "s = LambdaSettings.load(ssm_client=lambda region: 1/0)\n"
        "assert s.eval_interval_ms == 30_000 and s.history_enabled()\n"
    )
    env = {"MESHALERT_EVAL_INTERVAL": "30s", "MESHALERT_GROUP_BY": "class"}
    assert _loaded(code, env) == []


def test_the_probe_sees_a_heavy_module_when_a_setting_needs_it() -> None:
    """Routes are JSON or YAML: giving them loads YAML (so the checks above can fail)."""
    code = "from meshalert.settings import Settings\nSettings.from_env()\n"
    assert _loaded(code, {"MESHALERT_ROUTES": "routes: []"}) == ["yaml"]


@pytest.mark.parametrize("handler", ["evaluate", "heartbeat"])
def test_building_an_env_only_container_loads_no_heavy_module(handler: str, tmp_path: Path) -> None:
    """SQLite store and state, no routes, no SSM: the rules package (YAML, botocore) loads
    on the first evaluation, never for the heartbeat."""
    code = f"from functions import runtime, {handler}\ncontainer = runtime.build_container()\n"
    env = {
        "MESHALERT_STORE": f"sqlite:///{tmp_path}/store.db",
        "MESHALERT_STATE": f"sqlite:///{tmp_path}/state.db",
    }
    assert _loaded(code, env) == []
