"""Private vPDQ matching: a video as frame queries below, one match per report above.

Theory of operation
-------------------
vPDQ compares two videos as bags of frame hashes: ``query%`` is the share of the query's
frames with a near twin (PDQ distance <= 31) among the other video's frames,
``compared%`` the reverse, and a match needs both to reach thresholds (default 80 % and
0 %). Private matching keeps the session untouched and puts the rule one layer above it:

- **Clearinghouse.** A reported video becomes one reference per frame of
  :meth:`~blindmatch.fingerprint.signals.VpdqSignal.match_items` (distinct hashes of
  quality >= 50, near-duplicates within distance 31 dropped, at most
  ``max_match_frames`` = 64 of them, spread evenly: :func:`video_references`; why
  near-duplicates go: :func:`blindmatch.fingerprint.video.match_frames`), all under the
  report's id. The ``vpdq`` index is built grouped
  (:func:`~blindmatch.psi.index.build_index` with ``grouped=True``, index format version
  2): each frame reference has its own line, secret and handle, exactly like a PDQ
  reference, and the file also lists, per handle, the number of its group and one random
  handle per group (a reported video). A group's size is the reported video's frame count.
- **Platform.** :class:`VideoMatcher` turns an uploaded video into frame uploads (the same
  :meth:`match_items`, so both sides pick frames alike), which the
  :class:`~blindmatch.protocols.platform.PlatformSession` queries like PDQ images through
  the banding (``L = 384`` elements per frame, ``t = 2``). The frame matches it returns
  name frame handles; :meth:`VideoMatcher.add_matches` maps each to its group
  (:meth:`~blindmatch.psi.index.Index.group_of`), and :meth:`VideoMatcher.results` applies
  the rule per (video, group): ``query% = 100 * query frames matched / query frames``,
  ``compared% = 100 * distinct frame handles of the group matched / group size``. The
  result is one :class:`VideoReportMatch` per uploaded video and reported video, named by
  the group handle, which the clearinghouse maps to the report.

Cost bound. Both sides band at most ``max_match_frames`` frames of a video, so a video
costs at most ``64 * 384 = 24,576`` elements online and as many index entries, whatever
its length (a one-hour video at one hash per second keeps one frame in 56). Sampling keeps
the first and last frame and spreads the rest evenly over the distinct frames, with
integer arithmetic, so one fingerprint always gives the same frames. The shares are then
those of the sampled frames; a short clip of a long reported video (under ``1/64`` of its
length) may fall between the reported video's sampled frames and not match.

What each party learns (docs/protocol.md section 7). The clearinghouse: the number of
elements, as for images (a video is ``frames * L`` elements, padded into batches like any
upload, so the frame count of an upload shows only through the total). A platform, from
the index alone: the number of reported videos and each one's sampled frame count (the
sizes of the groups), nothing linking a frame handle to an entry or a band without the
OPRF key; from a match: which of its frames matched which frame handles of the report.
Frame handles are distinct per frame reference, as every reference's handle is, and a
frame's single-band tag hits are as unlinkable as a PDQ image's.

All vPDQ uploads of a session go through one :class:`VideoMatcher`: the frame uploads'
refs are its own (``"vpdq-frame:<video>:<frame>"``), never the platform's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from blindmatch import errors
from blindmatch.fingerprint.signals import VpdqSignal
from blindmatch.fingerprint.types import VideoFingerprint
from blindmatch.protocols.platform import Match, Upload
from blindmatch.psi.index import Index, Reference
from blindmatch.psi.kdf import ReportHandle

__all__ = [
    "FRAME_REF_PREFIX",
    "VideoMatcher",
    "VideoReportMatch",
    "video_references",
]

FRAME_REF_PREFIX: Final = "vpdq-frame:"
"""How the upload refs of a :class:`VideoMatcher`'s frame uploads begin."""


