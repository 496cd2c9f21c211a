"""The ``blindmatch`` command: one subcommand per module of this package.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (taking the parsed namespace, returning the exit code) as a default. Errors a user
can cause are :class:`~blindmatch.errors.BlindmatchError` and end as one line on stderr
with exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from blindmatch import __version__
from blindmatch.errors import BlindmatchError

__all__ = ["build_parser", "main"]


def _subcommand_modules() -> list[ModuleType]:
    # Imported here, not at module level, so `blindmatch --help` stays fast and one broken
    # optional part (e.g. video without PyAV) does not take the others down.
    from blindmatch.cli import commands

    return commands.MODULES


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="blindmatch",
        description="Privacy-preserving matching of reported images and videos.",
    )
    parser.add_argument("--version", action="version", version=f"blindmatch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _subcommand_modules():
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``blindmatch`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except BlindmatchError as exc:
        print(f"blindmatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
