"""The ``blindmatch`` command: one subcommand per module of this package.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (taking the parsed namespace, returning the exit code) as a default. Errors a user
can cause are :class:`~blindmatch.errors.BlindmatchError` and end as one line on stderr
with exit code 2; anything else is a bug and keeps its traceback.

Start-up time is part of the interface (hashing one photo should not wait on imports):
:func:`main` imports only the module of the subcommand being run. The others appear in
the parser as placeholders carrying their one-line help from
:data:`~blindmatch.cli.commands.COMMANDS`, so ``blindmatch --help`` imports none of them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Collection, Sequence

from blindmatch import __version__
from blindmatch.cli.commands import COMMANDS
from blindmatch.errors import BlindmatchError

__all__ = ["build_parser", "main"]


def _parser(loaded: Collection[str]) -> argparse.ArgumentParser:
    """The parser with the subcommands named in ``loaded`` registered by their modules and
    the others as placeholders (name and help only). Modules are imported here, not at
    module level, so one broken optional part (e.g. video without PyAV) does not take the
    others down."""
    parser = argparse.ArgumentParser(
        prog="blindmatch",
        description="Privacy-preserving matching of reported images and videos.",
    )
    parser.add_argument("--version", action="version", version=f"blindmatch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        if command.name in loaded:
            importlib.import_module(command.module).register(subparsers)
        else:
            subparsers.add_parser(command.name, help=command.help)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered by its module."""
    return _parser({command.name for command in COMMANDS})


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` runs: its first argument that is not an option, if that is a
    subcommand's name (argparse reports anything else with the placeholders)."""
    names = {command.name for command in COMMANDS}
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in names else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``blindmatch`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(argv)
    parser = _parser(() if command is None else (command,))
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except BlindmatchError as exc:
        print(f"blindmatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
