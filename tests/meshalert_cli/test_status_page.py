"""The status page in ``meshalert run``: its address settings, and its lifecycle in a real
``meshalert run`` process (served while it runs, gone after SIGTERM)."""

from __future__ import annotations

import argparse
import socket
import urllib.request
from pathlib import Path

import pytest

from meshalert_cli.main import build_parser
from meshalert_cli.status_page import DEFAULT_LISTEN, ENV, listen_address
from tests.e2e.harness import MeshalertRun, base_env, wait_for


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_on_by_default_on_a_loopback_port() -> None:
    assert DEFAULT_LISTEN.startswith("127.0.0.1:")
    assert listen_address(_args(), {}) == ("127.0.0.1", 9464)


def test_the_flag_beats_the_variable_and_empty_or_no_status_page_turn_it_off() -> None:
    env = {ENV: "127.0.0.1:9000"}
    assert listen_address(_args(), env) == ("127.0.0.1", 9000)
    assert listen_address(_args("--status-listen", "[::1]:9001"), env) == ("::1", 9001)
    assert listen_address(_args("--no-status-page"), env) is None
    assert listen_address(_args(), {ENV: ""}) is None
    assert listen_address(_args("--status-listen", ""), env) is None


def test_both_flags_at_once_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _args("--no-status-page", "--status-listen", "127.0.0.1:1")
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["--status-listen", "localhost"], {}, "--status-listen"),
        ([], {ENV: "127.0.0.1:99999"}, ENV),
        ([], {ENV: ":9464"}, ENV),
    ],
)
def test_a_bad_address_names_where_it_came_from(
    argv: list[str], env: dict[str, str], named: str
) -> None:
    with pytest.raises(ValueError, match=f"^{named}: "):
        listen_address(_args(*argv), env)


SHORT_WINDOWS = """
defaults:
  latency: {window: 4s}
  failures: {window: 4s}
  endpoints: {window: 4s}
  retries: {window: 4s}
"""
"""Cycles start once the longest window has passed (the warm-up): keep it seconds long."""


def test_run_serves_the_page_until_sigterm(tmp_path: Path) -> None:
    env = base_env(
        {
            "MESHALERT_STATSD_LISTEN": "127.0.0.1:0",
            "MESHALERT_STORE": f"sqlite:///{tmp_path / 'meshalert.db'}",
            "MESHALERT_STATE": f"sqlite:///{tmp_path / 'state.db'}",
            "MESHALERT_SPOOL_DIR": str(tmp_path / "spool"),
            "MESHALERT_EVAL_INTERVAL": "2s",
            "MESHALERT_RULES": SHORT_WINDOWS,
            ENV: "127.0.0.1:0",
        }
    )
    run = MeshalertRun(env, tmp_path, "run")
    run.start()
    try:
        wait_for(
            lambda: any(e.get("event") == "status_page.started" for e in run.events()),
            30,
            "the status page",
            run.diagnostics,
        )
        url = next(e["url"] for e in run.events() if e.get("event") == "status_page.started")
        assert url.startswith("http://127.0.0.1:")
        run.wait_cycles(1, 60)
        with urllib.request.urlopen(url, timeout=60) as response:
            html = response.read().decode()
        assert "meshalert status" in html and '<h2 id="signals">' in html
        assert run.terminate() == 0
    finally:
        run.kill()
    host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect((host, int(port)))
    assert any(e.get("event") == "meshalert.stopped" for e in run.events())


def test_a_taken_port_leaves_alerting_running(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = base_env(
            {
                "MESHALERT_STATSD_LISTEN": "127.0.0.1:0",
                "MESHALERT_STORE": f"sqlite:///{tmp_path / 'meshalert.db'}",
                "MESHALERT_STATE": f"sqlite:///{tmp_path / 'state.db'}",
                "MESHALERT_SPOOL_DIR": str(tmp_path / "spool"),
                "MESHALERT_EVAL_INTERVAL": "2s",
                "MESHALERT_RULES": SHORT_WINDOWS,
                ENV: f"127.0.0.1:{port}",
            }
        )
        run = MeshalertRun(env, tmp_path, "run")
        run.start()
        try:
            run.wait_cycles(1, 60)
            (error,) = [e for e in run.events() if e.get("event") == "status_page.not_started"]
            assert error["listen"] == f"127.0.0.1:{port}"
            assert run.terminate() == 0
        finally:
            run.kill()
