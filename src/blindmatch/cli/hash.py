"""``blindmatch hash PATH...``: fingerprint files and folders, one JSON object per file.

Folders are walked recursively in sorted order (symlinked folders are not followed, so a
link loop cannot recurse forever). Each file is routed by its magic bytes, never its name:

- image: ``{"path", "kind": "image", "md5", "sha256", "pdq", "quality"}``, plus
  ``"dihedral": {name: pdq, ...}`` (the 8 variants, reference order) with ``--dihedral``;
- video: ``{"path", "kind": "video", "md5", "sha256", "frames": [{"frame_number",
  "timestamp", "pdq", "quality"}, ...], "fps"}`` (vPDQ, ``--seconds-per-hash``);
- a file that cannot be fingerprinted: ``{"path", "error": {"type", "message"}}``, where
  ``type`` is the :mod:`blindmatch.errors` class (``UnreadableMedia``, ``CorruptMedia``,
  ``UnsupportedMedia``, ``MediaTooLarge``) and the message never quotes file content.

A file name that is not valid UTF-8 adds ``"path_hex"`` (its exact bytes) and ``"path"``
shows it with U+FFFD for each undecodable byte (:mod:`blindmatch.cli._paths`), so every
line is valid JSON for strict parsers.

One bad file never stops the run (with ``--jobs N``, not even one that crashes its worker
process); the exit code is 1 if any file failed, else 0; 2 for a usage error, and when the
paths hold no file at all (empty folders: one line says so). A reader that
stops early (``blindmatch hash DIR | head``) ends the run quietly with exit code 1: not every
file was written. Records come out in input order whatever ``--jobs`` is: workers are
processes (decoders are not thread-safe under Pillow's warning capture, and processes use
every core), and results are collected in order. The progress bar goes to stderr, so
stdout stays clean JSON Lines, and only when stderr is a terminal (a log file or a pipe
would fill with ``\r`` redraws). Worker processes ignore SIGINT: Ctrl-C reaches the main
process alone, which stops the pool and exits with code 130.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import sys
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any, TextIO, TypeGuard

from blindmatch.cli._argtypes import non_negative_seconds, positive_int
from blindmatch.cli._paths import json_path
from blindmatch.errors import (
    BlindmatchError,
    CorruptMedia,
    InvalidArgument,
    InvalidEncoding,
    UnreadableMedia,
    UnsupportedMedia,
)
from blindmatch.fingerprint.exact import file_digests
from blindmatch.fingerprint.frontend import (
    DEFAULT_MAX_PIXELS,
    MediaKind,
    Policy,
    load_rgb,
    sniff_file,
)
from blindmatch.fingerprint.pdq import (
    DIHEDRAL_NAMES,
    pdq_backend,
    pdq_dihedral_from_rgb,
    pdq_from_rgb,
)
from blindmatch.fingerprint.types import PdqHash, VideoFingerprint, VideoFrame
from blindmatch.fingerprint.video import (
    DEFAULT_MAX_FRAMES,
    DEFAULT_SECONDS_PER_HASH,
    hash_video,
)
from blindmatch.fingerprint.video import DEFAULT_MAX_PIXELS as DEFAULT_MAX_FRAME_PIXELS

__all__ = [
    "HashOptions",
    "Progress",
    "add_limit_options",
    "collect_files",
    "fingerprint_file",
    "fingerprint_files",
    "register",
    "run",
    "video_fields",
    "video_from_record",
]

Record = dict[str, Any]
"""One JSON Lines object (see the module docstring for its fields)."""


@dataclass(frozen=True, slots=True)
class HashOptions:
    """What to compute for each file.

    Attributes:
        policy: The image front-end policy (``default`` or ``fast``).
        dihedral: Add the 8 dihedral PDQ variants of images.
        seconds_per_hash: vPDQ sampling of videos (0 hashes every frame).
        max_pixels: Largest image (width x height) decoded.
        max_frames: Most frames decoded from one video.
        max_frame_pixels: Largest video frame (width x height) decoded.
    """

    policy: Policy = "default"
    dihedral: bool = False
    seconds_per_hash: float = DEFAULT_SECONDS_PER_HASH
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_frames: int = DEFAULT_MAX_FRAMES
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS


def collect_files(inputs: Iterable[str]) -> list[str]:
    """The files to fingerprint: each input file as given, each folder walked recursively.

    A folder's entries are visited in sorted (code point) order, files and sub-folders
    interleaved, so the result is sorted like ``find DIR | sort``. Symlinks to folders are
    listed as entries but not entered (no link loops). Inputs that do not exist, and
    folders that cannot be listed, are kept as entries so they get their own error record.

    Args:
        inputs: Paths as the user typed them.

    Returns:
        File paths, in the order their records will be written.
    """
    files: list[str] = []
    for item in inputs:
        if os.path.isdir(item):  # a folder named on the command line is entered even via a link
            _walk(item, files)
        else:
            files.append(item)
    return files


def _walk(folder: str, out: list[str]) -> None:
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        out.append(folder)
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _walk(entry.path, out)
        else:
            out.append(entry.path)


def fingerprint_file(path: str, options: HashOptions) -> Record:
    """The JSON record of one file; failures become an ``error`` record, never an exception.

    Args:
        path: The file.
        options: What to compute.

    Returns:
        An image, video or error record (module docstring).
    """
    try:
        kind = _kind(path)
        if kind == "image":
            return _image_record(path, options)
        return _video_record(path, options)
    except BlindmatchError as exc:
        return _error_record(path, exc)


def _error_record(path: str, exc: BlindmatchError) -> Record:
    record: Record = json_path("path", path)
    record["error"] = {"type": type(exc).__name__, "message": str(exc)}
    return record


def fingerprint_files(
    files: Sequence[str],
    options: HashOptions,
    *,
    jobs: int = 1,
    on_done: Callable[[Record], None] | None = None,
) -> Generator[Record, None, None]:
    """Fingerprint files with ``jobs`` processes, yielding records in input order.

    With ``jobs > 1`` a worker process that dies (a decoder crash, the kernel's OOM killer)
    costs at most the file it was on: the files in flight at that moment are hashed again,
    each alone in a fresh process, and one that kills that process too gets a
    :class:`~blindmatch.errors.CorruptMedia` record; the run goes on in a new pool.

    Args:
        files: Paths from :func:`collect_files`.
        options: What to compute.
        jobs: Worker processes; 1 works in this process.
        on_done: Called with each record as it is yielded (progress reporting).

    Yields:
        One record per file, in the order of ``files``.
    """
    if jobs < 1:
        raise InvalidArgument("jobs must be >= 1")
    work = partial(fingerprint_file, options=options)
    if jobs == 1 or len(files) <= 1:
        for record in map(work, files):
            if on_done is not None:
                on_done(record)
            yield record
        return
    records = _in_processes(files, work, _jobs_within_fd_limit(min(jobs, len(files))))
    try:
        for record in records:
            if on_done is not None:
                on_done(record)
            yield record
    finally:
        records.close()  # a consumer that stops early shuts the pool down now, not at GC


# File descriptors: each worker costs the parent about two (its sentinel and pipe end) and
# inherits the parent's at fork, so a late worker holds about two per earlier worker; each
# also needs a dozen or so to open and decode a file.
_FDS_PER_WORKER = 2
_FDS_SPARE = 16


def _jobs_within_fd_limit(jobs: int) -> int:
    """``jobs``, lowered (with a one-line notice on stderr) to what the open-file limit
    (``ulimit -n``) allows, so that a large ``--jobs`` under a small limit runs with fewer
    workers instead of failing to start them."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        open_now = len(os.listdir("/proc/self/fd"))
    except (ImportError, OSError):
        return jobs
    if soft == resource.RLIM_INFINITY:
        return jobs
    allowed = max(1, (soft - open_now - _FDS_SPARE) // _FDS_PER_WORKER)
    if allowed < jobs:
        print(
            f"blindmatch: {allowed} worker processes instead of {jobs}: "
            f"the open-file limit (ulimit -n) is {soft}",
            file=sys.stderr,
        )
        return allowed
    return jobs


def _in_processes(
    files: Sequence[str], work: Callable[[str], Record], jobs: int
) -> Generator[Record, None, None]:
    """``work`` over ``files`` in ``jobs`` processes, in order, at most ``2 * jobs`` files
    submitted ahead of the consumer (so a long run does not queue every file at once)."""
    # Load the PDQ kernels here, once: forked workers inherit them instead of each loading
    # them again (about a second per process, and a retry pool is a new process).
    pdq_backend()
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init)
    window: deque[tuple[str, Future[Record]]] = deque()
    upcoming = iter(files)
    try:
        while True:
            for path in islice(upcoming, 2 * jobs - len(window)):
                window.append((path, pool.submit(work, path)))
            if not window:
                return
            path, future = window.popleft()
            try:
                record = future.result()
            except BrokenProcessPool:
                pool.shutdown(wait=True, cancel_futures=True)
                in_flight = [path, *(p for p, _ in window)]
                window.clear()
                yield from _one_by_one(in_flight, work)
                pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init)
                continue
            yield record
    finally:
        # If the consumer stops early (closed pipe, Ctrl-C), drop the files not started.
        pool.shutdown(wait=True, cancel_futures=True)


