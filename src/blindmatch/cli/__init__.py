"""The ``blindmatch`` command: one subcommand per module of this package.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (taking the parsed namespace, returning the exit code) as a default.

Theory of operation: user mistakes
----------------------------------
A mistake a user can make at the command line ends as one line on stderr and exit code 2,
never a traceback; a bug keeps its traceback. :func:`main` draws that line in one place:

- a bad option or argument (argparse): ``blindmatch hash: error: ... (see ... --help)``;
- a :class:`~blindmatch.errors.BlindmatchError` from the command;
- an ``OSError`` on a path the user named (``--out``, ``--references``, ``--uploads``, the
  ``hash`` paths, or anything under them): the option, the path and the OS's reason. An
  ``OSError`` elsewhere is a bug and is not caught;
- a full disk or quota, a read-only file system (``ENOSPC``, ``EDQUOT``, ``EROFS``,
  ``EFBIG``), wherever it happens: stdout is a user-given path too (``> out.jsonl``).

Ctrl-C ends with ``blindmatch: interrupted`` and exit code 130; a reader that closes the
pipe early (``| head``) ends the run quietly with exit code 1 (not everything was written).
File names that are not valid UTF-8 are written to stdout as their original bytes in text
output (``surrogateescape``); JSON output escapes them (see ``blindmatch.cli.hash``).

Start-up time is part of the interface (hashing one photo should not wait on imports):
:func:`main` imports only the module of the subcommand being run. The others appear in
the parser as placeholders carrying their one-line help from
:data:`~blindmatch.cli.commands.COMMANDS`, so ``blindmatch --help`` imports none of them.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import io
import os
import sys
from collections.abc import Callable, Collection, Sequence
from typing import NoReturn

from blindmatch import __version__
from blindmatch.cli.commands import COMMANDS
from blindmatch.errors import BlindmatchError

__all__ = ["build_parser", "main"]

_PATH_OPTIONS: dict[str, str | None] = {
    "paths": None,
    "out": "--out",
    "references": "--references",
    "uploads": "--uploads",
}
"""Namespace attributes that hold paths the user typed, and the option that names each."""

_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
"""OS errors that are the machine's state, not a bug, wherever they happen."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (pointing at ``--help``) instead of the
    usage text: one line on stderr and exit code 2 is the rule for every user mistake.
    Subparsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parser(loaded: Collection[str]) -> argparse.ArgumentParser:
    """The parser with the subcommands named in ``loaded`` registered by their modules and
    the others as placeholders (name and help only). Modules are imported here, not at
    module level, so one broken optional part (e.g. video without PyAV) does not take the
    others down."""
    parser = _Parser(
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
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="surrogateescape")
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(argv)
    try:
        args = _parser(() if command is None else (command,)).parse_args(argv)
        func: Callable[[argparse.Namespace], int] = args.func
        try:
            return func(args)
        except BlindmatchError as exc:
            return _fail(str(exc))
        except BrokenPipeError:
            _drop_stdout()
            return 1
        except OSError as exc:
            message = _user_os_error(exc, args)
            if message is None:
                raise
            _flush_or_drop_stdout()
            return _fail(message)
    except KeyboardInterrupt:
        print("blindmatch: interrupted", file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    print(f"blindmatch: error: {message}", file=sys.stderr)
    return 2


def _user_os_error(exc: OSError, args: argparse.Namespace) -> str | None:
    """One line for an ``OSError`` the user caused (module docstring), else ``None``."""
    reason = exc.strerror or type(exc).__name__
    filename = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes)) else None
    if filename is not None:
        for option, given in _given_paths(args):
            if _is_within(filename, given):
                named = f"{option} {given}" if option else given
                if os.path.abspath(filename) == os.path.abspath(given):
                    return f"{named}: {reason}"
                return f"{named}: {filename}: {reason}"
    if exc.errno in _ENVIRONMENT_ERRNOS:
        return f"{filename or 'writing the output'}: {reason}"
    return None


def _given_paths(args: argparse.Namespace) -> list[tuple[str | None, str]]:
    found: list[tuple[str | None, str]] = []
    for attribute, option in _PATH_OPTIONS.items():
        value = getattr(args, attribute, None)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                found.append((option, item))
    return found


def _is_within(path: str, root: str) -> bool:
    path, root = os.path.abspath(path), os.path.abspath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail again."""
    # No file descriptor: an in-process caller's stream (a test's capture), nothing to do.
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _flush_or_drop_stdout() -> None:
    try:
        sys.stdout.flush()
    except OSError:
        _drop_stdout()
