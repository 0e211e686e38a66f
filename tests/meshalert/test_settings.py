from __future__ import annotations

import pytest

from meshalert.backends.dynamodb.url import DynamoDBState
from meshalert.backends.influxdb1.url import InfluxDB1Store
from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.backends.sqlite.url import SqliteState, SqliteStore
from meshalert.settings import Settings, SettingsError, flag_name


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.store == SqliteStore(path="./meshalert.db")
    assert s.state_config == SqliteState(path="./meshalert-state.db")
    assert (s.eval_interval_ms, s.retention_ms, s.renotify_ms) == (
        60_000,
        7 * 86_400_000,
        4 * 3_600_000,
    )
    assert s.slack_webhook_url is None and s.webhook_url is None and s.sns_topic_arn is None


def test_every_variable_is_read() -> None:
    env = {
        "MESHALERT_STORE": "influxdb2://influx:8086?org=o&bucket=b",
        "MESHALERT_INFLUXDB_TOKEN": "tok-123",
        "MESHALERT_EVAL_INTERVAL": "30s",
        "MESHALERT_STATE": "dynamodb://meshalert-state",
        "MESHALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.test/T/B/x",
        "MESHALERT_SNS_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:alerts",
        "MESHALERT_WEBHOOK_URL": "https://example.test/hook",
        "MESHALERT_RULES": "defaults: {}",
        "MESHALERT_RULES_FILE": "rules.yaml",
        "MESHALERT_RULES_SSM_PARAMETER": "/meshalert/rules",
        "MESHALERT_RETENTION": "30d",
        "MESHALERT_RENOTIFY": "2h",
    }
    s = Settings.from_env(env)
    store = s.store
    assert isinstance(store, InfluxDB2Store) and store.token == "tok-123"
    assert s.state_config == DynamoDBState(table="meshalert-state")
    assert s.eval_interval_ms == 30_000 and s.retention_ms == 30 * 86_400_000
    assert s.renotify_ms == 7_200_000
    assert s.sns_topic_arn == "arn:aws:sns:eu-west-1:123456789012:alerts"
    assert s.slack_webhook_url is not None
    assert s.slack_webhook_url.get_secret_value() == "https://hooks.slack.test/T/B/x"
    assert (s.rules, s.rules_file, s.rules_ssm_parameter) == (
        "defaults: {}",
        "rules.yaml",
        "/meshalert/rules",
    )


def test_influxdb1_credentials_from_the_environment() -> None:
    env = {
        "MESHALERT_STORE": "influxdb1://db:8086/telemetry",
        "MESHALERT_INFLUXDB_USERNAME": "reader",
        "MESHALERT_INFLUXDB_PASSWORD": "hunter2",
    }
    store = Settings.from_env(env).store
    assert isinstance(store, InfluxDB1Store)
    assert (store.username, store.password) == ("reader", "hunter2")


def test_flag_beats_env_beats_default() -> None:
    env = {"MESHALERT_EVAL_INTERVAL": "30s", "MESHALERT_RETENTION": "3d"}
    s = Settings.from_env(env, {"eval_interval": "10s", "retention": None})
    assert (s.eval_interval_ms, s.retention_ms, s.renotify_ms) == (
        10_000,
        3 * 86_400_000,
        4 * 3_600_000,
    )


def test_empty_variables_count_as_unset() -> None:
    s = Settings.from_env({"MESHALERT_SLACK_WEBHOOK_URL": "", "MESHALERT_STORE": " "})
    assert s.slack_webhook_url is None
    assert s.store == SqliteStore(path="./meshalert.db")


def test_secrets_never_in_repr_or_str() -> None:
    env = {
        "MESHALERT_STORE": "influxdb1://user:pw-in-url@db:8086/x",
        "MESHALERT_INFLUXDB_TOKEN": "tok-secret",
        "MESHALERT_INFLUXDB_PASSWORD": "pw-secret",
        "MESHALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.test/slack-secret",
        "MESHALERT_WEBHOOK_URL": "https://example.test/hook-secret",
    }
    s = Settings.from_env(env)
    assert s.store_display == "influxdb1://user:***@db:8086/x"
    assert Settings.from_env({}).store_display == "sqlite:///./meshalert.db"
    for text in (repr(s), str(s), s.model_dump_json(), repr(s.store), s.store_display):
        for secret in ("tok-secret", "pw-secret", "slack-secret", "hook-secret", "pw-in-url"):
            assert secret not in text


