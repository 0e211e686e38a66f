"""README.md is the user contract: every repository file it names must exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
TOP = (
    r"(?:infra|functions|meshalert|ingest_sidecar|meshalert_cli|deploy|tools|benchmarks|tests|\.ci)"
)
# Not a key such as the heartbeat's alert ``meshalert/skipped:<class>`` (a colon follows).
REPO_PATH = re.compile(rf"(?<![\w/.:@-]){TOP}/[\w./-]*(?![\w./-]*:)")
FILE_NAME = re.compile(r"(?<![\w/.-])[\w.-]+\.(?:md|ya?ml|toml|py|txt|json)\b")
USER_FILES = {
    # files the reader writes, not files shipped in the repository
    "rules.yaml", "my-rules.yaml", "secret.yaml", "file.yaml", "routes-prod.yaml",
    "meshalert.yaml",
}  # fmt: skip
NOT_FILES = {"meshalert/ingest", "meshalert/evaluation", "meshalert/"}
"""Heartbeat service keys and the route glob ``meshalert/*``, which look like paths."""


def _repository_files() -> set[str]:
    """Files in the repository (tracked, or new and not ignored): never .venv or caches."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    return {f for f in listed if f}


FILES = _repository_files()
DIRECTORIES = {str(Path(f).parent) + "/" for f in FILES} | {
    "/".join(f.split("/")[:n]) + "/" for f in FILES for n in range(1, f.count("/") + 1)
}


def _exists(token: str) -> bool:
    token = token.rstrip(".")
    if token in FILES or token in DIRECTORIES or token + "/" in DIRECTORIES:
        return True
    module, _, _attr = token.rpartition(".")  # functions/evaluate.handler
    return bool(module) and f"{module}.py" in FILES


def test_every_repository_path_in_the_readme_exists() -> None:
    cited = set(REPO_PATH.findall(README)) - NOT_FILES
    assert "infra/k8s/secret.template.yaml" in cited  # the pattern finds what it must
    missing = sorted(t for t in cited if not _exists(t))
    assert missing == []


def test_every_file_name_in_the_readme_is_in_the_repository() -> None:
    names = set(FILE_NAME.findall(README)) - USER_FILES
    assert "serverless.yml" in names
    basenames = {f.rpartition("/")[2] for f in FILES}
    missing = sorted(n for n in names if n not in basenames)
    assert missing == []
