"""Both parties of the matching protocol in one process, over the real messages, on real files.

For researchers and tests: the clearinghouse fingerprints a directory of reference files,
generates a key, builds one index per signal type and serialises it; the platform opens
the serialised index (as if downloaded), fingerprints a directory of upload files and runs a
:class:`~blindmatch.protocols.PlatformSession` against a
:class:`~blindmatch.protocols.ClearinghouseSession`. Every message crosses between them
as encoded bytes and is recorded in a transcript. Nothing here is a shortcut the real
deployment would not take, except one: a match's report id is looked up in the
clearinghouse's private handle map, which in a deployment only the clearinghouse holds
(the platform reports the handle to it).

Signals: every signal type of the registry that has a banding
(:meth:`~blindmatch.fingerprint.signals.SignalRegistry.matchable`): ``md5`` and ``sha256``
of the file bytes (every file), ``pdq`` of images at or above its quality floor,
``vpdq`` of videos. The signal type says how to hash, which quality suffices and how its
index is banded; nothing here is specific to one signal, except ``dihedral=True``, which
queries the 8 dihedral variants of every PDQ upload (8x its elements) so that mirrored and
rotated copies match (docs/protocol.md "Dihedral queries"; PDQ images only, never vPDQ
frames). A grouped signal (``vpdq``: a video is a bag of frame hashes) goes through the
layer above the session (:mod:`blindmatch.protocols.video`): each reported video's frames
become references of one group, each uploaded video's frames are queried, and its
matches are one per reported video under the vPDQ rule (:attr:`SimulationResult.videos`
holds the shares). A file left out of a signal is a :class:`SkippedFile` with its reason
(not an image or video, corrupt, low quality; empty or unreadable for every signal),
counted per signal in ``skipped``: one bad file does not stop the run, and none is left
out silently. A reference folder without a single usable reference is an error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from blindmatch.errors import CorruptMedia, FingerprintError, LocalProtocolError
from blindmatch.fingerprint.frontend import load_rgb
from blindmatch.fingerprint.pdq import pdq_dihedral_from_rgb
from blindmatch.fingerprint.signals import PdqSignal, SignalType, VpdqSignal, default_registry
from blindmatch.protocols import (
    ClearinghouseSession,
    ClearinghouseStats,
    PlatformSession,
    PlatformStats,
    SessionPair,
    TranscriptEntry,
    Upload,
    VideoMatcher,
    VideoReportMatch,
    index_digest,
    signal_banding,
    video_references,
)
from blindmatch.psi.index import BuiltIndex, Index, Reference, build_index
from blindmatch.psi.kdf import ReportHandle
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.parallel import SERIAL, Evaluator, ThreadedEvaluator

__all__ = [
    "DEFAULT_SIGNALS",
    "SIGNALS",
    "SimulationMatch",
    "SimulationResult",
    "SkippedFile",
    "TranscriptEntry",
    "list_files",
    "simulate",
]

_REGISTRY: Final = default_registry()
SIGNALS: Final = tuple(s.name for s in _REGISTRY.matchable())
"""Signal types the simulation can run: those with a banding, in name order."""
DEFAULT_SIGNALS: Final = tuple(s.name for s in _REGISTRY.matchable() if s.exact)
"""The exact signals, run when none are named."""


@dataclass(frozen=True, slots=True)
class SimulationMatch:
    """One match: an upload file matched a reference file of a report."""

    upload: str
    report: str
    signal: str
    handle: ReportHandle
    variant: str | None = None
    """The dihedral variant that matched (``dihedral=True`` only), e.g. ``"flipY"``."""

    def to_json(self) -> dict[str, str]:
        """The JSON Lines record the CLI prints."""
        return {
            "upload": self.upload,
            "report": self.report,
            "handle": self.handle.hex(),
            "signal": self.signal,
            **({"variant": self.variant} if self.variant is not None else {}),
        }


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file left out of one signal, and why.

    Attributes:
        folder: ``"references"`` or ``"uploads"``.
        path: The file (the folder as given joined with its relative path).
        signal: The signal it is left out of.
        reason: The error type and message (never file content), or the low quality.
    """

    folder: str
    path: str
    signal: str
    reason: str

    def to_json(self) -> dict[str, str]:
        """A JSON-ready object of the four fields."""
        return {
            "folder": self.folder,
            "path": self.path,
            "signal": self.signal,
            "reason": self.reason,
        }


