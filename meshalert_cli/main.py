"""``meshalert``: the composition root. Each subcommand wires adapters and calls the library.

Conventions shared by every subcommand (as in kubectl, promtool, amtool, gh): a one-line
description, examples in the epilog, help for every option with its default, no abbreviated
long options, durations written ``30s``/``5m``, one-line errors on stderr (exit 2), never a
traceback for a condition an operator can cause.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from meshalert_cli import commands
from meshalert_cli.arguments import Handler, Parser

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `cmd | head`


def package_version() -> str:
    try:
        return version("meshalert")
    except PackageNotFoundError:  # running from a source tree without an install
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="meshalert",
        description="Alerts for Linkerd 1.x meshes from io.l5d.statsd telemetry.",
        epilog="examples:\n"
        "  meshalert demo                    # watch four incidents fire and resolve (~100 s)\n"
        "  meshalert run                     # the real job: sidecar, store, engine\n"
        "  meshalert status                  # alerts pending or firing\n"
        "  meshalert <command> --help        # a command's options and examples",
    )
    parser.add_argument("--version", action="version", version=f"meshalert {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for register in commands.REGISTRY:
        register(sub)
    return parser


def describe_error(err: BaseException) -> str:
    """One line for an expected failure (AWS configuration, a store that does not answer)."""
    kind = type(err).__name__
    if kind == "NoRegionError":
        return (
            "no AWS region configured (needed for dynamodb:// state and SNS): "
            "set AWS_REGION or AWS_DEFAULT_REGION, or a region in your AWS profile"
        )
    if kind in ("NoCredentialsError", "PartialCredentialsError"):
        return (
            "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or run where an IAM role provides them)"
        )
    return " ".join(str(err).split()) or kind


def _expected_errors() -> tuple[type[BaseException], ...]:
    from meshalert.queries.model import WindowQueryError
    from meshalert.state.protocols import StateUnavailableError

    kinds: list[type[BaseException]] = [
        ValueError,
        OSError,
        WindowQueryError,
        StateUnavailableError,
    ]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        kinds += [BotoCoreError, ClientError]
    except ImportError:  # boto3 is only needed for AWS state and SNS
        pass
    return tuple(kinds)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()  # imports every command: Ctrl-C can land here on a slow start
    except KeyboardInterrupt:
        return 130
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from meshalert.settings import LoggingSettings, unknown_variables

    try:
        LoggingSettings.read()
    except ValueError as err:
        print(f"meshalert {args.command}: {err}", file=sys.stderr)
        return 2
    for warning in unknown_variables():
        print(f"meshalert {args.command}: warning: {warning}", file=sys.stderr)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`) has gone: nothing more can be shown, and Python must not
        # complain again while flushing stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except _expected_errors() as err:
        print(f"meshalert {args.command}: {describe_error(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
