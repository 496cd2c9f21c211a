"""Compiled (numba) PDQ downsampling: the same float operations as :mod:`._pdq_numpy`, in the
same order, several times faster than the reference C++ core.

Why it is fast without reordering a single float operation: the reference's running sums are
sequential *along* a row or column but independent *across* rows or columns, so a pass is
written as many independent sums advanced one step at a time, a loop over contiguous lanes
that the compiler turns into SIMD adds. The image is kept transposed (W x H): a row pass
(along W) then runs down axis 0 with one lane per image row, straight from memory; a column
pass (along H) copies strips of ``LANES`` rows into a small transposed buffer first. Luma
is computed from the RGB bytes strip by strip and stored transposed. The last row pass
divides out only the 64 sampled columns, and the last column pass runs on those only.

Compiled without ``fastmath``, so LLVM neither reassociates nor contracts ``a * b + c``
into a fused multiply-add: every result rounds exactly as the reference's. Compiled code is
cached on disk (``cache=True``): only the first run on a machine pays the compile time
(seconds); later processes pay numba's import and the cache load (about a second).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit  # type: ignore[import-not-found,unused-ignore]  # optional dependency

__all__ = ["NAME", "dct16", "samples_from_luma", "samples_from_rgb"]

F32 = npt.NDArray[np.float32]

NAME = "numba"
"""The backend's name, as :func:`blindmatch.fingerprint.pdq.pdq_backend` reports it."""

LANES = 8
"""Rows per strip of a column pass: one 256-bit vector of float32 (4 and 16 measured slower)."""

_Func = TypeVar("_Func", bound=Callable[..., Any])


def _jit(func: _Func) -> _Func:
    """Compile with IEEE semantics (no fastmath, so no FMA contraction), cached on disk."""
    return cast(_Func, njit(cache=True, nogil=True, error_model="numpy")(func))


@_jit
def _box_lanes(src: F32, dst: F32, window: int, need: npt.NDArray[np.bool_]) -> None:
    """The reference box filter along axis 0 of ``src``, once per column (lane).

    ``dst[o]`` is written only where ``need[o]``; the running sums still pass every row.
    """
    length, lanes = src.shape
    half = (window + 2) // 2
    s = np.zeros(lanes, np.float32)
    enter = 0
    leave = 0
    out = 0
    count = 0
    # Phase 1: fill the left half of the first window, no output.
    for _ in range(half - 1):
        for n in range(lanes):
            s[n] += src[enter, n]
        enter += 1
        count += 1
    # Phase 2: the window grows to its full width, one output per new sample.
    for _ in range(window - half + 1):
        for n in range(lanes):
            s[n] += src[enter, n]
        enter += 1
        count += 1
        if need[out]:
            c = np.float32(count)
            for n in range(lanes):
                dst[out, n] = s[n] / c
        out += 1
    # Phase 3: full window, add the entering sample then subtract the leaving one.
    c = np.float32(count)
    for _ in range(length - window):
        for n in range(lanes):
            s[n] += src[enter, n]
            s[n] -= src[leave, n]
        enter += 1
        leave += 1
        if need[out]:
            for n in range(lanes):
                dst[out, n] = s[n] / c
        out += 1
    # Phase 4: the window shrinks at the far edge.
    for _ in range(half - 1):
        for n in range(lanes):
            s[n] -= src[leave, n]
        leave += 1
        count -= 1
        if need[out]:
            c = np.float32(count)
            for n in range(lanes):
                dst[out, n] = s[n] / c
        out += 1


_RED = np.arange(256, dtype=np.float64) * 0.299
_GREEN = np.arange(256, dtype=np.float64) * 0.587
_BLUE = np.arange(256, dtype=np.float64) * 0.114
"""``value * coefficient`` in double for every byte value: the products the binding computes,
looked up instead of converted and multiplied (twice as fast, the same doubles)."""


@_jit
def _luma_transposed(rgb: npt.NDArray[np.uint8], out: F32) -> None:
    """``out[c, r]`` = luma of pixel (r, c), evaluated in double as the binding does:
    ``(0.299 R + 0.587 G) + 0.114 B`` rounded once to float32.

    Computed a strip of ``LANES`` rows at a time into a small buffer, then stored transposed.
    """
    rows, cols = rgb.shape[0], rgb.shape[1]
    line = np.empty((LANES, cols), np.float32)
    red, green, blue = _RED, _GREEN, _BLUE
    for first in range(0, rows, LANES):
        count = min(LANES, rows - first)
        for r in range(count):
            for c in range(cols):
                pixel = rgb[first + r, c]
                line[r, c] = np.float32((red[pixel[0]] + green[pixel[1]]) + blue[pixel[2]])
        if count == LANES:
            for c in range(cols):
                for r in range(LANES):
                    out[c, first + r] = line[r, c]
        else:
            for c in range(cols):
                for r in range(count):
                    out[c, first + r] = line[r, c]


