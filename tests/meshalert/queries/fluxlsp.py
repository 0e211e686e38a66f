"""Run the official Flux language server (tools/flux_check.mjs under Node) from tests.

One Node process serves the whole test session (``flux_check.mjs --serve``): starting the
wasm server costs ~0.1 s, checking a query about 2 ms, so hypothesis examples can each be
checked. Tests that need it take the ``flux_lsp`` fixture, which skips with the reason when
Node or ``tools/node_modules`` is missing -- or fails instead when
``MESHALERT_REQUIRE_NODE=1`` (CI sets it so the check can never silently vanish).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
TOOLS = REPO / "tools"
CHECKER = TOOLS / "flux_check.mjs"
PACKAGE_DIR = TOOLS / "node_modules" / "@influxdata" / "flux-lsp-browser"
REPLY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    message: str
    line: int  # 0-based, as the LSP reports it
    character: int

    def __str__(self) -> str:
        return f"{self.severity} at {self.line + 1}:{self.character + 1}: {self.message}"


@dataclass(frozen=True)
class StringReport:
    strings: tuple[str, ...]
    interpolations: int
    parse_errors: tuple[str, ...]


def unavailable_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not on PATH (install Node.js 20 to validate Flux with flux-lsp)"
    if not (PACKAGE_DIR / "package.json").is_file():
        return f"{PACKAGE_DIR.relative_to(REPO)} is missing: run `make deps-node`"
    return None


class FluxLsp:
    """A running ``flux_check.mjs --serve``; one request line, one reply line."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            ["node", str(CHECKER), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            cwd=REPO,
        )
        self._lock = threading.Lock()
        self.version = ""

    def check(self, queries: Sequence[str]) -> list[list[Diagnostic]]:
        """Diagnostics per query, in order (type check against the Flux stdlib)."""
        results = self._ask("check", queries)
        return [
            [
                Diagnostic(d["severity"], d["message"], d["start"]["line"], d["start"]["character"])
                for d in r["diagnostics"]
            ]
            for r in results
        ]

    def strings(self, queries: Sequence[str]) -> list[StringReport]:
        """What the Flux parser made of each query's string literals."""
        return [
            StringReport(tuple(r["strings"]), int(r["interpolations"]), tuple(r["parse_errors"]))
            for r in self._ask("strings", queries)
        ]

    def _ask(self, mode: str, queries: Sequence[str]) -> list[dict[str, Any]]:
        request = json.dumps({"mode": mode, "queries": list(queries)})
        with self._lock:
            stdin, stdout = self._proc.stdin, self._proc.stdout
            assert stdin is not None and stdout is not None
            stdin.write(request + "\n")
            stdin.flush()
            line = _readline(stdout, REPLY_TIMEOUT_S)
        if not line:
            raise RuntimeError(f"flux_check.mjs exited: {self._stderr()}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"flux_check.mjs: {reply['error']}")
        self.version = str(reply["lsp_version"])
        results: list[dict[str, Any]] = reply["results"]
        return results

    def _stderr(self) -> str:
        self._proc.kill()
        _, err = self._proc.communicate(timeout=5)
        return err.strip()[-2000:]

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def _readline(stream: Any, timeout_s: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    if reader.is_alive():
        raise TimeoutError(f"flux_check.mjs did not answer within {timeout_s} s")
    return box[0]


@functools.cache
def shared_flux_lsp() -> FluxLsp:
    """The session's one checker process, started on first use and closed at exit."""
    lsp = FluxLsp()
    atexit.register(lsp.close)
    return lsp


@pytest.fixture(scope="session")
def flux_lsp() -> Iterator[FluxLsp]:
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("MESHALERT_REQUIRE_NODE") == "1":
            pytest.fail(f"MESHALERT_REQUIRE_NODE=1 but {reason}")
        pytest.skip(reason)
    yield shared_flux_lsp()


def errors_of(diagnostics: Sequence[Diagnostic]) -> list[str]:
    return [str(d) for d in diagnostics if d.severity == "error"]
