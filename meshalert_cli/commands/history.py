"""``meshalert history``: alert transitions with their evidence."""

from __future__ import annotations

import argparse
import time
from typing import Any

from meshalert.alerts.model import AlertClass
from meshalert.state.factory import open_state_store
from meshalert_cli.commands.status import state_url
from meshalert_cli.views import dumps, history_text, history_view


def register(sub: argparse._SubParsersAction[Any]) -> None:
    from meshalert_cli.main import duration_ms

    p = sub.add_parser("history", help="print alert transitions")
    p.add_argument("--since", type=duration_ms, default=duration_ms("24h"))
    p.add_argument("--service")
    p.add_argument("--class", dest="alert_class", choices=[c.value for c in AlertClass])
    p.add_argument("--json", action="store_true")
    p.add_argument("--state", help="state store URL (default: MESHALERT_STATE)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    store = open_state_store(state_url(args))
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
