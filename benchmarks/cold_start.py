"""Cold start of the Lambda handlers: import time and container build, in fresh processes.

    python3 -m benchmarks.cold_start [--runs 5] [--top 12]

For each handler module: ``python -X importtime -c "import functions.<name>"`` in a fresh
interpreter (total and the heaviest imports, cumulative), then a fresh process that imports
the handler and builds its container from environment-only settings (SQLite store and
state, no network, no AWS) and runs one invocation. Target: import + build < 500 ms.
Modules that must stay off the import path are checked too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HANDLERS = ("evaluate", "heartbeat")
FORBIDDEN = ("influxdb_client", "numpy", "rich", "pandas")
AS_PACKAGED = "import sys; sys.modules['rich'] = None; "
"""The Lambda package leaves rich out (deploy/requirements-lambda.txt); structlog imports
it when present, so the packaged figures hide it the way the zip does."""
TARGET_MS = 500.0

_BUILD = """
import json, sys, time
{preamble}
t0 = time.perf_counter()
import functions.{name} as handler_module
from functions import runtime
t1 = time.perf_counter()
container = runtime.build_container(__import__("os").environ)
t2 = time.perf_counter()
class Ctx:
    aws_request_id = "bench"
    def get_remaining_time_in_millis(self): return 30000
if {run}:
    handler_module.invoke(container, {event}, Ctx(), cold_start=True, started_s=time.monotonic())
t3 = time.perf_counter()
heavy = [m for m in {forbidden!r} if sys.modules.get(m) is not None]
print(json.dumps({{"import_ms": (t1-t0)*1e3, "build_ms": (t2-t1)*1e3,
                   "first_run_ms": (t3-t2)*1e3, "heavy": heavy}}))
"""


def importtime(name: str, preamble: str) -> tuple[float, list[tuple[float, str]]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"{preamble}import functions.{name}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[tuple[float, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, module = line.split("|")
        rows.append((int(cumulative) / 1000, module.rstrip()))
    total = next(ms for ms, module in rows if module.strip() == f"functions.{name}")
    top = sorted(((ms, m) for ms, m in rows if len(m) - len(m.lstrip()) <= 5), reverse=True)
    return total, top


def build(name: str, workdir: str, preamble: str, aws: bool) -> dict[str, object]:
    event = (
        {"alert_class": "latency", "time": "2026-01-01T00:05:06Z"}
        if name == "evaluate"
        else {"time": "2026-01-01T00:05:06Z", "detail-type": "Scheduled Event"}
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESHALERT_", "AWS_"))} | {
        "MESHALERT_STORE": f"sqlite:///{workdir}/store.db",
        "MESHALERT_STATE": f"sqlite:///{workdir}/state.db",
        "MESHALERT_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    if aws:  # boto3 clients are built (no request is made until an invocation)
        env |= {
            "MESHALERT_STATE": "dynamodb://meshalert-bench-state",
            "MESHALERT_SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
        }
    code = _BUILD.format(
        name=name, event=repr(event), forbidden=FORBIDDEN, preamble=preamble, run=not aws
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def report(name: str, runs: int, top_n: int, preamble: str, label: str) -> None:
    totals = []
    top: list[tuple[float, str]] = []
    for _ in range(runs):
        total, top = importtime(name, preamble)
        totals.append(total)
    print(
        f"functions.{name} [{label}]: -X importtime total, median of {runs}: "
        f"{statistics.median(totals):.0f} ms (min {min(totals):.0f})"
    )
    print("  heaviest imports (cumulative ms, last run):")
    for ms, module in top[:top_n]:
        print(f"    {ms:8.1f}  {module.strip()}")
    for aws in (False, True):
        with tempfile.TemporaryDirectory() as workdir:
            figures = [build(name, workdir, preamble, aws) for _ in range(runs)]
        imp = statistics.median(float(str(f["import_ms"])) for f in figures)
        bld = statistics.median(float(str(f["build_ms"])) for f in figures)
        run = statistics.median(float(str(f["first_run_ms"])) for f in figures)
        heavy = sorted({str(m) for f in figures for m in f["heavy"]})  # type: ignore[attr-defined]
        verdict = "OK" if imp + bld < TARGET_MS else "OVER TARGET"
        config = "boto3 clients (DynamoDB, SNS)" if aws else "env-only, SQLite store+state"
        tail = "" if aws else f"; first invocation {run:.0f} ms"
        print(
            f"  fresh process, {config}: import {imp:.0f} + build {bld:.0f} = "
            f"{imp + bld:.0f} ms (target < {TARGET_MS:.0f}: {verdict}){tail}; "
            f"heavy modules loaded: {heavy or 'none'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    for name in HANDLERS:
        report(name, args.runs, args.top, AS_PACKAGED, "as packaged: no rich")
        report(name, args.runs, args.top, "", "this machine's site-packages")


if __name__ == "__main__":
    main()
