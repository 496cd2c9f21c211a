"""What ``blindmatch report``, ``status`` and ``withdraw`` share: the server option, where a
receipt comes from, the exit codes, and the one-line messages.

Exit codes (the same for the three commands, and in each ``--help``):

- 0: done (for ``withdraw``, also when the report was already withdrawn);
- 1: ``report`` only: some files were not reported (each named on stderr with the reason);
  the others were, and their receipts are printed;
- 2: a mistake on the command line (one line on stderr): nothing was sent;
- 3: the clearinghouse refused: a receipt it does not recognise, or too many reports from
  this connection for now;
- 4: the clearinghouse could not be reached, failed, or the address is not one;
- 130: interrupted (Ctrl-C); receipts already printed are valid.

Receipts. A receipt is a secret: typed on the command line (``--receipt``) it is saved in
the shell's history and, while the command runs, visible to other users of the computer in
the process list. ``--receipt-file``, the ``BLINDMATCH_RECEIPT`` variable or the prompt
(when nothing else is given and the command runs in a terminal; what is typed is not shown)
avoid that.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING, Final

from blindmatch.errors import InvalidArgument

if TYPE_CHECKING:
    from blindmatch.client.reporting import Receipt

__all__ = [
    "ENV_RECEIPT",
    "EXIT_CODES_HELP",
    "EXIT_NOT_ALL_REPORTED",
    "EXIT_REFUSED",
    "EXIT_UNAVAILABLE",
    "RECEIPT_HELP",
    "STATUS_TEXT",
    "add_receipt_options",
    "add_server_option",
    "for_each_receipt",
    "receipts_from",
    "say",
]

ENV_RECEIPT: Final = "BLINDMATCH_RECEIPT"
EXIT_NOT_ALL_REPORTED: Final = 1
EXIT_REFUSED: Final = 3
EXIT_UNAVAILABLE: Final = 4

EXIT_CODES_HELP: Final = (
    "Exit codes: 0 done; 2 a mistake on the command line (nothing was sent); 3 the "
    "clearinghouse refused (a receipt it does not recognise, too many reports for now); 4 the "
    "clearinghouse could not be reached or failed; 130 interrupted."
)

RECEIPT_HELP: Final = (
    "The receipt is the one line starting with 'bm1.' that 'blindmatch report' printed. "
    "Give it with --receipt-file F, in the environment variable BLINDMATCH_RECEIPT, or type "
    "it when asked (it is not shown). --receipt R works too, but a receipt typed on the "
    "command line is saved in your shell's history and other users of this computer can see "
    "it in the process list while the command runs."
)


def say(message: str) -> None:
    """One line on stderr, ``blindmatch: ...``."""
    print(f"blindmatch: {message}", file=sys.stderr, flush=True)


def add_server_option(parser: argparse.ArgumentParser) -> None:
    """``--server URL`` (required)."""
    parser.add_argument(
        "--server",
        required=True,
        metavar="URL",
        help="the clearinghouse's address, e.g. https://clearinghouse.example.org "
        "(http:// only for this computer)",
    )


def add_receipt_options(parser: argparse.ArgumentParser) -> None:
    """``--receipt R`` | ``--receipt-file F`` (one of them, or the variable, or the prompt)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--receipt-file",
        metavar="F",
        help="read the receipts in F: a file you saved them in, e.g. the saved output of "
        "'blindmatch report' (text or --json); every receipt in it is used; '-' reads them "
        "from the standard input",
    )
    group.add_argument(
        "--receipt",
        metavar="R",
        help="the receipt itself (avoid it: it is saved in your shell's history and visible "
        "in the process list)",
    )


def receipts_from(args: argparse.Namespace) -> list[Receipt]:
    """The receipts the user gave (module docstring), at least one.

    Raises:
        InvalidArgument: none given, unreadable file, or not a receipt (the message never
            quotes what was given).
    """
    from blindmatch.client.reporting import Receipt
    from blindmatch.errors import InvalidEncoding

    if args.receipt_file is not None:
        text = _read(args.receipt_file)
        found = Receipt.find_all(text)
        if not found:
            raise InvalidArgument(
                f"--receipt-file {args.receipt_file}: no blindmatch receipt in it (a receipt "
                "is one line that starts with 'bm1.')"
            )
        return found
    if args.receipt is not None:
        given, source = args.receipt, "--receipt"
    elif os.environ.get(ENV_RECEIPT):
        given, source = os.environ[ENV_RECEIPT], ENV_RECEIPT
    elif sys.stdin.isatty():
        given, source = getpass.getpass("Your receipt (it is not shown as you type): "), "input"
    else:
        raise InvalidArgument(
            f"no receipt: give --receipt-file F, set {ENV_RECEIPT}, or --receipt R"
        )
    try:
        return [Receipt.parse(given)]
    except InvalidEncoding as exc:
        raise InvalidArgument(f"{source}: {exc}") from None


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        with open(name, encoding="utf-8", errors="replace") as handle:
            return handle.read(16 * 1024 * 1024)
    except OSError as exc:
        raise InvalidArgument(
            f"--receipt-file {name}: {exc.strerror or type(exc).__name__}"
        ) from None


STATUS_TEXT: Final = {
    "pending": "received; it will be on the list that platforms check within a few minutes",
    "published": "on the list: platforms that check uploads against it look for this file",
    "withdrawn": "platforms no longer look for this file",
    "suspended": "paused while the clearinghouse reviews it",
    "removed": "taken off the list by the clearinghouse",
}
"""A plain sentence for each status a report can have."""


def for_each_receipt(args: argparse.Namespace, action: str) -> int:
    """Run ``status`` or ``withdraw`` (``action``) for every receipt given; print a line (or
    a JSON object with ``--json``) per report; return the exit code (module docstring).

    A refusal of one receipt does not stop the others; a clearinghouse that cannot be
    reached stops the run.
    """
    import json
    import time

    from blindmatch.client.reporting import ReportingClient
    from blindmatch.errors import IntakeRefused, IntakeUnavailable

    receipts = receipts_from(args)
    code = 0
    with ReportingClient(args.server) as client:
        for receipt in receipts:
            try:
                try:
                    if action == "withdraw":
                        result = client.withdraw(receipt)
                    else:
                        result = client.status(receipt)
                except IntakeRefused as exc:
                    if action != "withdraw" or exc.code != "already_withdrawn":
                        raise
                    result = client.status(receipt)  # withdrawn, as asked: not an error
            except IntakeUnavailable as exc:
                say(str(exc))
                return EXIT_UNAVAILABLE
            except IntakeRefused as exc:
                say(f"report {receipt.report_id}: {exc}")
                code = EXIT_REFUSED
                continue
            if args.json:
                fields = {
                    "report_id": result.report_id,
                    "status": result.status,
                    "created_at": result.created_at,
                    "withdrawn_at": result.withdrawn_at,
                }
                print(json.dumps(fields), flush=True)
            else:
                when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(result.created_at))
                print(
                    f"report {result.report_id} (sent {when}): {result.status}: "
                    f"{STATUS_TEXT[result.status]}",
                    flush=True,
                )
    return code
