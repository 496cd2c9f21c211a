"""The pinned front end: a file's bytes to the RGB array every image hash starts from.

Theory of operation
-------------------
A perceptual hash is only comparable with another when both came through the same decoder:
decoders, orientation handling and resize rules alone move a PDQ hash by 0-12 bits, and
ignoring EXIF orientation moves it by ~128. A device and a clearinghouse must therefore run
one pipeline, pinned here and nowhere else:

``default`` policy (the reference front end, bit for bit):
  1. Pillow decodes the file (first frame of animated GIF/WebP/PNG/AVIF; the first page of a
     multi-page TIFF). Only the formats in :data:`IMAGE_FORMATS` are tried, so Pillow never
     hands a file to an external program (EPS would start Ghostscript).
  2. ``ImageOps.exif_transpose`` applies the EXIF orientation.
  3. ``Image.convert("RGB")`` maps every mode to 8-bit RGB, alpha dropped (not composited):
     ``L``/``1``/``P``/``PA``/``LA`` replicate or look up grey and palette values, ``CMYK``
     and ``YCbCr`` and ``LAB`` use Pillow's colour conversions. The 16/32-bit integer modes
     ``I;16``, ``I;16B``, ``I`` and the float mode ``F`` are **clamped, not scaled**: a
     value above 255 becomes 255 (so a full-range 16-bit scan turns mostly white). That is
     what ``convert("RGB")`` does in Pillow 13 and what the reference hashes in
     ``tests/vectors/pdq/reference.json`` were made with (``I16.png``); it is kept so our
     hashes equal everyone else's on the same file, not because it is the best picture.
  4. Full resolution, no resize: the PDQ core's own filter does the downsampling.

``fast`` policy (for bulk hashing on weak devices; **not** comparable bit for bit):
  If the longer side exceeds :data:`FAST_MAX_SIDE` (512) pixels, JPEGs are decoded with
  ``Image.draft("RGB", size)`` (libjpeg's DCT scaling by 1/2, 1/4 or 1/8, the largest
  reduction that keeps the longer side >= 512), then, after steps 2-3, the image is resized
  so its longer side is exactly 512 (the other side ``floor(side * 512 / longer + 0.5)``,
  at least 1) with :data:`FAST_RESAMPLE` (Pillow's antialiased bilinear filter). Images
  whose longer side is <= 512 decode exactly as in ``default``. Measured PDQ deviation from
  ``default`` (``benchmarks/bench_fingerprint_pipeline.py``, results in
  ``benchmarks/results/fingerprint_pipeline.md``): mean 4.42 / median 4 / max 8 bits over
  24 generated 1024x768 photo-like JPEGs, mean 4.60 / median 6 / max 12 bits over the 43
  reference vector images -- far inside the match threshold of 31, but a hash list built
  with one policy should be queried with the same one. On 1024x768 JPEGs the ``fast``
  pipeline (file to PDQ, ~4.5 ms) ran 7.95-8.72x faster per core than Pillow + the
  reference ``pdqhash`` core in three runs on a shared 2-core machine (``default``: ~4x);
  JPEG entropy decoding, which draft mode cannot skip, is most of what remains. A smaller
  bound was measured and rejected: 256 px triples the deviation (mean 13.5, max 20 on the
  generated photos).

Bounds and errors
-----------------
Before any pixel is decoded, the header's width x height is checked against ``max_pixels``
(default :data:`DEFAULT_MAX_PIXELS`, 80 Mpx: above every 64 Mpx phone photo, below the
~90 Mpx where Pillow starts warning; a decoded 80 Mpx RGB image is 240 MB). ``max_pixels``
alone is the bound: Pillow's own limit (``PIL.Image.MAX_IMAGE_PIXELS``, which warns above
it and refuses above twice it, before we see the header) is raised to ``max_pixels`` for
the duration of the call when it is lower, so a caller who asks for larger images gets
them, and Pillow's refusal of a larger one becomes the same
:class:`~blindmatch.errors.MediaTooLarge`. Its message gives the image's size, the limit
and how to raise it (``max_pixels``; ``--max-pixels`` on the command line). Decoder
warnings (corrupt EXIF, palette transparency notes) are dropped: they change nothing about
the pixels we hash. Warnings are captured with ``warnings.catch_warnings``, and Pillow's
limit is a module global: both are process-global state, so decode in processes, not
threads, when hashing in parallel.

Missing or unreadable path -> :class:`~blindmatch.errors.UnreadableMedia`; empty file,
zero-size image, truncated or undecodable data in a recognised image format ->
:class:`~blindmatch.errors.CorruptMedia` (``ImageFile.LOAD_TRUNCATED_IMAGES`` is never
touched); anything else (text, audio, a video, HEIC) ->
:class:`~blindmatch.errors.UnsupportedMedia`. Messages never contain file bytes.

:func:`sniff_kind` tells images from videos by magic bytes, not by file name; the CLI uses
it to route each file to the image or the video pipeline.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import warnings
from collections.abc import Iterator
from typing import BinaryIO, Final, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError, features

from blindmatch.errors import (
    BlindmatchError,
    CorruptMedia,
    InvalidArgument,
    MediaTooLarge,
    UnsupportedMedia,
)
from blindmatch.fingerprint._files import open_binary, open_source, read_head, unreadable

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FAST_MAX_SIDE",
    "FAST_RESAMPLE",
    "IMAGE_FORMATS",
    "MediaKind",
    "Policy",
    "SNIFF_BYTES",
    "load_rgb",
    "load_rgb_image",
    "sniff_file",
    "sniff_kind",
]

Policy = Literal["default", "fast"]
"""Front-end policy: ``default`` is the pinned reference pipeline, ``fast`` downsizes first."""

MediaKind = Literal["image", "video"]
"""What :func:`sniff_kind` detects."""

DEFAULT_MAX_PIXELS: Final = 80_000_000
"""Largest width x height decoded by default (80 Mpx; see the module docstring)."""

FAST_MAX_SIDE: Final = 512
"""Longer side, in pixels, of images under the ``fast`` policy."""

FAST_RESAMPLE: Final = Image.Resampling.BILINEAR
"""The ``fast`` policy's resize filter: Pillow's antialiased (support-scaled) bilinear."""

SNIFF_BYTES: Final = 4096
"""How many leading bytes :func:`sniff_kind` wants (fewer work for most formats)."""

_AVIF = bool(features.check("avif"))

IMAGE_FORMATS: Final[tuple[str, ...]] = (
    "BMP",
    "GIF",
    "ICO",
    "JPEG",
    "JPEG2000",
    "PNG",
    "QOI",
    "TIFF",
    "WEBP",
    *(("AVIF",) if _AVIF else ()),
)
"""Pillow formats the front end decodes; every other Pillow plugin is never tried.

