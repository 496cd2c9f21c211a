"""Compiled (numba) PDQ downsampling: the same float operations as :mod:`._pdq_numpy`, in the
same order, about 5x faster than the reference C++ core on a 1024x768 image.

Why it is fast without reordering a single float operation: the reference's running sums are
sequential *along* a row or column but independent *across* rows or columns, so each pass is
written as ``LANES`` (or ``width``) independent sums advanced one step at a time, a loop the
compiler turns into SIMD adds. The column passes read rows contiguously as they are; the row
passes transpose strips of ``LANES`` rows into a small buffer first (for the first pass,
computing luma from the RGB bytes on the way). The last row pass divides only at the 64
sampled columns and the last column pass runs on those columns only.

Compiled without ``fastmath``, so LLVM neither reassociates nor contracts ``a * b + c``
into a fused multiply-add: every result rounds exactly as the reference's. Compiled code is
cached on disk (``cache=True``), so only the first run on a machine pays the compile time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["NAME", "samples_from_luma", "samples_from_rgb"]

F32 = npt.NDArray[np.float32]

NAME = "numba"
"""The backend's name, as :func:`blindmatch.fingerprint.pdq.pdq_backend` reports it."""

LANES = 8
"""Rows filtered together by a row pass: one 256-bit vector of float32."""

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


@_jit
def _strip_from_rgb(rgb: npt.NDArray[np.uint8], first: int, strip: F32) -> None:
    """``strip[c, r]`` = luma of pixel (first + r, c), evaluated in double as the binding does."""
    rows, cols = rgb.shape[0], rgb.shape[1]
    for r in range(min(LANES, rows - first)):
        for c in range(cols):
            red = np.float64(rgb[first + r, c, 0]) * 0.299
            green = np.float64(rgb[first + r, c, 1]) * 0.587
            blue = np.float64(rgb[first + r, c, 2]) * 0.114
            strip[c, r] = np.float32((red + green) + blue)


@_jit
def _strip_from_rows(src: F32, first: int, strip: F32) -> None:
    """``strip[c, r] = src[first + r, c]``: a strip of rows, transposed."""
    rows, cols = src.shape
    for r in range(min(LANES, rows - first)):
        for c in range(cols):
            strip[c, r] = src[first + r, c]


@_jit
def _strip_to_rows(strip: F32, first: int, dst: F32, columns: npt.NDArray[np.intp]) -> None:
    """``dst[first + r, c] = strip[c, r]`` for the given columns."""
    for r in range(min(LANES, dst.shape[0] - first)):
        for c in columns:
            dst[first + r, c] = strip[c, r]


@_jit
def _rows_from_rgb(
    rgb: npt.NDArray[np.uint8], dst: F32, window: int, need: npt.NDArray[np.bool_]
) -> None:
    """The first row pass, reading luma straight from the RGB bytes."""
    rows, cols = rgb.shape[0], rgb.shape[1]
    strip = np.zeros((cols, LANES), np.float32)
    strip_out = np.zeros((cols, LANES), np.float32)
    every_col = np.arange(cols)
    for first in range(0, rows, LANES):
        _strip_from_rgb(rgb, first, strip)
        _box_lanes(strip, strip_out, window, need)
        _strip_to_rows(strip_out, first, dst, every_col)


@_jit
def _rows(
    src: F32, dst: F32, window: int, need: npt.NDArray[np.bool_], keep: npt.NDArray[np.intp]
) -> None:
    """A row pass; outputs are divided out only where ``need`` and stored only at ``keep``."""
    rows, cols = src.shape
    strip = np.zeros((cols, LANES), np.float32)
    strip_out = np.zeros((cols, LANES), np.float32)
    for first in range(0, rows, LANES):
        _strip_from_rows(src, first, strip)
        _box_lanes(strip, strip_out, window, need)
        _strip_to_rows(strip_out, first, dst, keep)


@_jit
def _finish(
    ping: F32,
    row_window: int,
    col_window: int,
    row_idx: npt.NDArray[np.intp],
    col_idx: npt.NDArray[np.intp],
    passes: int,
) -> F32:
    """Everything after the first row pass (whose output is ``ping``), then decimation."""
    rows, cols = ping.shape
    every_row = np.ones(rows, np.bool_)
    every_col = np.ones(cols, np.bool_)
    all_cols = np.arange(cols)
    sampled_cols = np.unique(col_idx)
    need_col = np.zeros(cols, np.bool_)
    need_col[sampled_cols] = True
    need_row = np.zeros(rows, np.bool_)
    need_row[row_idx] = True
    pong = np.empty((rows, cols), np.float32)
    for p in range(1, passes):
        _box_lanes(ping, pong, col_window, every_row)
        last = p == passes - 1
        if last:
            _rows(pong, ping, row_window, need_col, sampled_cols)
        else:
            _rows(pong, ping, row_window, every_col, all_cols)
    # Last column pass: only on the sampled columns, divided out only at sampled rows.
    narrow = np.empty((rows, col_idx.size), np.float32)
    for r in range(rows):
        for j in range(col_idx.size):
            narrow[r, j] = ping[r, col_idx[j]]
    narrow_out = np.empty((rows, col_idx.size), np.float32)
    _box_lanes(narrow, narrow_out, col_window, need_row)
    out = np.empty((row_idx.size, col_idx.size), np.float32)
    for i in range(row_idx.size):
        out[i] = narrow_out[row_idx[i]]
    return out


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
    ping = np.empty(rgb.shape[:2], np.float32)
    _rows_from_rgb(rgb, ping, windows[0], np.ones(rgb.shape[1], np.bool_))
    result: F32 = _finish(ping, windows[0], windows[1], indices[0], indices[1], passes)
    return result


def samples_from_luma(
    luma: F32,
    windows: tuple[int, int],
    indices: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
    passes: int,
) -> F32:
    """``passes`` Jarosz passes and 64x64 decimation of an (H, W) float32 luma plane."""
    luma = np.ascontiguousarray(luma)
    ping = np.empty(luma.shape, np.float32)
    every_col = np.arange(luma.shape[1])
    _rows(luma, ping, windows[0], np.ones(luma.shape[1], np.bool_), every_col)
    result: F32 = _finish(ping, windows[0], windows[1], indices[0], indices[1], passes)
    return result
