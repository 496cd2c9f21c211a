"""``blindmatch demo [--out DIR]``: the whole flow across real processes, on generated media.

Theory of operation
-------------------
Three parties, as in a deployment, each doing only what it would do:

1. **The clearinghouse** is ``blindmatch serve``, started as a child process on a free
   loopback port with SQLite in a temporary data directory (:mod:`._demo_server`), and
   operated with ``blindmatch admin`` (a platform and its API key, the publication key to
   pin). It is stopped at the end, also after an error or Ctrl-C.
2. **A person** (the on-device half): sample media with edited copies is generated into
   ``DIR/media`` (:mod:`blindmatch.samples`, manifest in ``DIR/manifest.json``) and
   fingerprinted as ``blindmatch hash`` does (``DIR/fingerprints.jsonl``); every other
   original is reported over HTTP with :class:`~blindmatch.client.reporting.
   ReportingClient`: only fingerprints leave the device; the receipts are kept in
   ``DIR/person/receipts.txt``.
3. **A platform** matches every file (the reported originals, their edited copies and the
   unrelated originals with theirs) through the SDK, :class:`~blindmatch.client.
   PlatformClient` (exact MD5/SHA-256, fuzzy PDQ, private vPDQ for videos), pinned to the
   publication key, once the index is published.

Then the person withdraws one report with its receipt; once the clearinghouse has
published again, the platform matches again and the report's matches are gone.

The demo holds all three sides, so it can check what no party alone could: the private
results against a plaintext comparison of the same fingerprints (per file and signal: a
PDQ match is expected within distance 31 or where the public band rule matches, as the
index decides; a miss is tolerated only beyond distance 20, where band recall drops below
1; anything unexpected is a failure). The exit code is 0 only if both runs and the withdrawal agree.
``DIR/results.json`` holds the table and the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal as signals
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blindmatch.cli._argtypes import int_up_to, non_negative_int, positive_int
from blindmatch.cli._demo_server import DemoFailed, DemoServer, log_tail, start_server
from blindmatch.cli._paths import path_from_json
from blindmatch.cli.hash import (
    HashOptions,
    Progress,
    add_limit_options,
    fingerprint_files,
    video_from_record,
)
from blindmatch.cli.serve import port_number
from blindmatch.errors import InvalidArgument
from blindmatch.fingerprint.signals import PdqSignal, default_registry
from blindmatch.fingerprint.types import PdqHash
from blindmatch.fingerprint.video import is_match, video_match
from blindmatch.protocols.signals import signal_banding
from blindmatch.samples import EDITS, SampleManifest, make_samples

if TYPE_CHECKING:  # the client extra is imported when the demo runs, not to build the parser
    from blindmatch.client import PlatformClient
    from blindmatch.client.reporting import Report
    from blindmatch.fingerprint.types import VideoFingerprint
    from blindmatch.protocols import Upload

__all__ = [
    "DEFAULT_IMAGES",
    "DEFAULT_VIDEOS",
    "EditSummary",
    "Expectation",
    "MatchRun",
    "expectation",
    "fingerprint",
    "generate",
    "register",
    "run",
    "summarise",
]

DEFAULT_IMAGES = 6
"""Original images the demo generates (each with the edited copies of
:data:`blindmatch.samples.EDITS`)."""

DEFAULT_VIDEOS = 2
"""Original videos the demo generates (each with the edited copies of
:data:`blindmatch.samples.EDITS`)."""

_MAX_IMAGES = 1000
_MAX_VIDEOS = 100
# What a PDQ match is, as the signal type says (the plaintext check and the private
# protocol must agree on it).
_MATCH_DISTANCE = PdqSignal.match_threshold
_MIN_QUALITY = PdqSignal.quality_floor
_FULL_RECALL_DISTANCE = 20
"""Band recall is 1.0 up to this PDQ distance (docs/protocol.md): no miss is tolerated."""
_PUBLISH_TIMEOUT = 90.0

Record = dict[str, Any]
Pair = tuple[str, str]
"""(file name under media/, signal)"""


@dataclass(frozen=True, slots=True)
class EditSummary:
    """How one kind of edit moved the fingerprints of its copies.

    Attributes:
        kind: ``"image"`` or ``"video"``.
        edit: The edit (``reencoded``, ``mirrored``, ...).
        copies: How many copies were compared with their originals.
        distances: Images: PDQ distance of each copy to its original. Videos: the vPDQ
            query share (percent) of each copy against its original.
        dihedral_distances: Images: the least distance of any of the copy's 8 dihedral
            variants to the original's hash. Empty for videos.
        matched: Copies that match their original (images: distance <= 31 with any
            dihedral variant; videos: vPDQ match at the default thresholds).
    """

    kind: str
    edit: str
    copies: int
    distances: tuple[float, ...]
    dihedral_distances: tuple[int, ...]
    matched: int


def generate(out: Path, images: int, videos: int, seed: int) -> SampleManifest:
    """Write the sample media into ``out/media`` and its manifest to ``out/manifest.json``.

    Args:
        out: The demo's output folder (created if missing).
        images: Original images to generate.
        videos: Original videos to generate.
        seed: Seed of the generator.

    Returns:
        The manifest of the files written.
    """
    manifest = make_samples(out / "media", images, videos, seed)
    entries = [f.as_dict(out) for f in manifest.files]
    (out / "manifest.json").write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    return manifest


def fingerprint(
    manifest: SampleManifest,
    out: Path,
    *,
    jobs: int = 2,
    progress: bool = True,
    options: HashOptions | None = None,
) -> list[Record]:
    """Fingerprint every sample as ``blindmatch hash --dihedral`` does; write the records to
    ``out/fingerprints.jsonl``.

    Args:
        manifest: What :func:`generate` wrote.
        out: The demo's output folder.
        jobs: Worker processes.
        progress: Draw a progress bar on stderr.
        options: What to compute; the summary needs the dihedral variants (default:
            ``HashOptions(dihedral=True)``).

    Returns:
        One record per file, in manifest order.
    """
    files = [str(p) for p in manifest.paths()]
    bar = Progress(len(files), sys.stderr) if progress else None
    try:
        records = list(
            fingerprint_files(
                files,
                options or HashOptions(dihedral=True),
                jobs=jobs,
                on_done=bar.advance if bar is not None else None,
            )
        )
    finally:
        if bar is not None:
            bar.close()
    with (out / "fingerprints.jsonl").open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return records


def summarise(manifest: SampleManifest, records: Sequence[Record]) -> list[EditSummary]:
    """Compare every edited copy with its original.

    Args:
        manifest: What :func:`generate` wrote.
        records: The records of :func:`fingerprint`, in manifest order.

    Returns:
        One summary per (kind, edit), in the order the edits first appear.
    """
    by_path = {Path(path_from_json(r)): r for r in records}
    groups: dict[tuple[str, str], list[tuple[Record, Record]]] = defaultdict(list)
    for sample in manifest.derived():
        assert sample.derived_from is not None
        copy, original = by_path[sample.path], by_path[sample.derived_from]
        if "error" not in copy and "error" not in original:
            groups[(sample.kind, sample.edit)].append((copy, original))
    summaries = []
    for (kind, edit), pairs in groups.items():
        if kind == "image":
            summaries.append(_image_summary(edit, pairs))
        else:
            summaries.append(_video_summary(edit, pairs))
    return summaries


def _image_summary(edit: str, pairs: list[tuple[Record, Record]]) -> EditSummary:
    distances = []
    best = []
    for copy, original in pairs:
        target = PdqHash.from_hex(original["pdq"])
        distances.append(PdqHash.from_hex(copy["pdq"]).distance(target))
        best.append(min(PdqHash.from_hex(h).distance(target) for h in copy["dihedral"].values()))
    matched = sum(d <= _MATCH_DISTANCE for d in best)
    return EditSummary("image", edit, len(pairs), tuple(distances), tuple(best), matched)


def _video_summary(edit: str, pairs: list[tuple[Record, Record]]) -> EditSummary:
    shares = []
    matched = 0
    for copy, original in pairs:
        query, compared = video_from_record(copy), video_from_record(original)
        shares.append(video_match(query, compared).query_pct)
        matched += is_match(query, compared)
    return EditSummary("video", edit, len(pairs), tuple(shares), (), matched)


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a plaintext comparison of the fingerprints says the platform should find.

    Attributes:
        sources: per (upload file, signal), the reported files that justify a match:
            equal MD5/SHA-256, PDQ distance <= 31 or the band rule (``threshold`` public
            bands agreeing, as the index decides) with both qualities >= 50 (any dihedral
            variant with ``--dihedral``), or a vPDQ match (the upload as query).
        distances: the PDQ distance of each (upload file, reported file) pair.
    """

    sources: dict[Pair, frozenset[str]]
    distances: dict[Pair, int]

    def without(self, withdrawn: str) -> Expectation:
        """The expectation once ``withdrawn`` is no longer reported."""
        kept = {k: v - {withdrawn} for k, v in self.sources.items()}
        return Expectation({k: v for k, v in kept.items() if v}, self.distances)

    def tolerated_miss(self, pair: Pair) -> bool:
        """A PDQ match beyond the full-recall distance from every justifying report."""
        upload, signal = pair
        return signal == "pdq" and all(
            self.distances[(upload, ref)] > _FULL_RECALL_DISTANCE for ref in self.sources[pair]
        )


