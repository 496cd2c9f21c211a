"""The pinned front end: reference parity, Pillow modes, fast policy, bad input, sniffing."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from blindmatch.errors import (
    CorruptMedia,
    FingerprintError,
    MediaTooLarge,
    UnreadableMedia,
    UnsupportedMedia,
)
from blindmatch.fingerprint.frontend import (
    DEFAULT_MAX_PIXELS,
    FAST_MAX_SIDE,
    IMAGE_FORMATS,
    SNIFF_BYTES,
    load_rgb,
    load_rgb_image,
    sniff_file,
    sniff_kind,
)
from blindmatch.fingerprint.pdq import pdq_from_rgb
from blindmatch.fingerprint.types import PdqHash
from low_memory import run_limited

VECTORS = Path(__file__).parent / "vectors"
IMAGES = VECTORS / "pdq" / "images"
RGB = npt.NDArray[np.uint8]


def _vectors() -> list[dict[str, Any]]:
    data = json.loads((VECTORS / "pdq" / "reference.json").read_text(encoding="utf-8"))
    vectors: list[dict[str, Any]] = data["vectors"]
    return vectors


def _photo(width: int, height: int, seed: int = 1) -> Image.Image:
    """A deterministic photo-like RGB image: smooth colour fields plus hard-edged shapes."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(4, width // 2)), y0 + int(rng.integers(4, height // 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    return image


def _encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width x height`` RGB pixels, with a token IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


# --- reference parity -------------------------------------------------------------------


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["file"])
def test_default_policy_reproduces_reference_hashes(vector: dict[str, Any]) -> None:
    path = IMAGES / vector["file"]
    rgb = load_rgb(path)
    assert rgb.dtype == np.uint8
    assert rgb.ndim == 3
    assert rgb.shape[2] == 3
    fingerprint = pdq_from_rgb(rgb)
    assert fingerprint.hash == PdqHash.from_hex(vector["pdq"])
    assert fingerprint.quality == vector["quality"]
    # The same bytes in memory decode to the same array.
    assert np.array_equal(load_rgb(path.read_bytes()), rgb)


def test_exif_orientation_is_applied() -> None:
    upright = load_rgb(IMAGES / "exif-rotn-1.jpg")
    rotated = load_rgb(IMAGES / "exif-rotn-6.jpg")
    assert upright.shape == (3024, 4032, 3)
    assert rotated.shape == (4032, 3024, 3)  # orientation 6: stored landscape, shown portrait


def test_generated_exif_orientation_rotates_pixels() -> None:
    stored = _photo(48, 32)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    data = _encode(stored, "PNG", exif=exif)
    got = load_rgb(data)
    expected = np.asarray(stored.transpose(Image.Transpose.ROTATE_270))
    assert np.array_equal(got, expected)


def test_result_is_read_only_and_contiguous() -> None:
    rgb = load_rgb(_encode(_photo(20, 10), "PNG"))
    assert rgb.flags.c_contiguous
    assert not rgb.flags.writeable


# --- every Pillow mode ------------------------------------------------------------------

BASE = _photo(64, 48, seed=3)
GREY = BASE.convert("L")


def _mode_image(mode: str) -> Image.Image:
    if mode == "PA":
        return BASE.convert("P").convert("PA")
    if mode in ("I", "F"):
        return GREY.convert(mode)
    if mode == "I;16":
        # Full 16-bit range: convert("RGB") clamps above 255 (pinned by the reference).
        values = np.asarray(GREY, dtype=np.uint16) * 257
        return Image.fromarray(values)
    if mode == "RGBA":
        rgba = BASE.convert("RGBA")
        rgba.putalpha(GREY)  # non-trivial alpha, so no encoder drops the channel
        return rgba
    return BASE.convert(mode)


MODES: list[tuple[str, str]] = [
    ("1", "PNG"),
    ("L", "PNG"),
    ("LA", "PNG"),
    ("P", "PNG"),
    ("P", "GIF"),
    ("PA", "TIFF"),
    ("RGBA", "PNG"),
    ("RGBA", "WEBP"),
    ("CMYK", "JPEG"),
    ("CMYK", "TIFF"),
    ("YCbCr", "TIFF"),
    ("LAB", "TIFF"),
    ("I;16", "PNG"),
    ("I;16", "TIFF"),
    ("I", "TIFF"),
    ("F", "TIFF"),
    ("RGB", "BMP"),
    ("RGB", "TIFF"),
]


