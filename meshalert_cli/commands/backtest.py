"""``meshalert backtest``: replay the rules over stored history, per service and class."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.backends.sqlite.url import SqliteStore
from meshalert.backends.urls import StoreConfig
from meshalert_cli.arguments import add_command, duration_ms
from meshalert_cli.views import dumps, iso, table

if TYPE_CHECKING:
    from meshalert.backtest import BacktestResult


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = add_command(
        sub,
        "backtest",
        "replay rules over stored history: what would have fired, and when",
        [
            "meshalert backtest --since 24h --rules my-rules.yaml",
            "meshalert backtest --since 6h --class latency --service production/checkout",
            "meshalert backtest --store sqlite:///./meshalert-demo/meshalert.db --since 5m "
            "--interval 2s --rules ./meshalert-demo/rules.yaml",
        ],
    )
    p.add_argument(
        "--since", type=duration_ms, default="24h", metavar="DURATION", help="how far back"
    )
    p.add_argument(
        "--until", metavar="TIME", help="end of the replay: epoch ms or ISO time (default: now)"
    )
    p.add_argument(
        "--rules",
        dest="rules_file",
        metavar="FILE",
        help="a rules document to try (default: the rules in force, as `meshalert rules` shows)",
    )
    p.add_argument(
        "--class",
        dest="alert_class",
        choices=[c.value for c in SERVICE_CLASSES],
        help="only this alert class (default: all four)",
    )
    p.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="KEY",
        help="only this service key; repeat for several (default: every service)",
    )
    p.add_argument("--store", metavar="URL", help="store URL (default: MESHALERT_STORE)")
    p.add_argument(
        "--interval",
        type=duration_ms,
        metavar="DURATION",
        help="cycle length (default: MESHALERT_EVAL_INTERVAL, else 1m)",
    )
    p.add_argument(
        "--settle",
        type=duration_ms,
        metavar="DURATION",
        help="how long before each cycle its windows end "
        "(default: MESHALERT_FLUSH_INTERVAL + MESHALERT_WINDOW_GRACE, 15s)",
    )
    p.add_argument("--report", default="meshalert-backtest.html", help="HTML report path")
    p.add_argument("--json", action="store_true", help="the summary as JSON")
    p.set_defaults(handler=run)


def require_store(store: StoreConfig) -> None:
    """A replay reads history; it never creates an empty embedded store to read."""
    if isinstance(store, SqliteStore) and not Path(store.path).is_file():
        raise FileNotFoundError(
            f"no store database at {store.path}: nothing has been recorded there "
            "(point --store or MESHALERT_STORE at the store `meshalert run` writes)"
        )


def parse_until(text: str | None) -> int:
    if not text:
        return int(time.time() * 1000)
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def run(args: argparse.Namespace) -> int:
    from meshalert.backtest import backtest
    from meshalert.backtest_report import render_html
    from meshalert.settings import Settings
    from meshalert.state.files import write_private_text
    from meshalert.wiring import open_reader
    from meshalert_cli.commands.rules import load

    settings = Settings.from_env(None, {"store_url": args.store})
    interval = args.interval or settings.eval_interval_ms
    require_store(settings.store)
    until = parse_until(args.until)
    started = time.monotonic()
    result = backtest(
        open_reader(settings.store),
        load(args),
        since_ms=until - args.since,
        until_ms=until,
        interval_ms=interval,
        classes=[AlertClass(args.alert_class)] if args.alert_class else SERVICE_CLASSES,
        services=args.service,
        settle_ms=settings.window_settle_ms if args.settle is None else args.settle,
        lookback_ms=settings.endpoints_lookback_ms,
    )
    elapsed = time.monotonic() - started
    write_private_text(args.report, render_html(result))  # names every service: owner only
    if args.json:
        print(dumps(summary(result)))
    else:
        print(summary_text(result, elapsed))
        print(f"report: {args.report}")
    return 0


def summary(result: BacktestResult) -> dict[str, Any]:
    return {
        "since": iso(result.since_ms),
        "until": iso(result.until_ms),
        "cycles": result.cycles,
        "notifications": len(result.notifications),
        "alerts": [
            {
                "class": t.alert_class.value,
                "service": t.service,
                "notifications": len(t.notifications),
                "threshold": t.threshold,
                "threshold_source": t.threshold_source,
                "firing": [[iso(s), iso(e)] for s, e in t.firing_intervals],
            }
            for t in result.alerting()
        ],
    }


def summary_text(result: BacktestResult, elapsed_s: float) -> str:
    rows = [
        [
            t.alert_class.value,
            t.service,
            str(len(t.notifications)),
            ", ".join(f"{iso(s)}..{iso(e) if e else 'end'}" for s, e in t.firing_intervals) or "-",
        ]
        for t in result.alerting()
    ]
    head = (
        f"{result.cycles} cycles from {iso(result.since_ms)} to {iso(result.until_ms)} "
        f"in {elapsed_s:.1f}s: {len(result.notifications)} notifications"
    )
    if not rows:
        return head + "\nnothing would have fired"
    return head + "\n" + table(rows, ["CLASS", "SERVICE", "NOTIFICATIONS", "FIRING"])