@_jit
def _transpose(src: F32, out: F32) -> None:
    """``out[c, r] = src[r, c]``, a strip of ``LANES`` rows at a time."""
    rows, cols = src.shape
    for first in range(0, rows, LANES):
        for c in range(cols):
            for r in range(min(LANES, rows - first)):
                out[c, first + r] = src[first + r, c]


@_jit
def _box_along_axis1(src: F32, dst: F32, window: int, need: npt.NDArray[np.bool_]) -> None:
    """The box filter along axis 1, ``LANES`` rows at a time through a transposed strip.

    Outputs are divided out only where ``need``. Full strips copy with a constant inner
    trip count, which the compiler unrolls.
    """
    rows, cols = src.shape
    strip = np.zeros((cols, LANES), np.float32)
    strip_out = np.zeros((cols, LANES), np.float32)
    for first in range(0, rows, LANES):
        count = min(LANES, rows - first)
        if count == LANES:
            for c in range(cols):
                for r in range(LANES):
                    strip[c, r] = src[first + r, c]
        else:
            for r in range(count):
                for c in range(cols):
                    strip[c, r] = src[first + r, c]
        _box_lanes(strip, strip_out, window, need)
        if count == LANES:
            for c in range(cols):
                for r in range(LANES):
                    dst[first + r, c] = strip_out[c, r]
        else:
            for r in range(count):
                for c in range(cols):
                    dst[first + r, c] = strip_out[c, r]


def _filter_transposed(
    image_t: F32,
    windows: tuple[int, int],
    indices: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
    passes: int,
) -> F32:
    """The Jarosz passes and the decimation, on the transposed image ``image_t`` (W, H).

    In this layout a row pass (along W) runs down axis 0 with one lane per image row, no
    transposition needed; a column pass (along H) goes through transposed strips. The last
    row pass divides out only the sampled columns; the last column pass runs on those only.
    ``image_t`` is overwritten. Plain Python over compiled kernels: a compiled driver would
    add seconds to the first compile for microseconds at run time.
    """
    (row_window, col_window), (row_idx, col_idx) = windows, indices
    cols, rows = image_t.shape
    every_row = np.ones(rows, np.bool_)
    every_col = np.ones(cols, np.bool_)
    need_col = np.zeros(cols, np.bool_)
    need_col[col_idx] = True
    need_row = np.zeros(rows, np.bool_)
    need_row[row_idx] = True
    other = np.empty((cols, rows), np.float32)
    for _ in range(passes - 1):
        _box_lanes(image_t, other, row_window, every_col)
        _box_along_axis1(other, image_t, col_window, every_row)
    _box_lanes(image_t, other, row_window, need_col)
    # Last column pass, on the sampled columns only: (H, 64) with one lane per column.
    narrow = np.ascontiguousarray(np.take(other, col_idx, axis=0).T)
    narrow_out = np.empty_like(narrow)
    _box_lanes(narrow, narrow_out, col_window, need_row)
    out: F32 = np.take(narrow_out, row_idx, axis=0)
    return out


@_jit
def _dct16(samples: F32, matrix: F32, block: F32) -> None:
    """``block = (D @ A) @ D.T``, each dot product summed from 0 in order k = 0..63."""
    rows = matrix.shape[0]
    size = samples.shape[0]
    t = np.empty((rows, size), np.float32)
    for i in range(rows):
        for j in range(size):
            acc = np.float32(0.0)
            for k in range(size):
                acc += matrix[i, k] * samples[k, j]
            t[i, j] = acc
    for i in range(rows):
        for j in range(rows):
            acc = np.float32(0.0)
            for k in range(size):
                acc += t[i, k] * matrix[j, k]
            block[i, j] = acc


def dct16(samples: F32, matrix: F32) -> F32:
    """``(D @ A) @ D.T`` for the 16x64 ``matrix`` D, as the reference sums it."""
    block = np.empty((matrix.shape[0], matrix.shape[0]), np.float32)
    _dct16(np.ascontiguousarray(samples), matrix, block)
    return block


def samples_from_rgb(
    rgb: npt.NDArray[np.uint8],
    windows: tuple[int, int],
    indices: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
    passes: int,
) -> F32:
    """Luma, ``passes`` Jarosz passes and 64x64 decimation of an (H, W, 3|4) uint8 image.

    ``windows`` is (along rows, along columns); ``indices`` the sampled (rows, columns).
    """
    rgb = np.ascontiguousarray(rgb)
    luma_t = np.empty((rgb.shape[1], rgb.shape[0]), np.float32)
    _luma_transposed(rgb, luma_t)
    result: F32 = _filter_transposed(luma_t, windows, indices, passes)
    return result


def samples_from_luma(
    luma: F32,
    windows: tuple[int, int],
    indices: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
    passes: int,
) -> F32:
    """``passes`` Jarosz passes and 64x64 decimation of an (H, W) float32 luma plane."""
    luma = np.ascontiguousarray(luma)
    luma_t = np.empty((luma.shape[1], luma.shape[0]), np.float32)
    _transpose(luma, luma_t)
    result: F32 = _filter_transposed(luma_t, windows, indices, passes)
    return result