@pytest.mark.parametrize(("mode", "fmt"), MODES, ids=[f"{m}-{f}" for m, f in MODES])
def test_every_mode_converts_to_rgb(mode: str, fmt: str) -> None:
    source = _mode_image(mode)
    data = _encode(source, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    with Image.open(io.BytesIO(data)) as reopened:
        assert reopened.mode == mode
        expected = np.asarray(reopened.convert("RGB"))
    got = load_rgb(data)
    assert got.shape == (48, 64, 3)
    assert got.dtype == np.uint8
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "I", "F"])
def test_grey_modes_replicate_grey(mode: str) -> None:
    got = load_rgb(_encode(_mode_image(mode), "TIFF" if mode in ("I", "F") else "PNG"))
    assert np.array_equal(got[..., 0], got[..., 1])
    assert np.array_equal(got[..., 0], got[..., 2])
    if mode == "1":
        assert set(np.unique(got).tolist()) <= {0, 255}
    else:
        assert np.array_equal(got[..., 0], np.asarray(GREY))


def test_grey_hash_equals_hash_of_its_rgb_copy() -> None:
    grey = load_rgb(_encode(GREY, "PNG"))
    rgb_copy = load_rgb(_encode(GREY.convert("RGB"), "PNG"))
    assert pdq_from_rgb(grey) == pdq_from_rgb(rgb_copy)


def test_alpha_is_dropped_not_composited() -> None:
    rgba = BASE.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: the colour channels must survive untouched
    got = load_rgb(_encode(rgba, "PNG"))
    assert np.array_equal(got, np.asarray(BASE))
    assert pdq_from_rgb(got) == pdq_from_rgb(np.asarray(BASE))


def test_palette_is_looked_up() -> None:
    palette = BASE.convert("P")
    got = load_rgb(_encode(palette, "PNG"))
    assert np.array_equal(got, np.asarray(palette.convert("RGB")))


def test_palette_transparency_warning_does_not_escape() -> None:
    # convert("RGB") of a palette image with byte transparency warns in Pillow; pytest runs
    # with warnings as errors, so this passes only if the front end keeps the warning in.
    palette = BASE.convert("P")
    data = _encode(palette, "PNG", transparency=bytes([0, 128] + [255] * 254))
    with Image.open(io.BytesIO(data)) as check:
        assert isinstance(check.info["transparency"], bytes)
    got = load_rgb(data)
    assert np.array_equal(got, np.asarray(palette.convert("RGB")))


def test_sixteen_bit_is_clamped_as_the_reference_does() -> None:
    values = np.array([[0, 100, 255, 256, 65535]], dtype=np.uint16)
    got = load_rgb(_encode(Image.fromarray(values), "PNG"))
    assert got[0, :, 0].tolist() == [0, 100, 255, 255, 255]


def test_animated_gif_hashes_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    with Image.open(io.BytesIO(data)) as check:
        assert getattr(check, "n_frames", 1) == 2
    got = load_rgb(data)
    assert got.shape == (16, 16, 3)
    assert got[0, 0].tolist() == [255, 0, 0]


def test_animated_webp_hashes_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((0, 255, 0), (0, 0, 255))]
    data = _encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=100
    )
    got = load_rgb(data)
    assert got[0, 0].tolist() == [0, 255, 0]


def test_multi_picture_jpeg_hashes_first_picture() -> None:
    # Cameras write MPO (JPEG + Multi-Picture Format); Pillow opens it through "JPEG".
    first, second = Image.new("RGB", (32, 24), (200, 10, 10)), Image.new("RGB", (32, 24))
    data = _encode(first, "MPO", save_all=True, append_images=[second])
    with Image.open(io.BytesIO(data)) as check:
        assert check.format == "MPO"
    got = load_rgb(data)
    assert got.shape == (24, 32, 3)
    assert abs(int(got[0, 0, 0]) - 200) <= 4  # JPEG-lossy red, not the black second picture


# --- fast policy ------------------------------------------------------------------------


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["file"])
def test_fast_policy_bounds_size_and_stays_close(vector: dict[str, Any]) -> None:
    path = IMAGES / vector["file"]
    default, fast = load_rgb(path), load_rgb(path, "fast")
    if max(default.shape[:2]) <= FAST_MAX_SIDE:
        assert np.array_equal(fast, default)
    else:
        assert max(fast.shape[:2]) == FAST_MAX_SIDE
        # Aspect ratio kept to within a pixel of rounding.
        ratio = default.shape[0] / default.shape[1]
        assert abs(fast.shape[0] - fast.shape[1] * ratio) <= 1.0
    distance = pdq_from_rgb(fast).hash.distance(pdq_from_rgb(default).hash)
    assert distance <= 16  # measured max over the vectors is 12; the match bound is 31


