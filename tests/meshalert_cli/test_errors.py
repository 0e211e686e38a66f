"""Expected failures are one line on stderr naming what to change, never a traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshalert.alert_classes import AlertClass
from meshalert.alerts.model import AlertState
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert.state.protocols import HistoryEntry
from tests.fixtures.influxd import free_port
from tests.meshalert_cli.cli import clean_env, command, meshalert


def _one_line(done: subprocess.CompletedProcess[str], command_name: str) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "meshalert.stopped" not in done.stderr and "sidecar_started" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"meshalert {command_name}: ")
    return lines[0]


def test_backtest_with_an_unreachable_influxdb(tmp_path: Path) -> None:
    url = f"influxdb1://127.0.0.1:{free_port()}/linkerd"
    done = meshalert(["backtest", "--store", url, "--since", "5m"], tmp_path)
    line = _one_line(done, "backtest")
    assert f"127.0.0.1:{url.split(':')[2].split('/', maxsplit=1)[0]}/query failed" in line
    assert "Connection refused" in line


def test_dynamodb_state_without_a_region(tmp_path: Path) -> None:
    done = meshalert(["status", "--state", "dynamodb://alerts"], tmp_path)
    line = _one_line(done, "status")
    assert "no AWS region configured" in line and "AWS_REGION" in line


def test_a_routes_typo_names_the_variable_and_the_key(tmp_path: Path) -> None:
    env = clean_env({"MESHALERT_ROUTES": "- match: {severty: [critical]}\n  channels: [slack]"})
    done = meshalert(["run", "--listen", "127.0.0.1:0"], tmp_path, env)
    line = _one_line(done, "run")
    assert line == (
        "meshalert run: MESHALERT_ROUTES: routes.0.match.severty: unknown key "
        "(did you mean 'severity'?)"
    )
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing created


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_statsd_port_in_use(tmp_path: Path, busy_port: int) -> None:
    done = meshalert(["run", "--listen", f"127.0.0.1:{busy_port}"], tmp_path)
    line = _one_line(done, "run")
    assert f"cannot listen for statsd on 127.0.0.1:{busy_port} (UDP)" in line
    assert "Address already in use" in line
    assert "--listen HOST:PORT or MESHALERT_STATSD_LISTEN" in line


def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    """``meshalert history --json | head -1``: the reader leaves early, no traceback."""
    store = SqliteStateStore(tmp_path / "state.db")
    now = int(time.time() * 1000)
    store.append_history(  # about 1 MB of JSON: far more than a pipe holds
        [
            HistoryEntry(
                now - i, AlertClass.LATENCY, f"svc-{i}", AlertState.OK, AlertState.PENDING,
                {"query": "x" * 500}, f"k{i}",
            )
            for i in range(2000)
        ]
    )  # fmt: skip
    store.close()
    proc = subprocess.Popen(
        [*command(), "history", "--json", "--state", f"sqlite:///{tmp_path / 'state.db'}"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"[\n"
    proc.stdout.close()  # what `head -1` does once it has its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""


def test_json_output_is_still_whole_when_read_to_the_end(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    store.close()
    done = meshalert(
        ["history", "--json", "--state", f"sqlite:///{tmp_path / 'state.db'}"], tmp_path
    )
    assert done.returncode == 0 and json.loads(done.stdout) == []
