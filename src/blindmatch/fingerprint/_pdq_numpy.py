"""Pure-numpy PDQ downsampling: luma, the Jarosz filter and the 64x64 decimation, with the
reference's float32 operations in the reference's order (see :mod:`.pdq`).

The fallback where the C extension was not built; bit-identical to :mod:`._pdq_c`, and about
as fast as the reference core. The reference's running sum along a row,
``s += x[enter]; s -= x[leave]``, is the prefix sum of the interleaved sequence
``x[0..w-1], +x[w], -x[0], +x[w+1], -x[1], ...`` (``a - b == a + (-b)`` in IEEE), and
:func:`numpy.add.accumulate` along the last axis is strictly sequential, so row passes
accumulate that sequence for all rows at once. Column passes step down the rows, adding
whole rows (one vector op per step across every column), because numpy accumulates along
a non-last axis column by column, which is many times slower.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

__all__ = ["NAME", "dct16", "luma_from_rgb", "samples_from_luma", "samples_from_rgb"]

F32 = npt.NDArray[np.float32]

NAME = "numpy"
"""The backend's name, as :func:`blindmatch.fingerprint.pdq.pdq_backend` reports it."""
Indices = npt.NDArray[np.intp]


_MIN_STEP_LANES = 128
"""Below this many columns, a column pass accumulates along the rows of the transpose."""


@lru_cache(maxsize=256)
def _plan(length: int, window: int) -> tuple[Indices, F32]:
    """Where the running sum is read, and by what it is divided, for one 1-D box filter.

    With ``h = (w + 2) // 2``, output ``o`` is prefix sum number ``positions[o]`` of the
    interleaved sequence divided by ``counts[o]``, the number of samples then inside the
    window: outputs ``0..w-h`` follow the adds of ``x[h-1..w-1]``, the middle outputs
    follow each subtraction, and the last ``h-1`` follow the trailing subtractions.
    """
    half = (window + 2) // 2
    full = length - window
    head = np.arange(half - 1, window)
    middle = window + 2 * np.arange(full) + 1
    tail = window + 2 * full + np.arange(half - 1)
    positions = np.concatenate([head, middle, tail]).astype(np.intp)
    counts = np.concatenate(
        [head + 1, np.full(full, window), window - 1 - np.arange(half - 1)]
    ).astype(np.float32)
    return positions, counts


def _box_rows(x: F32, window: int, keep: Indices | None = None) -> F32:
    """The reference box filter along axis 1 of ``x``; only output columns ``keep`` if given."""
    lanes, length = x.shape
    half = (window + 2) // 2
    full = length - window
    seq = np.empty((lanes, window + 2 * full + half - 1), dtype=np.float32)
    seq[:, :window] = x[:, :window]
    seq[:, window : window + 2 * full : 2] = x[:, window:]
    np.negative(x[:, :full], out=seq[:, window + 1 : window + 2 * full : 2])
    np.negative(x[:, full : full + half - 1], out=seq[:, window + 2 * full :])
    np.add.accumulate(seq, axis=1, out=seq)
    positions, counts = _plan(length, window)
    if keep is not None:
        # np.take, not seq[:, idx]: fancy indexing on axis 1 returns a column-major array.
        picked: F32 = np.take(seq, positions[keep], axis=1)
        picked /= counts[keep]
        return picked
    # All outputs: the head, every other sum of the middle, the tail (plain slices).
    out = np.empty((lanes, length), dtype=np.float32)
    head = window - half + 1
    out[:, :head] = seq[:, half - 1 : window]
    out[:, head : head + full] = seq[:, window + 1 : window + 2 * full : 2]
    out[:, head + full :] = seq[:, window + 2 * full :]
    out /= counts
    return out