def _one_by_one(files: list[str], work: Callable[[str], Record]) -> Generator[Record, None, None]:
    """``work`` over ``files`` in one worker process, one file at a time, so a death of the
    process is the file's own: it becomes the file's error record and a new process goes on."""
    solo = ProcessPoolExecutor(max_workers=1, initializer=_worker_init)
    try:
        for path in files:
            try:
                record = solo.submit(work, path).result()
            except BrokenProcessPool:
                solo.shutdown(wait=True)
                solo = ProcessPoolExecutor(max_workers=1, initializer=_worker_init)
                record = _error_record(path, CorruptMedia(_WORKER_DIED))
            yield record
    finally:
        solo.shutdown(wait=True, cancel_futures=True)


_WORKER_DIED = "the worker process died on this file (a crash or out of memory)"


def _worker_init() -> None:
    """Workers ignore Ctrl-C (the terminal sends SIGINT to the whole process group): the
    main process alone handles it, so no worker prints a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Progress:
    """A one-line text progress bar, redrawn in place with ``\\r`` (at most ~10 times a
    second, and always for the last item).

    When the records go to the same terminal (``blindmatch hash DIR`` typed at a prompt),
    call :meth:`clear` before writing each record: the bar's line is blanked so the record
    starts at column 0, and the next :meth:`advance` draws the bar again below it.
    """

    def __init__(self, total: int, stream: TextIO, *, width: int = 30) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self._stream = stream
        self._width = width
        self._last = 0.0
        self._shown = -1
        self._drawn = 0  # characters of the bar now on screen (0: none)

    def advance(self, record: Record | None = None) -> None:
        """Count one finished file (a failed one if ``record`` is an error record)."""
        self.done += 1
        if record is not None and "error" in record:
            self.failed += 1
        now = time.monotonic()
        if not self._drawn or now - self._last >= 0.1 or self.done >= self.total:
            self._last = now
            self._draw()

    def clear(self) -> None:
        """Blank the bar's line and return to its start (nothing if no bar is shown)."""
        if self._drawn:
            self._stream.write("\r" + " " * self._drawn + "\r")
            self._stream.flush()
            self._drawn = 0
            self._shown = -1

    def close(self) -> None:
        """End the bar's line."""
        if self.total:
            if self._shown != self.done:
                self._draw()
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self) -> None:
        self._shown = self.done
        share = self.done / self.total if self.total else 1.0
        filled = int(share * self._width)
        bar = "#" * filled + "-" * (self._width - filled)
        failed = f", {self.failed} failed" if self.failed else ""
        text = f"[{bar}] {self.done}/{self.total} files {int(share * 100):3d}%{failed}"
        self._stream.write("\r" + text)
        self._stream.flush()
        self._drawn = len(text)


