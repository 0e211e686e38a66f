"""One full evaluation cycle of the engine over N services: the four classes' queries,
observations, rules, state machine, state save -- what `meshalert run` does every interval.

    python3 -m benchmarks.engine_cycle [--services 1000,10000] [--state sqlite,memory]

Data as in benchmarks.query_cycle (5 minutes of 10 s points from 2 hosts). The first cycle
creates every alert record; the figures are for the steady state after it (best of 3, wall
and CPU). Target: 10,000 services in under 2 s per cycle on the embedded store.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.query_cycle import END_MS, fill_sqlite
from meshalert.alert_classes import SERVICE_CLASSES
from meshalert.backends.memory.state import MemoryStateStore
from meshalert.backends.sqlite.reader import SqliteWindowReader
from meshalert.backends.sqlite.state import SqliteStateStore
from meshalert.backends.sqlite.writer import open_database
from meshalert.engine import Engine
from meshalert.evaluation import evaluate_class
from meshalert.rules import load_rules
from meshalert.state.protocols import StateStore

CYCLE_MS = 60_000


def one_cycle(engine: Engine, cycle_ms: int) -> tuple[float, float, int, int]:
    rules = load_rules({}, now_s=cycle_ms / 1000)
    wall, cpu = time.perf_counter(), time.process_time()
    queries = services = 0
    for alert_class in SERVICE_CLASSES:
        report = evaluate_class(engine, rules, alert_class, cycle_ms)
        queries += report.queries_issued
        services += report.services_evaluated
    return time.perf_counter() - wall, time.process_time() - cpu, queries, services


def run(services: int, state_kind: str, tmp: Path) -> None:
    db = tmp / f"store-{services}.db"
    if not db.exists():
        fill_sqlite(str(db), services)
    state: StateStore = (
        SqliteStateStore(tmp / f"state-{services}.db")
        if state_kind == "sqlite"
        else MemoryStateStore()
    )
    engine = Engine(SqliteWindowReader(open_database(str(db), readonly=True)), state, None)
    one_cycle(engine, END_MS)  # creates the records
    runs = [one_cycle(engine, END_MS + (i + 1) * CYCLE_MS) for i in range(3)]
    best = min(runs)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"state={state_kind:6s} services={services:>6,} cycle={best[0]:.3f}s "
        f"(runs {', '.join(f'{r[0]:.3f}' for r in runs)}; cpu {best[1]:.3f}s) "
        f"queries={best[2]} evaluated={best[3]:,} max_rss={rss_mib:.0f} MiB "
        f"target<2s: {'OK' if best[0] < 2 else 'OVER'}",
        flush=True,
    )
    state.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", default="1000,10000")
    parser.add_argument("--state", default="sqlite,memory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for services in (int(s) for s in args.services.split(",")):
            for state_kind in args.state.split(","):
                run(services, state_kind, Path(tmp))


if __name__ == "__main__":
    main()