def _box_cols(x: F32, window: int) -> F32:
    """The reference box filter along axis 0 of ``x``, stepping one row at a time.

    A step costs a fixed ~1 us of call overhead, so narrow images (few lanes per step) are
    filtered as the rows of their transpose instead.
    """
    length = x.shape[0]
    if x.shape[1] < _MIN_STEP_LANES:
        return np.ascontiguousarray(_box_rows(np.ascontiguousarray(x.T), window).T)
    half = (window + 2) // 2
    # sums[o] is the running sum at output o; divided by the counts once at the end. The
    # rows are listed once up front: indexing a 2-D array per step costs more than the add.
    sums = np.empty_like(x)
    rows, outs = list(x), list(sums)
    add, subtract = np.add, np.subtract
    running = np.zeros(x.shape[1], dtype=np.float32)
    for enter in range(half - 1):
        running += rows[enter]
    out = 0
    for enter in range(half - 1, window):
        running = add(running, rows[enter], out=outs[out])
        out += 1
    for leave in range(length - window):
        add(running, rows[leave + window], out=outs[out])
        running = subtract(outs[out], rows[leave], out=outs[out])
        out += 1
    for leave in range(length - window, length - window + half - 1):
        running = subtract(running, rows[leave], out=outs[out])
        out += 1
    sums /= _plan(length, window)[1][:, None]
    return sums


def luma_from_rgb(rgb: npt.NDArray[np.uint8]) -> F32:
    """Luma as the ``pdqhash`` binding computes it: in double, rounded once to float32."""
    acc = np.multiply(rgb[:, :, 0], 0.299, dtype=np.float64)
    tmp = np.multiply(rgb[:, :, 1], 0.587, dtype=np.float64)
    acc += tmp
    np.multiply(rgb[:, :, 2], 0.114, out=tmp, dtype=np.float64)
    acc += tmp
    return acc.astype(np.float32)


def samples_from_luma(
    luma: F32, windows: tuple[int, int], indices: tuple[Indices, Indices], passes: int
) -> F32:
    """``passes`` Jarosz passes and 64x64 decimation of an (H, W) float32 luma plane.

    ``windows`` is (along rows, along columns); ``indices`` the sampled (rows, columns).
    The last row pass keeps only the sampled columns, and the last column pass runs on
    those alone.
    """
    row_window, col_window = windows
    row_idx, col_idx = indices
    buf = np.ascontiguousarray(luma, dtype=np.float32)
    for _ in range(passes - 1):
        buf = _box_cols(_box_rows(buf, row_window), col_window)
    narrow = _box_rows(buf, row_window, keep=col_idx)
    # The 64 sampled columns: filter them as rows of the transposed (64, H) array.
    sampled = _box_rows(np.ascontiguousarray(narrow.T), col_window, keep=row_idx)
    return np.ascontiguousarray(sampled.T)


def samples_from_rgb(
    rgb: npt.NDArray[np.uint8],
    windows: tuple[int, int],
    indices: tuple[Indices, Indices],
    passes: int,
) -> F32:
    """Luma, Jarosz filter and 64x64 decimation of an (H, W, 3|4) uint8 image."""
    return samples_from_luma(luma_from_rgb(rgb), windows, indices, passes)


def dct16(samples: F32, matrix: F32) -> F32:
    """``(D @ A) @ D.T`` for the 16x64 ``matrix`` D, each dot product summed from 0.0 in
    order k = 0..63 in float32 (a BLAS matmul sums in another order).

    All products first, each rounded to float32 as in the reference, laid out k-major so
    that each of the 64 sequential steps adds one contiguous block.
    """
    products = matrix.T[:, :, None] * samples[:, None, :]  # [k, i, j] = D[i][k] * A[k][j]
    t = np.zeros((matrix.shape[0], samples.shape[1]), dtype=np.float32)
    for block in products:
        t += block
    products = matrix.T[:, None, :] * t.T[:, :, None]  # [k, i, j] = T[i][k] * D[j][k]
    result = np.zeros((matrix.shape[0], matrix.shape[0]), dtype=np.float32)
    for block in products:
        result += block
    return result