def expectation(
    manifest: SampleManifest,
    records: Sequence[Record],
    media: Path,
    reported: Sequence[Path],
    *,
    dihedral: bool = False,
) -> Expectation:
    """The plaintext comparison of every sample with every reported file (see
    :class:`Expectation`); with ``dihedral`` an image is compared by its closest variant."""
    by_path = {Path(path_from_json(r)): r for r in records}
    sources: dict[Pair, set[str]] = defaultdict(set)
    distances: dict[Pair, int] = {}
    for upload in manifest.paths():
        u = by_path[upload]
        if "error" in u:
            continue
        upload_name = upload.relative_to(media).as_posix()
        for ref in reported:
            r = by_path[ref]
            ref_name = ref.relative_to(media).as_posix()
            for signal in ("md5", "sha256"):
                if u[signal] == r[signal]:
                    sources[(upload_name, signal)].add(ref_name)
            if "pdq" in u and "pdq" in r:
                variants = u["dihedral"].values() if dihedral else [u["pdq"]]
                target = PdqHash.from_hex(r["pdq"])
                distance = min(PdqHash.from_hex(h).distance(target) for h in variants)
                distances[(upload_name, ref_name)] = distance
                good = min(u["quality"], r["quality"]) >= _MIN_QUALITY
                if good and (distance <= _MATCH_DISTANCE or _band_rule(variants, r["pdq"])):
                    sources[(upload_name, "pdq")].add(ref_name)
            both_videos = u.get("kind") == r.get("kind") == "video"
            if both_videos and is_match(video_from_record(u), video_from_record(r)):
                sources[(upload_name, "vpdq")].add(ref_name)
    return Expectation({k: frozenset(v) for k, v in sources.items()}, distances)


