"""The settings models against README's Configuration table, the sources' precedence, the
unknown-variable warning and the rule that only the settings modules read the environment."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic_settings import BaseSettings

from ingest_sidecar.settings import SidecarSettings
from meshalert.settings import (
    SIDECAR_VARIABLES,
    CliSettings,
    LambdaSettings,
    MeshalertSettings,
    Settings,
    SettingsError,
    known_variables,
    unknown_variables,
    warn_unknown_variables,
)

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
MODELS: tuple[type[MeshalertSettings], ...] = (
    Settings,
    LambdaSettings,
    CliSettings,
    SidecarSettings,
)
DOCUMENTED_ELSEWHERE = {
    "MESHALERT_SSM_PREFIX": "Deploying: how each setting reaches the functions",
    "MESHALERT_HEARTBEAT_INGEST_STALE": "Deploying: the heartbeat",
    "MESHALERT_HEARTBEAT_EVALUATION_STALE": "Deploying: the heartbeat",
    "MESHALERT_AUTHOR": "Silences",
}
NO_VALUE = {"", "none", "hostname", "(off)", "all channels"}
"""Default cells that name no value: the field's default is None, empty or computed."""


def _owner(variable: str) -> tuple[type[MeshalertSettings], str]:
    for model in MODELS:
        for field, name in model.variables().items():
            if name == variable:
                return model, field
    raise AssertionError(f"README names {variable}, which no settings model reads")


def readme_table() -> dict[str, str]:
    """``MESHALERT_<NAME>`` -> its default cell (one name's part of it)."""
    section = README.split("## Configuration", 1)[1]
    table_text = section[section.index("| variable | default | meaning |") :].split("\n\n")[0]
    rows = [line for line in table_text.splitlines() if line.startswith("| `")]
    table: dict[str, str] = {}
    for row in rows:
        names_cell, default_cell = (c.strip() for c in row.strip("|").split("|")[:2])
        names = re.findall(r"`([A-Z0-9_<>]+)`", names_cell)
        parts = [p.strip() for p in default_cell.split(", ")] if default_cell else []
        if len(parts) != len(names):
            parts = parts or [""]
            assert len(parts) == 1, row
            parts = parts * len(names)
        table.update({f"MESHALERT_{n}": p for n, p in zip(names, parts, strict=True)})
    return table


def test_the_table_parses() -> None:
    table = readme_table()
    assert table["MESHALERT_EVAL_INTERVAL"] == "`1m`"
    assert table["MESHALERT_SPOOL_MAX_BYTES"] == "`320MiB`"
    assert table["MESHALERT_GROUP_BY"] == "`severity`"
    assert len(table) > 30


def test_every_variable_in_the_readme_table_is_a_field_with_that_default() -> None:
    for variable, cell in readme_table().items():
        if variable.startswith("MESHALERT_RULE__"):
            assert "rule_overrides" in Settings.model_fields
            continue
        model, field = _owner(variable)
        default = getattr(model.from_env({}), field)
        if cell.strip("`").lower() in NO_VALUE:
            assert default in (None, "", {}) or field == "host", (variable, default)
            continue
        text = cell.strip("`")
        documented: Any = getattr(model.from_env({variable: text}), field)
        assert documented == default, (variable, text, documented, default)


def test_every_field_is_in_the_readme() -> None:
    table = readme_table()
    for model in MODELS:
        for field, variable in model.variables().items():
            if variable in DOCUMENTED_ELSEWHERE:
                assert variable in README, (variable, DOCUMENTED_ELSEWHERE[variable])
            else:
                assert variable in table, f"{model.__name__}.{field}: {variable} not in README"


def test_the_sidecar_list_in_meshalert_settings_matches_the_sidecar_model() -> None:
    shared = set(MeshalertSettings.variables().values()) | set(Settings.variables().values())
    assert set(SidecarSettings.variables().values()) - shared == set(SIDECAR_VARIABLES)


def test_unknown_variables_are_warned_about_with_the_closest_known_name() -> None:
    env = {
        "MESHALERT_EVAL_INTERVL": "1m",
        "MESHALERT_SPOOL_MAX_BYTE": "1MiB",
        "MESHALERT_ZZZZZZZZ": "x",
        "MESHALERT_STORE": "sqlite:///x.db",
        "MESHALERT_RULE__LATENCY__ABOVE_MS": "300",
        "MESHALERT_TEST_INFLUXDB2_URL": "http://x",
        "HOME": "/root",
    }
    with structlog.testing.capture_logs() as logs:
        warnings = warn_unknown_variables(env)
    assert warnings == unknown_variables(env)
    assert [entry["detail"] for entry in logs] == [
        "unknown variable MESHALERT_EVAL_INTERVL is ignored; did you mean MESHALERT_EVAL_INTERVAL?",
        "unknown variable MESHALERT_SPOOL_MAX_BYTE is ignored; "
        "did you mean MESHALERT_SPOOL_MAX_BYTES?",
        "unknown variable MESHALERT_ZZZZZZZZ is ignored (see README: Configuration)",
    ]
    assert {entry["event"] for entry in logs} == {"settings.unknown_variable"}
    assert {entry["log_level"] for entry in logs} == {"warning"}


def test_every_model_variable_is_known() -> None:
    for model in MODELS:
        assert set(model.variables().values()) <= set(known_variables())


