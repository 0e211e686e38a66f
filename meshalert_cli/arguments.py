"""Argument-parsing conventions every subcommand shares (imported by ``commands/*``).

As in kubectl, promtool, amtool, gh: a one-line description, examples in the epilog, help
for every option with its default, no abbreviated long options, durations written
``30s``/``5m``. It lives apart from ``main`` so the commands never import the entry point
that imports them (the import direction is ``main -> commands -> arguments``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from meshalert.durations import DurationError, parse_duration_ms

Handler = Callable[[argparse.Namespace], int]


def duration_ms(text: str) -> int:
    try:
        return parse_duration_ms(text)
    except DurationError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and appends ``(default: X)`` to options that have one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "(default" in text
            or default in (None, False, argparse.SUPPRESS)
            or action.option_strings == []
            or default == []
        ):
            return text
        return f"{text} (default: {default})"


class Parser(argparse.ArgumentParser):
    """Every parser and subparser: no abbreviations (``--stat`` is not ``--state``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def add_command(
    sub: argparse._SubParsersAction[Any], name: str, summary: str, examples: Sequence[str]
) -> argparse.ArgumentParser:
    """A subcommand with its one-line description and examples."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:] + ".", epilog=epilog
    )
    return parser
