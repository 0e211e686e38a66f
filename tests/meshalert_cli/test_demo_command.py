"""``meshalert demo`` end to end: its views agree, it names its own rules, and the commands
it prints at the end work as printed and reproduce it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from tests.meshalert_cli.cli import clean_env, meshalert

INCIDENTS = {
    ("latency", "production/checkout"),
    ("failures", "production/cart"),
    ("endpoints", "production/inventory"),
    ("retries", "production/users"),
}


def test_demo_views_agree_and_its_hints_reproduce_it(tmp_path: Path) -> None:
    env = clean_env({"MESHALERT_RULES": "defaults: {latency: {above_ms: 1}}"})  # ignored
    done = meshalert(["demo", "--plain"], tmp_path, env, timeout_s=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    notes = re.findall(r"\] (FIRING|RESOLVED) (\w+) (\S+): .*\(from ([^)]*)\)", out)
    assert {(cls, svc) for _, cls, svc, _ in notes} == INCIDENTS
    assert sorted(kind for kind, *_ in notes) == ["FIRING"] * 8 + ["RESOLVED"] * 8  # live + recap
    assert {source for *_, source in notes} == {"flag:--rules meshalert-demo/rules.yaml"}
    assert "env:MESHALERT_RULES" not in out
    demo_dir = tmp_path / "meshalert-demo"
    assert (demo_dir / "rules.yaml").read_text().startswith("defaults:")

    # status keys the services as the notifications do
    status = meshalert(
        ["status", "--json", "--all", "--state", "sqlite:///./meshalert-demo/state.db"], tmp_path
    )
    keys = {(r["class"], r["service"]) for r in json.loads(status.stdout)}
    assert keys >= INCIDENTS
    assert all(service.startswith("production/") for _, service in keys)

    hints = [line.strip() for line in out.splitlines() if line.startswith("  ") and " --" in line]
    assert [shlex.split(h)[1] for h in hints] == ["status", "history", "backtest"]
    for hint in hints:
        argv = shlex.split(hint)
        assert argv[0] not in ("meshalert",) or _on_path(), hint  # runnable as printed
        ran = subprocess.run(
            argv, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert ran.returncode == 0, f"{hint}\n{ran.stderr}"
        if argv[1] == "history":
            fired = {
                tuple(line.split()[1:3]) for line in ran.stdout.splitlines() if "-> firing" in line
            }
            assert fired == INCIDENTS
        if argv[1] == "backtest":  # the replay reproduces the demo's alerts
            alerting = {tuple(line.split()[:2]) for line in ran.stdout.splitlines()[2:-1]}
            assert alerting == INCIDENTS, ran.stdout
            assert ran.stdout.splitlines()[0].endswith(": 8 notifications")


def _on_path() -> bool:
    import shutil

    return shutil.which("meshalert") is not None
