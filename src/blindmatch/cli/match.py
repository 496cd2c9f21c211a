"""``blindmatch match``: fingerprint files (or read ``blindmatch hash`` output) and match
them privately against a clearinghouse over HTTP, with the platform SDK.

Each file gives up to three uploads: its MD5, its SHA-256 and, for an image of PDQ quality
50 or more, its PDQ hash (with ``--dihedral``, its 8 dihedral variants). A video with vPDQ
frames (fingerprinted with the ``video`` extra, or read from ``--hashes``) is also matched
privately by vPDQ (``PlatformClient.match_videos``: its frames are queried like PDQ
images, the vPDQ rule applied per reported video). Matches go to stdout as JSON Lines
``{"path", "signal", "handle"}`` plus ``"agreeing_bands"`` for PDQ, ``"variant"`` with
``--dihedral``, and ``"query_pct"``, ``"compared_pct"`` for ``"vpdq"``; a summary goes to
stderr.

The API key never goes on the command line (other users see it in ``ps``): a file, or
the ``BLINDMATCH_API_KEY`` environment variable.

Retro-matching (docs/client.md): with ``--retro``, the files matched are kept in the retro
store (their per-band tags and pads, by path); ``--retro`` without PATH or ``--hashes``
checks the files kept before against the reports published since, locally, and prints
the new matches as JSON Lines ``{"path", "signal", "handle"}`` (each once).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from dataclasses import replace
from typing import Any

from blindmatch import errors
from blindmatch.cli._argtypes import positive_int
from blindmatch.cli.hash import HashOptions, Progress, collect_files, fingerprint_files

__all__ = ["EXIT_CODES", "register", "run"]

EXIT_CODES = """exit codes:
  0  every upload was answered (matched or not)
  1  some file could not be fingerprinted (named on stderr); the others were matched
  2  a usage mistake: bad option, missing file, no API key or publication key, API key
     refused (one line on stderr)
  3  the clearinghouse failed verification: manifest signature or pinned key, index
     digest, canary or proof; do not trust its answers (matches printed before stay true)
  4  unfinished: quota spent, server unavailable after retries, or the cache directory
     locked by another client too long; the matches found are printed, the unfinished
     files counted on stderr; run again later
  130 interrupted (Ctrl-C)