class FakeSsm:
    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = parameters
        self.calls: list[list[str]] = []

    def get_parameters(self, Names: list[str], WithDecryption: bool) -> dict[str, Any]:  # noqa: N803
        assert WithDecryption
        self.calls.append(Names)
        return {
            "Parameters": [
                {"Name": n, "Value": v} for n, v in self.parameters.items() if n in Names
            ]
        }


def test_lambda_sources_keyword_then_environment_then_ssm_then_defaults() -> None:
    ssm = FakeSsm(
        {
            "/m/influxdb-token": "tok-from-ssm",
            "/m/slack-webhook-url": "https://hooks.slack.test/from-ssm",
            "/m/webhook-url": "https://hook.test/from-ssm",
        }
    )
    regions: list[str | None] = []

    def client(region: str | None) -> FakeSsm:
        regions.append(region)
        return ssm

    env = {
        "MESHALERT_SSM_PREFIX": "/m/",
        "MESHALERT_STORE": "influxdb2://db:8086?org=o&bucket=b",
        "MESHALERT_WEBHOOK_URL": "https://hook.test/from-env",  # the environment wins
        "MESHALERT_SLACK_WEBHOOK_URL": "",  # empty counts as unset: SSM fills it
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    s = LambdaSettings.load(env, ssm_client=client)
    assert s.influxdb_token is not None and s.influxdb_token.get_secret_value() == "tok-from-ssm"
    assert s.slack_webhook_url is not None
    assert s.slack_webhook_url.get_secret_value() == "https://hooks.slack.test/from-ssm"
    assert s.webhook_url is not None
    assert s.webhook_url.get_secret_value() == "https://hook.test/from-env"
    assert s.influxdb_password is None  # no parameter: not configured
    assert s.aws_region == "eu-west-1" and regions == ["eu-west-1"] and len(ssm.calls) == 1
    for text in (repr(s), str(s)):
        assert "from-ssm" not in text and "tok-" not in text and "from-env" not in text


def test_no_ssm_prefix_means_no_ssm_client() -> None:
    def client(region: str | None) -> None:
        raise AssertionError("SSM must not be asked")

    assert LambdaSettings.load({}, ssm_client=client).ssm_prefix is None


def test_ssm_failure_names_the_prefix() -> None:
    class Refusing:
        def get_parameters(self, **_: object) -> None:
            raise RuntimeError("AccessDenied")

    with pytest.raises(SettingsError, match=r"MESHALERT_SSM_PREFIX=/m/: cannot read"):
        LambdaSettings.load({"MESHALERT_SSM_PREFIX": "/m/"}, ssm_client=lambda r: Refusing())


def test_durations_and_sizes_are_parsed_once_into_numbers() -> None:
    s = Settings.from_env({"MESHALERT_EVAL_INTERVAL": "1m30s", "MESHALERT_WINDOW_GRACE": "0s"})
    assert (s.eval_interval_ms, s.window_grace_ms, s.window_settle_ms) == (90_000, 0, 10_000)
    side = SidecarSettings.from_env({"MESHALERT_SPOOL_MAX_BYTES": "512M"})
    assert int(side.spool_max_bytes) == 512 * 1024**2  # M is MiB here, as before
    with pytest.raises(SettingsError, match="MESHALERT_SPOOL_MAX_BYTES: bad size 'lots'"):
        SidecarSettings.from_env({"MESHALERT_SPOOL_MAX_BYTES": "lots"})


def test_heartbeat_thresholds_are_lambda_settings() -> None:
    from functions.heartbeat import heartbeat_policy

    s = LambdaSettings.from_env({"MESHALERT_HEARTBEAT_INGEST_STALE": "10m"})
    policy = heartbeat_policy(s)
    assert policy.ingest_stale_ms == 600_000
    assert policy.source == "env:MESHALERT_HEARTBEAT_INGEST_STALE"
    with pytest.raises(SettingsError, match="MESHALERT_HEARTBEAT_EVALUATION_STALE: bad"):
        LambdaSettings.from_env({"MESHALERT_HEARTBEAT_EVALUATION_STALE": "soon"})


def test_status_listen_empty_turns_the_page_off_unset_keeps_the_default() -> None:
    assert CliSettings.from_env({"MESHALERT_STATUS_LISTEN": ""}).status_listen == ""
    from meshalert_cli.status_page import DEFAULT_LISTEN

    assert CliSettings.from_env({}).status_listen == DEFAULT_LISTEN == "127.0.0.1:9464"
    assert CliSettings.from_env({"USER": "ana"}).author == "ana"
    assert CliSettings.from_env({"USER": "ana", "MESHALERT_AUTHOR": "bo"}).author == "bo"


def test_only_the_settings_modules_read_the_environment() -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "*.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    product = ("meshalert/", "ingest_sidecar/", "functions/", "meshalert_cli/")
    allowed = {"meshalert/settings.py"}
    readers = [
        f
        for f in files
        if f.startswith(product)
        and f not in allowed
        and re.search(r"os\.environ|getenv\(", (REPO / f).read_text("utf-8"))
    ]
    assert readers == []


def test_models_share_one_base() -> None:
    for model in MODELS:
        assert issubclass(model, MeshalertSettings) and issubclass(model, BaseSettings)
