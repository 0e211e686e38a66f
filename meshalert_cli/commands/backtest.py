"""``meshalert backtest``: replay the rules over stored history, per service and class."""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime
from typing import Any

from meshalert.alerts.model import AlertClass
from meshalert.backtest import BacktestResult, backtest
from meshalert.backtest_report import render_html
from meshalert.settings import Settings
from meshalert.state.files import write_private_text
from meshalert.wiring import open_reader
from meshalert_cli.commands.rules import load
from meshalert_cli.views import dumps, iso, table


def register(sub: argparse._SubParsersAction[Any]) -> None:
    from meshalert_cli.main import duration_ms

    p = sub.add_parser("backtest", help="replay the rules over stored history")
    p.add_argument("--since", type=duration_ms, default=duration_ms("24h"), help="how far back")
    p.add_argument("--until", help="end of the replay: epoch ms or ISO time (default: now)")
    p.add_argument("--rules", dest="rules_file", help="a rules document to try")
    p.add_argument("--class", dest="alert_class", choices=[c.value for c in AlertClass])
    p.add_argument("--service", action="append", default=[], help="only these service keys")
    p.add_argument("--store", help="store URL (default: MESHALERT_STORE)")
    p.add_argument("--interval", type=duration_ms, help="cycle length (default: EVAL_INTERVAL)")
    p.add_argument("--report", default="meshalert-backtest.html", help="HTML report path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def parse_until(text: str | None) -> int:
    if not text:
        return int(time.time() * 1000)
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env(os.environ, {"store_url": args.store})
    interval = args.interval or settings.eval_interval_ms
    until = parse_until(args.until)
    started = time.monotonic()
    result = backtest(
        open_reader(settings.store),
        load(args),
        since_ms=until - args.since,
        until_ms=until,
        interval_ms=interval,
        classes=[AlertClass(args.alert_class)] if args.alert_class else tuple(AlertClass),
        services=args.service,
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
