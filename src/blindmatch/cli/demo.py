"""``blindmatch demo --out DIR``: the project's main job, end to end on generated media.

Today it shows the on-device half: it generates sample media with edited copies into
``DIR/media`` (:mod:`blindmatch.samples`, manifest in ``DIR/manifest.json``), fingerprints
every file through the same code path as ``blindmatch hash`` (with the dihedral variants),
writes ``DIR/fingerprints.jsonl``, and prints how far each kind of edit moved the hashes.

The steps are separate functions (:func:`generate`, :func:`fingerprint`, :func:`summarise`)
so the matching demo can add its steps after them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blindmatch.cli.hash import HashOptions, Progress, fingerprint_files, video_from_record
from blindmatch.fingerprint.types import PdqHash
from blindmatch.fingerprint.video import is_match, video_match
from blindmatch.samples import SampleManifest, make_samples

__all__ = [
    "DEFAULT_IMAGES",
    "DEFAULT_VIDEOS",
    "EditSummary",
    "fingerprint",
    "generate",
    "register",
    "run",
    "summarise",
]

DEFAULT_IMAGES = 6
"""Original images the demo generates (each with 4 edited copies)."""

DEFAULT_VIDEOS = 2
"""Original videos the demo generates (each with 3 edited copies)."""

_MATCH_DISTANCE = 31

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
    manifest: SampleManifest, out: Path, *, jobs: int = 2, progress: bool = True
) -> list[Record]:
    """Fingerprint every sample as ``blindmatch hash --dihedral`` does; write the records to
    ``out/fingerprints.jsonl``.

    Args:
        manifest: What :func:`generate` wrote.
        out: The demo's output folder.
        jobs: Worker processes.
        progress: Draw a progress bar on stderr.

    Returns:
        One record per file, in manifest order.
    """
    files = [str(p) for p in manifest.paths()]
    bar = Progress(len(files), sys.stderr) if progress else None
    try:
        records = list(
            fingerprint_files(
                files,
                HashOptions(dihedral=True),
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
    by_path = {Path(r["path"]): r for r in records}
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


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    return f"{min(values):g}/{median:g}/{max(values):g}"


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand to the ``blindmatch`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="generate sample media with edited copies, fingerprint it, summarise",
        description=(
            "Generate sample images and videos (with re-encoded, resized, brightened, "
            "mirrored and trimmed copies) into DIR/media, fingerprint them as 'blindmatch "
            "hash' does into DIR/fingerprints.jsonl, and print how the edits moved the hashes."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--images", type=_count, default=DEFAULT_IMAGES, metavar="N", help="original images"
    )
    parser.add_argument(
        "--videos", type=_count, default=DEFAULT_VIDEOS, metavar="N", help="original videos"
    )
    parser.add_argument("--seed", type=int, default=2024, help="seed of the sample generator")
    parser.add_argument("--jobs", type=_positive, default=2, metavar="N", help="processes")
    parser.add_argument("--no-progress", action="store_true", help="never draw a progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``blindmatch demo``; returns the exit code (1 if any sample failed to hash)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    manifest = generate(out, args.images, args.videos, args.seed)
    generated = time.perf_counter()
    records = fingerprint(manifest, out, jobs=args.jobs, progress=not args.no_progress)
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
    print("Edited copies against their originals (a PDQ match is distance <= 31):")
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
    return 1 if failed else 0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer >= 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError("expected an integer >= 0")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("expected a positive integer")
    return value
