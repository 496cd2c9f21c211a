"""vPDQ: a video's fingerprint is the PDQ hash of sampled frames; two videos match when
enough of their distinct frames have a near twin in the other.

Theory of operation
-------------------
Hashing follows the reference (facebook/ThreatExchange ``vpdq/cpp``) step by step:

1. Decode every frame of the first video stream, in decoder output order; the frame number
   is the count of frames decoded before it (the reference's ``frame_num - 1``).
2. ``fps`` is the stream's average frame rate (its real base rate when the container does
   not know the average). Frame ``n`` is hashed iff ``n % frame_mod == 0`` with
   ``frame_mod = int(seconds_per_hash * fps)``, or 1 when that is 0 -- so
   ``seconds_per_hash=0`` hashes every frame. Its timestamp is ``n / fps``.
3. The frame is converted to RGB at its native size (display-rotation metadata of phone
   videos is ignored, as the reference's libav decoding ignores it), its luma computed in
   float32 as the reference's ``fillFloatLumaFromRGB`` does (``0.299 R + 0.587 G + 0.114
   B``, float32, left to right -- not the double-then-round luma of the image binding: it
   decides a bit on some frames), then hashed by the PDQ core
   (:mod:`blindmatch.fingerprint.pdq`).

The colour conversion is the part that is not portable. The reference creates an FFmpeg
swscale context with ``SWS_AREA`` and calls the legacy ``sws_scale``, which ignores the
frame's colour tags (BT.601 coefficients, limited range unless the pixel format is
``yuvj*``). For a same-size conversion the scaling filter does not matter; what does is
which yuv->rgb converter swscale picks: on x86 builds with SIMD, a fast special-case
converter with coarser rounding; elsewhere, the portable C path. The published reference
hashes were made with both (measured on the four sample videos: three are reproduced bit
for bit, every frame, by the portable path; ``test-padded-dimensions`` bit for bit by the
x86 fast path, and within 4 bits, same qualities, by the portable path). We pin the
portable, CPU-independent path: :data:`RGB_INTERPOLATION` (``POINT | ACCURATE_RND |
BITEXACT``; ``ACCURATE_RND`` keeps swscale off the SIMD special case, ``BITEXACT`` keeps
the result the same on every CPU), with the colour tags forced to the legacy defaults.
Hashes of the same video then agree across machines; against hashes made by the reference
on x86 they differ by a few bits on some frames, far inside the match distance of 31.

Matching (:func:`video_match`) treats each video as the set of its distinct frame hashes
of quality >= ``quality_floor``: ``query_pct`` is the share of the query's hashes within
``distance_threshold`` of some hash of the other video, ``compared_pct`` the reverse.
:func:`is_match` requires both to reach their thresholds (default 80% and 0%). If either
side has no hash of sufficient quality, both shares are 0.

Bounds and errors
-----------------
PyAV (FFmpeg) is imported only when a video is decoded, so the rest of
:mod:`blindmatch.fingerprint` works without it. ``max_frames`` bounds the frames decoded
and ``max_pixels`` the pixels of one frame (both checked against the header first, then
per frame) -> :class:`~blindmatch.errors.MediaTooLarge`, whose message gives the video's
count or size, the limit and how to raise it (the command line's ``--max-frames`` and
``--max-frame-pixels``). A missing or unreadable path is
:class:`~blindmatch.errors.UnreadableMedia`; an empty, truncated or undecodable file
:class:`~blindmatch.errors.CorruptMedia` (a packet the demuxer flags as cut short, fewer
packets than the container's index declares, any decoder error, or a video stream whose
codec FFmpeg cannot identify: PyAV ships FFmpeg with every common decoder, so in practice
that is a damaged sample description, not a real codec); a file whose magic bytes are not
a video container, or a container without a video stream,
:class:`~blindmatch.errors.UnsupportedMedia`. No PyAV exception escapes, and no message
carries file bytes. Limitation: a Matroska/WebM file cut exactly at a block boundary
declares no frame count and reads as a shorter, valid video.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import ModuleType
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from blindmatch.errors import (
    BlindmatchError,
    CorruptMedia,
    InvalidArgument,
    MediaTooLarge,
    UnsupportedMedia,
)
from blindmatch.fingerprint._files import open_source, read_head, unreadable
from blindmatch.fingerprint.distance import hamming_many_to_many, pack_hashes
from blindmatch.fingerprint.frontend import SNIFF_BYTES, sniff_kind
from blindmatch.fingerprint.pdq import pdq_from_luma
from blindmatch.fingerprint.types import VideoFingerprint, VideoFrame

if TYPE_CHECKING:
    import av.container
    import av.video.frame
    import av.video.stream

__all__ = [
    "DEFAULT_DISTANCE_THRESHOLD",
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_MATCH_FRAMES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_QUALITY_FLOOR",
    "DEFAULT_QUERY_THRESHOLD",
    "DEFAULT_SECONDS_PER_HASH",
    "RGB_INTERPOLATION",
    "VideoMatch",
    "frame_mod",
    "frame_to_rgb",
    "hash_video",
    "is_match",
    "luma_from_rgb",
    "match_frames",
    "sample_frames",
    "unique_frames",
    "video_match",
]

DEFAULT_SECONDS_PER_HASH: Final = 1.0
"""vPDQ's default sampling: one hashed frame per second of video."""

