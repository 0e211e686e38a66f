"""The command line's conventions: help, version, defaults, durations, no abbreviations,
no silently accepted bad settings, and read-only commands that create nothing."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from meshalert_cli.main import build_parser
from tests.meshalert_cli.cli import clean_env, meshalert

COMMANDS = ["run", "demo", "simulate", "status", "history", "rules", "backtest", "silence"]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version_and_bare_command(tmp_path: Path) -> None:
    done = meshalert(["--version"], tmp_path)
    assert done.returncode == 0
    assert re.fullmatch(r"meshalert \d+\.\d+\.\d+\n", done.stdout)
    bare = meshalert([], tmp_path)
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout.startswith("usage: meshalert")
    for name in COMMANDS:
        assert f"\n    {name}" in bare.stdout, name


def test_every_command_is_listed_with_a_description() -> None:
    assert sorted(_subparsers()) == sorted(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_description_examples_and_help_for_every_option(
    name: str, tmp_path: Path
) -> None:
    sub = _subparsers()[name]
    assert sub.description and "\n" not in sub.description.strip()
    assert sub.epilog and sub.epilog.startswith("examples:\n  meshalert ")
    for action in sub._actions:
        if action.option_strings:
            assert action.help, f"{name} {action.option_strings} has no help"
    done = meshalert([name, "--help"], tmp_path)
    assert done.returncode == 0
    text = done.stdout
    assert "examples:" in text
    # Durations are written as durations, never as milliseconds.
    assert not re.search(r"\d{4,} ?ms", text), text
    options = "".join(text.split("options:", 1)[1].split())  # undo argparse's wrapping
    for action in sub._actions:
        if action.option_strings and action.default not in (None, False, [], "==SUPPRESS=="):
            shown = "".join(f"(default: {action.default})".split())
            assert shown in options, f"{name} {action.option_strings}: default not shown"


@pytest.mark.parametrize(
    ("args", "default"),
    [
        (["simulate"], "until Ctrl-C"),
        (["history"], "24h"),
        (["backtest"], "24h"),
        (["simulate"], "10s"),
    ],
)
def test_duration_defaults_are_written_as_durations(
    args: list[str], default: str, tmp_path: Path
) -> None:
    assert default in " ".join(meshalert([*args, "--help"], tmp_path).stdout.split())


def test_no_abbreviated_options(tmp_path: Path) -> None:
    done = meshalert(["status", "--stat", "sqlite:///x/y.db"], tmp_path)
    assert done.returncode == 2
    assert "unrecognized arguments: --stat" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["status", "history"])
def test_read_only_commands_on_a_missing_database_create_nothing(
    command: str, tmp_path: Path
) -> None:
    done = meshalert([command], tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "no state database at ./meshalert-state.db" in done.stderr
    assert list(tmp_path.iterdir()) == []
    elsewhere = meshalert([command, "--state", f"sqlite:///{tmp_path}/sub/s.db"], tmp_path)
    assert elsewhere.returncode == 2 and f"{tmp_path}/sub/s.db" in elsewhere.stderr
    assert list(tmp_path.iterdir()) == []


def test_backtest_on_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    done = meshalert(["backtest", "--since", "5m", "--report", "r.html"], tmp_path)
    assert done.returncode == 2
    assert "no store database at ./meshalert.db" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_log_level_is_an_error(tmp_path: Path) -> None:
    done = meshalert(["rules"], tmp_path, clean_env({"MESHALERT_LOG_LEVEL": "verbose"}))
    assert done.returncode == 2
    assert done.stderr == (
        "meshalert rules: MESHALERT_LOG_LEVEL: unknown level 'verbose'; "
        "use one of debug, info, warning, error, critical\n"
    )
    ok = meshalert(["rules"], tmp_path, clean_env({"MESHALERT_LOG_LEVEL": "Debug"}))
    assert ok.returncode == 0 and ok.stderr == ""


def test_unknown_variable_is_warned_with_the_closest_name(tmp_path: Path) -> None:
    env = clean_env({"MESHALERT_EVAL_INTERVL": "30s", "MESHALERT_RULE__LATENCY__ABOVE_MS": "300"})
    done = meshalert(["rules"], tmp_path, env)
    assert done.returncode == 0
    assert done.stderr == (
        "meshalert rules: warning: unknown variable MESHALERT_EVAL_INTERVL is ignored; "
        "did you mean MESHALERT_EVAL_INTERVAL?\n"
    )


def test_flux_queries_use_flux_comments_and_the_configured_bucket(tmp_path: Path) -> None:
    env = clean_env({"MESHALERT_STORE": "influxdb2://127.0.0.1:8086?org=acme&bucket=mesh"})
    out = meshalert(["rules", "--queries", "flux"], tmp_path, env).stdout
    headings = [line for line in out.splitlines() if line.startswith("// latency, window")]
    assert headings == ["// latency, window 5m"]
    assert "\n-- " not in out and not out.startswith("--")
    assert 'from(bucket: "mesh")' in out and '"linkerd"' not in out
    flag = meshalert(["rules", "--queries", "flux", "--bucket", "other"], tmp_path, env).stdout
    assert 'from(bucket: "other")' in flag and 'from(bucket: "mesh")' not in flag
    default = meshalert(["rules", "--queries", "flux"], tmp_path).stdout
    assert 'from(bucket: "linkerd")' in default
    sql = meshalert(["rules", "--queries", "sql"], tmp_path).stdout
    assert "-- endpoints, window 1m" in sql and "//" not in sql