def register(subparsers: Any) -> None:
    """Add the ``hash`` subcommand to the ``blindmatch`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "hash",
        help="fingerprint images and videos (PDQ, vPDQ, MD5, SHA-256) as JSON Lines",
        description=(
            "Fingerprint files and folders (recursively). Images and videos are detected by "
            "content. Writes one JSON object per file to stdout; a file that fails gets an "
            "'error' object and the others continue. Exit code 1 if any file failed, 2 for "
            "a usage mistake (one line on stderr), including paths that hold no file."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    parser.add_argument(
        "--dihedral", action="store_true", help="add the 8 dihedral PDQ variants of images"
    )
    parser.add_argument(
        "--seconds-per-hash",
        type=non_negative_seconds,
        default=DEFAULT_SECONDS_PER_HASH,
        metavar="S",
        help="vPDQ sampling: hash one video frame per S seconds (0: every frame; default 1)",
    )
    parser.add_argument(
        "--policy",
        choices=("default", "fast"),
        default="default",
        help="image front end: 'default' (reference, full resolution) or 'fast' (downsize)",
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=1, metavar="N", help="worker processes (default 1)"
    )
    add_limit_options(parser)
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="never draw a progress bar (it is drawn only when stderr is a terminal)",
    )
    parser.set_defaults(func=run)


def add_limit_options(parser: argparse.ArgumentParser, *, video: bool = True) -> None:
    """Add ``--max-pixels`` (and, with ``video``, ``--max-frames`` and
    ``--max-frame-pixels``): the decompression-bomb bounds, each with its default."""
    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"refuse images of more than N pixels (width x height; default {DEFAULT_MAX_PIXELS})",
    )
    if not video:
        return
    parser.add_argument(
        "--max-frames",
        type=positive_int,
        default=DEFAULT_MAX_FRAMES,
        metavar="N",
        help=f"refuse videos of more than N frames (default {DEFAULT_MAX_FRAMES})",
    )
    parser.add_argument(
        "--max-frame-pixels",
        type=positive_int,
        default=DEFAULT_MAX_FRAME_PIXELS,
        metavar="N",
        help=f"refuse videos whose frames have more than N pixels "
        f"(default {DEFAULT_MAX_FRAME_PIXELS})",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``blindmatch hash`` on parsed arguments; returns the exit code."""
    options = HashOptions(
        policy=args.policy,
        dihedral=args.dihedral,
        seconds_per_hash=args.seconds_per_hash,
        max_pixels=args.max_pixels,
        max_frames=args.max_frames,
        max_frame_pixels=args.max_frame_pixels,
    )
    files = collect_files(args.paths)
    if not files:
        raise InvalidArgument("no files found in " + ", ".join(args.paths))
    # A bar only on a terminal; and not for files named one by one whose records go to
    # the same kind of screen (a few lines, and each record already says it is done).
    show = (
        not args.no_progress
        and sys.stderr.isatty()
        and (not sys.stdout.isatty() or any(os.path.isdir(p) for p in args.paths))
    )
    progress = Progress(len(files), sys.stderr) if show else None
    # Records and bar on one terminal: blank the bar before each record, so no record
    # line starts with the bar's text (a file or pipe on stdout never sees the bar).
    shared_screen = progress is not None and sys.stdout.isatty() and sys.stderr.isatty()
    failed = False
    records = fingerprint_files(files, options, jobs=args.jobs)
    try:
        for record in records:
            failed = failed or "error" in record
            if shared_screen and progress is not None:
                progress.clear()
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
            if progress is not None:
                progress.advance(record)
    except BrokenPipeError:
        # The reader went away (`blindmatch hash DIR | head`): stop quietly, and keep the
        # interpreter's final flush from raising again on the dead pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        records.close()
        if progress is not None:
            progress.close()
    return 1 if failed else 0


