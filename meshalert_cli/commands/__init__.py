"""Subcommands; each module exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from meshalert_cli.commands import (
    backtest,
    demo,
    history,
    rules,
    run,
    silence,
    simulate,
    status,
)

Register = Callable[["argparse._SubParsersAction[Any]"], None]

REGISTRY: tuple[Register, ...] = (
    run.register,
    demo.register,
    simulate.register,
    status.register,
    history.register,
    rules.register,
    backtest.register,
    silence.register,
)