@pytest.mark.parametrize(
    ("env", "flags", "message"),
    [
        ({"MESHALERT_EVAL_INTERVAL": "soon"}, {}, "MESHALERT_EVAL_INTERVAL: bad duration 'soon'"),
        ({"MESHALERT_RETENTION": "0s"}, {}, "MESHALERT_RETENTION: duration must be longer than 0"),
        ({}, {"eval_interval": "x"}, "--eval-interval: bad duration 'x'"),
        ({"MESHALERT_STORE": "postgres://x"}, {}, "MESHALERT_STORE: unknown store scheme"),
        ({}, {"store_url": "mysql://x"}, "--store: unknown store scheme"),
        ({"MESHALERT_STATE": "dynamodb://x"}, {}, "MESHALERT_STATE: write dynamodb://TABLE"),
        ({"MESHALERT_STATE": "redis://x"}, {}, "MESHALERT_STATE: write sqlite:///"),
        (
            {"MESHALERT_SNS_TOPIC_ARN": "alerts"},
            {},
            "MESHALERT_SNS_TOPIC_ARN: write an SNS topic ARN",
        ),
        ({"MESHALERT_RENOTIFY": "4 hours"}, {}, "MESHALERT_RENOTIFY: bad duration"),
    ],
)
def test_bad_values_name_the_variable(
    env: dict[str, str], flags: dict[str, str | None], message: str
) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env, flags)
    assert str(info.value).startswith(message)


def test_bad_secret_url_error_does_not_echo_it() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"MESHALERT_WEBHOOK_URL": "ftp://hook-secret"})
    assert str(info.value) == "MESHALERT_WEBHOOK_URL: must be an http:// or https:// URL"
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"MESHALERT_STORE": "influxdb1://u:pw-secret@db:8086/"})
    assert "pw-secret" not in str(info.value)
    assert str(info.value).startswith("MESHALERT_STORE:")


def test_unknown_flag_is_rejected() -> None:
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        Settings.from_env({}, {"colour": "red"})


def test_every_setting_has_a_variable_and_a_flag() -> None:
    assert set(Settings.variables()) == set(Settings.model_fields) - {"rule_overrides"}
    assert Settings.variables()["eval_interval_ms"] == "MESHALERT_EVAL_INTERVAL"
    assert flag_name("store_url") == "--store"
    assert flag_name("slack_webhook_url") == "--slack-webhook-url"


def test_every_variable_the_project_reads_is_known() -> None:
    """A name read somewhere but missing from the known list would be warned about as a typo
    (the status page's MESHALERT_STATUS_LISTEN once was), so scan what the project ships."""
    import re
    import subprocess
    from pathlib import Path

    from meshalert.settings import VARIABLE_PREFIXES, known_variables

    root = Path(__file__).resolve().parents[2]
    files = subprocess.run(
        ["git", "ls-files", "--", "*.py", "*.sh", "*.yml", "*.yaml", "Makefile"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    shipped = [f for f in files if not f.startswith("tests/") or f.startswith("tests/fixtures/")]
    names = {
        name
        for f in shipped
        for name in re.findall(r"MESHALERT_[A-Z0-9_]*[A-Z0-9]", (root / f).read_text("utf-8"))
    }
    assert len(names) > 20
    unknown = sorted(
        n
        for n in names
        if n not in known_variables()
        and not n.startswith(VARIABLE_PREFIXES)
        # a stem that code completes, e.g. "MESHALERT_HEARTBEAT_" + name
        and not any(k.startswith(f"{n}_") for k in (*known_variables(), *VARIABLE_PREFIXES))
    )
    assert unknown == []