DEFAULT_DISTANCE_THRESHOLD: Final = 31
"""Two frame hashes match when their Hamming distance is at most this (PDQ's threshold)."""

DEFAULT_QUALITY_FLOOR: Final = 50
"""Frames whose PDQ quality is below this take no part in matching."""

DEFAULT_QUERY_THRESHOLD: Final = 80.0
"""Share (percent) of the query's distinct frames that must match, by default."""

DEFAULT_MAX_FRAMES: Final = 500_000
"""Most frames decoded from one video by default (4.6 hours at 30 fps)."""

DEFAULT_MAX_MATCH_FRAMES: Final = 64
"""Most frames of one video that private matching bands (:func:`match_frames`): each frame
costs ``L`` OPRF elements online and ``L`` index entries (384 at PDQ's banding), so a video
costs at most ``64 * 384 = 24,576`` elements however long it is."""

DEFAULT_MAX_PIXELS: Final = 40_000_000
"""Largest frame (width x height) decoded by default: above 8K UHD (33.2 Mpx)."""

RGB_INTERPOLATION: Final = 0x10 | 0x40000 | 0x80000
"""swscale flags of the YUV->RGB conversion: ``SWS_POINT | SWS_ACCURATE_RND |
SWS_BITEXACT`` (values from ``libswscale/swscale.h``; see the module docstring)."""

_SWS_CS_DEFAULT: Final = 5  # SWS_CS_DEFAULT == SWS_CS_ITU601: the legacy sws_scale matrix
_RANGE_MPEG: Final = 1  # AVCOL_RANGE_MPEG, limited range
_RANGE_JPEG: Final = 2  # AVCOL_RANGE_JPEG, full range
_MATCH_BLOCK_ROWS: Final = 1024

_R: Final = np.float32(0.299)
_G: Final = np.float32(0.587)
_B: Final = np.float32(0.114)


def frame_mod(seconds_per_hash: float, fps: float) -> int:
    """Every how many frames vPDQ hashes one: ``int(seconds_per_hash * fps)``, at least 1.

    Args:
        seconds_per_hash: Seconds of video per hashed frame; 0 hashes every frame.
        fps: The stream's average frame rate.

    Returns:
        The sampling period in frames (frame ``n`` is hashed iff ``n % period == 0``).

    Raises:
        InvalidArgument: ``seconds_per_hash`` is negative or not finite, or ``fps`` not positive.
    """
    _check_seconds_per_hash(seconds_per_hash)
    if not math.isfinite(fps) or fps <= 0:
        raise InvalidArgument("fps must be a positive number")
    return max(1, int(seconds_per_hash * fps))


