"""Hamming distances between PDQ hashes, vectorised over packed arrays.

Layout: a packed array is an ``N x 4`` array of native ``uint64``. Row ``i`` is the 32-byte
form of hash ``i`` (``bytes(h)``, the reference's big-endian integer) read as four
big-endian 64-bit words, so word 0 holds bits 255..192 and word 3 bits 63..0. Four words
rather than 32 bytes because XOR and popcount then run on 4 machine words per pair instead
of 32 bytes, and ``np.bitwise_count`` (numpy >= 2.0) counts a whole word in one step.

Memory: :func:`hamming_many_to_many` processes the left side in blocks so the temporary
``block x Nb x 4`` XOR array stays under :data:`MAX_BLOCK_WORDS` words (32 MiB); the result
itself is ``Na x Nb`` ``int32`` and is the caller's to size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from blindmatch.errors import InvalidEncoding
from blindmatch.fingerprint.types import PdqHash

__all__ = [
    "MAX_BLOCK_WORDS",
    "WORDS",
    "hamming_many_to_many",
    "hamming_one_to_many",
    "pack_hashes",
    "unpack_hashes",
]

WORDS = 4
"""64-bit words per packed PDQ hash."""

MAX_BLOCK_WORDS = 1 << 22
"""Upper bound on the words of one temporary XOR block (4 Mi words = 32 MiB)."""

Packed = npt.NDArray[np.uint64]
Distances = npt.NDArray[np.int32]


def pack_hashes(hashes: Sequence[PdqHash]) -> Packed:
    """Pack hashes into an ``N x 4`` ``uint64`` array (layout in the module docstring).

    Args:
        hashes: The hashes, in the order rows should take.

    Returns:
        A new C-contiguous ``(len(hashes), 4)`` array of native ``uint64``.

    Raises:
        InvalidEncoding: An item is not a :class:`PdqHash`.
    """
    if not all(isinstance(h, PdqHash) for h in hashes):
        raise InvalidEncoding("pack_hashes takes PdqHash values only")
    raw = b"".join(bytes(h) for h in hashes)
    words = np.frombuffer(raw, dtype=">u8").reshape(len(hashes), WORDS)
    return words.astype(np.uint64)


def unpack_hashes(packed: Packed) -> list[PdqHash]:
    """The hashes a packed array holds, in row order (inverse of :func:`pack_hashes`).

    Args:
        packed: An ``N x 4`` ``uint64`` array.

    Returns:
        One :class:`PdqHash` per row.

    Raises:
        InvalidEncoding: ``packed`` is not an ``N x 4`` ``uint64`` array.
    """
    _check_packed(packed, "packed")
    raw = packed.astype(">u8").tobytes()
    return [PdqHash(raw[i : i + 32]) for i in range(0, len(raw), 32)]


def hamming_one_to_many(h: PdqHash, packed: Packed) -> Distances:
    """Distances from one hash to every row of a packed array.

    Args:
        h: The query hash.
        packed: An ``N x 4`` ``uint64`` array from :func:`pack_hashes`.

    Returns:
        An ``int32`` array of ``N`` distances in 0..256.

    Raises:
        InvalidEncoding: ``h`` is not a :class:`PdqHash` or ``packed`` is malformed.
    """
    if not isinstance(h, PdqHash):
        raise InvalidEncoding("hamming_one_to_many takes a PdqHash query")
    _check_packed(packed, "packed")
    query = pack_hashes([h])
    return _popcount_rows(packed ^ query)


def hamming_many_to_many(a: Packed, b: Packed) -> Distances:
    """All pairwise distances between the rows of two packed arrays.

    Args:
        a: An ``Na x 4`` ``uint64`` array.
        b: An ``Nb x 4`` ``uint64`` array.

    Returns:
        An ``Na x Nb`` ``int32`` array; entry ``[i, j]`` is the distance of ``a[i]`` to
        ``b[j]``.

    Raises:
        InvalidEncoding: Either array is not ``N x 4`` ``uint64``.
    """
    _check_packed(a, "a")
    _check_packed(b, "b")
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)
    block = max(1, MAX_BLOCK_WORDS // max(1, b.shape[0] * WORDS))
    for start in range(0, a.shape[0], block):
        stop = min(start + block, a.shape[0])
        out[start:stop] = _popcount_rows(a[start:stop, None, :] ^ b[None, :, :])
    return out


def _popcount_rows(xor: Packed) -> Distances:
    """Sum of set bits over the last axis (the 4 words of one pair)."""
    counts = np.bitwise_count(xor)
    total: Distances = counts.sum(axis=-1, dtype=np.int32)
    return total


def _check_packed(packed: object, name: str) -> None:
    if (
        not isinstance(packed, np.ndarray)
        or packed.dtype != np.uint64
        or packed.ndim != 2
        or packed.shape[1] != WORDS
    ):
        raise InvalidEncoding(f"{name} must be an N x {WORDS} uint64 array from pack_hashes")
