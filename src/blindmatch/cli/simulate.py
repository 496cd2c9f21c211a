"""``blindmatch simulate``: both parties of the matching protocol in one process.

Fingerprints a directory of reference files (the clearinghouse's reported media) and a
directory of upload files (a platform's), builds the index, runs the two sans-IO sessions
against each other over the real encoded messages, and prints the matches and what each
party saw. See :mod:`blindmatch.simulate`.

A file left out of a signal (not an image, corrupt, empty, low PDQ quality) gets one line
on stderr naming it and why, and with ``--json`` an entry of ``summary.skipped_files``;
the run goes on (exit code 0). A missing folder, or a reference folder without one usable
file, is a user mistake: one line naming the option and the path, exit code 2. File names
that are not valid UTF-8 are escaped in JSON as ``blindmatch hash`` does
(:mod:`blindmatch.cli._paths`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from blindmatch.cli._argtypes import positive_int
from blindmatch.cli._paths import json_path
from blindmatch.cli.hash import add_limit_options
from blindmatch.errors import InvalidArgument, LocalProtocolError
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
    add_limit_options(parser, video=False)
    parser.add_argument(
        "--dihedral",
        action="store_true",
        help="also query the 8 rotations/mirrors of every PDQ upload (8x its elements)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print JSON Lines: one object per match, then {"summary": ...}',
    )
    parser.set_defaults(func=run)


def _print_text(result: SimulationResult) -> None:
    for match in result.matches:
        variant = f" {match.variant}" if match.variant is not None else ""
        print(
            f"match  {match.upload}  ->  report {match.report}  "
            f"[{match.signal}{variant} {match.handle.hex()}]"
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
    for name in ("dihedral", "references", "uploads", "skipped", "videos", "messages"):
        print(f"{name}: {json.dumps(summary[name])}")


def run(args: argparse.Namespace) -> int:
    """Run the simulation the parsed arguments describe; return the exit code.

    Raises:
        BlindmatchError: unreadable files, bad directories, a failed protocol run.
    """
    if args.batch_size > 65536:
        raise LocalProtocolError("--batch-size is at most 65536")
    for option, folder in (("--references", args.references), ("--uploads", args.uploads)):
        if not os.path.isdir(folder):
            problem = "not a folder" if os.path.exists(folder) else "no such folder"
            raise InvalidArgument(f"{option} {folder}: {problem}")
    result = simulate(
        args.references,
        args.uploads,
        signals=args.signals,
        processes=args.processes,
        batch_size=args.batch_size,
        threads=args.threads,
        max_pixels=args.max_pixels,
        dihedral=args.dihedral,
    )
    for skip in result.skipped_files:
        print(f"blindmatch: skipped {skip.path} for {skip.signal}: {skip.reason}", file=sys.stderr)
    if args.json:
        for match in result.matches:
            record = match.to_json()
            record.update(json_path("upload", match.upload))
            record.update(json_path("report", match.report))
            sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
        summary = result.summary()
        summary["skipped_files"] = [
            {**skip.to_json(), **json_path("path", skip.path)} for skip in result.skipped_files
        ]
        sys.stdout.write(json.dumps({"summary": summary}, sort_keys=True) + "\n")
    else:
        _print_text(result)
    return 0