def test_fast_policy_mean_deviation_on_generated_jpegs() -> None:
    distances = []
    for seed in range(4):
        data = _encode(_photo(1024, 768, seed=seed), "JPEG", quality=90)
        fast = load_rgb(data, "fast")
        assert fast.shape == (384, 512, 3)
        distances.append(pdq_from_rgb(fast).hash.distance(pdq_from_rgb(load_rgb(data)).hash))
    assert sum(distances) / len(distances) <= 8


def test_fast_policy_resizes_non_jpeg() -> None:
    got = load_rgb(_encode(_photo(1000, 200), "PNG"), "fast")
    assert got.shape == (102, 512, 3)


# --- bad input --------------------------------------------------------------------------


def test_missing_path_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableMedia, match="No such file"):
        load_rgb(tmp_path / "nope.jpg")


def test_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableMedia):
        load_rgb(tmp_path)
    with pytest.raises(UnreadableMedia):
        sniff_file(tmp_path)


def test_empty_file_is_corrupt(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(CorruptMedia, match="empty"):
        load_rgb(empty)
    with pytest.raises(CorruptMedia):
        load_rgb(b"")


@pytest.mark.parametrize(
    ("name", "cut"),
    [
        ("aaa-orig.jpg", 0.5),
        ("aaa-orig.jpg", 0.02),
        ("labelme-q0122.jpg", 0.9),
        ("mode-L.png", 0.5),
        ("mode-L.png", 0.001),
        ("pen-and-coaster.png", 0.95),
    ],
    ids=lambda x: str(x),
)
def test_truncated_files_are_corrupt(tmp_path: Path, name: str, cut: float) -> None:
    data = (IMAGES / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: max(20, int(len(data) * cut))])
    with pytest.raises(CorruptMedia):
        load_rgb(path)
    with pytest.raises(CorruptMedia):
        load_rgb(path, "fast")


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4,
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
        b"GIF89a" + b"\xff" * 32,
        _png_header_only(40, 30),
    ],
    ids=["jpeg-garbage", "png-garbage", "gif-garbage", "png-token-idat"],
)
def test_corrupt_bytes_are_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptMedia):
        load_rgb(data)


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (0, 0)], ids=str)
def test_zero_size_image_is_corrupt(width: int, height: int) -> None:
    with pytest.raises(CorruptMedia):
        load_rgb(_png_header_only(width, height))


def test_header_bomb_is_too_large() -> None:
    # 10^10 px: Pillow refuses it in Image.open, before our own check sees the header; the
    # message still gives the size, the limit and the option that raises it.
    with pytest.raises(MediaTooLarge) as caught:
        load_rgb(_png_header_only(100_000, 100_000))
    assert str(caught.value) == (
        f"the image is 10000000000 pixels, over the limit of {DEFAULT_MAX_PIXELS} pixels "
        "(raise max_pixels; on the command line --max-pixels N)"
    )


def test_pillow_warning_band_is_too_large() -> None:
    # 108 Mpx: above Pillow's warning limit, below its error limit, and above ours.
    with pytest.raises(MediaTooLarge, match=r"12000 x 9000 = 108000000 pixels, over the limit"):
        load_rgb(_png_header_only(12_000, 9_000))


def test_own_pixel_bound_is_applied_before_decoding() -> None:
    # 9000 x 8000 = 72 Mpx passes Pillow's limit; a token IDAT would be corrupt if decoded.
    assert DEFAULT_MAX_PIXELS >= 9_000 * 8_000
    with pytest.raises(MediaTooLarge) as caught:
        load_rgb(_encode(_photo(40, 30), "PNG"), max_pixels=1000)
    assert str(caught.value) == (
        "the image is 40 x 30 = 1200 pixels, over the limit of 1000 pixels "
        "(raise max_pixels; on the command line --max-pixels N)"
    )
    with pytest.raises(MediaTooLarge):
        load_rgb(_png_header_only(9_000, 8_000), max_pixels=50_000_000)


def test_max_pixels_above_pillows_limit_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow warns above its limit and refuses above twice it; a caller's larger max_pixels
    # wins for the call, and Pillow's setting is left as it was.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    png = _encode(_photo(40, 30), "PNG")  # 1200 px: Pillow alone would refuse it
    assert load_rgb(png, max_pixels=1200).shape == (30, 40, 3)
    assert Image.MAX_IMAGE_PIXELS == 500
    with pytest.raises(MediaTooLarge, match="1200 pixels, over the limit of 1199 pixels"):
        load_rgb(png, max_pixels=1199)
    # Pillow's refusal (over twice the limit) says the same, with the caller's bound.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(MediaTooLarge, match="is 1200 pixels, over the limit of 500 pixels"):
        load_rgb(png, max_pixels=500)
    assert Image.MAX_IMAGE_PIXELS == 100


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is plain text and not an image at all\n" * 3,
        bytes(range(256)),
        b"%PDF-1.7\n" + b"\x00" * 64,
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 32,
    ],
    ids=["text", "binary", "pdf", "eps", "heic"],
)
def test_unsupported_bytes(data: bytes) -> None:
    with pytest.raises(UnsupportedMedia):
        load_rgb(data)


