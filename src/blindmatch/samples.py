"""Synthetic sample media: photo-like images and short videos, with edited copies.

The demo and the tests need media that (a) looks enough like photographs for PDQ to give
high-quality hashes (smooth gradients, objects with edges, some texture -- not noise, which
PDQ rates well but which no edit leaves recognisable), (b) comes with the edits a platform
sees in practice (re-encoding, resizing, brightness, a slight crop, mirroring, trimming),
each recorded in a manifest so a caller knows which file derives from which, and (c) is
the same bytes for the same seed on the same library versions on any machine, so tests and
demo runs are reproducible (videos: see the theory of operation below).

Nothing here reads a user's files; everything is drawn from ``numpy.random`` seeded by the
caller. Videos need PyAV (the ``video`` extra); images only Pillow.

Theory of operation: deterministic videos
-----------------------------------------
A video's bytes are a function of (the frames, the encoder's build and settings, the
muxer's build). Three things would otherwise leak the machine or the library version into
them, and each is pinned here:

1. **Colour conversion.** Handing RGB frames to the encoder makes PyAV convert them with
   swscale, which picks SIMD special cases by CPU, with coarser rounding than its portable
   C path (see :mod:`blindmatch.fingerprint.video`), and whose arithmetic changes between
   FFmpeg releases. :func:`yuv420p_from_rgb` does the BT.601 conversion in integer numpy
   instead, so the encoder's input is the same on every machine and version.
2. **Version strings.** Without ``+bitexact``, the MP4 muxer writes an ``encoder`` tag
   (``Lavf62.12.102``) and the MPEG-4 Part 2 encoder a ``Lavc...`` user-data string: two
   PyAV wheels built on the same FFmpeg release then differ in exactly those bytes. The
   ``fflags``/``flags`` ``+bitexact`` options drop both, and keep FFmpeg's own encoders on
   their bit-exact DSP routines.
3. **Threads.** x264's decisions depend on its thread count (by default 1.5x the cores),
   so it runs on one thread. x264's assembly is bit-exact with its C code, so the CPU does
   not matter.

What is *not* pinned, and cannot be from here, is the encoder itself: x264 (its SEI names
its core version) or FFmpeg's MPEG-4 encoder may make other decisions in another release.
So the same seed gives the same bytes for a given PyAV build (the one ``requirements/``
locks), on any machine and in any process; the tests check exactly that, in fresh
processes, and check the decoded frames -- not the bytes -- against the input.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from blindmatch.errors import InvalidArgument, UnsupportedMedia

__all__ = [
    "CROP",
    "EDITS",
    "IMAGE_SIZES",
    "SampleFile",
    "SampleKind",
    "SampleManifest",
    "crop_box",
    "make_sample_images",
    "make_sample_videos",
    "make_samples",
    "photo_like",
    "video_codec",
    "write_video",
    "yuv420p_from_rgb",
]

SampleKind = Literal["image", "video"]

IMAGE_SIZES: Final[tuple[tuple[int, int], ...]] = (
    (640, 480),
    (480, 640),
    (800, 600),
    (512, 512),
    (1024, 768),
    (333, 500),
)
"""(width, height) of the original images, cycled."""


EDITS: Final[dict[SampleKind, tuple[str, ...]]] = {
    "image": ("reencoded", "resized", "brightened", "cropped", "mirrored"),
    "video": ("reencoded", "resized", "trimmed"),
}
"""The edited copies made of every original, by kind (a ``mirrored`` image is matched only
by PDQ's dihedral variants; a ``cropped`` image usually not at all, PDQ not being
crop-invariant; a ``trimmed`` video holds the first half of the original)."""

CROP: Final[tuple[float, float, float, float]] = (0.01, 0.01, 0.01, 0.01)
"""What a ``cropped`` copy loses of the original's width or height on each side: (left,
top, right, bottom), each rounded to whole pixels: a slight crop, a border trimmed. PDQ is
not crop-invariant: over 24 generated pictures (seed 5) this crop moves the hash by 6 to
28 bits, within the match distance of 31, while 1.5 % per side already leaves about a
third beyond it and 3-5 % nearly all (docs/accuracy.md measures crops on other pictures)."""

_FORMATS: Final[tuple[tuple[str, str], ...]] = (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"))
_VIDEO_SIZE: Final = (320, 240)
_VIDEO_FPS: Final = 24
_VIDEO_SECONDS: Final = 3
_BITEXACT_MUXER: Final[dict[str, str]] = {"fflags": "+bitexact"}
"""Muxer options: no ``encoder`` tag naming the libavformat version (see the module
docstring)."""
_BITEXACT_CODEC: Final[dict[str, str]] = {"flags": "+bitexact"}
"""Encoder options: no libavcodec version string in the MPEG-4 user data, and FFmpeg's own
encoders restricted to their bit-exact (CPU-independent) DSP routines."""


@dataclass(frozen=True, slots=True)
class SampleFile:
    """One file the generator wrote.

    Attributes:
        path: Where it is.
        kind: ``"image"`` or ``"video"``.
        edit: ``"original"``, or the edit that made it from ``derived_from``.
        derived_from: The original it was made from; None for an original.
    """

    path: Path
    kind: SampleKind
    edit: str
    derived_from: Path | None

    def as_dict(self, root: Path | None = None) -> dict[str, str | None]:
        """JSON-ready form; paths relative to ``root`` when given."""

        def show(p: Path | None) -> str | None:
            if p is None:
                return None
            return (p.relative_to(root) if root is not None else p).as_posix()

        return {
            "path": show(self.path),
            "kind": self.kind,
            "edit": self.edit,
            "derived_from": show(self.derived_from),
        }


@dataclass(frozen=True, slots=True)
class SampleManifest:
    """Everything one generator call wrote, originals first within each group."""

    files: tuple[SampleFile, ...]

    def originals(self) -> tuple[SampleFile, ...]:
        """The files that are not derived from another."""
        return tuple(f for f in self.files if f.derived_from is None)

    def derived(self) -> tuple[SampleFile, ...]:
        """The edited copies."""
        return tuple(f for f in self.files if f.derived_from is not None)

    def paths(self) -> tuple[Path, ...]:
        """Every path, in the order written."""
        return tuple(f.path for f in self.files)

    def __add__(self, other: SampleManifest) -> SampleManifest:
        return SampleManifest(self.files + other.files)


def photo_like(
    rng: np.random.Generator, width: int, height: int, *, shapes: int | None = None
) -> npt.NDArray[np.uint8]:
    """A photograph-like RGB picture: a tilted two-colour gradient, soft low-frequency
    shading, a handful of filled shapes with edges, and fine grain.

    Args:
        rng: The source of randomness (the picture is a function of its state).
        width: Width in pixels (>= 1).
        height: Height in pixels (>= 1).
        shapes: How many shapes to draw; 4 to 8 (drawn from ``rng``) when None.

    Returns:
        An ``height x width x 3`` ``uint8`` array.
    """
    if width < 1 or height < 1:
        raise InvalidArgument("width and height must be >= 1")
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height + 1.0) / 2.0
    start, stop = rng.uniform(20, 235, size=(2, 3)).astype(np.float32)
    picture = start + ramp[..., None] * (stop - start)
    # Soft shading: a coarse random grid, bilinearly enlarged (clouds, vignettes, light).
    coarse = rng.uniform(-40, 40, size=(5, 5)).astype(np.float32)
    shade = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR))
    picture += shade[..., None]
    canvas = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    count = int(rng.integers(4, 9)) if shapes is None else shapes
    for _ in range(count):
        x0, x1 = sorted(rng.uniform(-0.1, 1.1, size=2) * width)
        y0, y1 = sorted(rng.uniform(-0.1, 1.1, size=2) * height)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        box = (x0, y0, max(x1, x0 + 4), max(y1, y0 + 4))
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    canvas = canvas.filter(ImageFilter.GaussianBlur(radius=max(width, height) / 400))
    grain = rng.normal(0, 6, size=(height, width, 1)).astype(np.float32)
    out = np.asarray(canvas, dtype=np.float32) + grain
    result: npt.NDArray[np.uint8] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return result


def _save(image: Image.Image, path: Path, fmt: str) -> None:
    options: dict[str, object] = {}
    if fmt == "JPEG":
        options = {"quality": 90}
    elif fmt == "WEBP":
        options = {"quality": 85, "method": 2}
    elif fmt == "PNG":
        options = {"compress_level": 1}
    image.save(path, format=fmt, **options)


def make_sample_images(directory: str | os.PathLike[str], n: int, seed: int) -> SampleManifest:
    """Write ``n`` photo-like originals and :data:`EDITS` ``["image"]`` copies of each.

    Originals cycle through :data:`IMAGE_SIZES` and JPEG, PNG and WebP. The copies are: the
    original re-encoded as a JPEG of quality 60; resized to 60% (Lanczos); 12% brighter;
    cropped by :data:`CROP` (1 % off each edge);
    mirrored left to right (each saved in the original's format, except the re-encode).

    Args:
        directory: Where to write (created if missing).
        n: Number of originals (>= 0).
        seed: Seed of the generator; the same seed writes the same bytes.

    Returns:
        The manifest of the ``n * (1 + len(EDITS["image"]))`` files written.
    """
    if n < 0:
        raise InvalidArgument("n must be >= 0")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1])
    files: list[SampleFile] = []
    for i in range(n):
        width, height = IMAGE_SIZES[i % len(IMAGE_SIZES)]
        fmt, ext = _FORMATS[i % len(_FORMATS)]
        original = root / f"image-{i:03d}.{ext}"
        picture = Image.fromarray(photo_like(rng, width, height))
        _save(picture, original, fmt)
        files.append(SampleFile(original, "image", "original", None))
        with Image.open(original) as opened:
            decoded = opened.convert("RGB")
        edits: list[tuple[str, Image.Image, str, str]] = [
            ("reencoded", decoded, "JPEG", "jpg"),
            (
                "resized",
                decoded.resize(
                    (max(1, width * 3 // 5), max(1, height * 3 // 5)), Image.Resampling.LANCZOS
                ),
                fmt,
                ext,
            ),
            ("brightened", ImageEnhance.Brightness(decoded).enhance(1.12), fmt, ext),
            ("cropped", decoded.crop(crop_box(width, height)), fmt, ext),
            ("mirrored", ImageOps.mirror(decoded), fmt, ext),
        ]
        for edit, image, edit_fmt, edit_ext in edits:
            path = root / f"image-{i:03d}-{edit}.{edit_ext}"
            if edit == "reencoded":
                image.save(path, format="JPEG", quality=60)
            else:
                _save(image, path, edit_fmt)
            files.append(SampleFile(path, "image", edit, original))
    return SampleManifest(tuple(files))


def crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The ``(left, top, right, bottom)`` box, in Pillow's convention, that a ``cropped``
    copy keeps of a ``width x height`` original (:data:`CROP`; never less than 1 pixel).

    Raises:
        InvalidArgument: width or height is below 1.
    """
    if width < 1 or height < 1:
        raise InvalidArgument("width and height must be >= 1")
    left, top, right, bottom = CROP
    x0, y0 = round(width * left), round(height * top)
    x1, y1 = width - round(width * right), height - round(height * bottom)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def yuv420p_from_rgb(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Convert an RGB picture to BT.601 limited-range Y'CbCr 4:2:0, in exact integer
    arithmetic (the same bytes on every machine; see the module docstring).

    Luma is computed per pixel; chroma from the sum of each 2x2 block's RGB, so the
    subsampling rounds once. Coefficients are the 8-bit BT.601 ones FFmpeg also uses.

    Args:
        rgb: An ``H x W x 3`` ``uint8`` array, H and W even and >= 2.

    Returns:
        PyAV's ``yuv420p`` layout: a ``(H * 3 // 2) x W`` ``uint8`` array holding the Y
        plane, then the Cb and the Cr planes (each ``H/2 x W/2``) row after row.

    Raises:
        InvalidArgument: The array is not ``H x W x 3`` with even, non-zero H and W.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InvalidArgument("frames must be H x W x 3 RGB arrays")
    height, width = rgb.shape[0], rgb.shape[1]
    if height < 2 or width < 2 or height % 2 or width % 2:
        raise InvalidArgument("frame width and height must be even and at least 2")
    c = rgb.astype(np.int32)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    block = c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2]  # 4x the mean
    r4, g4, b4 = block[..., 0], block[..., 1], block[..., 2]
    cb = ((-38 * r4 - 74 * g4 + 112 * b4 + 512) >> 10) + 128
    cr = ((112 * r4 - 94 * g4 - 18 * b4 + 512) >> 10) + 128
    planes = np.concatenate([y.ravel(), cb.ravel(), cr.ravel()]).astype(np.uint8)
    result: npt.NDArray[np.uint8] = planes.reshape(height * 3 // 2, width)
    return result


def video_codec() -> str:
    """The H.264 encoder if the bundled FFmpeg has one, else MPEG-4 Part 2.

    Raises:
        UnsupportedMedia: PyAV is not installed, or has neither encoder.
    """
    av = _import_av()
    available = av.codecs_available
    for name in ("libx264", "mpeg4"):
        if name in available:
            return name
    raise UnsupportedMedia("the bundled FFmpeg has neither an H.264 nor an MPEG-4 encoder")


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[npt.NDArray[np.uint8]],
    fps: int | Fraction,
    *,
    codec: str | None = None,
    options: dict[str, str] | None = None,
    container_format: str | None = None,
) -> None:
    """Encode RGB frames into a video file with PyAV: the same frames and settings give the
    same bytes on any machine for a given PyAV build (see the module docstring).

    Args:
        path: The file to write; the container follows its extension unless
            ``container_format`` is given.
        frames: ``H x W x 3`` ``uint8`` arrays, all the same even size.
        fps: Frame rate (an int, or a Fraction such as 30000/1001).
        codec: Encoder name; :func:`video_codec` when None.
        options: Encoder options (e.g. ``{"crf": "30"}`` for libx264).
        container_format: FFmpeg muxer name (``"mp4"``, ``"avi"``, ...).

    Raises:
        UnsupportedMedia: PyAV is not installed.
        InvalidArgument: A frame is not ``H x W x 3`` with even H and W.
    """
    av = _import_av()
    name = codec or video_codec()
    codec_options = {**(options or {}), **_BITEXACT_CODEC}
    with av.open(
        os.fspath(path), mode="w", format=container_format, container_options=_BITEXACT_MUXER
    ) as container:
        stream = container.add_stream(name, rate=fps)
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1  # x264's output depends on its thread count
        stream.options = codec_options
        first = True
        for array in frames:
            if first:
                stream.height, stream.width = array.shape[0], array.shape[1]
                first = False
            frame = av.VideoFrame.from_ndarray(yuv420p_from_rgb(array), format="yuv420p")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _pan_frames(
    rng: np.random.Generator, size: tuple[int, int], count: int
) -> list[npt.NDArray[np.uint8]]:
    """``count`` frames of a camera panning over a larger photo-like scene, with one
    object moving across it (so every frame differs and each second looks different)."""
    width, height = size
    scene = photo_like(rng, width * 2, height * 2, shapes=40)
    dx, dy = rng.uniform(0.3, 1.0, size=2) * np.array([width, height]) / count
    colour = rng.integers(0, 256, size=3).astype(np.uint8)
    frames: list[npt.NDArray[np.uint8]] = []
    for t in range(count):
        x, y = int(t * dx), int(t * dy)
        frame = scene[y : y + height, x : x + width].copy()
        bx = int((t / max(1, count - 1)) * (width - width // 5))
        frame[height // 3 : height // 3 + height // 5, bx : bx + width // 5] = colour
        frames.append(frame)
    return frames


def make_sample_videos(directory: str | os.PathLike[str], n: int, seed: int) -> SampleManifest:
    """Write ``n`` short MP4s (320x240, 24 fps, 3 s of a panning scene) and
    :data:`EDITS` ``["video"]`` copies of each.

    The copies are: re-encoded with the MPEG-4 Part 2 encoder at a low bitrate; resized to
    160x120; trimmed to the first half. Originals use :func:`video_codec`.

    Args:
        directory: Where to write (created if missing).
        n: Number of originals (>= 0).
        seed: Seed of the generator; the same seed writes the same bytes.

    Returns:
        The manifest of the ``n * (1 + len(EDITS["video"]))`` files written.

    Raises:
        UnsupportedMedia: PyAV is not installed.
    """
    if n < 0:
        raise InvalidArgument("n must be >= 0")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 2])
    codec = video_codec()
    files: list[SampleFile] = []
    count = _VIDEO_FPS * _VIDEO_SECONDS
    for i in range(n):
        frames = _pan_frames(rng, _VIDEO_SIZE, count)
        original = root / f"video-{i:03d}.mp4"
        write_video(original, frames, _VIDEO_FPS, codec=codec, options=_encoder_options(codec))
        files.append(SampleFile(original, "video", "original", None))
        half = (_VIDEO_SIZE[0] // 2, _VIDEO_SIZE[1] // 2)
        small = [
            np.asarray(Image.fromarray(f).resize(half, Image.Resampling.BILINEAR)) for f in frames
        ]
        edits: list[tuple[str, Sequence[npt.NDArray[np.uint8]], str, dict[str, str]]] = [
            ("reencoded", frames, "mpeg4", {"b": "150000"}),
            ("resized", small, codec, _encoder_options(codec)),
            ("trimmed", frames[: count // 2], codec, _encoder_options(codec)),
        ]
        for edit, edit_frames, edit_codec, options in edits:
            path = root / f"video-{i:03d}-{edit}.mp4"
            write_video(path, edit_frames, _VIDEO_FPS, codec=edit_codec, options=options)
            files.append(SampleFile(path, "video", edit, original))
    return SampleManifest(tuple(files))


def make_samples(
    directory: str | os.PathLike[str], images: int, videos: int, seed: int
) -> SampleManifest:
    """:func:`make_sample_images` then :func:`make_sample_videos` into one directory.

    Args:
        directory: Where to write (created if missing).
        images: Number of original images.
        videos: Number of original videos (0 needs no PyAV).
        seed: Seed of the generator.

    Returns:
        Both manifests, images first.
    """
    manifest = make_sample_images(directory, images, seed)
    if videos:
        manifest = manifest + make_sample_videos(directory, videos, seed)
    return manifest


def _encoder_options(codec: str) -> dict[str, str]:
    if codec == "libx264":
        return {"crf": "20", "preset": "veryfast"}
    return {"qscale": "3"}


def _import_av() -> ModuleType:
    try:
        import av
    except ImportError:
        raise UnsupportedMedia(
            "sample videos need PyAV: install blindmatch with the 'video' extra"
        ) from None
    return av
