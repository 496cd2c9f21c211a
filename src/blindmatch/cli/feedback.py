"""``blindmatch feedback``: tell the clearinghouse what the platform did with a match.

``blindmatch feedback --server URL HANDLE VERDICT`` sends ``POST /v1/feedback`` through the
platform SDK (:meth:`blindmatch.client.PlatformClient.feedback`) with the platform's API
key, as ``blindmatch match`` reads it (a file or ``BLINDMATCH_API_KEY``, never the command
line), and the pinned publication key options of ``blindmatch match``. ``HANDLE`` is the
``handle`` of a line ``blindmatch match`` printed; ``VERDICT`` is ``actioned`` (it was the
reported kind of content) or ``not_reported_kind`` (a dispute: disputes from enough
platforms suspend the report for review). Prints ``{"handle", "verdict", "status"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from blindmatch import errors

__all__ = ["EXIT_CODES", "register", "run"]

EXIT_CODES = """exit codes:
  0  recorded (the report's state after it is printed)
  2  a usage mistake or a refusal: bad handle or verdict, a handle the clearinghouse never
     gave, no API key or publication key, API key refused (one line on stderr)
  4  the clearinghouse did not answer after retries; send it again later"""


def register(subparsers: Any) -> None:
    """Add the ``feedback`` subcommand to the ``blindmatch`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "feedback",
        help="tell the clearinghouse what was done with a match (platform)",
        description=(
            "Say what the platform did with a match: VERDICT is 'actioned' or "
            "'not_reported_kind' (a dispute). HANDLE is a match's handle (blindmatch match)."
        ),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("handle", metavar="HANDLE", help="the match's handle (32 hex digits)")
    parser.add_argument("verdict", metavar="VERDICT", choices=("actioned", "not_reported_kind"))
    from blindmatch.cli.match import add_platform_options

    add_platform_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``blindmatch feedback`` on parsed arguments; returns the exit code."""
    # The same key options as ``blindmatch match``, read the same way.
    from blindmatch.cli.match import _api_key, _publication_key
    from blindmatch.client import PlatformClient, parse_publication_key

    key = _api_key(args)
    pinned = parse_publication_key(_publication_key(args))
    try:
        client = PlatformClient(
            args.server, api_key=key, publication_key=pinned, cache_dir=args.cache_dir
        )
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise errors.InvalidArgument(f"--cache-dir {args.cache_dir}: {reason}") from None
    with client:
        try:
            status = client.feedback(args.handle, args.verdict)
        except errors.ServiceUnavailable as exc:
            print(f"blindmatch: error: {exc}", file=sys.stderr)
            return 4
    line = {"handle": args.handle.lower(), "verdict": args.verdict, "status": status}
    print(json.dumps(line))
    return 0
