"""``meshalert silence``: the real console script on a real SQLite state file, and the same
commands in-process on DynamoDB under moto."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert_cli.main import main
from tests.meshalert.state.conftest import TABLE, aws_env, dynamodb_client
from tests.meshalert_cli.cli import clean_env, meshalert

__all__ = ["aws_env", "dynamodb_client"]


def test_add_list_expire_audit_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    env = clean_env({"USER": "alice", "MESHALERT_STATE": url})
    added = meshalert(
        [
            "silence",
            "add",
            "--service",
            "production/checkout",
            "--class",
            "latency",
            "--for",
            "2h",
            "--reason",
            "deploy",
        ],
        tmp_path,
        env,
    )
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.split()[1]
    assert "production/checkout (latency)" in added.stdout

    glob = meshalert(
        [
            "silence",
            "add",
            "--service",
            "staging/*",
            "--for",
            "30m",
            "--reason",
            "load test",
            "--author",
            "bob",
        ],
        tmp_path,
        env,
    )
    assert glob.returncode == 0, glob.stderr

    # What the engine reads: both silences, with who added them.
    store = SqliteStateStore(tmp_path / "state.db")
    now = int(time.time() * 1000)
    found = {s.service: s for s in store.silences(now_ms=now)}
    assert found["production/checkout"].alert_class is AlertClass.LATENCY
    assert found["production/checkout"].author == "alice"
    assert 2 * 3_600_000 - 120_000 < found["production/checkout"].end_ms - now <= 2 * 3_600_000
    assert found["staging/*"].alert_class is None and found["staging/*"].author == "bob"
    store.close()

    listed = meshalert(["silence", "list", "--json"], tmp_path, env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {r["service"]: r["status"] for r in rows} == {
        "production/checkout": "active",
        "staging/*": "active",
    }

    expired = meshalert(["silence", "expire", silence_id, "--author", "carol"], tmp_path, env)
    assert expired.returncode == 0, expired.stderr
    assert f"silence {silence_id} expired by carol" in expired.stdout
    again = meshalert(["silence", "expire", silence_id], tmp_path, env)
    assert again.returncode == 2 and "already ended" in again.stderr
    unknown = meshalert(["silence", "expire", "nope"], tmp_path, env)
    assert unknown.returncode == 2 and "no silence with id 'nope'" in unknown.stderr

    table = meshalert(["silence", "list"], tmp_path, env)
    assert "staging/*" in table.stdout and "production/checkout" not in table.stdout
    everything = meshalert(["silence", "list", "--all"], tmp_path, env)
    assert "(expired by carol)" in everything.stdout and "expired" in everything.stdout

    audit = meshalert(["silence", "audit", "--json"], tmp_path, env)
    events = [(e["silence"], e["action"], e["author"]) for e in json.loads(audit.stdout)]
    assert (silence_id, "added", "alice") in events
    assert (silence_id, "expired", "carol") in events
    assert [e[1] for e in events].count("added") == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--service", "a/b", "--reason", "x"], "give exactly one of --for and --end"),
        (["--service", "a/b", "--reason", "x", "--for", "1h", "--end", "now"], "exactly one"),
        (["--service", "a b", "--reason", "x", "--for", "1h"], "argument --service"),
        (["--service", "a/b", "--reason", "x", "--for", "soon"], "argument --for"),
        (
            ["--service", "a/b", "--reason", "x", "--end", "2026-01-01T00:00:00"],
            "has no offset",
        ),
        (
            ["--service", "a/b", "--reason", "x", "--end", "2000-01-01T00:00:00Z"],
            "must end after it starts",
        ),
        (
            [
                "--service",
                "a/b",
                "--reason",
                "x",
                "--start",
                "1999-01-01T00:00:00Z",
                "--end",
                "2000-01-01T00:00:00Z",
            ],
            "would already be over",
        ),
        (["--service", "a/b", "--reason", "   ", "--for", "1h"], "--reason must be"),
    ],
)
def test_bad_input_is_one_line_naming_the_option(
    args: list[str], message: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    done = meshalert(["silence", "add", *args, "--state", url], tmp_path)
    assert done.returncode == 2
    assert message in done.stderr


def test_list_on_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    done = meshalert(["silence", "list"], tmp_path)
    assert done.returncode == 2 and "no state database" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_same_commands_on_dynamodb(
    dynamodb_client: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "dana")
    url = f"dynamodb://{TABLE}"
    assert (
        main(
            [
                "silence",
                "add",
                "--service",
                "prod/*",
                "--for",
                "1h",
                "--reason",
                "x",
                "--state",
                url,
            ]
        )
        == 0
    )
    silence_id = capsys.readouterr().out.split()[1]
    assert main(["silence", "list", "--json", "--state", url]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["id"], row["author"], row["status"]) == (silence_id, "dana", "active")
    assert main(["silence", "expire", silence_id, "--state", url]) == 0
    assert main(["silence", "audit", "--json", "--state", url]) == 0
    capsys.readouterr()
    assert main(["silence", "audit", "--json", "--state", url]) == 0
    events = json.loads(capsys.readouterr().out)
    assert [(e["action"], e["author"]) for e in events] == [("added", "dana"), ("expired", "dana")]


def test_history_marks_silenced_transitions(tmp_path: Path) -> None:
    from meshalert.alerts.model import AlertState
    from meshalert.state.protocols import HistoryEntry

    store = SqliteStateStore(tmp_path / "state.db")
    now = int(time.time() * 1000)
    store.append_history(
        [
            HistoryEntry(
                now - 60_000,
                AlertClass.LATENCY,
                "production/checkout",
                AlertState.PENDING,
                AlertState.FIRING,
                {"observed": 900.0, "suppressed": "silenced by ab12: deploy"},
            ),
            HistoryEntry(
                now - 30_000,
                AlertClass.LATENCY,
                "production/cart",
                AlertState.PENDING,
                AlertState.FIRING,
                {"observed": 900.0},
            ),
        ]
    )
    store.close()
    done = meshalert(["history", "--state", f"sqlite:///{tmp_path}/state.db"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[2]: line for line in done.stdout.splitlines()[1:]}
    assert "pending -> firing (silenced)" in lines["production/checkout"]
    assert "(silenced)" not in lines["production/cart"]
