"""Driving the real ``meshalert`` console script in a subprocess, as an operator would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "meshalert"


def command() -> list[str]:
    """The installed console script (``.venv/bin/meshalert``), as README tells users to run."""
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "meshalert_cli.main"]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without the developer's MESHALERT_* or AWS settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MESHALERT_", "AWS_")) and k != "PYTHONPATH"
    }
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["AWS_CONFIG_FILE"] = os.devnull  # no profile region or credentials from ~/.aws
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(extra or {})
    return env


def meshalert(
    args: list[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *args],
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.2)


class Background:
    """One long-running command (``run``, ``simulate``); stdout and stderr go to files."""

    def __init__(self, args: list[str], cwd: Path, env: Mapping[str, str], name: str) -> None:
        self.out_path = cwd / f"{name}.out"
        self.err_path = cwd / f"{name}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*command(), *args],
                cwd=cwd,
                env=dict(env),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def events(self) -> Iterator[dict[str, Any]]:
        for line in self.stderr.splitlines():
            if line.startswith("{") and line.endswith("}"):
                yield json.loads(line)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def wait_event(self, event: str, timeout_s: float = 30.0) -> dict[str, Any]:
        def seen() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}:\n{self.stderr[-3000:]}")
            return bool(self.named(event))

        wait_for(seen, timeout_s, event)
        return self.named(event)[0]

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(f"ignored signal {signum}:\n{self.stderr[-3000:]}") from None
