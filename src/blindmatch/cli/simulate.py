"""``blindmatch simulate``: both parties of the matching protocol in one process.

Fingerprints a directory of reference files (the clearinghouse's reported media) and a
directory of upload files (a platform's), builds the index, runs the two sans-IO sessions
against each other over the real encoded messages, and prints the matches and what each
party saw. See :mod:`blindmatch.simulate`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from blindmatch.cli._argtypes import positive_int
from blindmatch.errors import LocalProtocolError
from blindmatch.simulate import DEFAULT_SIGNALS, SIGNALS, SimulationResult, simulate

__all__ = ["register", "run"]


def _signals(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    if not chosen or any(s not in SIGNALS for s in chosen):
        raise argparse.ArgumentTypeError(f"signals are a comma list of {', '.join(SIGNALS)}")
    return chosen


def register(subparsers: Any) -> None:
    """Add the ``simulate`` subcommand to the ``blindmatch`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run clearinghouse and platform in one process on two directories of files",
        description=(
            "Run the private matching protocol between a clearinghouse holding the files of "
            "--references and a platform holding the files of --uploads, in memory, over the "
            "real wire messages. Prints the matches and what each party saw."
        ),
    )
    parser.add_argument(
        "--references",
        required=True,
        metavar="DIR",
        help="directory of reference (reported) files; report id = relative path",
    )
    parser.add_argument(
        "--uploads", required=True, metavar="DIR", help="directory of upload files to check"
    )
    parser.add_argument(
        "--signals",
        type=_signals,
        default=list(DEFAULT_SIGNALS),
        metavar="LIST",
        help=f"comma list of signals ({', '.join(SIGNALS)}); default {','.join(DEFAULT_SIGNALS)}",
    )
    parser.add_argument(
        "--processes",
        type=positive_int,
        default=None,
        metavar="N",
        help="worker processes for the index build (default: every core)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        metavar="N",
        help="threads both sessions use for large batches (default 1)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=256,
        metavar="N",
        help="elements per evaluation request (default 256)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print JSON Lines: one object per match, then {"summary": ...}',
    )
    parser.set_defaults(func=run)


def _print_text(result: SimulationResult) -> None:
    for match in result.matches:
        print(
            f"match  {match.upload}  ->  report {match.report}  "
            f"[{match.signal} {match.handle.hex()}]"
        )
    if not result.matches:
        print("no matches")
    summary = result.summary()
    for party in ("clearinghouse", "platform"):
        print(f"{party} saw:")
        section = summary[party]
        assert isinstance(section, dict)
        for name, value in section.items():
            print(f"  {name}: {json.dumps(value)}")
    for name in ("references", "uploads", "skipped", "videos", "messages"):
        print(f"{name}: {json.dumps(summary[name])}")


def run(args: argparse.Namespace) -> int:
    """Run the simulation the parsed arguments describe; return the exit code.

    Raises:
        BlindmatchError: unreadable files, bad directories, a failed protocol run.
    """
    if args.batch_size > 65536:
        raise LocalProtocolError("--batch-size is at most 65536")
    result = simulate(
        args.references,
        args.uploads,
        signals=args.signals,
        processes=args.processes,
        batch_size=args.batch_size,
        threads=args.threads,
    )
    if args.json:
        for match in result.matches:
            sys.stdout.write(json.dumps(match.to_json(), sort_keys=True) + "\n")
        sys.stdout.write(json.dumps({"summary": result.summary()}, sort_keys=True) + "\n")
    else:
        _print_text(result)
    return 0
