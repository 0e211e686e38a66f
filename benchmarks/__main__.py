"""``python -m benchmarks``: every benchmark in turn, each in its own process, with its
defaults (the soak and the full-day backtest take long: they get shorter runs here; run them
alone for the full figures: ``python -m benchmarks.soak``, ``python -m benchmarks.backtest``).
"""

from __future__ import annotations

import subprocess
import sys
import time

RUNS: tuple[tuple[str, ...], ...] = (
    ("parse_map",),
    ("flush_cost",),
    ("store_write",),
    ("ingest_rate",),
    ("query_cycle",),
    ("engine_cycle",),
    ("baseline_query",),
    ("cold_start",),
    ("backtest", "--services", "200", "--hours", "3"),
    ("soak", "--minutes", "3"),
    ("fuzz_fault", "--datagrams", "50000"),
    ("cardinality", "--direct", "--series", "200000"),
    ("linkerd_sidecar",),
)


def main() -> int:
    failed = []
    for name, *args in RUNS:
        print(f"\n=== benchmarks.{name} {' '.join(args)}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"benchmarks.{name}", *args])
        print(f"=== {name}: exit {code} after {time.monotonic() - started:.0f}s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
