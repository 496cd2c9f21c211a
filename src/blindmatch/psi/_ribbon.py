"""Standard Ribbon retrieval (Dillinger & Walzer 2021), the core of the compact index.

Theory of operation
-------------------
A Ribbon structure stores, for ``n`` keys, ``m >= n`` rows of ``r`` bits (the solution
``S``) such that for every key ``x`` with start ``s(x)``, coefficient ``c(x)`` (``w`` bits,
bit 0 set) and fingerprint ``f(x)`` (``r`` bits)::

    XOR over j in 0..w-1 with bit j of c(x) set of S[s(x) + j]  ==  f(x)

Building solves this banded linear system over GF(2) by on-the-fly Gaussian elimination
("banding": each key's equation is XORed with the pivot row already at its leading column
until it finds an empty row) and back substitution from the last row up; a free row (no
pivot) is set to zero. The build fails, rarely, when a key's equation reduces to ``0 = f``
with ``f != 0`` (an overloaded stretch of rows); the caller then retries with other hash
values (a new shard seed). A key that is not in the set reads the XOR of rows that is
unrelated to its (pseudorandom) fingerprint: a false hit with probability ``2**-r``.

The rows are packed bit-exactly, ``r`` bits per row, so a structure costs ``m * r`` bits;
:func:`query` reads a batch of keys with numpy, ``w`` gathers per key, no Python loop per
key. :func:`solve_arrays` runs the solve in C (``_ribbon_cext.c``, well under a
microsecond per key) where the extension was built, else :func:`solve`, the same algorithm
in the same order in Python (a few tens of microseconds per key, beside ~80 us of OPRF
evaluation per reference that a build needs anyway); both give the same rows.

Nothing here knows about OPRF outputs or files: :mod:`blindmatch.psi.compact` derives the
keys' values and lays out the file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["BACKEND", "MAX_RESULT_BITS", "WIDTH", "pack_rows", "query", "solve", "solve_arrays"]

WIDTH = 128
"""Coefficient width ``w`` (bits): the band of the linear system."""
MAX_RESULT_BITS = 56
"""Largest ``r``: a row plus its bit offset within a byte fits one 64-bit read."""

U64Array = npt.NDArray[np.uint64]
I64Array = npt.NDArray[np.int64]

try:
    from blindmatch.psi import _ribbon_cext
except ImportError:  # pragma: no cover - built wherever a C compiler was at install
    _ribbon_cext = None  # type: ignore[assignment]

BACKEND = "python" if _ribbon_cext is None else "c"
"""Which solve :func:`solve_arrays` uses."""


def solve_arrays(
    starts: I64Array,
    coefficient_low: U64Array,
    coefficient_high: U64Array,
    fingerprints: U64Array,
    slots: int,
    *,
    backend: str = BACKEND,
) -> U64Array | None:
    """:func:`solve` over arrays (one entry per key), in C where built.

    Args:
        starts: per key its first row, ``0 <= s <= slots - WIDTH``.
        coefficient_low: per key bits 0..63 of its coefficient (bit 0 set).
        coefficient_high: per key bits 64..127.
        fingerprints: per key the value its rows must XOR to.
        slots: the row count.
        backend: ``"c"`` or ``"python"`` (tests compare them).

    Returns:
        The rows as ``uint64``, or ``None`` when the system has no solution.
    """
    if backend == "c" and _ribbon_cext is not None:
        out = np.zeros(slots, dtype=np.uint64)
        solved = _ribbon_cext.solve(
            np.ascontiguousarray(starts, dtype=np.int64),
            np.ascontiguousarray(coefficient_low, dtype=np.uint64),
            np.ascontiguousarray(coefficient_high, dtype=np.uint64),
            np.ascontiguousarray(fingerprints, dtype=np.uint64),
            slots,
            out,
        )
        return out if solved else None
    high = coefficient_high.tolist()
    coefficients = [(h << 64) | low for low, h in zip(coefficient_low.tolist(), high, strict=True)]
    rows = solve(starts.tolist(), coefficients, fingerprints.tolist(), slots)
    return None if rows is None else np.array(rows, dtype=np.uint64)


def solve(
    starts: Sequence[int], coefficients: Sequence[int], fingerprints: Sequence[int], slots: int
) -> list[int] | None:
    """Band and back-substitute one structure of ``slots`` rows.

    Args:
        starts: per key its first row, ``0 <= s <= slots - WIDTH``.
        coefficients: per key ``WIDTH`` bits with bit 0 set.
        fingerprints: per key the value its rows must XOR to.
        slots: the row count ``m`` (>= ``WIDTH``).

    Returns:
        The ``slots`` row values, or ``None`` if the system has no solution (retry with
        other hash values). Equal keys (same start, coefficient and fingerprint) are one
        equation and never fail.
    """
    rows = [0] * slots
    rhs = [0] * slots
    for start, coefficient, fingerprint in zip(starts, coefficients, fingerprints, strict=True):
        i, c, b = start, coefficient, fingerprint
        while True:
            pivot = rows[i]
            if not pivot:
                rows[i] = c
                rhs[i] = b
                break
            c ^= pivot
            b ^= rhs[i]
            if not c:
                if b:
                    return None
                break
            shift = (c & -c).bit_length() - 1
            i += shift
            c >>= shift
    solution = [0] * slots
    for i in range(slots - 1, -1, -1):
        c = rows[i]
        if not c:
            continue
        value = rhs[i]
        c ^= 1
        while c:
            low = c & -c
            value ^= solution[i + low.bit_length() - 1]
            c ^= low
        solution[i] = value
    return solution


def pack_rows(shards: Sequence[tuple[Sequence[int] | U64Array, int]]) -> bytes:
    """The bit stream of shards of rows: shard after shard, row after row, ``r`` bits per
    row, least significant bit first; bit ``t`` of the stream is bit ``t % 8`` of byte
    ``t // 8``. The last byte's unused high bits are zero.

    Args:
        shards: per shard its row values (each below ``2**r``) and ``r``.
    """
    parts: list[npt.NDArray[np.uint8]] = []
    for rows, bits in shards:
        values = np.asarray(rows, dtype="<u8").reshape(-1, 1).view(np.uint8)
        unpacked = np.unpackbits(values, axis=1, bitorder="little")
        parts.append(unpacked[:, :bits].reshape(-1))
    if not parts:
        return b""
    return np.packbits(np.concatenate(parts), bitorder="little").tobytes()


def query(
    stream: npt.NDArray[np.uint8],
    bit_offsets: I64Array,
    result_bits: I64Array,
    coefficient_low: U64Array,
    coefficient_high: U64Array,
) -> U64Array:
    """The XOR of the coefficient-selected rows of a batch of keys.

    Args:
        stream: the packed rows (:func:`pack_rows`).
        bit_offsets: per key the stream bit offset of its start row.
        result_bits: per key the ``r`` of its shard.
        coefficient_low: per key bits 0..63 of its coefficient.
        coefficient_high: per key bits 64..127.

    Returns:
        Per key the ``r``-bit value to compare with its fingerprint.
    """
    count = bit_offsets.shape[0]
    if count == 0:
        return np.zeros(0, dtype=np.uint64)
    lanes = np.arange(WIDTH, dtype=np.int64)
    offsets = bit_offsets[:, None] + lanes[None, :] * result_bits[:, None]
    first = offsets >> 3
    index = first[:, :, None] + np.arange(8, dtype=np.int64)
    # Bytes past the end are above every bit a row needs: clipping reads a byte that the
    # mask then drops.
    np.minimum(index, stream.shape[0] - 1, out=index)
    words = np.ascontiguousarray(stream[index]).view("<u8")[:, :, 0].astype(np.uint64)
    masks = (np.uint64(1) << result_bits.astype(np.uint64)) - np.uint64(1)
    values = (words >> (offsets & 7).astype(np.uint64)) & masks[:, None]
    low_lanes = np.arange(64, dtype=np.uint64)
    selected = np.concatenate(
        [
            (coefficient_low[:, None] >> low_lanes) & np.uint64(1),
            (coefficient_high[:, None] >> low_lanes) & np.uint64(1),
        ],
        axis=1,
    )
    result: U64Array = np.bitwise_xor.reduce(values * selected, axis=1)
    return result
