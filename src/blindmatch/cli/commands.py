"""The subcommands, in the order ``--help`` shows them, each with the module that holds it.

Each module has ``register(subparsers)``; add a new subcommand by adding a line here, with
the same one-line help its ``add_parser`` call gives (a test checks they agree). The
table, not the modules, is what ``blindmatch --help`` reads: a command's module, and with
it numpy, Pillow or the cryptography, is imported only when that command runs.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["COMMANDS", "Command"]


class Command(NamedTuple):
    """One subcommand: its name, the module that registers it, its one-line help.

    (A NamedTuple: ``dataclasses`` would import ``inspect``, 15 ms of start-up.)
    """

    name: str
    module: str
    help: str


COMMANDS: tuple[Command, ...] = (
    Command(
        "hash",
        "blindmatch.cli.hash",
        "fingerprint images and videos (PDQ, vPDQ, MD5, SHA-256) as JSON Lines",
    ),
    Command(
        "demo",
        "blindmatch.cli.demo",
        "the whole flow across real processes: a clearinghouse, a person, a platform",
    ),
    Command(
        "simulate",
        "blindmatch.cli.simulate",
        "run clearinghouse and platform in one process on two directories of files",
    ),
    Command(
        "report",
        "blindmatch.cli.report",
        "report images and videos by their fingerprints; print a receipt for each",
    ),
    Command("status", "blindmatch.cli.status", "show what became of a report, with its receipt"),
    Command("withdraw", "blindmatch.cli.withdraw", "take a report back, with its receipt"),
    Command(
        "serve",
        "blindmatch.cli.serve",
        "run the clearinghouse HTTP service (intake, publication, matching)",
    ),
    Command(
        "match",
        "blindmatch.cli.match",
        "match files privately against a clearinghouse over HTTP (platform)",
    ),
    Command(
        "feedback",
        "blindmatch.cli.feedback",
        "tell the clearinghouse what was done with a match (platform)",
    ),
    Command(
        "admin",
        "blindmatch.cli.admin",
        "operate a clearinghouse: platforms, keys, publication, audit",
    ),
)
