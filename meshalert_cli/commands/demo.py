"""``meshalert demo``: ``run`` plus ``simulate`` in one command, time-compressed.

Eight simulated Linkerd services send statsd to the real sidecar; four scripted incidents
(latency, failures, endpoints, retries) fire and resolve while a live table shows every
service's alert states. Everything stays in ``./meshalert-demo`` for ``status``/``history``.
"""

from __future__ import annotations

import argparse
import io
import random
import shlex
import shutil
import sys
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.alerts.model import AlertState
from meshalert.safe_text import printable
from meshalert.units import format_class_value
from meshalert_cli.arguments import add_command, duration_ms

if TYPE_CHECKING:  # the engine, sidecar and simulator load when the demo runs, not for --help
    from meshalert.engine import CycleReport
    from meshalert.simulator.traffic import LinkerdTraffic
    from meshalert_cli.local_stack import LocalStack

DEMO_RULES = """
defaults:
  latency:   {percentile: 99, above_ms: 500, recover_below_ms: 400, window: 15s, for: 6s}
  failures:  {rate_above: 0.05, min_requests: 20, window: 15s, for: 6s}
  endpoints: {expected_ratio_at_most: 0.7, available_ratio_below: 0.7, window: 6s, for: 6s}
  retries:   {exhausted_above: 0, ratio_above: 0.2, window: 15s, for: 6s}
  renotify: 1h
"""
DEMO_NAMESPACE = "production"
"""Every demo service lives here, and the sidecar maps the logical names into it
(``MESHALERT_SERVICE_NAMESPACE``), so the table and the notifications use one key:
``production/checkout``."""
SETTLE = 2
"""Seconds each window ends before its cycle: the demo's 1 s flush plus 1 s grace."""
INCIDENTS_AT_S = 15.0
INCIDENT_LENGTH_S = 30.0
DURATION_S = 95.0
EVAL_INTERVAL_S = 2


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
                        (k, [self.cells.get((k, c)) for c in SERVICE_CLASSES]) for k in sorted(keys)
                    ]
                    continue
                label = namespaced[0] if namespaced else name
                cells = [
                    next((self.cells[(k, c)] for k in sorted(keys) if (k, c) in self.cells), None)
                    for c in SERVICE_CLASSES
                ]
                rows.append((label, cells))
            return rows


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = add_command(
        sub,
        "demo",
        "watch four simulated incidents fire and resolve (about 100 s, nothing to set up)",
        [
            "meshalert demo",
            "meshalert demo --plain                 # one line per notification, no live table",
            "meshalert demo --dir /tmp/demo --duration 2m",
        ],
    )
    p.add_argument("--dir", default="meshalert-demo", help="where the demo keeps its files")
    p.add_argument(
        "--duration",
        type=duration_ms,
        default=f"{DURATION_S:.0f}s",
        metavar="DURATION",
        help="how long the demo runs (every incident has resolved by the default)",
    )
    p.add_argument("--plain", action="store_true", help="no live table, one line per notification")
    p.set_defaults(handler=run)


def demo_env(directory: Path) -> dict[str, str]:
    """The demo's own settings: the user's MESHALERT_* variables never change the demo."""
    from meshalert_cli.local_stack import environment

    base = directory.resolve()
    env = {k: v for k, v in environment().items() if not k.startswith("MESHALERT_")}
    env.update(
        {
            "MESHALERT_STORE": f"sqlite:///{base}/meshalert.db",
            "MESHALERT_STATE": f"sqlite:///{base}/state.db",
            "MESHALERT_SPOOL_DIR": str(base / "spool"),
            "MESHALERT_EVAL_INTERVAL": f"{EVAL_INTERVAL_S}s",
            "MESHALERT_FLUSH_INTERVAL": "1s",
            "MESHALERT_WINDOW_GRACE": f"{SETTLE - 1}s",  # windows end SETTLE s before a cycle
            "MESHALERT_SERVICE_NAMESPACE": f"outgoing={DEMO_NAMESPACE},incoming={DEMO_NAMESPACE}",
        }
    )
    return env


