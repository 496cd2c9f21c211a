"""``blindmatch status --server URL``: what became of a report, for the holder of its receipt."""

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
    """Add the ``status`` subcommand to the ``blindmatch`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="show what became of a report, with its receipt",
        description="Show the status of your reports: pending (received, not yet on the "
        "list), published (on the list platforms check), withdrawn, suspended (paused for "
        f"review) or removed. {RECEIPT_HELP} {EXIT_CODES_HELP}",
    )
    add_server_option(parser)
    add_receipt_options(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per report")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``blindmatch status`` on parsed arguments; returns the exit code."""
    return for_each_receipt(args, "status")
