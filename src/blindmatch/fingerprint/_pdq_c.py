"""Compiled (C) PDQ downsampling: the same float operations as :mod:`._pdq_numpy`, in the same
order, several times faster than the reference C++ core.

The arithmetic is ``_pdq_core.c`` (plain C99, no Python API, compiled at install without
fast-math and with ``-ffp-contract=off``, so every float32 result rounds as the reference's);
``_pdq_cext.c`` binds it through the buffer protocol. This module allocates the outputs and
hands the core C-ordered arrays of the right dtypes. Importing it raises ImportError where the
extension was not built (no C compiler at install), and :mod:`.pdq` falls back to numpy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from blindmatch.fingerprint import _pdq_cext

__all__ = ["NAME", "dct16", "samples_from_luma", "samples_from_rgb"]

F32 = npt.NDArray[np.float32]
Indices = npt.NDArray[np.intp]

NAME = "c"
"""The backend's name, as :func:`blindmatch.fingerprint.pdq.pdq_backend` reports it."""

_SAMPLES = 64


def _indices(indices: tuple[Indices, Indices]) -> tuple[Indices, Indices]:
    rows, cols = indices
    return np.ascontiguousarray(rows, dtype=np.intp), np.ascontiguousarray(cols, dtype=np.intp)


def samples_from_rgb(
    rgb: npt.NDArray[np.uint8],
    windows: tuple[int, int],
    indices: tuple[Indices, Indices],
    passes: int,
) -> F32:
    """Luma, ``passes`` Jarosz passes and 64x64 decimation of an (H, W, 3|4) uint8 image.

    ``windows`` is (along rows, along columns); ``indices`` the sampled (rows, columns).
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    rows, cols, channels = rgb.shape
    row_idx, col_idx = _indices(indices)
    out = np.empty((_SAMPLES, _SAMPLES), np.float32)
    _pdq_cext.samples_from_rgb(
        rgb, rows, cols, channels, windows[0], windows[1], row_idx, col_idx, passes, out
    )
    return out


def samples_from_luma(
    luma: F32,
    windows: tuple[int, int],
    indices: tuple[Indices, Indices],
    passes: int,
) -> F32:
    """``passes`` Jarosz passes and 64x64 decimation of an (H, W) float32 luma plane."""
    luma = np.ascontiguousarray(luma, dtype=np.float32)
    rows, cols = luma.shape
    row_idx, col_idx = _indices(indices)
    out = np.empty((_SAMPLES, _SAMPLES), np.float32)
    _pdq_cext.samples_from_luma(
        luma, rows, cols, windows[0], windows[1], row_idx, col_idx, passes, out
    )
    return out


def dct16(samples: F32, matrix: F32) -> F32:
    """``(D @ A) @ D.T`` for the 16x64 ``matrix`` D, each dot product summed in order."""
    block = np.empty((matrix.shape[0], matrix.shape[0]), np.float32)
    _pdq_cext.dct16(
        np.ascontiguousarray(samples, dtype=np.float32),
        np.ascontiguousarray(matrix, dtype=np.float32),
        block,
    )
    return block
