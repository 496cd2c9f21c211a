"""The PDQ core against the reference: the vector images bit for bit, and a differential
check against the reference C++ core (``pdqhash``) on generated images of every shape class
that exercises a different branch (window sizes, odd sides, extreme aspect ratios, flat and
few-valued images whose DCT coefficients tie at the median)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pdqhash
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from blindmatch.errors import InvalidEncoding
from blindmatch.fingerprint import _pdq_c, _pdq_cext, _pdq_numpy, pdq
from blindmatch.fingerprint.pdq import (
    DIHEDRAL_NAMES,
    MIN_HASHABLE_SIDE,
    pdq_backend,
    pdq_dihedral_from_rgb,
    pdq_from_luma,
    pdq_from_rgb,
    pdq_from_rgb_many,
)
from blindmatch.fingerprint.types import PdqFingerprint, PdqHash
from low_memory import run_limited

VECTORS = Path(__file__).parent / "vectors" / "pdq"
RGB = npt.NDArray[np.uint8]
ZERO_HASH = PdqHash(bytes(32))


# ---------------------------------------------------------------- the reference oracle


def _ref_hash(bits: Any) -> PdqHash:
    # The binding returns the bits reversed: element 255 - k is bit k, so element 0 is
    # bit 255, the most significant bit of the big-endian byte form.
    return PdqHash(np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes())


def _reference(rgb: RGB) -> tuple[PdqFingerprint, tuple[PdqFingerprint, ...]]:
    """The reference core's (hash, quality) and its 8 dihedral hashes on ``rgb``."""
    bits, quality = pdqhash.compute(rgb)
    variants, dquality = pdqhash.compute_dihedral(rgb)
    assert dquality == quality
    single = PdqFingerprint(_ref_hash(bits), int(quality))
    return single, tuple(PdqFingerprint(_ref_hash(v), int(quality)) for v in variants)


def _assert_matches_reference(rgb: RGB) -> None:
    single, dihedral = _reference(np.ascontiguousarray(rgb[:, :, :3]))
    assert pdq_from_rgb(rgb) == single
    ours = pdq_dihedral_from_rgb(rgb)
    assert len(ours) == len(DIHEDRAL_NAMES)
    for name, got, want in zip(DIHEDRAL_NAMES, ours, dihedral, strict=True):
        assert got == want, name


# ---------------------------------------------------------------- vector images


def _vectors() -> list[dict[str, Any]]:
    data = json.loads((VECTORS / "reference.json").read_text(encoding="utf-8"))
    vectors: list[dict[str, Any]] = data["vectors"]
    return vectors


def _decode(path: Path) -> RGB:
    """The pinned front end the reference values were made with (see the vectors README)."""
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image)
        return np.asarray(upright.convert("RGB"))


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["file"])
def test_vector_images(vector: dict[str, Any]) -> None:
    rgb = _decode(VECTORS / "images" / vector["file"])
    assert rgb.shape == (vector["height"], vector["width"], 3)
    fingerprint = pdq_from_rgb(rgb)
    assert fingerprint.hash == PdqHash.from_hex(vector["pdq"])
    assert fingerprint.hash.hex() == vector["pdq"]
    assert fingerprint.quality == vector["quality"]
    variants = pdq_dihedral_from_rgb(rgb)
    assert [v.hash.hex() for v in variants] == vector["pdq_dihedral"]
    assert {v.quality for v in variants} == {vector["quality"]}


def test_dihedral_vectors_are_the_transformed_images() -> None:
    # The reference data holds the bridge photo in all 8 orientations: variant n of the
    # original is close to the hash of the image transformed by DIHEDRAL_NAMES[n].
    names = [
        "1-original",
        "2-rotate-90",
        "3-rotate-180",
        "4-rotate-270",
        "5-flipx",
        "6-flipy",
        "7-flip-plus-1",
        "8-flip-minus-1",
    ]
    original = pdq_dihedral_from_rgb(_decode(VECTORS / "images" / "dih-bridge-1-original.jpg"))
    for variant, name in zip(original, names, strict=True):
        transformed = pdq_from_rgb(_decode(VECTORS / "images" / f"dih-bridge-{name}.jpg"))
        assert variant.hash.distance(transformed.hash) <= 31, name
        others = [o for o in original if o is not variant]
        assert min(o.hash.distance(transformed.hash) for o in others) > 31, name


# ---------------------------------------------------------------- generated images


