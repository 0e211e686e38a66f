"""``meshalert run``: the main job -- sidecar, store, evaluation and notifications."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from meshalert.backends.urls import DEFAULT_STATE, DEFAULT_STORE
from meshalert_cli import status_page
from meshalert_cli.arguments import add_command


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = add_command(
        sub,
        "run",
        "run the statsd sidecar, the store and the alert engine until stopped",
        [
            "meshalert run                                  # statsd on 127.0.0.1:8125, "
            "embedded store",
            "meshalert run --listen 0.0.0.0:8125 --rules rules.yaml",
            "MESHALERT_STORE='influxdb2://localhost:8086?org=acme&bucket=linkerd' "
            "MESHALERT_INFLUXDB_TOKEN=... meshalert run",
        ],
    )
    p.add_argument(
        "--store",
        metavar="URL",
        help=f"store URL (default: MESHALERT_STORE, else {DEFAULT_STORE})",
    )
    p.add_argument(
        "--state",
        metavar="URL",
        help=f"state store URL (default: MESHALERT_STATE, else {DEFAULT_STATE})",
    )
    p.add_argument(
        "--eval-interval",
        metavar="DURATION",
        help="evaluation interval (default: MESHALERT_EVAL_INTERVAL, else 1m)",
    )
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="statsd UDP address (default: MESHALERT_STATSD_LISTEN, else 127.0.0.1:8125)",
    )
    p.add_argument(
        "--flush-interval",
        metavar="DURATION",
        help="sidecar flush interval (default: MESHALERT_FLUSH_INTERVAL, else 10s)",
    )
    p.add_argument(
        "--rules",
        dest="rules_file",
        metavar="FILE",
        help="a rules document (highest precedence; see `meshalert rules`)",
    )
    status_page.add_arguments(p)
    p.set_defaults(handler=run)


def sidecar_overrides(args: argparse.Namespace) -> dict[str, object]:
    given = {"statsd_listen": args.listen, "flush_interval": args.flush_interval}
    return {k: v for k, v in given.items() if v is not None}


def say(text: str) -> None:
    print(f"meshalert run: {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from ingest_sidecar.sidecar import SpoolLockedError
    from meshalert.logs import configure_logging
    from meshalert.wiring import secrets_of
    from meshalert_cli.local_stack import build_stack, environment

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
    stack.say = say
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
