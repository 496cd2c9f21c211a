"""The PDQ core: an RGB array to a 256-bit PDQ hash and its quality, bit-identical to the
reference C++ core (facebook/ThreatExchange ``pdq/cpp``, bound on PyPI as ``pdqhash``).

Theory of operation
-------------------
PDQ is defined by its reference implementation, and float32 rounding decides the last
bits: a mathematically equal formulation (a cumulative-sum box filter, a BLAS matrix
product, a float32 luma) moves a few hashes by a bit or two. So every step below does the
reference's float operations in the reference's order, vectorised *across* independent
lanes (rows, columns, DCT coefficients) but never reassociated *within* one sum:

1. Luma ``0.299 R + 0.587 G + 0.114 B``, evaluated in double and rounded once to float32,
   as the ``pdqhash`` binding does before it calls the C++ core (the vectors in
   ``tests/vectors/pdq`` were made that way). The C++ library's own float32 luma differs
   in about 1 image in 100 by a bit; :func:`pdq_from_luma` takes any luma plane as given.
2. Two Jarosz passes, each a 1-D box filter along rows then along columns. The reference
   box filter is a running float32 sum: add the sample entering the window, subtract the
   one leaving it, divide by the number of samples inside the image; a cumulative-sum
   formulation is not bit-exact. The sums are sequential along a row but independent
   across rows, which is what both backends vectorise.
3. Only 64x64 samples of the filtered image are used, so the last column pass runs on the
   64 sampled columns only, and the last row pass divides out only their outputs.
4. Quality from the 64x64 samples; a 16x64 by 64x64 then 16x64 by 64x16 float32 DCT whose
   dot products are summed in order ``k = 0..63``; the lower median of the 256
   coefficients (the reference's Torben median, ``sorted(B)[127]``) is the threshold.
5. The 8 dihedral variants come from sign flips and a transpose of the 16x16 DCT block.

Steps 1-3 (and the DCT) run in a backend: :mod:`._pdq_c` (a C extension of the project,
several times faster than the reference core) when it was built at install, else
:mod:`._pdq_numpy` (about as fast as the reference). Both are tested bit for bit against
``pdqhash``. (The numba backend this replaced was no faster than the C one, measured side
by side from 1024x768 to 12 megapixels, while numba and llvmlite weigh about 200 MB and
their import and cache load cost about a second per process.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Protocol

import numpy as np
import numpy.typing as npt

from blindmatch.errors import InvalidEncoding, MediaTooLarge
from blindmatch.fingerprint.types import PdqFingerprint, PdqHash

__all__ = [
    "DIHEDRAL_NAMES",
    "MIN_HASHABLE_SIDE",
    "pdq_backend",
    "pdq_dihedral_from_rgb",
    "pdq_from_luma",
    "pdq_from_rgb",
    "pdq_from_rgb_many",
]

F32 = npt.NDArray[np.float32]

DIHEDRAL_NAMES: tuple[str, ...] = (
    "original",
    "rot90",
    "rot180",
    "rot270",
    "flipX",
    "flipY",
    "flipPlus1",
    "flipMinus1",
)
"""Names of the 8 dihedral variants, in the reference order."""

MIN_HASHABLE_SIDE = 5
"""Images with a side shorter than this hash to all zeros with quality 0 (as the reference)."""

_SAMPLES = 64
_NUM_PASSES = 2
_ZERO = PdqFingerprint(PdqHash(bytes(32)), 0)


def _dct_matrix() -> F32:
    """The 16x64 DCT-II rows 1..16, rounded to float32 as the reference builds them.

    ``math.cos`` is the C library's cosine, as ``std::cos``; numpy's vectorised cosine may
    differ from it in the last bit of the double.
    """
    scale = float(np.float32(math.sqrt(2.0 / 64.0)))
    step = math.pi / 2.0 / 64.0
    # float * double is evaluated in double, then stored into a float.
    rows = [[scale * math.cos(step * (i + 1) * (2 * j + 1)) for j in range(64)] for i in range(16)]
    return np.array(rows, dtype=np.float64).astype(np.float32)


_DCT = _dct_matrix()


def _window(side: int) -> int:
    """Jarosz box width along a side of ``side`` pixels (reference: ceil(side / 128))."""
    return (side + 2 * _SAMPLES - 1) // (2 * _SAMPLES)


@lru_cache(maxsize=1024)
def _sample_indices(side: int) -> npt.NDArray[np.intp]:
    """The 64 positions the decimation reads: ``int((i + 0.5) * side / 64)`` in double."""
    indices = np.array([int(((i + 0.5) * side) / _SAMPLES) for i in range(_SAMPLES)], dtype=np.intp)
    indices.flags.writeable = False
    return indices


def _geometry(
    shape: tuple[int, ...],
) -> tuple[tuple[int, int], tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """Box widths (along rows, along columns) and sampled (rows, columns) of an image."""
    rows, cols = shape[0], shape[1]
    return (_window(cols), _window(rows)), (_sample_indices(rows), _sample_indices(cols))


class _Backend(Protocol):
    """A downsampling backend module (:mod:`._pdq_c`, :mod:`._pdq_numpy`): both give the
    same bits, the reference's."""

    NAME: str

    def samples_from_rgb(
        self,
        rgb: npt.NDArray[np.uint8],
        windows: tuple[int, int],
        indices: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
        passes: int,
    ) -> F32: ...

    def samples_from_luma(
        self,
        luma: F32,
        windows: tuple[int, int],
        indices: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
        passes: int,
    ) -> F32: ...

    def dct16(self, samples: F32, matrix: F32) -> F32: ...