def _gradient(rows: int, cols: int, rng: np.random.Generator) -> RGB:
    """Smooth, natural-looking content: a few random low-frequency waves per channel."""
    y = np.linspace(0.0, 1.0, rows)[:, None]
    x = np.linspace(0.0, 1.0, cols)[None, :]
    channels = []
    for _ in range(3):
        fy, fx, phase = rng.uniform(0.3, 6.0), rng.uniform(0.3, 6.0), rng.uniform(0, 6.3)
        wave = np.sin(fy * y * 3.1 + fx * x * 2.3 + phase) + 0.5 * np.cos(fx * y * 5.0 - phase)
        channels.append(np.broadcast_to(127.5 + 80.0 * wave, (rows, cols)))
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def _noise(rows: int, cols: int, rng: np.random.Generator) -> RGB:
    return rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8)


def _flat(rows: int, cols: int, rng: np.random.Generator) -> RGB:
    return np.full((rows, cols, 3), rng.integers(0, 256, 3), dtype=np.uint8)


def _few_values(rows: int, cols: int, rng: np.random.Generator) -> RGB:
    """Two or three grey levels in blocks: many exactly equal DCT coefficients."""
    levels = rng.choice([0, 17, 128, 255], size=int(rng.integers(2, 4)), replace=False)
    block = int(rng.integers(1, 9))
    grid = rng.integers(0, len(levels), (rows // block + 1, cols // block + 1))
    values = levels[np.kron(grid, np.ones((block, block), dtype=np.int64))[:rows, :cols]]
    return np.repeat(values[:, :, None], 3, axis=2).astype(np.uint8)


def _stripes(rows: int, cols: int, rng: np.random.Generator) -> RGB:
    """A checkerboard or stripes: symmetric content whose coefficients tie exactly."""
    period = int(rng.integers(1, 5))
    i = np.arange(rows)[:, None] // period
    j = np.arange(cols)[None, :] // period
    pattern = (i + j) % 2 if rng.integers(0, 2) else np.broadcast_to(j % 2, (rows, cols))
    return np.repeat((pattern * 255)[:, :, None], 3, axis=2).astype(np.uint8)


KINDS: dict[str, Callable[[int, int, np.random.Generator], RGB]] = {
    "gradient": _gradient,
    "noise": _noise,
    "flat": _flat,
    "few-values": _few_values,
    "stripes": _stripes,
}

NAMED_SHAPES = [
    (5, 5),
    (5, 6),
    (6, 5),
    (7, 7),
    (63, 65),
    (64, 64),
    (127, 127),
    (128, 128),
    (129, 129),
    (255, 257),
    (511, 511),
    (512, 512),
    (513, 513),
    (511, 513),
    (768, 1024),
    (1004, 1600),
    (5, 2000),
    (2000, 5),
    (7, 1999),
    (1999, 7),
    (2000, 2000),
]


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("shape", NAMED_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_named_shapes_match_reference(shape: tuple[int, int], kind: str) -> None:
    rows, cols = shape
    rgb = KINDS[kind](rows, cols, np.random.default_rng(rows * 7919 + cols))
    _assert_matches_reference(rgb)


def test_flat_image_has_quality_0() -> None:
    # The running sums are not exact, so a flat image's DCT is float noise, not zeros: its
    # hash is whatever the reference's rounding gives, and the quality says not to trust it.
    rgb = _flat(100, 80, np.random.default_rng(1))
    assert pdq_from_rgb(rgb).quality == 0
    _assert_matches_reference(rgb)


def test_every_side_from_5_to_2000() -> None:
    # Every side length gives its own window size and sample positions; pair each long
    # side with a short one (cycling 5..12) so the whole sweep stays fast. The images are
    # crops of two big ones (smooth and noisy), made once.
    rng = np.random.default_rng(2000)
    smooth, noisy = _gradient(2000, 2000, rng), _noise(2000, 2000, rng)
    for side in range(MIN_HASHABLE_SIDE, 2001):
        short = 5 + side % 8
        source = smooth if side % 2 else noisy
        for rgb in (source[:side, :short], source[:short, :side]):
            bits, quality = pdqhash.compute(np.ascontiguousarray(rgb))
            assert pdq_from_rgb(rgb) == PdqFingerprint(_ref_hash(bits), int(quality)), rgb.shape


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(MIN_HASHABLE_SIDE, 300),
    cols=st.integers(MIN_HASHABLE_SIDE, 300),
    kind=st.sampled_from(sorted(KINDS)),
    seed=st.integers(0, 2**32 - 1),
)
def test_generated_images_match_reference(rows: int, cols: int, kind: str, seed: int) -> None:
    _assert_matches_reference(KINDS[kind](rows, cols, np.random.default_rng(seed)))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(MIN_HASHABLE_SIDE, 80),
    cols=st.integers(MIN_HASHABLE_SIDE, 80),
    data=st.data(),
)
def test_arbitrary_pixels_match_reference(rows: int, cols: int, data: st.DataObject) -> None:
    # Pixels drawn by hypothesis itself (so it can shrink them), from a small palette.
    palette = data.draw(st.lists(st.integers(0, 255), min_size=1, max_size=4))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rgb = np.asarray(palette, dtype=np.uint8)[rng.integers(0, len(palette), (rows, cols, 3))]
    _assert_matches_reference(rgb)


@pytest.mark.parametrize(
    "shape", [(0, 0), (0, 7), (1, 1), (4, 4), (4, 100), (100, 4), (4, 5), (5, 4)], ids=str
)
@pytest.mark.parametrize("channels", [3, 4])
def test_sides_below_5_give_zero_hash(shape: tuple[int, int], channels: int) -> None:
    rgb = np.random.default_rng(5).integers(0, 256, (*shape, channels), dtype=np.uint8)
    assert pdq_from_rgb(rgb) == PdqFingerprint(ZERO_HASH, 0)
    assert pdq_dihedral_from_rgb(rgb) == (PdqFingerprint(ZERO_HASH, 0),) * 8
    if 0 not in shape:
        single, dihedral = _reference(np.ascontiguousarray(rgb[:, :, :3]))
        assert single == PdqFingerprint(ZERO_HASH, 0)
        assert dihedral == (single,) * 8


# ---------------------------------------------------------------- both backends


BACKENDS: list[Any] = [_pdq_numpy, _pdq_c]
"""Every backend, slowest first. The C extension is built by every install with a C compiler
(``make`` installs gcc), so the suite requires it: a silent fallback would hide a broken build."""


def test_backend_in_use_is_the_fastest_available() -> None:
    assert pdq_backend() == BACKENDS[-1].NAME == "c"


def test_numpy_backend_is_used_without_the_extension() -> None:
    # A real interpreter in which the compiled extension cannot be imported, as on a
    # machine without a compiler at install: PDQ still works, on numpy, with the same bits.
    rgb = KINDS["gradient"](40, 50, np.random.default_rng(7))
    code = (
        "import sys, numpy as np\n"
        "sys.modules['blindmatch.fingerprint._pdq_cext'] = None\n"  # import raises ImportError
        "from blindmatch.fingerprint.pdq import pdq_backend, pdq_from_rgb\n"
        "rgb = np.frombuffer(sys.stdin.buffer.read(), np.uint8).reshape(40, 50, 3)\n"
        "print(pdq_backend(), pdq_from_rgb(rgb).hash.hex())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=rgb.tobytes(), capture_output=True, check=True
    )
    assert done.stdout.decode().split() == ["numpy", pdq_from_rgb(rgb).hash.hex()]


IDX5: npt.NDArray[np.intp] = np.array([(2 * i + 1) * 5 // 128 for i in range(64)], dtype=np.intp)
IDX6: npt.NDArray[np.intp] = np.where(np.arange(64) == 63, 5, IDX5).astype(np.intp)


@pytest.mark.parametrize(
    "call",
    [
        # A buffer shorter than the shape says: refused before the core reads it.
        lambda out: _pdq_cext.samples_from_rgb(bytes(10), 5, 5, 3, 1, 1, IDX5, IDX5, 2, out),
        # Windows wider than the side they run along, or zero.
        lambda out: _pdq_cext.samples_from_rgb(bytes(75), 5, 5, 3, 6, 1, IDX5, IDX5, 2, out),
        lambda out: _pdq_cext.samples_from_rgb(bytes(75), 5, 5, 3, 0, 1, IDX5, IDX5, 2, out),
        # A sampled index outside the image.
        lambda out: _pdq_cext.samples_from_rgb(bytes(75), 5, 5, 3, 1, 1, IDX5, IDX6, 2, out),
        lambda out: _pdq_cext.samples_from_rgb(bytes(100), 5, 5, 4, 1, 1, IDX5, IDX5, 0, out),
        lambda out: _pdq_cext.samples_from_luma(bytes(99), 5, 5, 1, 1, IDX5, IDX5, 2, out),
        lambda out: _pdq_cext.dct16(out, bytes(16), np.empty(256, np.float32)),
        lambda out: _pdq_cext.samples_from_rgb(bytes(75), 5, 5, 3, 1, 1, IDX5, IDX5, 2, out[1:]),
    ],
    ids=["short", "wide-window", "zero-window", "index", "passes", "luma", "dct", "out"],
)
def test_c_extension_checks_sizes(call: Callable[[npt.NDArray[np.float32]], None]) -> None:
    out = np.zeros(4096, np.float32)
    with pytest.raises(ValueError, match=r"size|range|window"):
        call(out)
    assert not out.any()


def _assert_backend_matches_reference(backend: Any, rgb: RGB) -> None:
    single, dihedral = _reference(np.ascontiguousarray(rgb[:, :, :3]))
    assert pdq._rgb_fingerprints(rgb, backend, dihedral=False) == (single,)
    assert pdq._rgb_fingerprints(rgb, backend, dihedral=True) == dihedral
    luma = _pdq_numpy.luma_from_rgb(rgb)
    assert pdq._luma_fingerprints(luma, backend, dihedral=True) == dihedral


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.NAME)
@pytest.mark.parametrize(
    "shape", [(5, 5), (64, 64), (129, 127), (300, 7), (768, 1024)], ids=lambda s: f"{s[0]}x{s[1]}"
)
@pytest.mark.parametrize("kind", ["gradient", "few-values"])
def test_each_backend_matches_reference(backend: Any, shape: tuple[int, int], kind: str) -> None:
    rgb = KINDS[kind](*shape, np.random.default_rng(shape[0] + 31 * shape[1]))
    _assert_backend_matches_reference(backend, rgb)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(MIN_HASHABLE_SIDE, 200),
    cols=st.integers(MIN_HASHABLE_SIDE, 200),
    kind=st.sampled_from(sorted(KINDS)),
    seed=st.integers(0, 2**32 - 1),
)
def test_backends_give_identical_samples(rows: int, cols: int, kind: str, seed: int) -> None:
    # Stronger than equal hashes: the 64x64 filtered samples are equal bit for bit.
    rgb = KINDS[kind](rows, cols, np.random.default_rng(seed))
    windows, indices = pdq._geometry(rgb.shape)
    luma = _pdq_numpy.luma_from_rgb(rgb)
    want = _pdq_numpy.samples_from_luma(luma, windows, indices, 2)
    for backend in BACKENDS:
        got = backend.samples_from_rgb(rgb, windows, indices, 2)
        assert got.dtype == np.float32
        assert got.shape == (64, 64)
        assert got.tobytes() == want.tobytes(), backend.NAME
        assert backend.samples_from_luma(luma, windows, indices, 2).tobytes() == want.tobytes()


# ---------------------------------------------------------------- other entry points


def test_alpha_is_ignored() -> None:
    rng = np.random.default_rng(4)
    rgb = _gradient(90, 120, rng)
    alpha = rng.integers(0, 256, (90, 120, 1), dtype=np.uint8)
    rgba = np.concatenate([rgb, alpha], axis=2)
    assert pdq_from_rgb(rgba) == pdq_from_rgb(rgb)
    assert pdq_dihedral_from_rgb(rgba) == pdq_dihedral_from_rgb(rgb)
    _assert_matches_reference(rgba)


def test_non_contiguous_views_hash_as_their_copies() -> None:
    big = _gradient(400, 300, np.random.default_rng(6))
    for view in (big[::2, ::3], big[::-1], big.transpose(1, 0, 2), big[10:200, 7:-7, ::-1]):
        assert pdq_from_rgb(view) == pdq_from_rgb(np.ascontiguousarray(view))
        _assert_matches_reference(view)


def test_luma_entry_point_matches_rgb() -> None:
    rgb = _gradient(150, 170, np.random.default_rng(7)).astype(np.float64)
    # The binding's luma: evaluated in double, rounded once to float32.
    luma = (rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114).astype(np.float32)
    assert pdq_from_luma(luma) == pdq_from_rgb(rgb.astype(np.uint8))
    assert pdq_from_luma(np.zeros((4, 9), dtype=np.float32)) == PdqFingerprint(ZERO_HASH, 0)


def test_many_matches_one_by_one() -> None:
    rng = np.random.default_rng(8)
    images = [_gradient(r, c, rng) for r, c in [(64, 64), (3, 9), (200, 120), (768, 1024)]]
    assert pdq_from_rgb_many(images) == [pdq_from_rgb(image) for image in images]
    assert pdq_from_rgb_many([]) == []


def test_dihedral_names() -> None:
    assert DIHEDRAL_NAMES == (
        "original",
        "rot90",
        "rot180",
        "rot270",
        "flipX",
        "flipY",
        "flipPlus1",
        "flipMinus1",
    )


def test_hash_bit_numbering() -> None:
    # Bit k is DCT row k // 16, column k % 16, and the hex text is the big-endian integer.
    rgb = _gradient(100, 100, np.random.default_rng(9))
    fingerprint = pdq_from_rgb(rgb)
    bits, _ = pdqhash.compute(rgb)
    for k in range(256):
        assert fingerprint.hash.bit(k) == int(bits[255 - k])
    assert int(fingerprint.hash.hex(), 16) == sum(fingerprint.hash.bit(k) << k for k in range(256))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10, 3), dtype=np.float32),
        np.zeros((10, 10, 3), dtype=np.uint16),
        np.zeros((10, 10, 3), dtype=np.int8),
        np.zeros((10, 10, 3), dtype=np.int64),
        np.zeros((10, 10, 3), dtype=bool),
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10,), dtype=np.uint8),
        np.zeros((10, 10, 1), dtype=np.uint8),
        np.zeros((10, 10, 2), dtype=np.uint8),
        np.zeros((10, 10, 5), dtype=np.uint8),
        np.zeros((2, 10, 10, 3), dtype=np.uint8),
        [[[0, 0, 0]] * 10] * 10,
        b"\x00" * 300,
        None,
    ],
    ids=[
        "float32",
        "uint16",
        "int8",
        "int64",
        "bool",
        "grey-2d",
        "1d",
        "1-channel",
        "2-channels",
        "5-channels",
        "4d",
        "list",
        "bytes",
        "none",
    ],
)
def test_bad_rgb_input_is_rejected(bad: Any) -> None:
    with pytest.raises(InvalidEncoding):
        pdq_from_rgb(bad)
    with pytest.raises(InvalidEncoding):
        pdq_dihedral_from_rgb(bad)
    with pytest.raises(InvalidEncoding):
        pdq_from_rgb_many([np.zeros((8, 8, 3), dtype=np.uint8), bad])


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), dtype=np.float64),
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10, 10, 1), dtype=np.float32),
        np.zeros((10,), dtype=np.float32),
        [[0.0] * 10] * 10,
    ],
    ids=["float64", "uint8", "3d", "1d", "list"],
)
def test_bad_luma_input_is_rejected(bad: Any) -> None:
    with pytest.raises(InvalidEncoding):
        pdq_from_luma(bad)


