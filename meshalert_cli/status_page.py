"""Wires the status page into ``meshalert run``: its flags, its address and its adapters.

On by default on a loopback port; ``--status-listen HOST:PORT`` (or
``MESHALERT_STATUS_LISTEN``) moves it, ``--no-status-page`` or an empty value turns it off.
A page that cannot bind is logged and left out: alerting does not depend on it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import structlog

# The page's modules load only when the page starts: `meshalert --help` stays quick.
if TYPE_CHECKING:
    from meshalert.backends.urls import StoreConfig
    from meshalert.queries.model import WindowReader
    from meshalert.rules import LoadedRules
    from meshalert.statuspage.collect import StoreSnapshotSource
    from meshalert.statuspage.server import StatusPage
    from meshalert_cli.local_stack import LocalStack

log = structlog.get_logger("meshalert.status_page")

ENV = "MESHALERT_STATUS_LISTEN"
DEFAULT_LISTEN = "127.0.0.1:9464"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--status-listen",
        metavar="HOST:PORT",
        help=f"status page address ({ENV}; default {DEFAULT_LISTEN}; empty turns it off)",
    )
    group.add_argument("--no-status-page", action="store_true", help="do not serve the status page")


def listen_address(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, int] | None:
    """Where to serve the page, or None when it is turned off; a bad value is a ValueError
    naming the flag or variable it came from."""
    if getattr(args, "no_status_page", False):
        return None
    from ingest_sidecar.settings import parse_listen
    from meshalert.settings import CliSettings

    flag = getattr(args, "status_listen", None)
    if flag is not None:
        origin, text = "--status-listen", flag
    else:
        origin, text = ENV, CliSettings.from_env(env).status_listen
    if not text.strip():
        return None
    try:
        return parse_listen(text)
    except ValueError as err:
        raise ValueError(f"{origin}: {err}") from None


def _reader_opener(
    store: StoreConfig,
) -> Callable[[], tuple[WindowReader, list[Callable[[], None]]]]:
    from meshalert.wiring import open_reader

    def open_() -> tuple[WindowReader, list[Callable[[], None]]]:
        # Read-only: the page can never write to (or migrate) the store.
        reader = open_reader(store, readonly=True)
        close = getattr(reader, "close", None)
        return reader, [close] if callable(close) else []

    return open_


def start(stack: LocalStack, args: argparse.Namespace, env: Mapping[str, str]) -> StatusPage | None:
    """Start the page for a started ``stack``; None when turned off or the port is taken."""
    from meshalert.statuspage.collect import SignalSampler, StoreSnapshotSource
    from meshalert.statuspage.server import LOOPBACK, StatusPage
    from meshalert.wiring import open_state, secrets_of

    address = listen_address(args, env)
    if address is None or stack.loop is None:
        return None
    settings = stack.settings
    provider = stack.loop.rules
    open_reader_ = _reader_opener(settings.store)

    def rules() -> LoadedRules | None:
        snapshot = provider.last_good  # what the loop evaluates with; never reloads here
        return snapshot.rules if snapshot is not None else None

    def open_source() -> StoreSnapshotSource:
        reader, closers = open_reader_()
        state = open_state(settings.state_config)
        sampler = SignalSampler(
            reader,
            step_ms=max(settings.eval_interval_ms, 60_000),
        )
        return StoreSnapshotSource(
            state, sampler, rules, store=settings.store_display, closers=closers
        )

    host, port = address
    secrets = [*secrets_of(settings), *stack.sidecar_settings.secrets()]
    page = StatusPage(open_source, host=host, port=port, secrets=secrets)
    try:
        page.start()
    except OSError as err:
        log.error("status_page.not_started", listen=f"{host}:{port}", error=str(err))
        return None
    if host not in LOOPBACK:
        log.warning("status_page.not_loopback", url=page.url)
    return page
