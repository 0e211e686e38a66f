"""``meshalert demo``: ``run`` plus ``simulate`` in one command, time-compressed.

Eight simulated Linkerd services send statsd to the real sidecar; four scripted incidents
(latency, failures, endpoints, retries) fire and resolve while a live table shows every
service's alert states. Everything stays in ``./meshalert-demo`` for ``status``/``history``.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from meshalert.alerts.model import AlertClass, AlertState
from meshalert.engine import CycleReport
from meshalert.logs import configure_logging
from meshalert.safe_text import printable
from meshalert.simulator.sender import run_sender
from meshalert.simulator.traffic import (
    LinkerdTraffic,
    TrafficConfig,
    standard_incidents,
    standard_services,
)
from meshalert.state.files import make_private_file
from meshalert_cli.local_stack import LocalStack, build_stack, environment

DEMO_RULES = """
defaults:
  latency:   {percentile: 99, above_ms: 500, recover_below_ms: 400, window: 15s, for: 6s}
  failures:  {rate_above: 0.05, min_requests: 20, window: 15s, for: 6s}
  endpoints: {available_ratio_below: 0.7, window: 6s, for: 6s}
  retries:   {exhausted_above: 0, ratio_above: 0.2, window: 15s, for: 6s}
  renotify: 1h
"""
INCIDENTS_AT_S = 15.0
INCIDENT_LENGTH_S = 30.0
DURATION_S = 95.0


class NotificationFeed(io.StringIO):
    """The console channel's stream: keeps each notification's summary line for the view."""

    def __init__(self, started: float) -> None:
        super().__init__()
        self.started = started
        self.lines: deque[str] = deque(maxlen=12)
        self.all: list[str] = []

    def write(self, text: str) -> int:
        first = text.splitlines()[0] if text else ""
        if first:
            stamped = f"+{time.monotonic() - self.started:5.1f}s  {first}"
            self.lines.append(stamped)
            self.all.append(stamped)
        return len(text)


class Board:
    """Latest state and value per (service, class), fed by the evaluation loop."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, AlertClass], tuple[AlertState, float | None]] = {}
        self.cycles = 0
        self.lock = threading.Lock()

    def update(self, _cycle_ms: int, reports: list[CycleReport]) -> None:
        with self.lock:
            self.cycles += 1
            for report in reports:
                for service, state in report.states.items():
                    obs = report.observations.get(service)
                    self.cells[(service, report.alert_class)] = (state, obs.value if obs else None)

    def rows(self) -> list[tuple[str, list[tuple[AlertState, float | None] | None]]]:
        """One row per service: the logical name (``checkout``) and the Kubernetes client
        name (``production/checkout``) of one service share a row when that is unambiguous."""
        with self.lock:
            groups: dict[str, set[str]] = {}
            for key, _ in self.cells:
                groups.setdefault(key.rpartition("/")[2], set()).add(key)
            rows = []
            for name in sorted(groups):
                keys = groups[name]
                namespaced = sorted(k for k in keys if "/" in k)
                if len(namespaced) > 1:
                    rows += [
                        (k, [self.cells.get((k, c)) for c in AlertClass]) for k in sorted(keys)
                    ]
                    continue
                label = namespaced[0] if namespaced else name
                cells = [
                    next((self.cells[(k, c)] for k in sorted(keys) if (k, c) in self.cells), None)
                    for c in AlertClass
                ]
                rows.append((label, cells))
            return rows


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("demo", help="watch simulated incidents fire and resolve (about 100 s)")
    p.add_argument("--dir", default="meshalert-demo", help="where the demo keeps its files")
    p.add_argument("--duration", type=float, default=DURATION_S, help="seconds")
    p.add_argument("--plain", action="store_true", help="no live table, one line per change")
    p.set_defaults(handler=run)


def prepare(directory: Path, feed: NotificationFeed, board: Board) -> LocalStack:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    env = {
        **environment(),
        "MESHALERT_STORE": f"sqlite:///{directory.resolve()}/meshalert.db",
        "MESHALERT_STATE": f"sqlite:///{directory.resolve()}/state.db",
        "MESHALERT_SPOOL_DIR": str(directory / "spool"),
        "MESHALERT_EVAL_INTERVAL": "2s",
        "MESHALERT_FLUSH_INTERVAL": "1s",
        "MESHALERT_RULES": DEMO_RULES,
    }
    for name in ("MESHALERT_RULES_FILE", "MESHALERT_RULES_SSM_PARAMETER"):
        env.pop(name, None)
    stack = build_stack(env, console=feed, sidecar_overrides={"statsd_listen": "127.0.0.1:0"})
    stack.on_cycle = board.update
    return stack