def video_references(
    report_id: str, fingerprint: VideoFingerprint, signal: VpdqSignal | None = None
) -> list[Reference]:
    """The frame references of one reported video (clearinghouse side).

    Args:
        report_id: the report; every frame reference carries it (the index groups by it).
        fingerprint: the reported video's vPDQ fingerprint.
        signal: the vPDQ signal type (its quality floor and frame bound);
            ``VpdqSignal()`` when omitted.

    Returns:
        One :class:`~blindmatch.psi.index.Reference` per frame of ``signal.match_items``
        (none for a video without a frame of quality >= 50).
    """
    chosen = VpdqSignal() if signal is None else signal
    return [
        Reference(report_id, chosen.name, chosen.match_bytes(frame))
        for frame in chosen.match_items(fingerprint)
    ]


@dataclass(frozen=True, slots=True)
class VideoReportMatch:
    """An uploaded video matched a reported video under the vPDQ rule.

    Attributes:
        upload_ref: the platform's ref of the uploaded video.
        signal: the signal type (``"vpdq"``).
        handle: the reported video's group handle (the clearinghouse maps it to the report).
        query_pct: share of the upload's queried frames that matched a frame of the report.
        compared_pct: share of the report's frames that some queried frame matched.
        frames_queried: the upload's frames queried (after dedup and the frame bound).
        frames_matched: of those, frames that matched a frame of this report.
        report_frames: the reported video's frame count (its group's size in the index).
        report_frames_matched: distinct frames of the report matched.
    """

    upload_ref: str
    signal: str
    handle: ReportHandle
    query_pct: float
    compared_pct: float
    frames_queried: int
    frames_matched: int
    report_frames: int
    report_frames_matched: int


@dataclass(slots=True)
class _Video:
    ref: str
    frames: int
    # group handle -> (query frames matched, report frame handles matched, group size)
    groups: dict[ReportHandle, tuple[set[int], set[ReportHandle], int]]


