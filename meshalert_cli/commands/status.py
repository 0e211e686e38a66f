"""``meshalert status``: the alert states in force (readable while ``run`` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshalert.backends.sqlite.url import SqliteState
from meshalert.backends.url_parts import StoreUrlError
from meshalert.backends.urls import DEFAULT_STATE, parse_state_url
from meshalert_cli.arguments import add_command
from meshalert_cli.views import dumps, record_view, status_rows, status_text

if TYPE_CHECKING:
    from meshalert.state.protocols import StateStore


def state_url(args: argparse.Namespace) -> str:
    from meshalert.settings import CliSettings

    return str(args.state or CliSettings.from_env().state or DEFAULT_STATE)


def open_existing_state(url: str) -> StateStore:
    """Read-only commands open a state store that exists; they never create one."""
    from meshalert.wiring import open_state

    try:
        config = parse_state_url(url)
    except StoreUrlError as err:
        raise ValueError(f"--state/MESHALERT_STATE: {err}") from None
    if isinstance(config, SqliteState) and not Path(config.path).is_file():
        raise FileNotFoundError(
            f"no state database at {config.path}: nothing has run with this state yet "
            "(start `meshalert run`, or point --state or MESHALERT_STATE at its state)"
        )
    return open_state(config)


def add_state_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state",
        metavar="URL",
        help=f"state store: sqlite:///path or dynamodb://TABLE "
        f"(default: MESHALERT_STATE, else {DEFAULT_STATE})",
    )


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = add_command(
        sub,
        "status",
        "show the alerts that are pending or firing (and how many are OK)",
        [
            "meshalert status",
            "meshalert status --all --state sqlite:///./meshalert-demo/state.db",
            "meshalert status --json | jq '.[] | select(.state == \"firing\")'",
        ],
    )
    p.add_argument("--all", action="store_true", help="also list the alerts in state OK")
    p.add_argument(
        "--json", action="store_true", help="a JSON list of the same alerts the table shows"
    )
    add_state_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    store = open_existing_state(state_url(args))
    try:
        records = store.load_all()
    finally:
        store.close()
    if args.json:
        print(dumps([record_view(r) for r in status_rows(records, show_all=args.all)]))
    else:
        print(status_text(records, show_all=args.all))
    return 0