def luma_from_rgb(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Luma of an RGB frame as vPDQ computes it: float32 ``0.299 R + 0.587 G + 0.114 B``,
    summed left to right (the reference's ``fillFloatLumaFromRGB``).

    Args:
        rgb: An ``H x W x 3`` ``uint8`` array.

    Returns:
        An ``H x W`` float32 array.
    """
    # One channel at a time: an 8K frame as a float32 H x W x 3 copy would be 400 MB.
    luma = rgb[:, :, 0].astype(np.float32)
    luma *= _R
    luma += rgb[:, :, 1].astype(np.float32) * _G
    luma += rgb[:, :, 2].astype(np.float32) * _B
    return luma


def frame_to_rgb(frame: av.video.frame.VideoFrame) -> npt.NDArray[np.uint8]:
    """A decoded frame as an ``H x W x 3`` RGB array at native size (pinned conversion).

    YUV frames are converted with the legacy swscale defaults the reference relied on
    (BT.601 matrix; limited range unless the pixel format is ``yuvj*``), whatever the
    stream's colour tags say. RGB, grey and palette frames convert directly.

    Args:
        frame: A PyAV video frame.

    Returns:
        A C-contiguous ``uint8`` array.
    """
    fmt = frame.format
    if fmt.is_rgb or fmt.has_palette or len(fmt.components) < 3:
        array = frame.to_ndarray(format="rgb24", interpolation=RGB_INTERPOLATION, threads=1)
    else:
        color_range = _RANGE_JPEG if fmt.name.startswith("yuvj") else _RANGE_MPEG
        array = frame.to_ndarray(
            format="rgb24",
            interpolation=RGB_INTERPOLATION,
            src_colorspace=_SWS_CS_DEFAULT,
            src_color_range=color_range,
            threads=1,
        )
    rgb: npt.NDArray[np.uint8] = np.ascontiguousarray(array, dtype=np.uint8)
    return rgb


def hash_video(
    source: str | os.PathLike[str] | bytes,
    seconds_per_hash: float = DEFAULT_SECONDS_PER_HASH,
    *,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> VideoFingerprint:
    """The vPDQ fingerprint of a video file (procedure in the module docstring).

    Args:
        source: A path, or the file's bytes.
        seconds_per_hash: Seconds of video per hashed frame (vPDQ's default 1.0); 0 hashes
            every frame.
        max_frames: Refuse videos with more frames than this.
        max_pixels: Refuse videos with a frame of more pixels than this.

    Returns:
        The hashed frames in decoding order, the frame rate and ``seconds_per_hash``.

    Raises:
        UnreadableMedia: The path cannot be opened or read.
        CorruptMedia: Empty, truncated or undecodable.
        UnsupportedMedia: Not a video container, no video stream, or PyAV is missing.
        MediaTooLarge: Over ``max_frames`` or ``max_pixels``.
        InvalidArgument: ``seconds_per_hash`` is negative or not finite, or a bound is not a
            positive integer.
    """
    _check_seconds_per_hash(seconds_per_hash)
    _check_bound(max_frames, "max_frames")
    _check_bound(max_pixels, "max_pixels")
    av = _import_av()
    with open_source(source) as handle:
        kind = sniff_kind(read_head(handle, SNIFF_BYTES))
        if kind == "image":
            raise UnsupportedMedia("the file is an image, not a video")
        if kind is None:
            raise UnsupportedMedia("not a video format blindmatch decodes")
        try:
            with av.open(handle, mode="r") as container:
                return _hash_container(
                    container, seconds_per_hash, max_frames=max_frames, max_pixels=max_pixels
                )
        except BlindmatchError:
            raise
        except OSError as exc:
            # PyAV's own I/O errors are FFmpegError too; a plain OSError is the file's.
            if isinstance(exc, av.FFmpegError):
                raise CorruptMedia("the video is truncated or corrupt") from None
            raise unreadable(exc) from None
        except MemoryError:
            raise MediaTooLarge("the video does not fit in memory") from None
        # FFmpeg reports damage as many error codes (InvalidDataError, EOFError, ...), and
        # PyAV's Python layer adds builtins on malformed headers; all mean the same here.
        except Exception:
            raise CorruptMedia("the video is truncated or corrupt") from None


def _hash_container(
    container: av.container.InputContainer,
    seconds_per_hash: float,
    *,
    max_frames: int,
    max_pixels: int,
) -> VideoFingerprint:
    if not container.streams.video:
        raise UnsupportedMedia("the file has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:  # PyAV found no decoder for the codec (docstring)
        raise CorruptMedia(
            "the video stream's codec cannot be identified (a damaged header, or a codec "
            "this FFmpeg build does not know)"
        )
    fps = _frame_rate(stream)
    width, height = stream.codec_context.width, stream.codec_context.height
    if width <= 0 or height <= 0:
        raise CorruptMedia("the video has zero width or height")
    if width * height > max_pixels:
        raise _too_many_pixels(width, height, max_pixels)
    declared = stream.frames
    if declared > max_frames:
        raise _too_many_frames(max_frames, declared)
    period = frame_mod(seconds_per_hash, float(fps))
    frames: list[VideoFrame] = []
    for number, frame in enumerate(_decode(container, stream, declared)):
        if number >= max_frames:
            raise _too_many_frames(max_frames)
        if frame.width * frame.height > max_pixels:
            raise _too_many_pixels(frame.width, frame.height, max_pixels)
        if number % period:
            continue
        fingerprint = pdq_from_luma(luma_from_rgb(frame_to_rgb(frame)))
        frames.append(
            VideoFrame(
                frame_number=number,
                timestamp=float(number / fps),
                pdq=fingerprint.hash,
                quality=fingerprint.quality,
            )
        )
    if not frames:
        raise CorruptMedia("the video has no decodable frame")
    return VideoFingerprint(frames=tuple(frames), fps=float(fps), seconds_per_hash=seconds_per_hash)


def _too_many_pixels(width: int, height: int, max_pixels: int) -> MediaTooLarge:
    return MediaTooLarge(
        f"the video's frames are {width} x {height} = {width * height} pixels, over the "
        f"limit of {max_pixels} (raise max_pixels; on the command line "
        "--max-frame-pixels N)"
    )


def _too_many_frames(max_frames: int, declared: int | None = None) -> MediaTooLarge:
    found = "has more frames than" if declared is None else f"declares {declared} frames, over"
    return MediaTooLarge(
        f"the video {found} the limit of {max_frames} (raise max_frames; on the command "
        "line --max-frames N)"
    )


def _decode(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    declared: int,
) -> Iterator[av.video.frame.VideoFrame]:
    """Every frame of ``stream`` in decoder output order, refusing truncated input.

    PyAV's demuxer ends with an empty packet per stream; decoding it flushes the frames
    the decoder still holds (B-frame reordering), as the reference's final flush does.
    """
    packets = 0
    for packet in container.demux(stream):
        if packet.is_corrupt:
            raise CorruptMedia("the video is truncated or corrupt")
        if packet.size or packet.dts is not None:  # not the final, empty flush packet
            packets += 1
        yield from packet.decode()
    if declared and packets < declared:
        raise CorruptMedia("the video is truncated: fewer packets than its index declares")


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction:
    """The average frame rate, or the real base rate when the container lacks it."""
    for rate in (stream.average_rate, stream.base_rate, stream.guessed_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    raise CorruptMedia("the video has no frame rate")


@dataclass(frozen=True, slots=True)
class VideoMatch:
    """The two vPDQ match shares between a query video and a compared video, in percent.

    Attributes:
        query_pct: Share of the query's distinct quality frames with a near twin in the
            compared video.
        compared_pct: Share of the compared video's distinct quality frames with a near
            twin in the query.
    """

    query_pct: float
    compared_pct: float


def unique_frames(
    fingerprint: VideoFingerprint, quality_floor: int = DEFAULT_QUALITY_FLOOR
) -> tuple[VideoFrame, ...]:
    """The frames that take part in matching: quality >= ``quality_floor``, and of frames
    with exactly the same hash only the first (a still scene counts once, not per second).

    Args:
        fingerprint: A video fingerprint.
        quality_floor: Lowest PDQ quality kept (vPDQ's default 50).

    Returns:
        The kept frames, in their original order.
    """
    seen: set[bytes] = set()
    kept: list[VideoFrame] = []
    for frame in fingerprint.frames:
        key = bytes(frame.pdq)
        if frame.quality >= quality_floor and key not in seen:
            seen.add(key)
            kept.append(frame)
    return tuple(kept)


def sample_frames(frames: Sequence[VideoFrame], max_frames: int) -> tuple[VideoFrame, ...]:
    """At most ``max_frames`` of ``frames``, spread evenly, first and last kept.

    Frame ``i`` of the ``F = max_frames`` kept is ``frames[(i * (n - 1)) // (F - 1)]`` for
    ``n > F`` frames (``frames[0]`` when ``F == 1``); all of them when ``n <= F``. Integer
    arithmetic only, so the clearinghouse and every platform pick the same frames of the
    same fingerprint.

    Args:
        frames: Frames in their order (usually :func:`unique_frames`).
        max_frames: The bound, >= 1.

    Returns:
        The kept frames, in their order.

    Raises:
        InvalidArgument: ``max_frames`` is not a positive integer.
    """
    _check_bound(max_frames, "max_frames")
    count = len(frames)
    if count <= max_frames:
        return tuple(frames)
    if max_frames == 1:
        return (frames[0],)
    return tuple(frames[(i * (count - 1)) // (max_frames - 1)] for i in range(max_frames))


def match_frames(
    fingerprint: VideoFingerprint,
    *,
    quality_floor: int = DEFAULT_QUALITY_FLOOR,
    max_frames: int = DEFAULT_MAX_MATCH_FRAMES,
    distance_threshold: int = DEFAULT_DISTANCE_THRESHOLD,
) -> tuple[VideoFrame, ...]:
    """The frames private matching bands: distinct, pairwise more than
    ``distance_threshold`` apart, at most ``max_frames``.

    Steps: :func:`unique_frames` (vPDQ's dedup of equal hashes, quality floor); drop a frame
    within ``distance_threshold`` of the last frame kept (a still scene whose hash wobbles
    by a few bits is one frame, not one per second); :func:`sample_frames`; drop a sampled
    frame within ``distance_threshold`` of an earlier one kept.

    Why near-duplicates go: private matching finds a frame match through bands, and an
    uploaded frame agrees on nearly every one of the ``L`` bands with EVERY reported frame
    within a few bits of it. Ten near-copies of one frame in a reported video would give
    one query ``10 * L`` tag hits, over the platform's ``max_hits`` bound
    (:class:`~blindmatch.errors.IndexTooDense`: the session fails on an honest index).
    With the kept frames pairwise more than 31 apart, an uploaded frame fully agrees with
    few frames of one video. The vPDQ shares are then shares of these frames (distinct
    scenes) on both sides.

    Both sides use it: the clearinghouse for a reported video's frame references (their
    number is the video's frame count in the index), the platform for the frames an
    uploaded video queries.

    Args:
        fingerprint: A video fingerprint.
        quality_floor: Lowest PDQ quality kept.
        max_frames: Most frames kept (:data:`DEFAULT_MAX_MATCH_FRAMES`).
        distance_threshold: Frames this close to a kept frame are near-duplicates.

    Returns:
        The frames, in their original order.
    """
    still: list[VideoFrame] = []
    for frame in unique_frames(fingerprint, quality_floor):
        if not still or frame.pdq.distance(still[-1].pdq) > distance_threshold:
            still.append(frame)
    kept: list[VideoFrame] = []
    for frame in sample_frames(still, max_frames):
        if all(frame.pdq.distance(k.pdq) > distance_threshold for k in kept):
            kept.append(frame)
    return tuple(kept)


def video_match(
    query: VideoFingerprint,
    compared: VideoFingerprint,
    *,
    distance_threshold: int = DEFAULT_DISTANCE_THRESHOLD,
    quality_floor: int = DEFAULT_QUALITY_FLOOR,
) -> VideoMatch:
    """vPDQ's match shares between two videos (rule in the module docstring).

    Args:
        query: The video being checked.
        compared: The video it is compared against.
        distance_threshold: Largest Hamming distance at which two frame hashes match.
        quality_floor: Frames below this PDQ quality are ignored.

    Returns:
        Both shares in percent; both 0.0 if either video has no frame of enough quality.
    """
    left = pack_hashes([f.pdq for f in unique_frames(query, quality_floor)])
    right = pack_hashes([f.pdq for f in unique_frames(compared, quality_floor)])
    if not len(left) or not len(right):
        return VideoMatch(0.0, 0.0)
    right_hit = np.zeros(len(right), dtype=bool)
    left_hits = 0
    for start in range(0, len(left), _MATCH_BLOCK_ROWS):
        close = hamming_many_to_many(left[start : start + _MATCH_BLOCK_ROWS], right)
        close_mask = close <= distance_threshold
        left_hits += int(close_mask.any(axis=1).sum())
        right_hit |= close_mask.any(axis=0)
    return VideoMatch(
        query_pct=100.0 * left_hits / len(left),
        compared_pct=100.0 * int(right_hit.sum()) / len(right),
    )


def is_match(
    query: VideoFingerprint,
    compared: VideoFingerprint,
    *,
    query_threshold: float = DEFAULT_QUERY_THRESHOLD,
    compared_threshold: float = 0.0,
    distance_threshold: int = DEFAULT_DISTANCE_THRESHOLD,
    quality_floor: int = DEFAULT_QUALITY_FLOOR,
) -> bool:
    """Whether two videos match under vPDQ's rule: both shares reach their thresholds.

    Args:
        query: The video being checked.
        compared: The video it is compared against.
        query_threshold: Least ``query_pct`` (percent) for a match.
        compared_threshold: Least ``compared_pct`` (percent) for a match.
        distance_threshold: Largest Hamming distance at which two frame hashes match.
        quality_floor: Frames below this PDQ quality are ignored.

    Returns:
        True when ``query_pct >= query_threshold`` and ``compared_pct >=
        compared_threshold`` and at least one frame of each video took part.
    """
    result = video_match(
        query, compared, distance_threshold=distance_threshold, quality_floor=quality_floor
    )
    if not unique_frames(query, quality_floor) or not unique_frames(compared, quality_floor):
        return False
    return result.query_pct >= query_threshold and result.compared_pct >= compared_threshold


def _check_seconds_per_hash(seconds_per_hash: float) -> None:
    if (
        isinstance(seconds_per_hash, bool)
        or not isinstance(seconds_per_hash, (int, float))
        or not math.isfinite(seconds_per_hash)
        or seconds_per_hash < 0
    ):
        raise InvalidArgument("seconds_per_hash must be a finite number >= 0")


def _check_bound(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{name} must be a positive integer")


def _import_av() -> ModuleType:
    """PyAV, imported on first use so image-only installs never need it."""
    try:
        import av
    except ImportError:
        raise UnsupportedMedia(
            "video support needs PyAV: install blindmatch with the 'video' extra"
        ) from None
    return av
