"""``meshalert run``: the main job -- sidecar, store, evaluation and notifications."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from ingest_sidecar.sidecar import SpoolLockedError
from meshalert.logs import configure_logging
from meshalert.wiring import secrets_of
from meshalert_cli import status_page
from meshalert_cli.local_stack import build_stack, environment


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("run", help="run the sidecar, the store and the alert engine until stopped")
    p.add_argument("--store", help="store URL (default: MESHALERT_STORE or sqlite)")
    p.add_argument("--state", help="state store URL (default: MESHALERT_STATE)")
    p.add_argument("--eval-interval", help="evaluation interval, e.g. 1m (MESHALERT_EVAL_INTERVAL)")
    p.add_argument("--listen", help="statsd host:port (MESHALERT_STATSD_LISTEN)")
    p.add_argument("--flush-interval", help="sidecar flush interval (MESHALERT_FLUSH_INTERVAL)")
    p.add_argument("--rules", dest="rules_file", help="a rules document (highest precedence)")
    status_page.add_arguments(p)
    p.set_defaults(handler=run)


def sidecar_overrides(args: argparse.Namespace) -> dict[str, object]:
    given = {"statsd_listen": args.listen, "flush_interval": args.flush_interval}
    return {k: v for k, v in given.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    stack = build_stack(
        environment(),
        console=sys.stdout,
        engine_flags={
            "store_url": args.store,
            "state": args.state,
            "eval_interval": args.eval_interval,
        },
        sidecar_overrides=sidecar_overrides(args),
        rules_path=args.rules_file,
    )
    configure_logging(secrets=[*secrets_of(stack.settings), *stack.sidecar_settings.secrets()])
    status_page.listen_address(args, environment())  # a bad address fails before start

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stack.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
    except SpoolLockedError as err:  # another run owns the spool: say so, no traceback
        print(f"meshalert run: {err}", file=sys.stderr)
        return 2
    page = status_page.start(stack, args, environment())
    try:
        stack.run_forever()
    finally:
        if page is not None:
            page.stop()
        stack.stop()
    return 0