def _kind(path: str) -> MediaKind:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UnreadableMedia(
            f"cannot read the file: {exc.strerror or type(exc).__name__}"
        ) from None
    if stat.S_ISDIR(info.st_mode):
        # Only a symlinked folder (not followed) or a folder that could not be listed.
        raise UnreadableMedia("a folder that is not walked: a symlink, or not listable")
    if not stat.S_ISREG(info.st_mode):
        # FIFOs, sockets and devices: opening one may block forever or never end.
        raise UnsupportedMedia("not a regular file")
    if info.st_size == 0:
        raise CorruptMedia("the file is empty")
    kind = sniff_file(path)
    if kind is None:
        raise UnsupportedMedia("not an image or video format blindmatch decodes")
    return kind


def _digests(path: str) -> Record:
    md5, sha256 = file_digests(path)
    return {"md5": md5.hex(), "sha256": sha256.hex()}


def _image_record(path: str, options: HashOptions) -> Record:
    rgb = load_rgb(path, options.policy, max_pixels=options.max_pixels)
    record: Record = json_path("path", path)
    record["kind"] = "image"
    record.update(_digests(path))
    if options.dihedral:
        variants = pdq_dihedral_from_rgb(rgb)
        record["pdq"] = variants[0].hash.hex()
        record["quality"] = variants[0].quality
        record["dihedral"] = {
            name: fp.hash.hex() for name, fp in zip(DIHEDRAL_NAMES, variants, strict=True)
        }
    else:
        fingerprint = pdq_from_rgb(rgb)
        record["pdq"] = fingerprint.hash.hex()
        record["quality"] = fingerprint.quality
    return record


