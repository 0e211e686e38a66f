"""Two ``meshalert run`` processes started together on one fresh state database both come
up: the second waits out the first's schema creation instead of dying on ``database is
locked`` (journal_mode=WAL does not honour the busy timeout by itself).

The race window is a few milliseconds, so a third process widens it: it creates the fresh
file and holds its write lock for a while, exactly as the first run does while it creates
the tables, and both runs start during that time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.harness import base_env, wait_for

pytestmark = pytest.mark.e2e


def _run(tmp_path: Path, name: str, state: Path) -> tuple[subprocess.Popen[bytes], Path]:
    env = base_env(
        {
            "MESHALERT_STATSD_LISTEN": "127.0.0.1:0",
            "MESHALERT_EVAL_INTERVAL": "1s",
            "MESHALERT_STORE": f"sqlite:///{tmp_path / f'{name}-store.db'}",
            "MESHALERT_STATE": f"sqlite:///{state}",
            "MESHALERT_SPOOL_DIR": str(tmp_path / f"{name}-spool"),
            # Cycles start once the longest window has passed (the warm-up): keep it short.
            "MESHALERT_RULES": "defaults: {latency: {window: 2s}, failures: {window: 2s},"
            " endpoints: {window: 2s}, retries: {window: 2s}}",
        }
    )
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meshalert_cli.main", "run"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )
    return proc, log


_FIRST_WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("CREATE TABLE IF NOT EXISTS first_writer (x)")
print("locked", flush=True)
time.sleep(8.0)
conn.execute("COMMIT")
"""


def test_two_runs_starting_together_on_a_fresh_state_both_evaluate(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", _FIRST_WRITER, str(state)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "locked"
    runs = [_run(tmp_path, f"run{i}", state) for i in range(2)]
    try:
        assert writer.wait(timeout=30) == 0
        for proc, log in runs:

            def evaluating(proc: subprocess.Popen[bytes] = proc, log: Path = log) -> bool:
                return proc.poll() is not None or '"evaluation.cycle"' in log.read_text()

            wait_for(evaluating, 60, f"{log.name} to evaluate", lambda log=log: log.read_text())
        time.sleep(1.5)
        for proc, log in runs:
            text = log.read_text()
            assert proc.poll() is None, text
            assert "Traceback" not in text, text
            assert "database is locked" not in text, text
    finally:
        for proc, _ in runs:
            proc.terminate()
        for proc, _ in runs:
            proc.wait(timeout=30)
