"""``meshalert``: the composition root. Each subcommand wires adapters and calls the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from meshalert.durations import DurationError, parse_duration_ms
from meshalert.state.protocols import StateUnavailableError

Handler = Callable[[argparse.Namespace], int]


def duration_ms(text: str) -> int:
    try:
        return parse_duration_ms(text)
    except DurationError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshalert",
        description="Alerts for Linkerd 1.x meshes from io.l5d.statsd telemetry.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from meshalert_cli import commands

    for register in commands.REGISTRY:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, StateUnavailableError) as err:
        print(f"meshalert {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