_BAND_VALUES: dict[str, list[int]] = {}


def _band_rule(variants: Iterable[str], target: str) -> bool:
    """Whether the index's band rule matches any of ``variants`` with ``target`` (hex PDQ
    hashes): at least ``threshold`` of the public bands agree in all their bits. The rule
    the private protocol computes, in plaintext; it matches nearly every pair within 31 and
    some beyond (a few bits past the threshold can leave two bands whole), which the
    distance alone would call unexpected."""
    banding = signal_banding(default_registry().get("pdq"))

    def values(text: str) -> list[int]:
        if text not in _BAND_VALUES:
            _BAND_VALUES[text] = banding.band_values(bytes(PdqHash.from_hex(text)))
        return _BAND_VALUES[text]

    wanted = values(target)
    return any(
        sum(a == b for a, b in zip(values(v), wanted, strict=True)) >= banding.threshold
        for v in variants
    )


@dataclass(frozen=True, slots=True)
class MatchRun:
    """One private matching run of the platform, checked against the expectation.

    Attributes:
        found: (upload file, signal) the SDK reported a match for.
        handles: the opaque handles those matches named (what the platform learns).
        shares: per vPDQ match, ``(query %, compared %)``.
        expected: the plaintext expectation at the time of the run.
        stats: the SDK's counts (elements, requests, bytes, audits, canaries).
        unfinished: uploads and videos left without an answer (none, normally).
    """

    found: frozenset[Pair]
    handles: frozenset[str]
    shares: dict[Pair, tuple[float, float]]
    expected: Expectation
    stats: dict[str, int]
    unfinished: int
    seconds: float = 0.0

    @property
    def unexpected(self) -> frozenset[Pair]:
        """Private matches the plaintext comparison does not back: must be empty."""
        return self.found - set(self.expected.sources)

    @property
    def missed(self) -> frozenset[Pair]:
        """Plaintext matches the private run did not report."""
        return frozenset(set(self.expected.sources) - self.found)

    @property
    def agrees(self) -> bool:
        """Nothing unexpected, nothing unfinished, and every miss a tolerated PDQ one."""
        return (
            not self.unexpected
            and not self.unfinished
            and all(self.expected.tolerated_miss(p) for p in self.missed)
        )


@dataclass
class _Figures:
    reports: int = 0
    report_bytes: int = 0
    media_bytes: int = 0
    fingerprints: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    versions: set[int] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)


def _report_of(record: Record) -> Report:
    """The person's report of one file (fingerprints only), as ``blindmatch report``."""
    from blindmatch.client.reporting import Report
    from blindmatch.fingerprint.types import Md5Digest, PdqFingerprint, Sha256Digest

    md5 = Md5Digest.from_hex(record["md5"])
    sha256 = Sha256Digest.from_hex(record["sha256"])
    if record["kind"] == "image":
        pdq = PdqFingerprint(PdqHash.from_hex(record["pdq"]), record["quality"])
        return Report.image("minor", md5, sha256, pdq)
    return Report.video("minor", md5, sha256, video_from_record(record))