def traffic() -> LinkerdTraffic:
    services = standard_services(8)
    incidents = standard_incidents(services, INCIDENTS_AT_S, INCIDENT_LENGTH_S)
    return LinkerdTraffic(TrafficConfig(services, incidents, sample_rate=0.2), random.Random(1))


def run(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    started = time.monotonic()
    feed, board = NotificationFeed(started), Board()
    stack = prepare(directory, feed, board)
    make_private_file(str(directory / "meshalert.log"))
    log_file = (directory / "meshalert.log").open("w", encoding="utf-8")
    configure_logging(json=True, stream=log_file)
    stack.start()
    assert stack.sidecar is not None
    stack.run_in_thread()
    sim = traffic()
    stop = threading.Event()
    sender = threading.Thread(
        target=run_sender,
        args=(sim, stack.sidecar.address),
        kwargs={"duration_s": args.duration, "gauge_interval_s": 1.0, "stop": stop},
        daemon=True,
    )
    sender.start()
    try:
        show(board, feed, sim, started, args.duration, plain=args.plain or not sys.stdout.isatty())
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        sender.join(timeout=5)
        stack.stop()
        log_file.close()
    print(summary(feed, directory))
    return 0


def show(
    board: Board,
    feed: NotificationFeed,
    sim: LinkerdTraffic,
    started: float,
    duration_s: float,
    *,
    plain: bool,
) -> None:
    incidents = "\n".join(
        f"  {i.kind.value:9s} on {i.service:10s} {i.start_s:3.0f}s..{i.end_s:3.0f}s"
        for i in sim.config.incidents
    )
    print(f"meshalert demo: 8 simulated Linkerd services, scripted incidents:\n{incidents}\n")
    if plain:
        shown = 0
        while (elapsed := time.monotonic() - started) < duration_s:
            time.sleep(0.5)
            for line in feed.all[shown:]:
                print(line, flush=True)
            shown = len(feed.all)
        return
    from rich.live import Live

    with Live(render(board, feed, 0.0, duration_s), refresh_per_second=4) as live:
        while (elapsed := time.monotonic() - started) < duration_s:
            time.sleep(0.25)
            live.update(render(board, feed, elapsed, duration_s))


_STYLE = {AlertState.OK: "green", AlertState.PENDING: "yellow", AlertState.FIRING: "bold red"}


def render(board: Board, feed: NotificationFeed, elapsed: float, duration_s: float) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"alert states  t={elapsed:4.0f}s / {duration_s:.0f}s", expand=False)
    table.add_column("service")
    for cls in AlertClass:
        table.add_column(cls.value, justify="center")
    for service, cells in board.rows():
        row: list[Any] = [Text(printable(service))]  # a plain str would be read as markup
        for cls, cell in zip(AlertClass, cells, strict=True):
            if cell is None:
                row.append(Text("-", style="dim"))
            else:
                state, value = cell
                row.append(Text(f"{state.value} {shown(cls, value)}", style=_STYLE[state]))
        table.add_row(*row)
    notes = Text("\n".join(feed.lines) or "no notifications yet", style="cyan")
    return Group(table, Text("\nnotifications (console channel):", style="bold"), notes)


def shown(cls: AlertClass, value: float | None) -> str:
    if value is None:
        return "-"
    if cls is AlertClass.LATENCY:
        return f"{value:.0f}ms"
    return f"{value * 100:.1f}%"


def summary(feed: NotificationFeed, directory: Path) -> str:
    lines = ["", f"{len(feed.all)} notifications:", *feed.all, ""]
    base = str(directory) if directory.is_absolute() else f"./{directory}"
    state = f"sqlite:///{base}/state.db"
    lines += [
        f"files kept in {base}; look around with:",
        f"  meshalert status --all --state {state}",
        f"  meshalert history --state {state}",
        f"  MESHALERT_STORE=sqlite:///{base}/meshalert.db "
        f"meshalert backtest --since 5m --interval 2s --rules <your rules file>",
    ]
    return "\n".join(lines)