retro-matching:
  blindmatch match --retro ... PATH...   match, and keep the files for retro-matching
  blindmatch match --retro ...           check the kept files against the reports
                                          published since (no upload is sent); prints
                                          the new matches, each once; exit 0, 2, 3 or 4"""

_ENV_KEY = "BLINDMATCH_API_KEY"


def register(subparsers: Any) -> None:
    """Add the ``match`` subcommand to the ``blindmatch`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "match",
        help="match files privately against a clearinghouse over HTTP (platform)",
        description=(
            "Fingerprint files and folders (or read --hashes from 'blindmatch hash') and "
            "match them privately against a clearinghouse. Prints one JSON object per match."
        ),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or folders")
    parser.add_argument("--hashes", metavar="FILE", help="JSON Lines of 'blindmatch hash'")
    add_platform_options(parser)
    parser.add_argument(
        "--jobs", type=positive_int, default=1, metavar="N", help="fingerprinting processes"
    )
    parser.add_argument(
        "--dihedral", action="store_true", help="also query the 8 rotations/mirrors of images"
    )
    parser.add_argument("--no-progress", action="store_true", help="never draw a progress bar")
    parser.add_argument(
        "--retro",
        action="store_true",
        help="keep the files matched for retro-matching; without PATH: check the kept "
        "files against reports published since",
    )
    parser.add_argument(
        "--retro-store", metavar="F", help="the retro store (<cache dir>/retro.sqlite)"
    )
    parser.set_defaults(func=run)


def _read_secret(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            value = file.read().strip()
    except OSError as exc:
        raise errors.InvalidArgument(
            f"{what} {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    except UnicodeDecodeError:
        raise errors.InvalidArgument(f"{what} {path}: not text") from None
    if not value:
        raise errors.InvalidArgument(f"{what} {path} is empty")
    return value


def _api_key(args: argparse.Namespace) -> str:
    if args.api_key_file:
        return _read_secret(args.api_key_file, "--api-key-file")
    value = os.environ.get(_ENV_KEY, "").strip()
    if not value:
        raise errors.InvalidArgument(f"give the API key with --api-key-file F or ${_ENV_KEY}")
    return value


def _publication_key(args: argparse.Namespace) -> str:
    if args.publication_key and args.publication_key_file:
        raise errors.InvalidArgument("give --publication-key or --publication-key-file, not both")
    if args.publication_key:
        return str(args.publication_key)
    if args.publication_key_file:
        return _read_secret(args.publication_key_file, "--publication-key-file")
    if not args.trust_server_key:
        raise errors.InvalidArgument(
            "no publication key pinned: get it from the clearinghouse's operator (GET "
            f"{args.server.rstrip('/')}/v1/keys shows 'publication_key'), then pass "
            "--publication-key HEX, or --trust-server-key to trust the server's answer"
        )
    import httpx

    try:
        key = httpx.get(args.server.rstrip("/") + "/v1/keys", timeout=30).json()["publication_key"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        raise errors.ServiceUnavailable("could not read the server's publication key") from None
    print(
        f"blindmatch: warning: trusting the publication key the server names ({key}); "
        "pin it with --publication-key to detect a different server",
        file=sys.stderr,
    )
    return str(key)


def _records(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.paths:
        files = collect_files(args.paths)
        if not files:
            raise errors.InvalidArgument("no files found in " + ", ".join(args.paths))
        show = not args.no_progress and sys.stderr.isatty()
        progress = Progress(len(files), sys.stderr) if show else None
        options = HashOptions(dihedral=args.dihedral)
        try:
            return list(
                fingerprint_files(files, options, jobs=args.jobs, on_done=_advance(progress))
            )
        finally:
            if progress is not None:
                progress.close()
    try:
        with open(args.hashes, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as exc:
        raise errors.InvalidArgument(
            f"--hashes {args.hashes}: {exc.strerror or type(exc).__name__}"
        ) from None
    except UnicodeDecodeError:
        raise errors.InvalidArgument(f"--hashes {args.hashes}: not UTF-8 JSON Lines") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise errors.InvalidArgument(f"--hashes line {number}: not JSON") from None
        if not isinstance(record, dict) or "path" not in record:
            raise errors.InvalidArgument(f"--hashes line {number}: not a 'blindmatch hash' record")
        records.append(record)
    return records


def _advance(progress: Progress | None) -> Any:
    if progress is None:
        return None
    return lambda record: progress.advance(record)


def _uploads(records: list[dict[str, Any]], dihedral: bool) -> tuple[list[Any], list[str]]:
    from blindmatch.protocols import Upload

    uploads: list[Upload] = []
    skipped: list[str] = []
    for position, record in enumerate(records):
        ref = str(position)
        if "error" in record:
            skipped.append(f"{record.get('path')}: {record['error'].get('type', 'error')}")
            continue
        try:
            for signal in ("md5", "sha256"):
                if signal in record:
                    uploads.append(Upload(ref, signal, bytes.fromhex(record[signal])))
            if record.get("kind") == "image" and "pdq" in record:
                quality = record.get("quality")
                if type(quality) is not int or quality < 50:
                    continue  # PDQ below the quality floor is not matched (md5/sha256 are)
                variants = record.get("dihedral")
                if dihedral and isinstance(variants, dict) and len(variants) == 8:
                    hashes = [bytes.fromhex(h) for h in variants.values()]
                    uploads.append(Upload.dihedral(ref, "pdq", hashes, quality))
                else:
                    uploads.append(Upload(ref, "pdq", bytes.fromhex(record["pdq"]), quality))
        except (ValueError, TypeError, AttributeError, errors.BlindmatchError):
            raise errors.InvalidArgument(
                f"record {position + 1} ({record.get('path')!s:.80}) has a malformed hash"
            ) from None
    return uploads, skipped


def _retro_ref(record: dict[str, Any]) -> str:
    """A kept file's ref in the retro store: its path (a NUL, never in a path, then the
    exact bytes in hex for a name that is not UTF-8)."""
    if "path_hex" in record:
        return "\0" + str(record["path_hex"])
    return str(record.get("path"))


def _retro_path(ref: str) -> dict[str, Any]:
    if ref.startswith("\0"):
        raw = bytes.fromhex(ref[1:])
        return {"path": raw.decode("utf-8", "replace"), "path_hex": ref[1:]}
    return {"path": ref}


def _retro_check(client: Any) -> int:
    """``blindmatch match --retro`` without files: the kept files that match now."""
    from blindmatch.client import RetroReport

    try:
        report: RetroReport = client.retro_matches()
    except (errors.AuthenticationFailed, errors.PublicationKeyMismatch) as exc:
        raise errors.InvalidArgument(str(exc)) from None
    except (errors.QuotaExhausted, errors.ServiceUnavailable, errors.CacheLocked) as exc:
        print(f"blindmatch: error: {exc}", file=sys.stderr)
        return 4
    except (
        errors.ManifestError,
        errors.IndexIntegrityError,
        errors.IndexFormatError,
        errors.KeyMismatch,
    ) as exc:
        print(f"blindmatch: error: verification failed: {exc}", file=sys.stderr)
        return 3
    for match in report.matches:
        if match.signal == "vpdq":
            continue  # a video's frame: videos are not retro-matched (docs/client.md)
        line = _retro_path(match.upload_ref)
        line["signal"] = match.signal
        line["handle"] = match.handle.hex()
        if match.variant is not None:
            line["variant"] = match.variant
        sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    files = {m.upload_ref for m in report.matches if m.signal != "vpdq"}
    found = sum(m.signal != "vpdq" for m in report.matches)
    print(
        f"blindmatch: retro: {found} new matches in {len(files)} kept files; "
        f"{report.checked} index files checked, {report.records} records kept, "
        f"{report.forgotten} forgotten; epoch {report.epoch} version {report.version}",
        file=sys.stderr,
    )
    return 0


def _videos(records: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """``(ref, VideoFingerprint)`` of every video record with frames (for private vPDQ)."""
    from blindmatch.cli.hash import video_from_record

    videos = []
    for position, record in enumerate(records):
        if record.get("kind") != "video" or "error" in record or not record.get("frames"):
            continue
        try:
            videos.append((str(position), video_from_record(record)))
        except errors.BlindmatchError:
            raise errors.InvalidArgument(
                f"record {position + 1} ({record.get('path')!s:.80}) has malformed frames"
            ) from None
    return videos


def _print_videos(records: list[dict[str, Any]], found: Any) -> None:
    for video in found.videos:
        record = records[int(video.upload_ref)]
        line: dict[str, Any] = {"path": record.get("path")}
        if "path_hex" in record:
            line["path_hex"] = record["path_hex"]
        line["signal"] = video.signal
        line["handle"] = video.handle.hex()
        line["query_pct"] = round(video.query_pct, 2)
        line["compared_pct"] = round(video.compared_pct, 2)
        sys.stdout.write(json.dumps(line) + "\n")


def add_platform_options(parser: argparse.ArgumentParser) -> None:
    """The options of a platform's connection: server, API key, pinned key, cache."""
    parser.add_argument("--server", required=True, metavar="URL", help="the clearinghouse")
    parser.add_argument(
        "--api-key-file", metavar="F", help=f"file holding the API key (else ${_ENV_KEY})"
    )
    parser.add_argument(
        "--publication-key", metavar="HEX", help="the pinned manifest signing key (64 hex)"
    )
    parser.add_argument("--publication-key-file", metavar="F", help="file holding it")
    parser.add_argument(
        "--trust-server-key",
        action="store_true",
        help="trust the key GET /v1/keys names (trust on first use; prints a warning)",
    )
    parser.add_argument("--cache-dir", metavar="D", help="index cache (~/.cache/blindmatch)")


def run(args: argparse.Namespace) -> int:
    """Run ``blindmatch match`` on parsed arguments; returns the exit code."""
    from blindmatch.client import ClientOptions, MatchReport, PlatformClient, parse_publication_key

    api_key = _api_key(args)
    retro_check = args.retro and not args.paths and not args.hashes
    if args.retro_store and not args.retro:
        raise errors.InvalidArgument("--retro-store goes with --retro")
    if bool(args.paths) == bool(args.hashes) and not retro_check:
        raise errors.InvalidArgument("give PATH... or --hashes FILE (one of them)")
    if retro_check and args.retro_store and not os.path.isfile(args.retro_store):
        raise errors.InvalidArgument(f"--retro-store {args.retro_store}: no such file")
    pinned = parse_publication_key(_publication_key(args))  # checked before any hashing
    try:
        client = PlatformClient(
            args.server,
            api_key=api_key,
            publication_key=pinned,
            cache_dir=args.cache_dir,
            options=ClientOptions(retro=args.retro),
            retro_store=args.retro_store,
        )
    except sqlite3.DatabaseError:
        raise errors.InvalidArgument(
            f"--retro-store {args.retro_store or '(in the cache directory)'}: not a retro store"
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = (
            f"--retro-store {args.retro_store}"
            if args.retro_store
            else f"--cache-dir {args.cache_dir or '(default)'}"
        )
        raise errors.InvalidArgument(f"{where}: {reason}") from None
    code = 0
    report: MatchReport | None
    with client:
        if retro_check:
            return _retro_check(client)
        records = _records(args)
        uploads, skipped = _uploads(records, args.dihedral)
        positions: dict[str, int] = {}
        if args.retro:  # kept by path, so a later check can name the file
            refs = [_retro_ref(record) for record in records]
            positions = {ref: number for number, ref in enumerate(refs)}
            uploads = [replace(u, ref=refs[int(u.ref)]) for u in uploads]
        for reason in skipped:
            print(f"blindmatch: skipped {reason}", file=sys.stderr)
        videos = _videos(records)
        found = None
        try:
            if videos:
                found = client.match_videos(videos, uploads)
                report = found.report
            else:
                report = client.match(uploads)
        except (errors.AuthenticationFailed, errors.PublicationKeyMismatch) as exc:
            raise errors.InvalidArgument(str(exc)) from None
        except (errors.QuotaExhausted, errors.ServiceUnavailable, errors.CacheLocked) as exc:
            print(f"blindmatch: error: {exc}", file=sys.stderr)
            report = exc.partial if isinstance(exc.partial, MatchReport) else None
            code = 4
        except (
            errors.ManifestError,
            errors.IndexIntegrityError,
            errors.KeyMismatch,
            errors.VerifyError,
        ) as exc:
            print(f"blindmatch: error: verification failed: {exc}", file=sys.stderr)
            return 3
    if report is not None:
        if found is not None:
            _print_videos(records, found)
        for match in report.matches:
            if match.signal == "vpdq":
                continue  # a video's frame (a partial report): the vPDQ rule was not applied
            ref = match.upload.ref
            record = records[positions[ref] if args.retro else int(ref)]
            line: dict[str, Any] = {"path": record.get("path")}
            if "path_hex" in record:
                line["path_hex"] = record["path_hex"]
            line["signal"] = match.signal
            line["handle"] = match.handle.hex()
            if match.signal == "pdq":
                line["agreeing_bands"] = match.agreeing_bands
            if match.variant is not None:
                line["variant"] = match.variant
            sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        files = {m.upload.ref for m in report.matches if m.signal != "vpdq"}
        files |= {v.upload_ref for v in found.videos} if found is not None else set()
        unfinished = {u.ref for u in report.unfinished if u.signal != "vpdq"}
        unfinished |= set(found.unfinished_videos) if found is not None else set()
        matched = len([m for m in report.matches if m.signal != "vpdq"])
        matched += len(found.videos) if found is not None else 0
        kept = ""
        if args.retro:
            kept = f", {report.stats.retro_records} records kept"
            if report.stats.retro_not_kept:
                kept += f" ({report.stats.retro_not_kept} over --retro's bound, not kept)"
        print(
            f"blindmatch: {len(records)} files, {len(uploads)} uploads, "
            f"{matched} matches in {len(files)} files, "
            f"{len(unfinished)} files unfinished, {len(skipped)} skipped{kept}; "
            f"epoch {report.epoch} version {report.version}",
            file=sys.stderr,
        )
    if code == 0 and skipped:
        code = 1
    return code