def _uploads(
    records: Sequence[Record], dihedral: bool
) -> tuple[list[Upload], list[tuple[str, VideoFingerprint]]]:
    """The platform's uploads (md5, sha256, pdq) and videos (for private vPDQ), ref = the
    record's position."""
    from blindmatch.protocols import Upload

    uploads: list[Upload] = []
    videos: list[tuple[str, VideoFingerprint]] = []
    for position, record in enumerate(records):
        if "error" in record:
            continue
        ref = str(position)
        uploads.append(Upload(ref, "md5", bytes.fromhex(record["md5"])))
        uploads.append(Upload(ref, "sha256", bytes.fromhex(record["sha256"])))
        if record["kind"] == "image" and record["quality"] >= _MIN_QUALITY:
            if dihedral:
                hashes = [bytes.fromhex(h) for h in record["dihedral"].values()]
                uploads.append(Upload.dihedral(ref, "pdq", hashes, record["quality"]))
            else:
                uploads.append(Upload(ref, "pdq", bytes.fromhex(record["pdq"]), record["quality"]))
        elif record["kind"] == "video" and record.get("frames"):
            videos.append((ref, video_from_record(record)))
    return uploads, videos


def _match(
    client: PlatformClient,
    records: Sequence[Record],
    names: Sequence[str],
    dihedral: bool,
    expected: Expectation,
) -> MatchRun:
    uploads, videos = _uploads(records, dihedral)
    began = time.perf_counter()
    result = client.match_videos(videos, uploads)
    seconds = time.perf_counter() - began
    found = {(names[int(m.upload.ref)], m.signal) for m in result.report.matches}
    handles = {m.handle.hex() for m in result.report.matches}
    shares: dict[Pair, tuple[float, float]] = {}
    for video in result.videos:
        pair = (names[int(video.upload_ref)], video.signal)
        found.add(pair)
        handles.add(video.handle.hex())
        shares[pair] = (video.query_pct, video.compared_pct)
    stats = result.report.stats
    return MatchRun(
        found=frozenset(found),
        handles=frozenset(handles),
        shares=shares,
        expected=expected,
        stats={
            "sessions": stats.sessions,
            "requests": stats.requests,
            "elements_sent": stats.elements_sent,
            "pad_elements": stats.pad_elements,
            "bytes_sent": stats.bytes_sent,
            "bytes_received": stats.bytes_received,
            "bytes_downloaded": stats.bytes_downloaded,
            "downloads": stats.downloads,
            "audits_verified": stats.audits_verified,
            "canaries_matched": stats.canaries_matched,
            "revoked_dropped": stats.revoked_dropped,
        },
        unfinished=len(result.report.unfinished) + len(result.unfinished_videos),
        seconds=seconds,
    )


def _md5_references(manifest: dict[str, Any], full_only: bool = False) -> int:
    count = int(manifest["indexes"].get("md5", {}).get("references", 0))
    if not full_only:
        count += sum(int(d["references"]) for d in manifest["deltas"] if d["signal"] == "md5")
    return count


_FORMATS = {1: "banded", 2: "grouped", 3: "compact exact"}