# ---------------------------------------------------------------- memory


_LOW_MEMORY_SCRIPT = """
import numpy as np
from blindmatch.errors import BlindmatchError
from blindmatch.fingerprint.pdq import pdq_dihedral_from_rgb, pdq_from_luma, pdq_from_rgb

pdq_from_rgb(np.full((64, 64, 3), 9, np.uint8))  # load the backend before the limit
rgb = np.full((3000, 3000, 3), 9, np.uint8)  # 27 MB; the PDQ filter needs ~4 x 36 MB more
luma = np.full((3000, 3000), 9.0, np.float32)
limit_to(40 * 2**20)
out = {}
for name, call in [
    ("rgb", lambda: pdq_from_rgb(rgb)),
    ("dihedral", lambda: pdq_dihedral_from_rgb(rgb)),
    ("luma", lambda: pdq_from_luma(luma)),
]:
    try:
        call()
        out[name] = "hashed"
    except BlindmatchError as exc:
        out[name] = type(exc).__name__
report(out)
"""


def test_out_of_memory_is_media_too_large() -> None:
    # An image whose filter buffers do not fit (an address-space limit set in a child
    # process) is MediaTooLarge, not numpy's raw MemoryError escaping to the caller.
    assert run_limited(_LOW_MEMORY_SCRIPT) == {
        "rgb": "MediaTooLarge",
        "dihedral": "MediaTooLarge",
        "luma": "MediaTooLarge",
    }
