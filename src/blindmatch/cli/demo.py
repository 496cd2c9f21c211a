"""``blindmatch demo --out DIR``: the project's main job, end to end on generated media.

1. On-device half: generate sample media with edited copies into ``DIR/media``
   (:mod:`blindmatch.samples`, manifest in ``DIR/manifest.json``), fingerprint every file
   through the same code path as ``blindmatch hash`` (with the dihedral variants) into
   ``DIR/fingerprints.jsonl``, and print how far each kind of edit moved the hashes.
2. Private matching (:func:`match_privately`): every other original is "reported" and
   copied to ``DIR/clearinghouse/reported``; every file is "uploaded" to
   ``DIR/platform/uploads``. Both parties then run the real protocol
   (:func:`blindmatch.simulate.simulate`: index build, wire messages, audit) on md5, sha256,
   pdq and vpdq (videos: frame queries, one match per reported video under the vPDQ rule),
   and the demo checks the private result against a plaintext comparison of the same
   fingerprints, which only a demo can make, since it holds both sides.

The steps are separate functions (:func:`generate`, :func:`fingerprint`, :func:`summarise`,
:func:`match_privately`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blindmatch.cli._argtypes import int_up_to, non_negative_int, positive_int
from blindmatch.cli._paths import path_from_json
from blindmatch.cli.hash import (
    HashOptions,
    Progress,
    add_limit_options,
    fingerprint_files,
    video_from_record,
)
from blindmatch.errors import InvalidArgument
from blindmatch.fingerprint.frontend import DEFAULT_MAX_PIXELS
from blindmatch.fingerprint.signals import PdqSignal
from blindmatch.fingerprint.types import PdqHash
from blindmatch.fingerprint.video import is_match, video_match
from blindmatch.samples import SampleManifest, make_samples
from blindmatch.simulate import SIGNALS, SimulationResult, simulate

__all__ = [
    "DEFAULT_IMAGES",
    "DEFAULT_VIDEOS",
    "EditSummary",
    "PrivateMatchCheck",
    "fingerprint",
    "generate",
    "match_privately",
    "register",
    "run",
    "summarise",
]

DEFAULT_IMAGES = 6
"""Original images the demo generates (each with 4 edited copies)."""

DEFAULT_VIDEOS = 2
"""Original videos the demo generates (each with 3 edited copies)."""

_MAX_IMAGES = 1000
_MAX_VIDEOS = 100
# What a PDQ match is, as the signal type says (the plaintext check and the private
# protocol must agree on it); the demo runs every signal private matching can run.
_MATCH_DISTANCE = PdqSignal.match_threshold
_MIN_QUALITY = PdqSignal.quality_floor
_DEMO_SIGNALS = SIGNALS

Record = dict[str, Any]


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
class PrivateMatchCheck:
    """The private protocol's matches next to a plaintext comparison of the same hashes.

    Attributes:
        result: What the simulation produced (matches, both parties' counters).
        expected: ``(upload path, reported path, signal)`` a plaintext comparison finds:
            equal md5/sha256, PDQ distance <= 31 with both qualities >= 50, or a vPDQ match
            (the upload as query, default thresholds).
        found: The same triples from the private protocol.
        distances: PDQ distance of each expected or found pdq triple.
        shares: the private vPDQ shares ``(query %, compared %)`` of each found vpdq triple.
    """

    result: SimulationResult
    expected: frozenset[tuple[str, str, str]]
    found: frozenset[tuple[str, str, str]]
    distances: dict[tuple[str, str, str], int]
    shares: dict[tuple[str, str, str], tuple[float, float]] = field(default_factory=dict)

    @property
    def missed(self) -> frozenset[tuple[str, str, str]]:
        """Plaintext matches the private protocol did not report (PDQ band recall < 1
        near distance 31; never an exact signal)."""
        return self.expected - self.found

    @property
    def unexpected(self) -> frozenset[tuple[str, str, str]]:
        """Private matches the plaintext comparison does not back: must be empty."""
        return self.found - self.expected


def match_privately(
    manifest: SampleManifest,
    records: Sequence[Record],
    out: Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    dihedral: bool = False,
) -> PrivateMatchCheck:
    """Report every other original, upload every file, run the protocol, check it.

    Args:
        manifest: What :func:`generate` wrote.
        records: The records of :func:`fingerprint`, in manifest order.
        out: The demo's output folder; ``clearinghouse/reported`` and ``platform/uploads``
            are made anew in it.
        max_pixels: Largest image both parties decode for ``pdq``.
        dihedral: the platform queries the 8 dihedral variants of every image (and the
            plaintext comparison takes the closest variant), so mirrored copies match.

    Returns:
        The simulation's result beside the plaintext expectation.
    """
    reported_dir = out / "clearinghouse" / "reported"
    uploads_dir = out / "platform" / "uploads"
    for folder in (reported_dir, uploads_dir):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    by_path = {Path(path_from_json(r)): r for r in records}
    media = out / "media"
    reported = [f.path for f in manifest.originals()][::2]
    for path in reported:
        shutil.copy2(path, reported_dir / path.relative_to(media))
    for path in manifest.paths():
        shutil.copy2(path, uploads_dir / path.relative_to(media))

    result = simulate(
        reported_dir,
        uploads_dir,
        signals=_DEMO_SIGNALS,
        max_pixels=max_pixels,
        dihedral=dihedral,
    )
    found = frozenset(
        (Path(m.upload).relative_to(uploads_dir).as_posix(), m.report, m.signal)
        for m in result.matches
    )
    reports = {(m.upload, m.handle): m.report for m in result.matches}
    shares = {
        (
            Path(v.upload_ref).relative_to(uploads_dir).as_posix(),
            reports[(v.upload_ref, v.handle)],
            v.signal,
        ): (v.query_pct, v.compared_pct)
        for v in result.videos
    }

    expected: set[tuple[str, str, str]] = set()
    distances: dict[tuple[str, str, str], int] = {}
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
                    expected.add((upload_name, ref_name, signal))
            if "pdq" in u and "pdq" in r:
                key = (upload_name, ref_name, "pdq")
                variants = u["dihedral"].values() if dihedral else [u["pdq"]]
                target = PdqHash.from_hex(r["pdq"])
                distance = min(PdqHash.from_hex(h).distance(target) for h in variants)
                distances[key] = distance
                good = min(u["quality"], r["quality"]) >= _MIN_QUALITY
                if good and distance <= _MATCH_DISTANCE:
                    expected.add(key)
            both_videos = u.get("kind") == r.get("kind") == "video"
            if both_videos and is_match(video_from_record(u), video_from_record(r)):
                expected.add((upload_name, ref_name, "vpdq"))
    return PrivateMatchCheck(result, frozenset(expected), found, distances, shares)


def _print_private(check: PrivateMatchCheck, reported: int, uploads: int) -> None:
    result = check.result
    print()
    print(
        f"Private matching: the clearinghouse holds {reported} reported originals, the "
        f"platform uploads all {uploads} files (signals {', '.join(_DEMO_SIGNALS)}"
        f"{'; 8 dihedral variants per image' if result.dihedral else ''})."
    )
    for upload, report, signal in sorted(check.found):
        distance = check.distances.get((upload, report, signal))
        extra = f" (distance {distance})" if distance is not None else ""
        video = check.shares.get((upload, report, signal))
        if video is not None:
            extra = f" (query {video[0]:.0f} %, compared {video[1]:.0f} %)"
        print(f"  match  {upload:<34} -> report {report} via {signal}{extra}")
    for upload, report, signal in sorted(check.missed):
        distance = check.distances.get((upload, report, signal))
        print(f"  missed {upload:<34} -> report {report} via {signal} (distance {distance})")
    for upload, report, signal in sorted(check.unexpected):
        print(f"  UNEXPECTED {upload} -> report {report} via {signal}")
    summary = result.summary()
    ch = result.clearinghouse
    pf = result.platform
    print(
        f"  agreement with a plaintext comparison: {len(check.expected & check.found)}/"
        f"{len(check.expected)} plaintext matches found, {len(check.unexpected)} unexpected"
    )
    print(
        f"  the clearinghouse saw: {ch.elements_evaluated} blinded elements in "
        f"{ch.requests} requests ({ch.bytes_received} bytes in, {ch.bytes_sent} out); "
        "nothing about which uploads matched"
    )
    unmatched_hits = summary["platform"]
    assert isinstance(unmatched_hits, dict)
    print(
        f"  the platform saw: {len(result.matches)} matches with opaque handles, "
        f"{len(unmatched_hits['unmatched_uploads_with_tag_hits'])} non-matching uploads "
        f"with a single-band tag hit, indexes of {sum(result.index_bytes.values())} bytes, "
        f"{pf.audits_verified} DLEQ audit(s) verified, "
        f"{pf.canaries_matched}/{pf.canary_queries} canaries matched"
    )


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    return f"{min(values):g}/{median:g}/{max(values):g}"


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand to the ``blindmatch`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="generate sample media, fingerprint it, match it privately end to end",
        description=(
            "Generate sample images and videos (with re-encoded, resized, brightened, "
            "mirrored and trimmed copies) into DIR/media, fingerprint them as 'blindmatch "
            "hash' does into DIR/fingerprints.jsonl, print how the edits moved the hashes, "
            "then report every other original to a clearinghouse, upload every file to a "
            "platform and run the private matching protocol between them."
        ),
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (created if missing)"
    )
    parser.add_argument(
        "--images",
        type=int_up_to(_MAX_IMAGES),
        default=DEFAULT_IMAGES,
        metavar="N",
        help=f"original images, each with 4 edited copies, at most {_MAX_IMAGES} "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--videos",
        type=int_up_to(_MAX_VIDEOS),
        default=DEFAULT_VIDEOS,
        metavar="N",
        help=f"original videos, each with 3 edited copies, at most {_MAX_VIDEOS}; they need "
        "the 'video' extra, 0 runs without it (default %(default)s)",
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
    parser.set_defaults(func=run)


def _check_video_support() -> None:
    try:
        import av  # noqa: F401 - only whether it imports
    except ImportError:
        raise InvalidArgument(
            "the sample videos need PyAV, which is not installed: install the 'video' extra "
            "(pip install 'blindmatch[video]'; in a checkout, pip install -e '.[video]'), "
            "or run the demo with --videos 0"
        ) from None


def run(args: argparse.Namespace) -> int:
    """Run ``blindmatch demo``; returns the exit code (1 if any sample failed to hash or
    the private protocol reported a match the plaintext comparison does not back)."""
    out = Path(args.out)
    if not args.images and not args.videos:
        raise InvalidArgument("nothing to demonstrate: --images and --videos are both 0")
    if out.exists() and not out.is_dir():
        raise InvalidArgument(f"--out {out}: exists and is not a folder")
    if args.videos:
        _check_video_support()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
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
    failed = [r for r in records if "error" in r]
    images = sum(r.get("kind") == "image" for r in records)
    videos = sum(r.get("kind") == "video" for r in records)
    print(f"Generated {len(records)} files in {out / 'media'} ({generated - started:.1f} s).")
    print(
        f"Fingerprinted {images} images and {videos} videos ({hashed - generated:.1f} s, "
        f"{args.jobs} processes) -> {out / 'fingerprints.jsonl'}"
    )
    if failed:
        print(f"{len(failed)} files failed: " + ", ".join(r["path"] for r in failed))
    print()
    print(f"Edited copies against their originals (a PDQ match is distance <= {_MATCH_DISTANCE}):")
    for s in summarise(manifest, records):
        if s.kind == "image":
            print(
                f"  image {s.edit:<10} {s.copies} copies  PDQ distance min/median/max "
                f"{_spread(s.distances):<11} best dihedral {_spread(s.dihedral_distances):<9}"
                f" matched {s.matched}/{s.copies}"
            )
        else:
            print(
                f"  video {s.edit:<10} {s.copies} copies  vPDQ query share min/median/max "
                f"{_spread(s.distances)} %  matched {s.matched}/{s.copies}"
            )
    check = match_privately(
        manifest, records, out, max_pixels=args.max_pixels, dihedral=args.dihedral
    )
    _print_private(check, len(manifest.originals()[::2]), len(records))
    print(f"Done in {time.perf_counter() - started:.1f} s; everything is under {out}.")
    return 1 if failed or check.unexpected else 0