@dataclass(slots=True)
class SimulationResult:
    """Everything a simulation produced: matches, both parties' views, the raw bytes."""

    matches: list[SimulationMatch]
    clearinghouse: ClearinghouseStats
    platform: PlatformStats
    index_bytes: dict[str, int]
    index_entries: dict[str, int]
    dihedral: bool
    references: dict[str, int]
    uploads: dict[str, int]
    skipped: dict[str, int]
    audits: int
    transcript: list[TranscriptEntry] = field(repr=False)
    indexes: dict[str, bytes] = field(repr=False)
    skipped_files: list[SkippedFile] = field(default_factory=list)
    videos: list[VideoReportMatch] = field(default_factory=list)
    """Video matches (``vpdq``) with their shares, one per uploaded and reported video."""
    video_counts: dict[str, int] = field(default_factory=dict)
    """``vpdq`` counts: videos and frames on each side (no hash)."""
    matched_frames: frozenset[str] = frozenset()
    """Refs of the frame uploads that matched some reported frame."""

    def summary(self) -> dict[str, object]:
        """What each party saw, as a JSON-ready object (counts only, never a hash)."""
        ch = self.clearinghouse
        pf = self.platform
        # A matched video's frame uploads matched too (they are the platform's own refs).
        matched_refs = {m.upload for m in self.matches} | self.matched_frames
        unmatched_hits = {
            ref: hits
            for ref, hits in sorted(pf.tag_hits_per_upload.items())
            if ref not in matched_refs
        }
        return {
            "clearinghouse": {
                "requests": ch.requests,
                "elements_evaluated": ch.elements_evaluated,
                "batches_evaluated": ch.batches_evaluated,
                "proofs": ch.proofs,
                "elements_proved": ch.elements_proved,
                "bytes_received": ch.bytes_received,
                "bytes_sent": ch.bytes_sent,
                "rejected": sum(ch.rejected.values()),
            },
            "platform": {
                "requests": pf.requests,
                "elements_sent": pf.elements_sent,
                "pad_elements": pf.pad_elements,
                "canary_queries": pf.canary_queries,
                "canaries_matched": pf.canaries_matched,
                "variant_queries": pf.variant_queries,
                "uploads_looked_up": pf.uploads_done,
                "uploads_matched": pf.uploads_matched,
                "matches": pf.matches,
                "tag_hits": pf.tag_hits,
                "unmatched_uploads_with_tag_hits": unmatched_hits,
                "audits_verified": pf.audits_verified,
                "elements_audited": pf.elements_audited,
                "bytes_sent": pf.bytes_sent,
                "bytes_received": pf.bytes_received,
                "index_bytes": dict(sorted(self.index_bytes.items())),
                "index_entries": dict(sorted(self.index_entries.items())),
            },
            "dihedral": self.dihedral,
            "references": dict(sorted(self.references.items())),
            "uploads": dict(sorted(self.uploads.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "videos": {
                **dict(sorted(self.video_counts.items())),
                "video_matches": [
                    {
                        "upload": v.upload_ref,
                        "handle": v.handle.hex(),
                        "query_pct": round(v.query_pct, 2),
                        "compared_pct": round(v.compared_pct, 2),
                        "frames_matched": v.frames_matched,
                        "frames_queried": v.frames_queried,
                        "report_frames_matched": v.report_frames_matched,
                        "report_frames": v.report_frames,
                    }
                    for v in self.videos
                ],
            },
            "messages": len(self.transcript),
        }


def list_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Regular files under ``directory`` (recursively, hidden names skipped), sorted.

    Raises:
        LocalProtocolError: ``directory`` is missing or not a directory (the message names it).
    """
    root = Path(directory)
    if not root.is_dir():
        problem = "not a directory" if root.exists() else "no such directory"
        raise LocalProtocolError(f"{os.fspath(directory)}: {problem}")
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


class _Skips:
    """The files left out, in the order met, for :class:`SimulationResult`."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.files: list[SkippedFile] = []

    def add(self, folder: str, path: Path, signals: Sequence[str], reason: str) -> None:
        for signal in signals:
            self.counts[signal] = self.counts.get(signal, 0) + 1
            self.files.append(SkippedFile(folder, str(path), signal, reason))


def _reason(exc: FingerprintError) -> str:
    return f"{type(exc).__name__}: {exc}"


def _fingerprints(
    path: Path, signals: Sequence[SignalType[Any]], skips: _Skips, folder: str
) -> list[tuple[str, bytes, int | None]]:
    """``(signal, hash bytes, quality)`` of one file for every signal it has; the others
    are recorded in ``skips`` with their reason."""
    found: list[tuple[str, bytes, int | None]] = []
    try:
        if path.stat().st_size == 0:
            # Every empty file has the same md5: as a reference it would match every empty
            # upload, and it is no picture either.
            raise CorruptMedia("the file is empty")
    except FingerprintError as exc:
        skips.add(folder, path, [s.name for s in signals], _reason(exc))
        return found
    except OSError as exc:  # stat: gone or not listable since the folder was walked
        reason = f"UnreadableMedia: {exc.strerror or 'cannot read'}"
        skips.add(folder, path, [s.name for s in signals], reason)
        return found
    for signal in signals:
        try:
            value = signal.hash(path)
        except FingerprintError as exc:
            skips.add(folder, path, [signal.name], _reason(exc))
            continue
        quality = None if signal.exact else signal.quality(value)
        if signal.accepts(quality):
            found.append((signal.name, signal.match_bytes(value), quality))
        else:
            reason = f"{signal.name.upper()} quality {quality} is below {signal.quality_floor}"
            skips.add(folder, path, [signal.name], reason)
    return found


def _with_dihedral(upload: Upload, path: Path, signal: SignalType[Any]) -> Upload:
    """``upload`` with its 8 dihedral variants when its signal is PDQ (one decode, one DCT,
    as ``blindmatch hash --dihedral``); other signals have none and stay as they are."""
    if not isinstance(signal, PdqSignal):
        return upload
    if signal.max_pixels is None:
        rgb = load_rgb(path, signal.policy)
    else:
        rgb = load_rgb(path, signal.policy, max_pixels=signal.max_pixels)
    variants = pdq_dihedral_from_rgb(rgb)
    hashes = [upload.hash, *(bytes(v.hash) for v in variants[1:])]
    return Upload.dihedral(upload.ref, upload.signal, hashes, upload.quality)


def _videos(
    path: Path, signals: Sequence[SignalType[Any]], skips: _Skips, folder: str
) -> list[tuple[SignalType[Any], Any]]:
    """``(signal, value)`` of one file for every grouped signal (``vpdq``) it has frames of;
    a file the signal cannot hash, or without a frame of enough quality, is recorded in
    ``skips`` with its reason (as :func:`_fingerprints` does for the other signals)."""
    found: list[tuple[SignalType[Any], Any]] = []
    if not signals:
        return found
    try:
        if path.stat().st_size == 0:
            raise CorruptMedia("the file is empty")
    except FingerprintError as exc:
        skips.add(folder, path, [s.name for s in signals], _reason(exc))
        return found
    except OSError as exc:  # stat: gone or not listable since the folder was walked
        reason = f"UnreadableMedia: {exc.strerror or 'cannot read'}"
        skips.add(folder, path, [s.name for s in signals], reason)
        return found
    for signal in signals:
        try:
            value = signal.hash(path)
        except FingerprintError as exc:
            skips.add(folder, path, [signal.name], _reason(exc))
            continue
        quality = signal.quality(value)
        if signal.accepts(quality):
            found.append((signal, value))
        else:
            reason = (
                f"{signal.name.upper()} quality {quality} (best frame) is below "
                f"{signal.quality_floor}"
            )
            skips.add(folder, path, [signal.name], reason)
    return found


def _check_signals(signals: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(signals))
    if not chosen or any(s not in SIGNALS for s in chosen):
        raise LocalProtocolError(f"signals must be a non-empty subset of {', '.join(SIGNALS)}")
    return chosen


def simulate(
    references: str | os.PathLike[str],
    uploads: str | os.PathLike[str],
    *,
    signals: Iterable[str] = DEFAULT_SIGNALS,
    processes: int | None = None,
    batch_size: int = 256,
    audit_batches: int = 2,
    key: SecretKey | None = None,
    threads: int = 1,
    max_pixels: int | None = None,
    dihedral: bool = False,
) -> SimulationResult:
    """Run the whole protocol between a clearinghouse and a platform in memory.

    Args:
        references: directory of reference files (report id = path relative to it).
        uploads: directory of upload files (upload ref = the path as given plus relative).
        signals: signal types to match (:data:`SIGNALS`).
        processes: worker processes of the index build (``None``: every core).
        batch_size: elements per evaluation request.
        audit_batches: how many answered batches the platform audits at the end (a random
            sample; all if fewer were sent).
        key: the clearinghouse key (fresh VOPRF key of epoch 0 when omitted).
        threads: threads of one :class:`~blindmatch.psi.parallel.ThreadedEvaluator` that
            both sessions use for large batches (1: everything on this thread).
        max_pixels: the largest image decoded for ``pdq`` (``None``: the front end's
            default, :data:`blindmatch.fingerprint.frontend.DEFAULT_MAX_PIXELS`).
        dihedral: query the 8 dihedral variants of every PDQ upload (8x its elements), so
            mirrored and rotated copies of a reference match; one match per upload and
            report either way.

    Returns:
        The matches, both parties' counters, index sizes and the message transcript.

    Raises:
        LocalProtocolError: bad signals; a folder that is missing or not a folder; no
            usable reference file (the message names the folder).
        ProtocolError, CryptoError: the protocol failed (a bug or a corrupted run).
    """
    chosen = _check_signals(signals)
    if type(threads) is not int or threads < 1:
        raise LocalProtocolError("threads must be a positive int")
    workers = ThreadedEvaluator(threads) if threads > 1 else contextlib.nullcontext(SERIAL)
    with workers as evaluator:
        return _simulate(
            references,
            uploads,
            chosen,
            processes,
            batch_size,
            audit_batches,
            key,
            evaluator,
            max_pixels,
            dihedral=dihedral,
        )


def _simulate(
    references: str | os.PathLike[str],
    uploads: str | os.PathLike[str],
    chosen: tuple[str, ...],
    processes: int | None,
    batch_size: int,
    audit_batches: int,
    key: SecretKey | None,
    evaluator: Evaluator,
    max_pixels: int | None,
    *,
    dihedral: bool = False,
) -> SimulationResult:
    secret = SecretKey.generate() if key is None else key
    skips = _Skips()

    # Clearinghouse: fingerprint the references, build and serialise one index per signal.
    signal_types: list[SignalType[Any]] = [
        PdqSignal(max_pixels=max_pixels) if name == "pdq" else _REGISTRY.get(name)
        for name in chosen
        if not _REGISTRY.get(name).grouped
    ]
    grouped_types = [_REGISTRY.get(name) for name in chosen if _REGISTRY.get(name).grouped]
    reference_root = Path(references)
    reference_files = list_files(reference_root)
    upload_files = list_files(uploads)  # checked now, before the work on the references
    if not reference_files:
        raise LocalProtocolError(
            f"{os.fspath(references)}: no reference files in this folder (hidden names are skipped)"
        )
    per_signal: dict[str, list[Reference]] = {s: [] for s in chosen}
    video_counts: dict[str, int] = {}
    for path in reference_files:
        report_id = path.relative_to(reference_root).as_posix()
        for signal, hash_bytes, _ in _fingerprints(path, signal_types, skips, "references"):
            per_signal[signal].append(Reference(report_id, signal, hash_bytes))
        for grouped, value in _videos(path, grouped_types, skips, "references"):
            assert isinstance(grouped, VpdqSignal)  # the one grouped signal type
            per_signal[grouped.name].extend(video_references(report_id, value, grouped))
            video_counts["reported_videos"] = video_counts.get("reported_videos", 0) + 1
    if not any(per_signal.values()):
        raise LocalProtocolError(
            f"{os.fspath(references)}: no file in this folder gave a reference for "
            f"{', '.join(chosen)} (every one was skipped)"
        )
    built: dict[str, BuiltIndex] = {
        signal: build_index(
            secret,
            signal_banding(_REGISTRY.get(signal)),
            refs,
            processes=processes,
            grouped=_REGISTRY.get(signal).grouped,
        )
        for signal, refs in per_signal.items()
    }
    index_files = {signal: b.to_bytes() for signal, b in built.items()}

    # Platform: open the downloaded indexes, fingerprint the uploads.
    indexes = [Index.from_bytes(data) for data in index_files.values()]
    platform = PlatformSession(
        indexes, secret.public_key, batch_size=batch_size, evaluator=evaluator
    )
    matchers = {
        grouped_signal.name: VideoMatcher(i, grouped_signal)
        for i in indexes
        if isinstance(grouped_signal := _REGISTRY.get(i.header.banding.signal), VpdqSignal)
    }
    upload_counts = dict.fromkeys(chosen, 0)
    batch: list[Upload] = []
    by_name = {t.name: t for t in signal_types}
    for path in upload_files:
        for signal, hash_bytes, quality in _fingerprints(path, signal_types, skips, "uploads"):
            upload = Upload(str(path), signal, hash_bytes, quality)
            if dihedral:
                upload = _with_dihedral(upload, path, by_name[signal])
            batch.append(upload)
            upload_counts[signal] += 1
        # vPDQ frames go to the session as they are: dihedral queries are for PDQ images.
        for grouped, value in _videos(path, grouped_types, skips, "uploads"):
            frames = matchers[grouped.name].frame_uploads(str(path), value)
            batch.extend(frames)
            upload_counts[grouped.name] += 1
            video_counts["frames_queried"] = video_counts.get("frames_queried", 0) + len(frames)
    platform.add_uploads(batch)

    bands = {signal: b.header.banding.count for signal, b in built.items()}
    elements_needed = sum(bands[u.signal] * len(u.queries) for u in batch)
    clearinghouse = ClearinghouseSession(
        secret,
        element_limit=4 * (elements_needed + batch_size) + (1 << 20),
        max_batch=max(batch_size, 1),
        index_digests=[index_digest(b) for b in built.values()],
        evaluator=evaluator,
    )

    pair = SessionPair(platform, clearinghouse)
    found = pair.run()
    audits = 1 if pair.audit(audit_batches) else 0
    pair.close()

    # Frame matches become one video match per reported video (the vPDQ rule).
    videos: list[VideoReportMatch] = []
    matched_frames = frozenset(m.upload_ref for m in found if m.signal in matchers)
    for matcher in matchers.values():
        found = matcher.add_matches(found)
        videos.extend(matcher.results(platform.unfinished()))
    if matchers:
        video_counts["reference_frames"] = sum(len(per_signal[s]) for s in matchers)
        video_counts.setdefault("reported_videos", 0)
        video_counts.setdefault("frames_queried", 0)
    matches = sorted(
        [
            SimulationMatch(
                m.upload_ref, built[m.signal].handles[m.handle], m.signal, m.handle, m.variant
            )
            for m in found
        ]
        + [
            SimulationMatch(v.upload_ref, built[v.signal].handles[v.handle], v.signal, v.handle)
            for v in videos
        ],
        key=lambda m: (m.upload, m.signal, m.report),
    )
    return SimulationResult(
        matches=matches,
        clearinghouse=clearinghouse.stats,
        platform=platform.stats,
        index_bytes={s: len(d) for s, d in index_files.items()},
        index_entries={i.header.banding.signal: i.entry_count for i in indexes},
        dihedral=dihedral,
        references={s: len(r) for s, r in per_signal.items()},
        uploads=upload_counts,
        skipped=skips.counts,
        audits=audits,
        transcript=pair.transcript,
        indexes=index_files,
        skipped_files=skips.files,
        videos=videos,
        video_counts=video_counts,
        matched_frames=matched_frames,
    )
