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
of the file bytes (every file), ``pdq`` of images at or above its quality floor (other
files are skipped for it and counted), ``vpdq`` of videos. The signal type says how to
hash, which quality suffices and how its index is banded; nothing here is specific to one
signal. A grouped signal (``vpdq``: a video is a bag of frame hashes) goes through the
layer above the session (:mod:`blindmatch.protocols.video`): each reported video's frames
become references of one group, each uploaded video's frames are queried, and its
matches are one per reported video under the vPDQ rule (:attr:`SimulationResult.videos`
holds the shares).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from blindmatch.errors import FingerprintError, LocalProtocolError
from blindmatch.fingerprint.signals import SignalType, VpdqSignal, default_registry
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

    def to_json(self) -> dict[str, str]:
        """The JSON Lines record the CLI prints."""
        return {
            "upload": self.upload,
            "report": self.report,
            "handle": self.handle.hex(),
            "signal": self.signal,
        }


@dataclass(slots=True)
class SimulationResult:
    """Everything a simulation produced: matches, both parties' views, the raw bytes."""

    matches: list[SimulationMatch]
    clearinghouse: ClearinghouseStats
    platform: PlatformStats
    index_bytes: dict[str, int]
    index_entries: dict[str, int]
    references: dict[str, int]
    uploads: dict[str, int]
    skipped: dict[str, int]
    audits: int
    transcript: list[TranscriptEntry] = field(repr=False)
    indexes: dict[str, bytes] = field(repr=False)
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
        LocalProtocolError: ``directory`` is not a directory.
    """
    root = Path(directory)
    if not root.is_dir():
        raise LocalProtocolError("not a directory: give a directory of files")
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _fingerprints(
    path: Path, signals: Sequence[SignalType[Any]], skipped: dict[str, int]
) -> list[tuple[str, bytes, int | None]]:
    """``(signal, hash bytes, quality)`` of one file for every signal it has.

    A file an exact signal cannot read is an error (it hashes any file it can read); a file
    another signal cannot hash, or hashes below its quality floor, is skipped and counted.
    """
    found: list[tuple[str, bytes, int | None]] = []
    for signal in signals:
        try:
            value = signal.hash(path)
        except FingerprintError:
            if signal.exact:
                raise
            skipped[signal.name] = skipped.get(signal.name, 0) + 1
            continue
        quality = None if signal.exact else signal.quality(value)
        if signal.accepts(quality):
            found.append((signal.name, signal.match_bytes(value), quality))
        else:
            skipped[signal.name] = skipped.get(signal.name, 0) + 1
    return found


def _videos(
    path: Path, signals: Sequence[SignalType[Any]], skipped: dict[str, int]
) -> list[tuple[SignalType[Any], Any]]:
    """``(signal, value)`` of one file for every grouped signal (``vpdq``) it has frames of;
    a file the signal cannot hash, or without a frame of enough quality, is skipped."""
    found: list[tuple[SignalType[Any], Any]] = []
    for signal in signals:
        try:
            value = signal.hash(path)
        except FingerprintError:
            skipped[signal.name] = skipped.get(signal.name, 0) + 1
            continue
        if signal.accepts(signal.quality(value)):
            found.append((signal, value))
        else:
            skipped[signal.name] = skipped.get(signal.name, 0) + 1
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

    Returns:
        The matches, both parties' counters, index sizes and the message transcript.

    Raises:
        LocalProtocolError: bad signals or directories.
        FingerprintError: a file could not be read.
        ProtocolError, CryptoError: the protocol failed (a bug or a corrupted run).
    """
    chosen = _check_signals(signals)
    if type(threads) is not int or threads < 1:
        raise LocalProtocolError("threads must be a positive int")
    workers = ThreadedEvaluator(threads) if threads > 1 else contextlib.nullcontext(SERIAL)
    with workers as evaluator:
        return _simulate(
            references, uploads, chosen, processes, batch_size, audit_batches, key, evaluator
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
) -> SimulationResult:
    secret = SecretKey.generate() if key is None else key
    skipped: dict[str, int] = {}

    # Clearinghouse: fingerprint the references, build and serialise one index per signal.
    signal_types = [_REGISTRY.get(name) for name in chosen if not _REGISTRY.get(name).grouped]
    grouped_types = [_REGISTRY.get(name) for name in chosen if _REGISTRY.get(name).grouped]
    reference_root = Path(references)
    per_signal: dict[str, list[Reference]] = {s: [] for s in chosen}
    video_counts: dict[str, int] = {}
    for path in list_files(reference_root):
        report_id = path.relative_to(reference_root).as_posix()
        for signal, hash_bytes, _ in _fingerprints(path, signal_types, skipped):
            per_signal[signal].append(Reference(report_id, signal, hash_bytes))
        for grouped, value in _videos(path, grouped_types, skipped):
            assert isinstance(grouped, VpdqSignal)  # the one grouped signal type
            per_signal[grouped.name].extend(video_references(report_id, value, grouped))
            video_counts["reported_videos"] = video_counts.get("reported_videos", 0) + 1
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
    for path in list_files(uploads):
        for signal, hash_bytes, quality in _fingerprints(path, signal_types, skipped):
            batch.append(Upload(str(path), signal, hash_bytes, quality))
            upload_counts[signal] += 1
        for grouped, value in _videos(path, grouped_types, skipped):
            frames = matchers[grouped.name].frame_uploads(str(path), value)
            batch.extend(frames)
            upload_counts[grouped.name] += 1
            video_counts["frames_queried"] = video_counts.get("frames_queried", 0) + len(frames)
    platform.add_uploads(batch)

    bands = {signal: b.header.banding.count for signal, b in built.items()}
    elements_needed = sum(bands[u.signal] for u in batch)
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
            SimulationMatch(m.upload_ref, built[m.signal].handles[m.handle], m.signal, m.handle)
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
        references={s: len(r) for s, r in per_signal.items()},
        uploads=upload_counts,
        skipped=skipped,
        audits=audits,
        transcript=pair.transcript,
        indexes=index_files,
        videos=videos,
        video_counts=video_counts,
        matched_frames=matched_frames,
    )