def prepare(directory: Path, feed: NotificationFeed, board: Board) -> LocalStack:
    from meshalert_cli.local_stack import build_stack

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    rules = rules_path(directory)
    rules.write_text(DEMO_RULES.lstrip(), encoding="utf-8")
    stack = build_stack(
        demo_env(directory),
        console=feed,
        sidecar_overrides={"statsd_listen": "127.0.0.1:0"},
        rules_path=str(rules),
    )
    stack.on_cycle = board.update
    return stack


def rules_path(directory: Path) -> Path:
    return directory / "rules.yaml"


def traffic() -> LinkerdTraffic:
    from meshalert.simulator.traffic import (
        LinkerdTraffic,
        TrafficConfig,
        standard_incidents,
        standard_services,
    )

    services = tuple(replace(s, namespace=DEMO_NAMESPACE) for s in standard_services(8))
    incidents = standard_incidents(services, INCIDENTS_AT_S, INCIDENT_LENGTH_S)
    return LinkerdTraffic(TrafficConfig(services, incidents, sample_rate=0.2), random.Random(1))


def run(args: argparse.Namespace) -> int:
    from meshalert.logs import configure_logging
    from meshalert.simulator.sender import run_sender
    from meshalert.state.files import make_private_file

    directory = Path(args.dir)
    duration_s = args.duration / 1000
    started = time.monotonic()
    started_ms = int(time.time() * 1000)
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
        kwargs={"duration_s": duration_s, "gauge_interval_s": 1.0, "stop": stop},
        daemon=True,
    )
    sender.start()
    try:
        show(board, feed, sim, started, duration_s, plain=args.plain or not sys.stdout.isatty())
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        sender.join(timeout=5)
        stack.stop()
        log_file.close()
    print(summary(feed, directory, started_ms, int(time.time() * 1000)))
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
    for cls in SERVICE_CLASSES:
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
    return "-" if value is None else format_class_value(value, cls)


def invocation() -> str:
    """How to call meshalert again, as this process was called: ``meshalert`` when that is
    the same program on PATH, else the path it was started by (``.venv/bin/meshalert``)."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "meshalert"
    if argv0.endswith(".py") or argv0 == "-m":  # python -m meshalert_cli.main
        return f"{shlex.quote(sys.executable)} -m meshalert_cli.main"
    on_path = shutil.which("meshalert")
    if on_path and Path(on_path).resolve() == Path(shutil.which(argv0) or argv0).resolve():
        return "meshalert"
    return shlex.quote(argv0 if "/" in argv0 else str(Path(argv0).resolve()))


def summary(feed: NotificationFeed, directory: Path, started_ms: int, ended_ms: int) -> str:
    lines = ["", f"{len(feed.all)} notifications:", *feed.all, ""]
    base = str(directory) if directory.is_absolute() else f"./{directory}"
    me = invocation()
    state = shlex.quote(f"sqlite:///{base}/state.db")
    store = shlex.quote(f"sqlite:///{base}/meshalert.db")
    rules = shlex.quote(f"{base}/rules.yaml")
    step_ms = EVAL_INTERVAL_S * 1000
    until_ms = ended_ms - ended_ms % step_ms + step_ms
    since_s = (until_ms - started_ms) // 1000 + 1
    lines += [
        f"rules: {rules} (edit a threshold there and replay the demo with backtest)",
        f"files kept in {base}; look around with:",
        f"  {me} status --all --state {state}",
        f"  {me} history --state {state}",
        f"  {me} backtest --store {store} --rules {rules} --interval {EVAL_INTERVAL_S}s "
        f"--settle {SETTLE}s --since {since_s}s --until {until_ms} "
        f"--report {shlex.quote(base + '/backtest.html')}",
    ]
    return "\n".join(lines)
