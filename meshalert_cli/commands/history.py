"""``meshalert history``: alert transitions with their evidence."""

from __future__ import annotations

import argparse
import time
from typing import Any

from meshalert.alert_classes import AlertClass
from meshalert_cli.arguments import add_command, duration_ms
from meshalert_cli.commands.status import add_state_option, open_existing_state, state_url
from meshalert_cli.views import dumps, history_text, history_view


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = add_command(
        sub,
        "history",
        "show alert transitions with the value and threshold that caused them",
        [
            "meshalert history --since 1h",
            "meshalert history --service production/checkout --class latency",
            "meshalert history --json --state sqlite:///./meshalert-demo/state.db",
        ],
    )
    p.add_argument(
        "--since", type=duration_ms, default="24h", metavar="DURATION", help="how far back"
    )
    p.add_argument("--service", metavar="KEY", help="only this service key (ns/svc or svc)")
    p.add_argument(
        "--class",
        dest="alert_class",
        choices=[c.value for c in AlertClass],
        help="only this alert class",
    )
    p.add_argument("--json", action="store_true", help="a JSON list with the full evidence")
    add_state_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    store = open_existing_state(state_url(args))
    try:
        entries = store.history(
            since_ms=int(time.time() * 1000) - args.since,
            service=args.service,
            alert_class=AlertClass(args.alert_class) if args.alert_class else None,
        )
    finally:
        store.close()
    if args.json:
        print(dumps([history_view(e) for e in entries]))
    else:
        print(history_text(entries))
    return 0