def _files(manifest: dict[str, Any]) -> str:
    """The full index files of a manifest, e.g. ``md5 compact exact (format 3, 5 refs,
    1,088 B)``: the exact signals are compact unless the deployment says bands."""
    parts = []
    for signal, entry in sorted(manifest["indexes"].items()):
        version = int(entry.get("format_version", 1))
        parts.append(
            f"{signal} {_FORMATS.get(version, 'format')} (format {version}, "
            f"{int(entry['references'])} refs, {int(entry['size']):,} B)"
        )
    return "; ".join(parts)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    return f"{min(values):g}/{median:g}/{max(values):g}"


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand to the ``blindmatch`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="the whole flow across real processes: a clearinghouse, a person, a platform",
        description=(
            "Start a clearinghouse ('blindmatch serve' on a free loopback port, SQLite in a "
            "temporary folder), generate sample images and videos with edited copies "
            "(re-encoded, resized, brightened, cropped slightly, mirrored, trimmed), "
            "report every other original over HTTP as a person would (fingerprints only), "
            "create a platform with 'blindmatch admin', match every file privately through "
            "the platform SDK once the index is published, withdraw one report and match "
            "again. Prints what matched and what each party saw, stops the server, and exits "
            "0 only if the private results agree with a plaintext comparison."
        ),
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="keep everything in DIR (created if missing); default: a temporary folder, "
        "removed at the end",
    )
    parser.add_argument(
        "--images",
        type=int_up_to(_MAX_IMAGES),
        default=DEFAULT_IMAGES,
        metavar="N",
        help=f"original images, each with {len(EDITS['image'])} edited copies, at most "
        f"{_MAX_IMAGES} (default %(default)s)",
    )
    parser.add_argument(
        "--videos",
        type=int_up_to(_MAX_VIDEOS),
        default=DEFAULT_VIDEOS,
        metavar="N",
        help=f"original videos, each with {len(EDITS['video'])} edited copies, at most "
        f"{_MAX_VIDEOS}; they need the 'video' extra, 0 runs without it (default %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=2024,
        help="seed of the sample generator, an integer >= 0 (default %(default)s)",
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=2,
        metavar="N",
        help="worker processes for fingerprinting (default %(default)s)",
    )
    add_limit_options(parser)
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="never draw a progress bar (it is drawn only when stderr is a terminal)",
    )
    parser.add_argument(
        "--dihedral",
        action="store_true",
        help="query the 8 rotations/mirrors of every image privately (8x the PDQ elements)",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=None,
        help="the clearinghouse's loopback port (default: a free one)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=_positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the clearinghouse to answer (default %(default)g)",
    )
    parser.set_defaults(func=run)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds > 0") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("expected a number of seconds > 0")
    return value


def _check_video_support() -> None:
    try:
        import av  # noqa: F401 - only whether it imports
    except ImportError:
        raise InvalidArgument(
            "the sample videos need PyAV, which is not installed: install the 'video' extra "
            "(pip install 'blindmatch[video]'; in a checkout, pip install -e '.[video]'), "
            "or run the demo with --videos 0"
        ) from None


def _check_extras() -> None:
    missing = [
        name for name in ("httpx", "nacl", "uvicorn") if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise InvalidArgument(
            "the demo runs a clearinghouse and its clients, which need the 'service' and "
            "'client' extras (pip install 'blindmatch[service,client]'); missing: "
            + ", ".join(missing)
        )


def run(args: argparse.Namespace) -> int:
    """Run ``blindmatch demo``; returns the exit code: 0 if the private results, before and
    after the withdrawal, agree with the plaintext comparison; 1 if a sample failed to
    hash or a result disagrees.

    Raises:
        InvalidArgument: nothing to demonstrate, ``--out`` is a file, an extra is missing.
        DemoFailed: the clearinghouse did not start or publish (its log's tail is printed).
    """
    if not args.images and not args.videos:
        raise InvalidArgument("nothing to demonstrate: --images and --videos are both 0")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise InvalidArgument(f"--out {args.out}: exists and is not a folder")
    _check_extras()
    if args.videos:
        _check_video_support()
    temporary = args.out is None
    out = Path(tempfile.mkdtemp(prefix="blindmatch-demo-")) if temporary else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with _stopped_by_signals():
            return _run(args, out, temporary)
    finally:
        if temporary:
            shutil.rmtree(out, ignore_errors=True)


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the demo like Ctrl-C (exit 130), through its ``finally``
    blocks: the server is stopped, not left behind when the demo is told to stop."""

    def interrupt(number: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread; a caller's thread keeps its own
        return
    previous = {n: signals.signal(n, interrupt) for n in (signals.SIGTERM, signals.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signals.signal(number, handler)


@dataclass
class _Parties:
    server: DemoServer
    figures: _Figures = field(default_factory=_Figures)


def _run(args: argparse.Namespace, out: Path, temporary: bool) -> int:
    started = time.perf_counter()
    for stale in ("person", "platform", "clearinghouse", "results.json"):
        target = out / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    (out / "clearinghouse").mkdir()
    # The server is stopped (its whole process group) before the folder goes; a file it
    # was writing as it died must not turn a finished demo into a traceback.
    with tempfile.TemporaryDirectory(
        prefix="blindmatch-demo-data-", ignore_cleanup_errors=True
    ) as data:
        # Started first: it boots while the samples are made.
        server = start_server(Path(data) / "data", out / "clearinghouse" / "serve.log", args.port)
        try:
            code = _steps(args, out, server, started)
        except DemoFailed:
            _show_log(server)
            raise
        finally:
            stopped = server.stop()
            _say(f"Stopped the clearinghouse ({_how(stopped)}); no process of it is left.")
    where = "removed (no --out)" if temporary else f"everything is under {out}"
    _say(f"Done in {time.perf_counter() - started:.1f} s; {where}.")
    return code


def _how(code: int | None) -> str:
    if code is None:
        return "killed after the timeout"
    if code in (0, -signals.SIGTERM):
        return "it shut down on SIGTERM"  # uvicorn re-raises the signal once it is done
    return f"exit code {code}"


def _show_log(server: DemoServer) -> None:
    tail = log_tail(server.log_path)
    if tail:
        _say(f"The last lines of the clearinghouse's log ({server.log_path}):")
        for line in tail:
            _say(f"  | {line}")


def _steps(args: argparse.Namespace, out: Path, server: DemoServer, started: float) -> int:
    from blindmatch.client import ClientOptions, PlatformClient
    from blindmatch.client.reporting import ReportingClient

    # -- 1. the person's device: samples and fingerprints
    figures = _Figures()
    manifest = generate(out, args.images, args.videos, args.seed)
    generated = time.perf_counter()
    options = HashOptions(
        dihedral=True,
        max_pixels=args.max_pixels,
        max_frames=args.max_frames,
        max_frame_pixels=args.max_frame_pixels,
    )
    show = not args.no_progress and sys.stderr.isatty()  # no \r redraws in a log file
    records = fingerprint(manifest, out, jobs=args.jobs, progress=show, options=options)
    hashed = time.perf_counter()
    figures.seconds["generate"] = generated - started
    figures.seconds["fingerprint"] = hashed - generated
    failed = [r for r in records if "error" in r]
    images = sum(r.get("kind") == "image" for r in records)
    videos = sum(r.get("kind") == "video" for r in records)
    _say(f"Generated {len(records)} files in {out / 'media'} ({generated - started:.1f} s).")
    _say(
        f"Fingerprinted {images} images and {videos} videos ({hashed - generated:.1f} s, "
        f"{args.jobs} processes) -> {out / 'fingerprints.jsonl'}"
    )
    if failed:
        _say(f"{len(failed)} files failed: " + ", ".join(r["path"] for r in failed))
    _print_summary(summarise(manifest, records))

    def stamp() -> str:
        return f"[{time.perf_counter() - started:5.1f} s]"

    # -- 2. the clearinghouse is up
    server.wait_healthy(args.startup_timeout)
    figures.seconds["server healthy at"] = time.perf_counter() - started
    _say()
    _say(
        f"{stamp()} Clearinghouse: 'blindmatch serve' (pid {server.process.pid}) answers at "
        f"{server.url}; SQLite in a temporary folder; log {server.log_path}."
    )

    # -- 3. the person reports every other original (images first: a video last makes the
    # publisher build a full index holding every report, the grouped vpdq one included)
    media = out / "media"
    by_path = {Path(path_from_json(r)): r for r in records}
    reported = [
        f.path
        for f in sorted(manifest.originals()[::2], key=lambda f: f.kind != "image")
        if "error" not in by_path[f.path]
    ]
    if not reported:
        raise DemoFailed("no reported original could be fingerprinted")
    names = [Path(path_from_json(r)).relative_to(media).as_posix() for r in records]
    receipts: dict[str, Any] = {}
    person_dir = out / "person"
    person_dir.mkdir()
    receipts_file = person_dir / "receipts.txt"
    with ReportingClient(server.url) as person, _private_file(receipts_file) as kept:
        for path in reported:
            report = _report_of(by_path[path])
            receipt = person.submit(report)
            name = path.relative_to(media).as_posix()
            receipts[name] = receipt
            kept.write(f"{name} {receipt.text()}\n")
            figures.reports += 1
            figures.report_bytes += len(json.dumps(report.body()).encode())
            figures.media_bytes += path.stat().st_size
            for item in report.body()["fingerprints"]:
                figures.fingerprints[item["signal"]] += len(item.get("frames", [None]))
    _say(
        f"{stamp()} Person: reported {len(reported)} of {len(manifest.originals())} originals "
        f"over HTTP (fingerprints only, {figures.report_bytes} bytes of JSON for "
        f"{figures.media_bytes} bytes of media); receipts kept in {receipts_file}."
    )

    # -- 4. the operator creates the platform and hands over the key to pin
    platform = server.admin("platform", "create", "demo-platform")
    pinned = server.admin("keys", "show")["publication_key"]
    _say(
        f"{stamp()} Operator: 'blindmatch admin platform create demo-platform' gave the "
        f"platform its API key; 'blindmatch admin keys show' the publication key to pin, "
        f"{pinned[:16]}..."
    )

    # -- 5. wait for the publication of every report
    has_videos = any(by_path[p].get("kind") == "video" for p in reported)
    published = server.wait_manifest(
        lambda m: (
            _md5_references(m) == len(reported)
            and (not has_videos or _md5_references(m, full_only=True) == len(reported))
        ),
        _PUBLISH_TIMEOUT,
        "the index of the reports",
    )
    figures.versions.add(int(published["version"]))
    figures.seconds["published at"] = time.perf_counter() - started
    _say(
        f"{stamp()} Clearinghouse: published index version {published['version']} (epoch "
        f"{published['epoch']}) with the {len(reported)} reports: {_files(published)}."
    )

    # -- 6. the platform matches every file; 7. a withdrawal; the platform matches again
    expected = expectation(manifest, records, media, reported, dihedral=args.dihedral)
    withdrawn = reported[0].relative_to(media).as_posix()
    with PlatformClient(
        server.url,
        api_key=platform["api_key"],
        publication_key=pinned,
        cache_dir=out / "platform" / "cache",
        options=ClientOptions(backoff=0.1, max_backoff=2.0),
    ) as client:
        first = _match(client, records, names, args.dihedral, expected)
        figures.seconds["first match"] = first.seconds
        _say(
            f"{stamp()} Platform: matched {len(records)} files privately through the SDK: "
            f"{len(first.found)} matches ({first.seconds:.1f} s)."
        )
        with ReportingClient(server.url) as person:
            state = person.withdraw(receipts[withdrawn])
        if state.status != "withdrawn":
            raise DemoFailed(f"the withdrawal was answered with status {state.status!r}")
        _say(f"{stamp()} Person: withdrew the report of {withdrawn} with its receipt.")
        again = server.wait_manifest(
            lambda m: (
                _md5_references(m, full_only=True) == len(reported) - 1
                and _md5_references(m) == len(reported) - 1
            ),
            _PUBLISH_TIMEOUT,
            "the index without the withdrawn report",
        )
        figures.versions.add(int(again["version"]))
        figures.seconds["published again at"] = time.perf_counter() - started
        _say(f"{stamp()} Clearinghouse: published index version {again['version']} without it.")
        second = _match(client, records, names, args.dihedral, expected.without(withdrawn))
        figures.seconds["second match"] = second.seconds
        _say(f"{stamp()} Platform: matched the {len(records)} files again.")
    lost = first.found - second.found
    gained = second.found - first.found
    lost_expected = set(expected.sources) - set(expected.without(withdrawn).sources)
    withdrawal_ok = not gained and lost == {p for p in lost_expected if p in first.found}

    # -- 8. what matched, what each party saw
    _print_table(manifest, media, reported, withdrawn, first, second)
    _print_account(figures, first, second, len(records), len(reported), withdrawn, lost)
    ok = first.agrees and second.agrees and withdrawal_ok and not failed
    _say()
    _say(
        "Result: "
        + (
            "the private results agree with the plaintext comparison, before and after the "
            "withdrawal."
            if ok
            else "DISAGREEMENT with the plaintext comparison (see the table above)."
        )
    )
    _write_results(out, manifest, media, withdrawn, first, second, ok, figures)
    return 0 if ok else 1


class _private_file:  # noqa: N801 - used as a context manager, like open()
    """A new file only its owner may read (receipts are secrets)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Any:
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.handle = os.fdopen(descriptor, "w", encoding="utf-8")
        return self.handle

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def _print_summary(summaries: Sequence[EditSummary]) -> None:
    _say()
    _say(
        f"Edited copies against their originals, on the device (a PDQ match is distance <= "
        f"{_MATCH_DISTANCE}):"
    )
    for s in summaries:
        if s.kind == "image":
            _say(
                f"  image {s.edit:<10} {s.copies} copies  PDQ distance min/median/max "
                f"{_spread(s.distances):<11} best dihedral {_spread(s.dihedral_distances):<9}"
                f" matched {s.matched}/{s.copies}"
            )
        else:
            _say(
                f"  video {s.edit:<10} {s.copies} copies  vPDQ query share min/median/max "
                f"{_spread(s.distances)} %  matched {s.matched}/{s.copies}"
            )


def _signals(pairs: AbstractSet[Pair], name: str) -> str:
    order = ("md5", "sha256", "pdq", "vpdq")
    found = sorted({s for n, s in pairs if n == name}, key=order.index)
    return " ".join(found) or "-"


def _print_table(
    manifest: SampleManifest,
    media: Path,
    reported: Sequence[Path],
    withdrawn: str,
    first: MatchRun,
    second: MatchRun,
) -> None:
    reported_names = {p.relative_to(media).as_posix() for p in reported}
    expected_now = set(first.expected.sources)
    expected_after = set(second.expected.sources)
    _say()
    _say("What the platform matched (private) and what a plaintext comparison expects:")
    header = (
        f"  {'file':<28} {'edit':<10} {'relation':<26} {'matched / expected':<34} "
        f"{'after the withdrawal':<34}"
    )
    _say(header)
    _say("  " + "-" * (len(header) - 2))
    for sample in manifest.files:
        name = sample.path.relative_to(media).as_posix()
        source = None if sample.derived_from is None else sample.derived_from.relative_to(media)
        if name in reported_names:
            relation = "reported"
        elif source is not None and source.as_posix() in reported_names:
            relation = f"copy of {source.name}"
        else:
            relation = "unrelated"
        if withdrawn in (name, source.as_posix() if source else None):
            relation += " (w)"
        now = f"{_signals(first.found, name)} / {_signals(expected_now, name)}"
        later = f"{_signals(second.found, name)} / {_signals(expected_after, name)}"
        notes = []
        for run, when in ((first, "1st"), (second, "2nd")):
            for pair in sorted(run.unexpected):
                if pair[0] == name:
                    notes.append(f"UNEXPECTED {pair[1]} ({when})")
            for pair in sorted(run.missed):
                if pair[0] == name:
                    tolerated = run.expected.tolerated_miss(pair)
                    notes.append(
                        f"{'missed' if tolerated else 'MISSED'} {pair[1]} ({when}"
                        f"{', distance > 20' if tolerated else ''})"
                    )
        share = first.shares.get((name, "vpdq"))
        if share is not None:
            notes.append(f"vpdq query {share[0]:.0f} %, compared {share[1]:.0f} %")
        row = f"  {name:<28} {sample.edit:<10} {relation:<26} {now:<34} {later:<34}"
        _say(f"{row} {'; '.join(notes)}".rstrip())
    _say("  (w): the withdrawn report and its copies.")


def _print_account(
    figures: _Figures,
    first: MatchRun,
    second: MatchRun,
    files: int,
    reported: int,
    withdrawn: str,
    lost: frozenset[Pair],
) -> None:
    runs = (first, second)
    elements = sum(r.stats["elements_sent"] for r in runs)
    pads = sum(r.stats["pad_elements"] for r in runs)
    requests = sum(r.stats["requests"] for r in runs)
    sessions = sum(r.stats["sessions"] for r in runs)
    fingerprints = ", ".join(
        f"{n} {s}{' frames' if s == 'vpdq' else ''}"
        for s, n in sorted(figures.fingerprints.items())
    )
    _say()
    _say("What each party saw:")
    _say(
        f"  the person: only the fingerprints of the {reported} reported files left the "
        f"device ({figures.report_bytes} bytes of JSON; no file name, no byte of their "
        f"{figures.media_bytes} bytes of media); {reported} receipts, shown once, kept by the "
        "person alone."
    )
    _say(
        f"  the clearinghouse: the reports' fingerprints ({fingerprints}); from the platform "
        f"{elements} blinded elements ({pads} of them padding) in {requests} requests over "
        f"{sessions} sessions, never an upload's hash, never which uploads matched; it "
        f"published index versions {', '.join(map(str, sorted(figures.versions)))}."
    )
    _say(
        f"  the platform: only which of its {files} files matched ({len(first.found)} "
        f"matches, then {len(second.found)}) and {len(first.handles | second.handles)} "
        f"opaque handles, no report id, file or hash of the clearinghouse's; "
        f"{sum(r.stats['bytes_downloaded'] for r in runs)} bytes of indexes downloaded and "
        f"verified under the pinned key; {sum(r.stats['audits_verified'] for r in runs)} "
        f"DLEQ audits verified, {sum(r.stats['canaries_matched'] for r in runs)} canaries "
        f"matched."
    )
    _say(
        f"  the withdrawal of {withdrawn}: {len(lost)} matches disappeared "
        f"({', '.join(f'{n} {s}' for n, s in sorted(lost)) or 'none'})."
    )


def _write_results(
    out: Path,
    manifest: SampleManifest,
    media: Path,
    withdrawn: str,
    first: MatchRun,
    second: MatchRun,
    ok: bool,
    figures: _Figures,
) -> None:
    def run_json(run: MatchRun) -> dict[str, Any]:
        return {
            "found": sorted(run.found),
            "expected": sorted(run.expected.sources),
            "unexpected": sorted(run.unexpected),
            "missed": sorted(run.missed),
            "agrees": run.agrees,
            "vpdq_shares": {n: list(v) for (n, _), v in sorted(run.shares.items())},
            "stats": run.stats,
        }

    body = {
        "ok": ok,
        "files": [
            {
                "file": f.path.relative_to(media).as_posix(),
                "kind": f.kind,
                "edit": f.edit,
                "derived_from": None
                if f.derived_from is None
                else f.derived_from.relative_to(media).as_posix(),
            }
            for f in manifest.files
        ],
        "withdrawn": withdrawn,
        "before_withdrawal": run_json(first),
        "after_withdrawal": run_json(second),
        "person": {
            "reports": figures.reports,
            "report_bytes": figures.report_bytes,
            "media_bytes": figures.media_bytes,
            "fingerprints": dict(figures.fingerprints),
        },
        "published_versions": sorted(figures.versions),
        "seconds": {k: round(v, 2) for k, v in figures.seconds.items()},
    }
    (out / "results.json").write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