@lru_cache(maxsize=1)
def _backend() -> _Backend:
    """The C backend if its extension was built at install, else the pure-numpy one.

    Loaded on first use; the C extension loads in about a millisecond.
    """
    try:
        from blindmatch.fingerprint import _pdq_c as compiled
    except ImportError:
        # The extension was not built (no C compiler when the package was installed).
        from blindmatch.fingerprint import _pdq_numpy as fallback

        return fallback
    return compiled


def pdq_backend() -> str:
    """Which downsampling backend this process uses: ``"c"`` or ``"numpy"``.

    Both give the reference's bits. The C extension (built at install where a C compiler
    is present) is several times faster than the reference C++ core; the pure-numpy
    fallback is about as fast as it.
    """
    return _backend().NAME


def _quality(a: F32) -> int:
    """The reference's gradient-based quality (0..100) of the 64x64 samples."""
    hundred, full_scale = np.float32(100.0), np.float32(255.0)
    total = 0
    for diff in (a[:-1, :] - a[1:, :], a[:, :-1] - a[:, 1:]):
        steps = (diff * hundred) / full_scale
        total += int(np.abs(np.trunc(steps).astype(np.int64)).sum())
    return min(100, total // 90)


def _hashes_of(blocks: F32) -> list[PdqHash]:
    """Threshold each 16x16 block of ``blocks`` (n, 16, 16) at its lower median.

    Bit ``k = 16 i + j`` is set iff ``B[i][j]`` exceeds the median; the byte form is the
    big-endian integer ``sum(bit_k << k)``, so bit 255 comes first.
    """
    flat = blocks.reshape(len(blocks), 256)
    medians = np.partition(flat, 127, axis=1)[:, 127:128]
    packed = np.packbits(flat[:, ::-1] > medians, axis=1)
    return [PdqHash(row.tobytes()) for row in packed]


def _dihedral_blocks(b: F32) -> F32:
    """The 8 dihedral variants (8, 16, 16) of a 16x16 DCT block, in DIHEDRAL_NAMES order."""
    odd = np.arange(16) % 2 == 1
    sign_i = np.where(odd, 1, -1).astype(np.float32)[:, None]  # +1 on odd rows
    sign_j = np.where(odd, 1, -1).astype(np.float32)[None, :]  # +1 on odd columns
    checker = np.where(odd[:, None] ^ odd[None, :], -1, 1).astype(np.float32)
    return np.stack(
        [
            b,
            (b * sign_j).T,
            b * checker,
            (b * sign_i).T,
            b * sign_i,
            b * sign_j,
            b.T,
            (b * checker).T,
        ]
    )


def _check_rgb(rgb: object) -> npt.NDArray[np.uint8]:
    if not isinstance(rgb, np.ndarray):
        raise InvalidEncoding("PDQ input must be a numpy array")
    if rgb.dtype != np.uint8:
        raise InvalidEncoding("PDQ input must have dtype uint8")
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise InvalidEncoding("PDQ input must have shape (height, width, 3) or (height, width, 4)")
    return rgb


def _fingerprints(samples: F32, backend: _Backend, *, dihedral: bool) -> tuple[PdqFingerprint, ...]:
    """PDQ from the 64x64 samples: the original alone, or all 8 dihedral variants."""
    block, quality = backend.dct16(samples, _DCT), _quality(samples)
    blocks = _dihedral_blocks(block) if dihedral else block[None]
    return tuple(PdqFingerprint(h, quality) for h in _hashes_of(blocks))


def _rgb_fingerprints(
    rgb: npt.NDArray[np.uint8], backend: _Backend, *, dihedral: bool
) -> tuple[PdqFingerprint, ...]:
    """PDQ of a validated RGB(A) image with both sides >= 5."""
    windows, indices = _geometry(rgb.shape)
    try:
        samples = backend.samples_from_rgb(rgb, windows, indices, _NUM_PASSES)
    except MemoryError:
        # The filter needs ~4 float32 planes of the image; a caller hashing many files
        # gets a per-file error instead of numpy's raw MemoryError.
        raise MediaTooLarge("the image's PDQ filter buffers do not fit in memory") from None
    return _fingerprints(samples, backend, dihedral=dihedral)


def _luma_fingerprints(
    luma: F32, backend: _Backend, *, dihedral: bool
) -> tuple[PdqFingerprint, ...]:
    """PDQ of a validated luma plane with both sides >= 5."""
    windows, indices = _geometry(luma.shape)
    try:
        samples = backend.samples_from_luma(luma, windows, indices, _NUM_PASSES)
    except MemoryError:
        raise MediaTooLarge("the image's PDQ filter buffers do not fit in memory") from None
    return _fingerprints(samples, backend, dihedral=dihedral)


def _too_small(shape: tuple[int, ...]) -> bool:
    return shape[0] < MIN_HASHABLE_SIDE or shape[1] < MIN_HASHABLE_SIDE


def pdq_from_luma(luma: npt.NDArray[np.float32]) -> PdqFingerprint:
    """PDQ of a float32 luma plane (the reference's ``pdqHash256FromFloatLuma``).

    Args:
        luma: A ``(height, width)`` float32 array, luma in 0..255.

    Returns:
        The hash and its quality; all zeros with quality 0 if a side is < 5 pixels.

    Raises:
        InvalidEncoding: ``luma`` is not a 2-D float32 array.
        MediaTooLarge: The filter's working buffers do not fit in memory.
    """
    if not isinstance(luma, np.ndarray) or luma.dtype != np.float32 or luma.ndim != 2:
        raise InvalidEncoding("PDQ luma must be a 2-D float32 array")
    if _too_small(luma.shape):
        return _ZERO
    return _luma_fingerprints(luma, _backend(), dihedral=False)[0]


def pdq_from_rgb(rgb: npt.NDArray[np.uint8]) -> PdqFingerprint:
    """PDQ of an RGB image, bit-identical to the reference core on the same array.

    Args:
        rgb: A ``(height, width, 3)`` uint8 array; a 4th (alpha) channel is ignored.

    Returns:
        The hash and its quality (0..100; below 50 is not trusted for matching). Images
        with a side shorter than 5 pixels give the all-zero hash with quality 0.

    Raises:
        InvalidEncoding: ``rgb`` is not a uint8 array of shape (H, W, 3) or (H, W, 4).
        MediaTooLarge: The filter's working buffers do not fit in memory.
    """
    rgb = _check_rgb(rgb)
    if _too_small(rgb.shape):
        return _ZERO
    return _rgb_fingerprints(rgb, _backend(), dihedral=False)[0]


def pdq_from_rgb_many(images: Iterable[npt.NDArray[np.uint8]]) -> list[PdqFingerprint]:
    """:func:`pdq_from_rgb` of each image, in order.

    Args:
        images: RGB(A) uint8 arrays, each as :func:`pdq_from_rgb` accepts.

    Returns:
        One fingerprint per image.

    Raises:
        InvalidEncoding: An image is not a uint8 (H, W, 3|4) array.
        MediaTooLarge: An image's filter buffers do not fit in memory.
    """
    return [pdq_from_rgb(image) for image in images]


def pdq_dihedral_from_rgb(rgb: npt.NDArray[np.uint8]) -> tuple[PdqFingerprint, ...]:
    """The 8 dihedral PDQ variants of an RGB image, from one DCT (the reference's
    ``pdqDihedralHash256esFromFloatLuma``).

    Args:
        rgb: A ``(height, width, 3)`` uint8 array; a 4th (alpha) channel is ignored.

    Returns:
        8 fingerprints in :data:`DIHEDRAL_NAMES` order (original, rot90, rot180, rot270,
        flipX, flipY, flipPlus1, flipMinus1), all with the image's quality. Variant ``n``
        equals the PDQ of the image transformed by ``DIHEDRAL_NAMES[n]`` up to rounding.

    Raises:
        InvalidEncoding: ``rgb`` is not a uint8 array of shape (H, W, 3) or (H, W, 4).
        MediaTooLarge: The filter's working buffers do not fit in memory.
    """
    rgb = _check_rgb(rgb)
    if _too_small(rgb.shape):
        return (_ZERO,) * len(DIHEDRAL_NAMES)
    return _rgb_fingerprints(rgb, _backend(), dihedral=True)
