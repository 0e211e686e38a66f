"""``meshalert status``: the alert states in force (readable while ``run`` runs)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from meshalert.state.factory import open_state_store
from meshalert_cli.views import dumps, record_view, sorted_records, status_text

DEFAULT_STATE = "sqlite:///./meshalert-state.db"


def state_url(args: argparse.Namespace) -> str:
    return str(args.state or os.environ.get("MESHALERT_STATE") or DEFAULT_STATE)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("status", help="print every alert's state")
    p.add_argument("--json", action="store_true", help="a JSON list of alert objects")
    p.add_argument("--state", help="state store URL (default: MESHALERT_STATE)")
    p.add_argument("--all", action="store_true", help="include services in state OK")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    store = open_state_store(state_url(args))
    try:
        records = store.load_all()
    finally:
        store.close()
    if not args.all and not args.json:
        records = [r for r in records if r.state.value != "ok"] or records[:0]
    if args.json:
        print(dumps([record_view(r) for r in sorted_records(records)]))
    else:
        print(status_text(records))
    return 0