class VideoMatcher:
    """The vPDQ rule above a :class:`~blindmatch.protocols.platform.PlatformSession`.

    Use: :meth:`frame_uploads` for each uploaded video (add the returned uploads to the
    session), pass every :class:`~blindmatch.protocols.platform.Match` the session returns
    through :meth:`add_matches`, and when the session is done read :meth:`results`.

    Args:
        index: the grouped ``vpdq`` index the session holds (format version 2).
        signal: the vPDQ signal type (frame bound, quality floor, default thresholds);
            ``VpdqSignal()`` when omitted. Its ``max_match_frames`` should be the
            clearinghouse's, so both sides sample alike.
        query_threshold: least ``query%`` of a match (default: the signal's, 80).
        compared_threshold: least ``compared%`` of a match (default: the signal's, 0).

    Raises:
        TypeError: an argument of the wrong type.
        errors.LocalProtocolError: the index is not a grouped index of the signal, or a
            threshold is outside 0..100.
    """

    def __init__(
        self,
        index: Index,
        signal: VpdqSignal | None = None,
        *,
        query_threshold: float | None = None,
        compared_threshold: float | None = None,
    ) -> None:
        chosen = VpdqSignal() if signal is None else signal
        if not isinstance(index, Index):
            raise TypeError("index must be an Index")
        if not isinstance(chosen, VpdqSignal):
            raise TypeError("signal must be a VpdqSignal")
        if not index.grouped or index.header.banding.signal != chosen.name:
            raise errors.LocalProtocolError(f"give the grouped {chosen.name} index")
        query = chosen.query_threshold if query_threshold is None else query_threshold
        compared = chosen.compared_threshold if compared_threshold is None else compared_threshold
        for value in (query, compared):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0 <= value <= 100
            ):
                raise errors.LocalProtocolError("vPDQ thresholds are percentages in 0..100")
        self._index = index
        self._signal = chosen
        self.query_threshold = float(query)
        self.compared_threshold = float(compared)
        self._videos: list[_Video] = []
        self._frames: dict[str, tuple[int, int]] = {}

    @property
    def signal(self) -> str:
        """The signal type's name (``"vpdq"``)."""
        return self._signal.name

    def frame_uploads(self, ref: str, fingerprint: VideoFingerprint) -> list[Upload]:
        """Register an uploaded video and return its frame uploads for the session.

        Args:
            ref: the platform's ref of the video (reported back in :meth:`results`).
            fingerprint: its vPDQ fingerprint.

        Returns:
            One :class:`~blindmatch.protocols.platform.Upload` per frame of
            ``signal.match_items`` (at most ``max_match_frames``; none for a video without
            a frame of quality >= 50, which then matches nothing).

        Raises:
            TypeError: ``ref`` is not a str or ``fingerprint`` not a VideoFingerprint.
        """
        if not isinstance(ref, str):
            raise TypeError("a video's ref must be a str")
        frames = self._signal.match_items(fingerprint)
        number = len(self._videos)
        self._videos.append(_Video(ref, len(frames), {}))
        uploads = []
        for position, frame in enumerate(frames):
            frame_ref = f"{FRAME_REF_PREFIX}{number}:{position}"
            self._frames[frame_ref] = (number, position)
            uploads.append(
                Upload(frame_ref, self.signal, self._signal.match_bytes(frame), frame.quality)
            )
        return uploads

    def add_matches(self, matches: Iterable[Match]) -> list[Match]:
        """Take the frame matches of this matcher's uploads; return every other match.

        Args:
            matches: what the session returned (any signals).

        Returns:
            The matches that are not frame matches of this matcher, unchanged.
        """
        others: list[Match] = []
        for match in matches:
            located = self._frames.get(match.upload_ref) if match.signal == self.signal else None
            if located is None:
                others.append(match)
                continue
            group = self._index.group_of(match.handle)
            if group is None:
                continue  # a handle in no group (a canary's) is no report's frame
            video = self._videos[located[0]]
            query_hits, report_hits, _ = video.groups.setdefault(
                group.handle, (set(), set(), group.size)
            )
            query_hits.add(located[1])
            report_hits.add(match.handle)
        return others

    def results(self, unfinished: Iterable[str] = ()) -> list[VideoReportMatch]:
        """The vPDQ rule per uploaded video and reported video.

        Args:
            unfinished: the session's :meth:`~blindmatch.protocols.platform.
                PlatformSession.unfinished` refs; a video with a frame among them has no
                result yet (its shares would be undercounted).

        Returns:
            One :class:`VideoReportMatch` per (video, reported video) whose shares reach
            both thresholds with at least one frame matched, sorted by upload ref then
            handle.
        """
        pending = {self._frames[r][0] for r in unfinished if r in self._frames}
        found: list[VideoReportMatch] = []
        for number, video in enumerate(self._videos):
            if number in pending or not video.frames:
                continue
            for handle, (query_hits, report_hits, size) in video.groups.items():
                query_pct = 100.0 * len(query_hits) / video.frames
                compared_pct = 100.0 * min(len(report_hits), size) / size
                if query_pct >= self.query_threshold and compared_pct >= self.compared_threshold:
                    found.append(
                        VideoReportMatch(
                            upload_ref=video.ref,
                            signal=self.signal,
                            handle=handle,
                            query_pct=query_pct,
                            compared_pct=compared_pct,
                            frames_queried=video.frames,
                            frames_matched=len(query_hits),
                            report_frames=size,
                            report_frames_matched=min(len(report_hits), size),
                        )
                    )
        return sorted(found, key=lambda m: (m.upload_ref, bytes(m.handle)))

    def unfinished_videos(self, unfinished: Iterable[str]) -> tuple[str, ...]:
        """Refs of the videos with a frame among the session's unfinished uploads."""
        pending = {self._frames[r][0] for r in unfinished if r in self._frames}
        return tuple(self._videos[n].ref for n in sorted(pending))