Multi-picture JPEGs from cameras (MPO) open through the ``JPEG`` entry."""

_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_AUDIO_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_OGG_VIDEO_MARKERS = (b"\x80theora", b"OVP80\x01")


def sniff_kind(head: bytes) -> MediaKind | None:
    """Whether the bytes start an image or a video, judged by magic bytes alone.

    Images: JPEG, PNG, GIF, WebP, BMP, TIFF, ICO/CUR, JPEG 2000, QOI, and AVIF when Pillow
    has its AVIF plugin. Videos: ISO base media (MP4, MOV, M4V, 3GP: an ``ftyp`` box whose
    brands are not HEIF/AVIF images or M4A-style audio, or a leading QuickTime atom),
    Matroska/WebM (EBML), AVI (RIFF ``AVI``), MPEG transport (0x47 sync every 188 bytes, or
    every 192 for M2TS) and program streams, FLV, ASF/WMV, and Ogg carrying Theora or VP8.
    HEIC/HEIF stills are reported as ``None``: Pillow cannot decode them without a plugin,
    so they are unsupported rather than misrouted.

    Args:
        head: The first bytes of the file; :data:`SNIFF_BYTES` is enough for every format.

    Returns:
        ``"image"``, ``"video"``, or ``None`` when the bytes are neither (or too short).
    """
    if not isinstance(head, (bytes, bytearray, memoryview)):
        raise TypeError("head must be bytes")
    head = bytes(head[:SNIFF_BYTES])
    return _sniff_image(head) or _sniff_video(head)


def _sniff_image(head: bytes) -> MediaKind | None:
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")):
        return "image"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "image"
    bmp_header = int.from_bytes(head[14:18], "little")
    if head.startswith(b"BM") and len(head) >= 18 and bmp_header in _BMP_HEADER_SIZES:
        return "image"
    # ICO/CUR: a non-zero image count and the first entry's reserved byte == 0.
    icon = head.startswith((b"\x00\x00\x01\x00", b"\x00\x00\x02\x00")) and len(head) >= 22
    if icon and int.from_bytes(head[4:6], "little") > 0 and head[9] == 0:
        return "image"
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "image"
    if head.startswith(b"qoif") and len(head) >= 14:
        return "image"
    return None


def _ftyp_brands(head: bytes) -> tuple[bytes, frozenset[bytes]]:
    size = int.from_bytes(head[0:4], "big")
    end = min(len(head), size if size >= 16 else 16)
    compatible = {head[i : i + 4] for i in range(16, end - 3, 4)}
    return head[8:12], frozenset(compatible | {head[8:12]})


def _sniff_video(head: bytes) -> MediaKind | None:
    if len(head) >= 12 and head[4:8] == b"ftyp":
        major, brands = _ftyp_brands(head)
        if brands & _AVIF_BRANDS and major not in _HEIF_BRANDS - {b"mif1", b"msf1"}:
            return "image" if _AVIF else None
        if major in _HEIF_BRANDS or major in _AUDIO_BRANDS:
            return None
        return "video"
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        return "video"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, WebM
        return "video"
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"AVIX"):
        return "video"
    if head.startswith((b"FLV\x01", _ASF_GUID, b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return "video"
    # MPEG-TS: sync byte 0x47 at every 188-byte packet start (two or three seen).
    ts_synced = len(head) > 188 and head[0] == 0x47 and head[188] == 0x47
    if ts_synced and (len(head) <= 376 or head[376] == 0x47):
        return "video"
    if len(head) > 196 and head[4] == 0x47 and head[196] == 0x47:  # M2TS: 4-byte prefix
        return "video"
    if head.startswith(b"OggS") and any(m in head for m in _OGG_VIDEO_MARKERS):
        return "video"
    return None


def sniff_file(path: str | os.PathLike[str]) -> MediaKind | None:
    """:func:`sniff_kind` on the first :data:`SNIFF_BYTES` of a file.

    Args:
        path: The file to look at.

    Returns:
        ``"image"``, ``"video"`` or ``None``.

    Raises:
        UnreadableMedia: The path is missing, a directory, or not readable.
    """
    with open_binary(path) as handle:
        try:
            return sniff_kind(handle.read(SNIFF_BYTES))
        except OSError as exc:
            raise unreadable(exc) from None


def load_rgb(
    source: str | os.PathLike[str] | bytes,
    policy: Policy = "default",
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> npt.NDArray[np.uint8]:
    """Decode an image into the RGB array the hashes start from (pipeline pinned above).

    Args:
        source: A path, or the file's bytes.
        policy: ``"default"`` (the reference front end) or ``"fast"`` (downsize first).
        max_pixels: Refuse images whose header declares more than this many pixels.

    Returns:
        A C-contiguous, read-only ``H x W x 3`` ``uint8`` array (copy it to write).

    Raises:
        UnreadableMedia: The path cannot be opened or read.
        CorruptMedia: Empty, zero-size, truncated or undecodable image data.
        UnsupportedMedia: Not an image format the front end decodes.
        MediaTooLarge: Over ``max_pixels`` or Pillow's decompression-bomb limit, or the
            decoded image does not fit in memory.
    """
    image = load_rgb_image(source, policy, max_pixels=max_pixels)
    try:
        return np.asarray(image)
    except MemoryError:
        # Pillow hands numpy a byte copy of the pixels: briefly twice the image in memory.
        raise MediaTooLarge("the image does not fit in memory") from None


def load_rgb_image(
    source: str | os.PathLike[str] | bytes,
    policy: Policy = "default",
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """:func:`load_rgb`, returning the Pillow ``RGB`` image instead of an array.

    For consumers that take Pillow images (the imagehash signals), so they run through the
    same pinned pipeline. Arguments, errors and policy are those of :func:`load_rgb`.

    Returns:
        A loaded, mode ``RGB`` :class:`PIL.Image.Image` whose pixels are in memory (the
        file is closed; animated images cannot seek to later frames).
    """
    if policy not in ("default", "fast"):
        raise InvalidArgument("policy must be 'default' or 'fast'")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise InvalidArgument("max_pixels must be a positive integer")
    with open_source(source) as handle:
        kind = sniff_kind(read_head(handle, SNIFF_BYTES))
        if kind == "video":
            raise UnsupportedMedia("the file is a video, not an image")
        with warnings.catch_warnings(record=True), _pillow_limit(max_pixels):
            warnings.simplefilter("always")
            # Not closed explicitly: the image does not own ``handle`` (closed above), and
            # closing a Pillow image drops its decoded pixels.
            image = _open_image(handle, kind, max_pixels)
            return _decode(image, policy, max_pixels)


@contextlib.contextmanager
def _pillow_limit(max_pixels: int) -> Iterator[None]:
    """Raise Pillow's decompression-bomb limit to ``max_pixels`` while inside, if lower
    (a higher one is left alone: ``max_pixels`` is checked first anyway)."""
    saved = Image.MAX_IMAGE_PIXELS
    if saved is not None and max_pixels > saved:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _too_large(pixels: int | None, max_pixels: int, size: str = "") -> MediaTooLarge:
    found = f"is {size}{pixels} pixels," if pixels is not None else "is"
    return MediaTooLarge(
        f"the image {found} over the limit of {max_pixels} pixels "
        "(raise max_pixels; on the command line --max-pixels N)"
    )


def _open_image(handle: BinaryIO, kind: MediaKind | None, max_pixels: int) -> Image.Image:
    try:
        return Image.open(handle, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        # Pillow's text: "Image size (N pixels) exceeds limit of M pixels, ...".
        found = re.search(r"\((\d+) pixels\)", str(exc))
        # Pillow refuses at twice its limit, which _pillow_limit keeps >= max_pixels.
        raise _too_large(int(found.group(1)) if found else None, max_pixels) from None
    except UnidentifiedImageError:
        if kind == "image":
            raise CorruptMedia("the image header cannot be parsed") from None
        raise UnsupportedMedia("not an image format blindmatch decodes") from None
    except BlindmatchError:
        raise
    # Pillow's parsers raise a zoo of builtins on malformed headers (SyntaxError, struct.error,
    # ValueError, EOFError, OSError, ...); all of them mean the same thing to a caller.
    except Exception:
        raise CorruptMedia("the image header is malformed") from None


def _decode(
    image: Image.Image,
    policy: Policy,
    max_pixels: int,
) -> Image.Image:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise CorruptMedia("the image has zero width or height")
    if width * height > max_pixels:
        raise _too_large(width * height, max_pixels, f"{width} x {height} = ")
    fast = policy == "fast" and max(width, height) > FAST_MAX_SIDE
    if fast:
        # JPEG only (Pillow ignores draft elsewhere): DCT scaling keeps the longer side >= 512.
        image.draft("RGB", _fast_size(width, height, ceil=True))
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        if fast and max(rgb.size) > FAST_MAX_SIDE:
            rgb = rgb.resize(_fast_size(*rgb.size, ceil=False), FAST_RESAMPLE)
        rgb.load()
    except BlindmatchError:
        raise
    except MemoryError:
        raise MediaTooLarge("the image does not fit in memory") from None
    # As in _open_image: truncation is OSError, other damage any builtin the plugin raises.
    except Exception:
        raise CorruptMedia("the image data is truncated or corrupt") from None
    return rgb


def _fast_size(width: int, height: int, *, ceil: bool) -> tuple[int, int]:
    """``(width, height)`` scaled so the longer side is :data:`FAST_MAX_SIDE`."""
    scale = FAST_MAX_SIDE / max(width, height)
    if ceil:
        return math.ceil(width * scale), math.ceil(height * scale)
    return max(1, math.floor(width * scale + 0.5)), max(1, math.floor(height * scale + 0.5))