def _video_record(path: str, options: HashOptions) -> Record:
    fingerprint = hash_video(
        path,
        options.seconds_per_hash,
        max_frames=options.max_frames,
        max_pixels=options.max_frame_pixels,
    )
    record: Record = json_path("path", path)
    record["kind"] = "video"
    record.update(_digests(path))
    record.update(video_fields(fingerprint))
    return record


def video_fields(fingerprint: VideoFingerprint) -> Record:
    """The ``frames`` and ``fps`` fields of a video record (inverse: :func:`video_from_record`).

    Args:
        fingerprint: A vPDQ fingerprint.

    Returns:
        ``{"frames": [{"frame_number", "timestamp", "pdq", "quality"}, ...], "fps"}``.
    """
    return {
        "frames": [
            {
                "frame_number": f.frame_number,
                "timestamp": f.timestamp,
                "pdq": f.pdq.hex(),
                "quality": f.quality,
            }
            for f in fingerprint.frames
        ],
        "fps": fingerprint.fps,
    }


def video_from_record(
    record: Record, seconds_per_hash: float = DEFAULT_SECONDS_PER_HASH
) -> VideoFingerprint:
    """Read a video record (as parsed from JSON) back into a :class:`VideoFingerprint`.

    Args:
        record: A video record of ``blindmatch hash`` (extra fields are ignored).
        seconds_per_hash: The sampling it was made with (records do not carry it).

    Returns:
        The fingerprint the record was written from.

    Raises:
        InvalidEncoding: A field is missing or of the wrong type, range or encoding.
    """
    if not isinstance(record, dict) or not isinstance(record.get("frames"), list):
        raise InvalidEncoding("a video record needs a 'frames' list")
    fps = record.get("fps")
    if not _is_number(fps) or not 0 < fps < float("inf"):
        raise InvalidEncoding("a video record needs a positive, finite 'fps'")
    frames = []
    for item in record["frames"]:
        if not isinstance(item, dict) or set(item) != _FRAME_FIELDS:
            raise InvalidEncoding(f"each frame needs exactly the fields {sorted(_FRAME_FIELDS)}")
        number, timestamp, quality = item["frame_number"], item["timestamp"], item["quality"]
        if not _is_int(number) or not _is_int(quality):
            raise InvalidEncoding("frame_number and quality must be integers")
        if not _is_number(timestamp) or not 0 <= timestamp < float("inf"):
            raise InvalidEncoding("timestamp must be a finite number >= 0")
        if not isinstance(item["pdq"], str):
            raise InvalidEncoding("pdq must be a hex string")
        frames.append(VideoFrame(number, float(timestamp), PdqHash.from_hex(item["pdq"]), quality))
    return VideoFingerprint(frames=tuple(frames), fps=float(fps), seconds_per_hash=seconds_per_hash)


_FRAME_FIELDS = frozenset({"frame_number", "timestamp", "pdq", "quality"})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