def test_video_is_not_an_image() -> None:
    with pytest.raises(UnsupportedMedia, match="video"):
        load_rgb(VECTORS / "vpdq" / "pattern-sd-grey-bar.mp4")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"policy": "slow"}, ValueError),
        ({"max_pixels": 0}, ValueError),
        ({"max_pixels": True}, ValueError),
        ({"max_pixels": 1.5}, ValueError),
    ],
    ids=["policy", "zero-pixels", "bool-pixels", "float-pixels"],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        load_rgb(IMAGES / "wee.jpg", **kwargs)


def test_bad_source_type() -> None:
    with pytest.raises(TypeError):
        load_rgb(12345)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sniff_kind("GIF89a")  # type: ignore[arg-type]


def test_errors_never_carry_file_bytes() -> None:
    secret = b"\xff\xd8\xff\xe0SECRET-PAYLOAD-BYTES"
    with pytest.raises(FingerprintError) as info:
        load_rgb(secret)
    assert "SECRET" not in str(info.value)


def test_load_rgb_image_is_rgb_and_detached(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(_encode(BASE.convert("P"), "PNG"))
    image = load_rgb_image(path)
    path.unlink()
    assert image.mode == "RGB"
    assert np.array_equal(np.asarray(image), np.asarray(BASE.convert("P").convert("RGB")))


# --- sniffing ---------------------------------------------------------------------------

SNIFF_CASES: list[tuple[str, bytes, str | None]] = [
    ("jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF", "image"),
    ("png", b"\x89PNG\r\n\x1a\n\x00\x00", "image"),
    ("gif87", b"GIF87a\x01\x00", "image"),
    ("webp", b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image"),
    ("tiff-le", b"II*\x00\x08\x00\x00\x00", "image"),
    ("tiff-be", b"MM\x00*\x00\x00\x00\x08", "image"),
    ("bigtiff", b"II+\x00\x08\x00\x00\x00", "image"),
    ("jp2", b"\x00\x00\x00\x0cjP  \r\n\x87\n\x00", "image"),
    ("j2k", b"\xff\x4f\xff\x51\x00\x2f", "image"),
    ("mp4", b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "video"),
    ("mov", b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "video"),
    ("3gp", b"\x00\x00\x00\x14ftyp3gp4\x00\x00\x00\x003gp4", "video"),
    ("quicktime-moov", b"\x00\x00\x01\x00moov\x00\x00\x00\x6cmvhd", "video"),
    ("m4a", b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A mp42isom", None),
    ("heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", None),
    ("webm", b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", "video"),
    ("avi", b"RIFF\x00\x10\x00\x00AVI LIST", "video"),
    ("wav", b"RIFF\x00\x10\x00\x00WAVEfmt ", None),
    ("flv", b"FLV\x01\x05\x00\x00\x00\x09", "video"),
    ("mpeg-ps", b"\x00\x00\x01\xba\x44\x00\x04\x00", "video"),
    ("mpeg-ts", (b"\x47" + b"\x00" * 187) * 3, "video"),
    ("m2ts", (b"\x00\x00\x00\x00\x47" + b"\x00" * 187) * 3, "video"),
    ("asf", bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c") + b"\x00" * 8, "video"),
    ("ogg-theora", b"OggS\x00\x02" + b"\x00" * 22 + b"\x80theora\x03\x02", "video"),
    ("ogg-vorbis", b"OggS\x00\x02" + b"\x00" * 22 + b"\x01vorbis\x00\x00", None),
    ("empty", b"", None),
    ("short", b"\xff\xd8", None),
    ("text", b"just some words", None),
    ("bm-text", b"BM is also how this sentence starts, but it is text", None),
    ("pdf", b"%PDF-1.4\n", None),
]


@pytest.mark.parametrize(
    ("head", "kind"), [(h, k) for _, h, k in SNIFF_CASES], ids=[n for n, _, _ in SNIFF_CASES]
)
def test_sniff_kind_table(head: bytes, kind: str | None) -> None:
    assert sniff_kind(head) == kind


ENCODERS: dict[str, Callable[[], bytes]] = {
    "jpeg": lambda: _encode(BASE, "JPEG"),
    "png": lambda: _encode(BASE, "PNG"),
    "gif": lambda: _encode(BASE.convert("P"), "GIF"),
    "webp": lambda: _encode(BASE, "WEBP"),
    "bmp": lambda: _encode(BASE, "BMP"),
    "tiff": lambda: _encode(BASE, "TIFF"),
    "ico": lambda: _encode(BASE, "ICO"),
    "jpeg2000": lambda: _encode(BASE, "JPEG2000"),
    "qoi": lambda: _encode(BASE, "QOI"),
    # AVIF when this Pillow build has libavif (the manylinux wheels do).
    **({"avif": lambda: _encode(BASE, "AVIF")} if "AVIF" in IMAGE_FORMATS else {}),
}


@pytest.mark.parametrize("fmt", sorted(ENCODERS))
def test_every_sniffed_image_format_decodes(fmt: str) -> None:
    data = ENCODERS[fmt]()
    assert sniff_kind(data[:SNIFF_BYTES]) == "image"
    rgb = load_rgb(data)
    assert rgb.shape[2] == 3
    assert rgb.dtype == np.uint8


@pytest.mark.parametrize("path", sorted((VECTORS / "vpdq").glob("*.mp4")), ids=lambda p: p.name)
def test_sniff_reference_videos(path: Path) -> None:
    assert sniff_file(path) == "video"


def test_sniff_reference_images() -> None:
    kinds = {sniff_file(path) for path in IMAGES.iterdir()}
    assert kinds == {"image"}


# --- robustness -------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_sniff_kind_never_raises(head: bytes) -> None:
    assert sniff_kind(head) in (None, "image", "video")


SMALL = _photo(24, 16, seed=9)
FUZZ_SEEDS: dict[str, bytes] = {
    "jpeg": _encode(SMALL, "JPEG"),
    "png": _encode(SMALL, "PNG"),
    "gif": _encode(SMALL.convert("P"), "GIF"),
    "webp": _encode(SMALL, "WEBP"),
    "tiff": _encode(SMALL, "TIFF"),
    "bmp": _encode(SMALL, "BMP"),
}


@pytest.mark.parametrize("fmt", sorted(FUZZ_SEEDS))
def test_damaged_files_raise_only_typed_errors(fmt: str) -> None:
    seed = FUZZ_SEEDS[fmt]

    # Derandomized: the same damaged files every run; a small pixel bound keeps a damaged
    # header from making the decoder allocate much.
    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(
        st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), max_size=6),
        st.integers(1, len(seed)),
    )
    def damaged(edits: list[tuple[int, int]], keep: int) -> None:
        data = bytearray(seed[:keep])
        for position, value in edits:
            if position < len(data):
                data[position] = value
        try:
            rgb = load_rgb(bytes(data), max_pixels=1_000_000)
        except FingerprintError:
            return
        assert rgb.dtype == np.uint8
        assert rgb.ndim == 3

    damaged()


_LOW_MEMORY_SCRIPT = """
import io
import numpy as np
from PIL import Image
from blindmatch.errors import BlindmatchError
from blindmatch.fingerprint.frontend import load_rgb

def png(side):
    buffer = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), 9, np.uint8)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()

data = png(3000)
# Warm up on a small image: every plugin imported before the limit, and no large freed
# block left in the allocator for the limited decodes to reuse.
load_rgb(png(64))
size = address_space()
out = []
for margin in range(0, 101, 5):  # MB above what the process holds: each step of the decode
    resource.setrlimit(resource.RLIMIT_AS, (size + margin * 2**20, _HARD))
    try:
        shape = load_rgb(data).shape
        out.append("decoded" if shape == (3000, 3000, 3) else "wrong shape")
    except BlindmatchError as exc:
        out.append(type(exc).__name__)
    except MemoryError as exc:
        out.append("raw " + type(exc).__name__)
    finally:
        lift()
report(out)
"""


def test_out_of_memory_is_media_too_large() -> None:
    # Under an address-space limit (in a child process) raised step by step, every stage
    # of decoding that runs out of memory -- Pillow's decode, its copy into the array --
    # says MediaTooLarge; none lets a raw MemoryError out. The last, roomy step decodes.
    outcomes = run_limited(_LOW_MEMORY_SCRIPT)
    assert set(outcomes) <= {"MediaTooLarge", "decoded"}, outcomes
    assert outcomes[0] == "MediaTooLarge"
    assert outcomes[-1] == "decoded"
