"""``blindmatch report --server URL --age minor|adult PATH...``: report files by their
fingerprints; print each report's receipt once.

Theory of operation
-------------------
The files are fingerprinted here, with the pipeline of ``blindmatch hash`` (or read from
``--hashes FILE.jsonl``, which ``blindmatch hash`` wrote), and only fingerprints are sent
(:mod:`blindmatch.client.reporting`). No file name is ever sent: the intake has no field
for one, and the names stay on this machine in what is printed here.

One report per file. Each file becomes its own report with its own receipt, so each can be
withdrawn alone, and a platform's match names one file's report, not a batch of files.
Two files with the same bytes are one report (the second is named as the same file).

Order. Nothing is sent before every file is fingerprinted and every check passed (a
``--kind`` that does not fit stops the run with nothing sent). The clearinghouse is asked
first whether it is up, so a wrong address costs no fingerprinting. Reports are then sent
one at a time, and each receipt is printed (and flushed) as soon as it arrives: a run
stopped half way (Ctrl-C, a lost connection, a rate limit) leaves every receipt it got on
the screen or in the file. The warning to keep the receipts comes last, on stderr, so it
is seen even when stdout goes to a file.

Exit codes: :mod:`blindmatch.cli._intake`, plus 1 when some files were not reported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from blindmatch.cli._argtypes import positive_int
from blindmatch.cli._intake import (
    EXIT_NOT_ALL_REPORTED,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    add_server_option,
    say,
)
from blindmatch.cli._paths import json_path, path_from_json
from blindmatch.cli.hash import (
    HashOptions,
    Progress,
    Record,
    add_limit_options,
    collect_files,
    fingerprint_files,
    video_from_record,
)
from blindmatch.errors import BlindmatchError, InvalidArgument

if TYPE_CHECKING:
    from blindmatch.client.reporting import Report, ReportingClient

__all__ = ["register", "run"]

_DESCRIPTION = (
    "Report pictures and videos to a clearinghouse so that platforms can find copies of "
    "them. The files never leave this computer: they are fingerprinted here (PDQ, MD5 and "
    "SHA-256 for a picture; vPDQ, MD5 and SHA-256 for a video) and only the fingerprints "
    "are sent, never a file name. Each file becomes its own report, with its own receipt: "
    "the receipt is printed once and is the only way to check the report ('blindmatch "
    "status') or take it back ('blindmatch withdraw'); nobody can show it again, so save "
    "it somewhere private (e.g. 'blindmatch report ... > receipts.txt'). Exit codes: 0 every "
    "file reported; 1 some files were not reported (each is named, with the reason); 2 a "
    "mistake on the command line (nothing was sent); 3 the clearinghouse refused (e.g. too "
    "many reports for now); 4 the clearinghouse could not be reached or failed; 130 "
    "interrupted (the receipts already printed are valid)."
)

_KEEP_WARNING = (
    "KEEP {these} SAFE AND PRIVATE. A receipt is the only way to check on a report or "
    "withdraw it. It is shown only this once: nobody can show it again or recover it, not "
    "even the clearinghouse. Anyone who has it can withdraw the report."
)


def register(subparsers: Any) -> None:
    """Add the ``report`` subcommand to the ``blindmatch`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="report images and videos by their fingerprints; print a receipt for each",
        description=_DESCRIPTION,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or folders")
    parser.add_argument(
        "--hashes",
        metavar="FILE",
        help="report the fingerprints in FILE, as 'blindmatch hash' writes them (JSON "
        "Lines; '-' reads the standard input), instead of fingerprinting PATHs",
    )
    add_server_option(parser)
    parser.add_argument(
        "--age",
        required=True,
        choices=("minor", "adult"),
        help="how old the person shown was when the pictures or videos were made: minor "
        "(under 18) or adult. Required: nothing is assumed",
    )
    parser.add_argument(
        "--kind",
        choices=("image", "video"),
        help="the files are all pictures (image) or all videos: a file of the other kind "
        "stops the run before anything is sent (default: detected from each file)",
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=1, metavar="N", help="worker processes (default 1)"
    )
    add_limit_options(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per file: path, report_id, receipt, status (or error)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="never draw a progress bar (it is drawn only when stderr is a terminal)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``blindmatch report`` on parsed arguments; returns the exit code."""
    from blindmatch.client.reporting import ReportingClient, server_url
    from blindmatch.errors import IntakeUnavailable

    if args.hashes is not None and args.paths:
        raise InvalidArgument("give files or --hashes FILE, not both")
    if args.hashes is None and not args.paths:
        raise InvalidArgument("name the files or folders to report (or --hashes FILE)")
    # Every usage mistake before the first request: a missing file is exit 2 even when
    # the clearinghouse is down too.
    server_url(args.server)
    for given in args.paths:
        if not os.path.lexists(given):
            raise InvalidArgument(f"{given}: no such file or folder")
    records = _read_hashes(args.hashes) if args.hashes is not None else None
    files = collect_files(args.paths) if records is None else []
    if records is None and not files:
        raise InvalidArgument("no files found in " + ", ".join(args.paths))
    with ReportingClient(args.server) as client:
        try:
            client.check()
        except IntakeUnavailable as exc:
            say(str(exc))
            return EXIT_UNAVAILABLE
        if records is None:
            records = _fingerprint(args, files)
        reports, failed = _reports(records, args.age, args.kind)
        return _send(client, reports, failed, json_output=args.json)


def _fingerprint(args: argparse.Namespace, files: list[str]) -> list[Record]:
    options = HashOptions(
        max_pixels=args.max_pixels,
        max_frames=args.max_frames,
        max_frame_pixels=args.max_frame_pixels,
    )
    show = not args.no_progress and sys.stderr.isatty() and len(files) > 1
    progress = Progress(len(files), sys.stderr) if show else None
    records = fingerprint_files(files, options, jobs=args.jobs)
    try:
        found = []
        for record in records:
            found.append(record)
            if progress is not None:
                progress.advance(record)
        return found
    finally:
        records.close()
        if progress is not None:
            progress.close()


def _read_hashes(name: str) -> list[Record]:
    try:
        if name == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(name, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"--hashes {name}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise InvalidArgument(f"--hashes {name}: not a text file (UTF-8)") from None
    records: list[Record] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InvalidArgument(f"--hashes {name}, line {number}: not JSON") from None
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            raise InvalidArgument(
                f"--hashes {name}, line {number}: not a record of 'blindmatch hash' (no path)"
            )
        record["_line"] = f"--hashes {name}, line {number}"
        records.append(record)
    if not records:
        raise InvalidArgument(f"--hashes {name}: no fingerprints in it")
    return records


def _reports(
    records: list[Record], age: str, kind: str | None
) -> tuple[list[tuple[str, Report]], list[tuple[str, str, str]]]:
    """``(path, report)`` for every file to send, and ``(path, error type, reason)`` for
    the files that could not be fingerprinted; a ``--kind`` that does not fit is a usage
    error."""
    from blindmatch.client.reporting import Report
    from blindmatch.fingerprint.types import Md5Digest, PdqFingerprint, PdqHash, Sha256Digest

    reports: list[tuple[str, Report]] = []
    failed: list[tuple[str, str, str]] = []
    first_of: dict[str, str] = {}
    for record in records:
        path = path_from_json(record)
        where = record.pop("_line", None)
        error = record.get("error")
        if error is not None:
            error = error if isinstance(error, dict) else {}
            reason = str(error.get("message") or "it could not be fingerprinted")
            failed.append((path, str(error.get("type") or "FingerprintError"), reason))
            continue
        if kind is not None and record.get("kind") != kind:
            raise InvalidArgument(
                f"{path} is not {'a picture' if kind == 'image' else 'a video'} (--kind "
                f"{kind}): nothing was sent"
            )
        try:
            md5 = Md5Digest.from_hex(record["md5"])
            sha256 = Sha256Digest.from_hex(record["sha256"])
            if record.get("kind") == "image":
                pdq = PdqFingerprint(PdqHash.from_hex(record["pdq"]), record["quality"])
                report = Report.image(age, md5, sha256, pdq)  # type: ignore[arg-type]
            elif record.get("kind") == "video":
                video = video_from_record(record)
                report = Report.video(age, md5, sha256, video)  # type: ignore[arg-type]
            else:
                raise InvalidArgument("kind must be 'image' or 'video'")
        except (KeyError, TypeError, BlindmatchError) as exc:
            if where is None:
                raise  # our own pipeline's record: a bug, keep the traceback
            detail = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise InvalidArgument(
                f"{where}: not a record of 'blindmatch hash' ({detail})"
            ) from None
        if report.sha256.hex() in first_of:
            say(f"{path}: the same file as {first_of[report.sha256.hex()]}: reported once")
            continue
        first_of[report.sha256.hex()] = path
        if not report.perceptual:
            say(
                f"{path}: too little detail for a "
                f"{'PDQ' if report.content_kind == 'image' else 'vPDQ'} "
                "fingerprint: reported by MD5 and SHA-256 only, which find exact copies only"
            )
        reports.append((path, report))
    return reports, failed


def _send(
    client: ReportingClient,
    reports: list[tuple[str, Report]],
    failed: list[tuple[str, str, str]],
    *,
    json_output: bool,
) -> int:
    from blindmatch.errors import IntakeRateLimited, IntakeRefused, IntakeUnavailable

    for path, kind, reason in failed:
        say(f"{path}: not reported: {reason}")
        if json_output:
            _print_json(path, error={"type": kind, "message": reason})
    code = EXIT_NOT_ALL_REPORTED if failed else 0
    sent = 0
    pending: Iterator[tuple[str, Report]] = iter(reports)
    try:
        for path, report in pending:
            try:
                receipt = client.submit(report)
            except (IntakeRateLimited, IntakeUnavailable) as exc:
                say(f"{path}: not reported: {exc}")
                for rest, _ in pending:
                    say(f"{rest}: not sent")
                return EXIT_REFUSED if isinstance(exc, IntakeRateLimited) else EXIT_UNAVAILABLE
            except IntakeRefused as exc:
                say(f"{path}: not reported: {exc}")
                if json_output:
                    _print_json(path, error={"type": type(exc).__name__, "code": exc.code})
                code = EXIT_NOT_ALL_REPORTED
                continue
            sent += 1
            if json_output:
                _print_json(
                    path,
                    report_id=receipt.report_id,
                    receipt=receipt.text(),
                    status="pending",
                )
            else:
                print(f"{path}: reported (report id {receipt.report_id})", flush=True)
                print(f"  receipt: {receipt.text()}", flush=True)
    finally:
        if sent:
            these = "THIS RECEIPT" if sent == 1 else "THESE RECEIPTS"
            say(_KEEP_WARNING.format(these=these))
    total = len(reports) + len(failed)
    if code:
        say(f"{sent} of {total} files reported")
    return code


def _print_json(path: str, **fields: object) -> None:
    record: dict[str, object] = dict(json_path("path", path))
    record.update(fields)
    print(json.dumps(record), flush=True)
