"""Private vPDQ video matching in the SDK: ``match_videos`` on both clients.

Theory of operation
-------------------
The vPDQ rule lives in :class:`~blindmatch.protocols.video.VideoMatcher`, above a
:class:`~blindmatch.protocols.PlatformSession`; this module only wires it to the SDK's
``match`` flow (:mod:`blindmatch.client.flows`), so nothing of the protocol is written
twice:

1. Fetch the manifest and the grouped ``vpdq`` index it names (verified like every index;
   the service publishes it as a full index only, never as deltas).
2. Turn every video into its frame uploads with a :class:`VideoMatcher` on that index, and
   match them, with the caller's other uploads, through the ordinary ``match`` flow
   (batching, retries, audits, canaries, revocation as for any upload).
3. Hand the frame matches to the matcher, which applies the rule per (video, reported
   video) and names each match by the reported video's group handle.

One index for a whole video. Group handles are drawn anew at every full build, so a
video's frames must all be answered against the same ``vpdq`` index, or its shares would
be split between two handles of one report. ``match`` may move to a newer manifest on its
own (a new key epoch, a stale index); the flow therefore compares the ``vpdq`` index of
the manifest it started from with the one ``match`` ended on (versions only grow, and a
rebuilt index never comes back, so equal files mean every session used it) and otherwise
queries the videos again on the new index, at most ``max_retries`` times.

Withdrawal. A withdrawn video's frame handles and group handle are both listed in the
manifest's ``revoked_handles``: its frame matches are dropped by ``match`` and its video
matches here.

What each party learns is what it learns of the frames as PDQ uploads
(docs/protocol.md section 7): the clearinghouse counts elements (a video costs at most
``64 * 384`` of them, whatever its length), the platform learns which of its videos
matched which reported video (an opaque group handle) and the shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from blindmatch import errors
from blindmatch.client.flows import Flow, Flows
from blindmatch.client.manifest import Manifest
from blindmatch.client.results import ClientMatch, ClientStats, MatchReport
from blindmatch.fingerprint.signals import VpdqSignal
from blindmatch.fingerprint.types import VideoFingerprint
from blindmatch.protocols import Upload
from blindmatch.protocols.platform import Match
from blindmatch.protocols.video import VideoMatcher, VideoReportMatch
from blindmatch.psi.index import Index

__all__ = ["VIDEO_SIGNAL", "VideoMatchReport", "check_videos", "match_videos"]

VIDEO_SIGNAL = VpdqSignal.name
"""The signal type of private video matching (``"vpdq"``)."""


@dataclass(frozen=True, slots=True)
class VideoMatchReport:
    """The outcome of ``match_videos``.

    Attributes:
        videos: one :class:`~blindmatch.protocols.video.VideoReportMatch` per (video,
            reported video) that meets the vPDQ rule (``upload_ref`` is the caller's video
            ref, ``handle`` the reported video's opaque handle, with the shares), revoked
            handles dropped, sorted by ref then handle.
        unfinished_videos: refs of the videos with a frame left unanswered (ask again).
        videos_answered: videos with every frame answered (matched or not).
        report: the other uploads' :class:`MatchReport` (frame matches left out) and the
            counts of the whole call (frames included) in ``report.stats``.
    """

    videos: tuple[VideoReportMatch, ...]
    unfinished_videos: tuple[str, ...]
    videos_answered: int
    report: MatchReport = field(repr=False)


def check_videos(videos: Sequence[tuple[str, VideoFingerprint]], uploads: Sequence[Upload]) -> None:
    """Refuse what ``match_videos`` cannot take (before anything is sent).

    Raises:
        TypeError: a video is not a ``(str, VideoFingerprint)`` pair, or an upload is not
            an :class:`~blindmatch.protocols.Upload`.
        errors.InvalidArgument: an upload of signal ``vpdq`` (give videos as videos).
    """
    for item in videos:
        if (
            not isinstance(item, tuple)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], VideoFingerprint)
        ):
            raise TypeError("videos must be (ref, VideoFingerprint) pairs")
    if not all(isinstance(u, Upload) for u in uploads):
        raise TypeError("uploads must be Upload values")
    if any(u.signal == VIDEO_SIGNAL for u in uploads):
        raise errors.InvalidArgument("give videos to match_videos as videos, not vpdq uploads")


def _which(manifest: Manifest | None) -> tuple[int, bytes] | None:
    """The key epoch and file of the manifest's ``vpdq`` index (``None``: none)."""
    entry = None if manifest is None else manifest.indexes.get(VIDEO_SIGNAL)
    if manifest is None or entry is None:
        return None
    return manifest.epoch, entry.sha256


def _vpdq_index(flows: Flows, stats: ClientStats) -> Flow[tuple[Index, tuple[int, bytes]]]:
    manifest = yield from flows.refresh()
    which = _which(manifest)
    if which is None:
        raise errors.InvalidArgument("the clearinghouse publishes no vpdq index")
    source = yield from flows._source(manifest, VIDEO_SIGNAL, stats)
    if not isinstance(source, Index) or not source.grouped:
        raise errors.IndexIntegrityError("the vpdq index is not a grouped full index")
    return source, which


def _add_stats(total: ClientStats, part: ClientStats) -> None:
    for item in fields(ClientStats):
        setattr(total, item.name, getattr(total, item.name) + getattr(part, item.name))


def match_videos(
    flows: Flows,
    videos: Sequence[tuple[str, VideoFingerprint]],
    uploads: Sequence[Upload] = (),
) -> Flow[VideoMatchReport]:
    """Match videos privately under the vPDQ rule, with other uploads (module docstring).

    Raises:
        TypeError, errors.InvalidArgument: see :func:`check_videos`; also no ``vpdq`` index.
        errors.ClientError, errors.ProtocolError, errors.VerifyError: as ``match``; a
            ``ClientError``'s ``partial`` is the :class:`MatchReport` of ``uploads`` alone
            (no video has a result until all of its frames are answered).
    """
    check_videos(videos, uploads)
    if not videos:
        alone = yield from flows.match(uploads)
        return VideoMatchReport((), (), 0, alone)
    stats = ClientStats()
    others: MatchReport | None = None
    for attempt in range(flows.options.max_retries + 1):
        index, used = yield from _vpdq_index(flows, stats)
        matcher = VideoMatcher(index)
        frames = [u for ref, video in videos for u in matcher.frame_uploads(ref, video)]
        asked = [*frames, *(uploads if others is None else ())]
        try:
            report = yield from flows.match(asked)
        except errors.ClientError as exc:
            # ``partial`` is then the report of the caller's own uploads: a video's frames
            # answered so far give no result (the rule needs all of them).
            if others is not None:
                exc.partial = others
            elif isinstance(exc.partial, MatchReport):
                exc.partial = _without_frames(exc.partial, len(frames))
            raise
        _add_stats(stats, report.stats)
        frame_matches = [m for m in report.matches if m.signal == VIDEO_SIGNAL]
        if others is None:
            others = _without_frames(report, len(frames))
        if _which(flows.manifest) != used and attempt < flows.options.max_retries:
            stats.manifest_refreshes += 1
            continue  # a newer vpdq index: ask for every video again on it
        matcher.add_matches(
            Match(m.upload.ref, m.signal, m.handle, m.variant) for m in frame_matches
        )
        unfinished = [u.ref for u in report.unfinished if u.signal == VIDEO_SIGNAL]
        revoked = flows.manifest.revoked_handles if flows.manifest is not None else set()
        found = tuple(v for v in matcher.results(unfinished) if bytes(v.handle) not in revoked)
        pending = matcher.unfinished_videos(unfinished)
        break
    else:  # pragma: no cover - the loop always breaks on its last attempt
        raise AssertionError("unreachable")
    assert others is not None
    return VideoMatchReport(
        videos=found,
        unfinished_videos=pending,
        videos_answered=len(videos) - len(pending),
        report=MatchReport(
            matches=others.matches,
            unfinished=others.unfinished,
            answered=others.answered,
            epoch=report.epoch,
            version=report.version,
            stats=stats,
        ),
    )


def _without_frames(report: MatchReport, frames: int) -> MatchReport:
    """The report of the caller's own uploads: frame uploads and their matches left out."""
    matches: tuple[ClientMatch, ...] = tuple(m for m in report.matches if m.signal != VIDEO_SIGNAL)
    unfinished = tuple(u for u in report.unfinished if u.signal != VIDEO_SIGNAL)
    frames_unfinished = len(report.unfinished) - len(unfinished)
    return MatchReport(
        matches=matches,
        unfinished=unfinished,
        answered=report.answered - (frames - frames_unfinished),
        epoch=report.epoch,
        version=report.version,
        stats=report.stats,
    )
