"""``blindmatch withdraw --server URL``: take a report back, with its receipt."""

from __future__ import annotations

import argparse
from typing import Any

from blindmatch.cli._intake import (
    EXIT_CODES_HELP,
    RECEIPT_HELP,
    add_receipt_options,
    add_server_option,
    for_each_receipt,
)

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``withdraw`` subcommand to the ``blindmatch`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "withdraw",
        help="take a report back, with its receipt",
        description="Withdraw your reports: platforms stop looking for the files at once, "
        "and the fingerprints leave the list at its next update. A report already withdrawn "
        f"is not an error. {RECEIPT_HELP} {EXIT_CODES_HELP}",
    )
    add_server_option(parser)
    add_receipt_options(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per report")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``blindmatch withdraw`` on parsed arguments; returns the exit code."""
    return for_each_receipt(args, "withdraw")
