"""Bandings: which bits of a hash form each OPRF input (bit-sampling LSH).

Theory of operation
-------------------
A banding of a signal type is public and versioned: ``L`` bands ``S_0..S_{L-1}``, each a
set of ``k`` distinct bit positions of the ``hash_bits``-bit hash, and a threshold ``t``
of bands that must agree for a match. Exact signals (MD5, SHA-256) use one band of all
bits and t = 1; PDQ uses k = 32, L = 384, t = 2 (:func:`pdq_banding`).

Bit numbering. Bit ``p`` of a hash is bit ``p`` of the big-endian integer of its bytes
(``int.from_bytes(h, "big") >> p & 1``), the numbering of the PDQ reference
(:meth:`blindmatch.fingerprint.types.PdqHash.bit`).

Positions (normative, docs/index-format.md section "Bandings"). The stream is
``SHAKE-256(lp8("blindmatch/v1/bands") || lp8(signal) || u16(hash_bits) || u16(k) ||
u32(L) || lp8(seed))`` where ``lp8(x)`` is a one-byte length then ``x`` and integers are
big-endian. It is read two bytes at a time as a big-endian ``u16``; each value is masked to
the smallest power of two ``>= hash_bits`` and rejected if it is ``>= hash_bits`` or
already in the band being drawn. Band 0 takes the first ``k`` accepted values, band 1 the
next ``k``, and so on; each band's positions are then sorted ascending. When
``k == hash_bits`` the single band is all bits ``0..hash_bits-1`` (what the draw yields
too) and the stream is not read.

Band input (normative). The OPRF input of band ``j`` for hash ``h`` is ``lp8(
"blindmatch/v1/band") || lp8(signal) || u32(j) || u16(k) || V`` where ``V`` is the
integer ``sum_i bit(h, S_j[i]) << i`` over the band's sorted positions, big-endian in
``ceil(k/8)`` bytes. For the exact banding ``V`` is the hash bytes unchanged. Every field
is fixed-width or length-prefixed, so no two (signal, j, bits) share an input.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from blindmatch.errors import InvalidEncoding, InvalidParameter

__all__ = [
    "BAND_DOMAIN",
    "Banding",
    "DEFAULT_PDQ_SEED",
    "PDQ_BAND_COUNTS",
    "POSITIONS_DOMAIN",
    "exact_banding",
    "pdq_banding",
]

POSITIONS_DOMAIN = b"blindmatch/v1/bands"
"""Domain tag of the SHAKE-256 stream that draws band positions."""
BAND_DOMAIN = b"blindmatch/v1/band"
"""Domain tag that opens every band input."""
DEFAULT_PDQ_SEED = b"blindmatch/v1/pdq-bands/seed-0"
"""The public default seed of the PDQ banding."""
PDQ_BAND_COUNTS = (256, 384, 512)
"""Band counts the PDQ banding supports."""

_SIGNAL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
_MAX_HASH_BITS = 4096
_MAX_BANDS = 4096
_MAX_SEED = 64


def _lp8(data: bytes) -> bytes:
    return bytes([len(data)]) + data


@dataclass(frozen=True, slots=True)
class Banding:
    """A public banding of one signal type.

    Attributes:
        signal: signal-type name (lowercase ``[a-z0-9][a-z0-9_.-]{0,31}``, e.g. ``"pdq"``).
        hash_bits: bits of the hash, a multiple of 8 (128 for MD5, 256 for SHA-256 and PDQ).
        k: bits per band (1..hash_bits).
        count: number of bands ``L`` (1..4096).
        threshold: bands that must agree for a match, ``t``: 1 or 2 (and 1 needs L = 1).
        seed: public seed of the position draw (at most 64 bytes).

    Raises:
        InvalidParameter: any field is out of range (on construction).
    """

    signal: str
    hash_bits: int
    k: int
    count: int
    threshold: int
    seed: bytes
    _positions: tuple[tuple[int, ...], ...] = field(
        init=False, repr=False, compare=False, hash=False
    )
    _prefixes: tuple[bytes, ...] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.signal, str) or not _SIGNAL.fullmatch(self.signal):
            raise InvalidParameter("signal must match [a-z0-9][a-z0-9_.-]{0,31}")
        for name in ("hash_bits", "k", "count", "threshold"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidParameter(f"{name} must be an integer")
        if not 8 <= self.hash_bits <= _MAX_HASH_BITS or self.hash_bits % 8:
            raise InvalidParameter(f"hash_bits must be a multiple of 8 in [8, {_MAX_HASH_BITS}]")
        if not 1 <= self.k <= self.hash_bits:
            raise InvalidParameter("k must be in [1, hash_bits]")
        if not 1 <= self.count <= _MAX_BANDS:
            raise InvalidParameter(f"count must be in [1, {_MAX_BANDS}]")
        if self.threshold not in (1, 2) or self.threshold > self.count:
            raise InvalidParameter("threshold must be 1 or 2 and at most count")
        if self.threshold == 1 and self.count != 1:
            # With t = 1 every band's share is the secret itself: one agreeing band of many
            # would reveal a match on k bits only. Exact signals use one band.
            raise InvalidParameter("threshold 1 needs exactly one band")
        if not isinstance(self.seed, bytes) or len(self.seed) > _MAX_SEED:
            raise InvalidParameter(f"seed must be at most {_MAX_SEED} bytes")
        if self.k == self.hash_bits and self.count != 1:
            raise InvalidParameter("a band of all bits must be the only band")
        object.__setattr__(self, "_positions", self._draw_positions())
        signal = self.signal.encode("ascii")
        object.__setattr__(
            self,
            "_prefixes",
            tuple(
                _lp8(BAND_DOMAIN) + _lp8(signal) + j.to_bytes(4, "big") + self.k.to_bytes(2, "big")
                for j in range(self.count)
            ),
        )

    @property
    def hash_bytes(self) -> int:
        """Bytes of a hash of this signal type."""
        return self.hash_bits // 8

    @property
    def value_bytes(self) -> int:
        """Bytes of a band's bit value ``V`` in a band input, ``ceil(k/8)``."""
        return (self.k + 7) // 8

    def _draw_positions(self) -> tuple[tuple[int, ...], ...]:
        if self.k == self.hash_bits:
            return (tuple(range(self.hash_bits)),)
        stream = hashlib.shake_256(
            _lp8(POSITIONS_DOMAIN)
            + _lp8(self.signal.encode("ascii"))
            + self.hash_bits.to_bytes(2, "big")
            + self.k.to_bytes(2, "big")
            + self.count.to_bytes(4, "big")
            + _lp8(self.seed)
        )
        mask = (1 << (self.hash_bits - 1).bit_length()) - 1
        length = 4 * self.k * self.count
        buffer = stream.digest(length)
        offset = 0
        bands: list[tuple[int, ...]] = []
        for _ in range(self.count):
            chosen: set[int] = set()
            while len(chosen) < self.k:
                if offset + 2 > len(buffer):
                    length *= 2
                    buffer = stream.digest(length)
                value = int.from_bytes(buffer[offset : offset + 2], "big") & mask
                offset += 2
                if value < self.hash_bits:
                    chosen.add(value)
            bands.append(tuple(sorted(chosen)))
        return tuple(bands)

    def positions(self) -> tuple[tuple[int, ...], ...]:
        """The ``L`` bands' bit positions, each sorted ascending (see the module docstring)."""
        return self._positions

    def _check_hash(self, hash_bytes: bytes) -> None:
        if not isinstance(hash_bytes, bytes) or len(hash_bytes) != self.hash_bytes:
            raise InvalidEncoding(f"a {self.signal} hash must be {self.hash_bytes} bytes")

    def band_values(self, hash_bytes: bytes) -> list[int]:
        """The integer ``V`` of every band of one hash (the selected bits, packed)."""
        self._check_hash(hash_bytes)
        number = int.from_bytes(hash_bytes, "big")
        return [
            sum(((number >> p) & 1) << i for i, p in enumerate(band)) for band in self._positions
        ]

    def band_inputs(self, hash_bytes: bytes) -> list[bytes]:
        """The ``L`` OPRF inputs of one hash, in band order.

        Args:
            hash_bytes: the hash, ``hash_bits / 8`` bytes.

        Returns:
            One input per band (module docstring, "Band input").

        Raises:
            InvalidEncoding: the hash has the wrong length or type.
        """
        return self.band_inputs_many([hash_bytes])[0]

    def band_inputs_many(self, hashes: Sequence[bytes]) -> list[list[bytes]]:
        """Band inputs of many hashes, vectorised over hashes and bands.

        Returns:
            ``result[i][j]`` is the input of band ``j`` of ``hashes[i]``.

        Raises:
            InvalidEncoding: a hash has the wrong length or type.
        """
        for item in hashes:
            self._check_hash(item)
        if not hashes:
            return []
        if self.k == self.hash_bits:
            prefix = self._prefixes[0]
            return [[prefix + item] for item in hashes]
        packed = self.pack_band_values(np.frombuffer(b"".join(hashes), dtype=np.uint8))
        width = self.value_bytes
        flat = packed.tobytes()
        prefixes = self._prefixes
        row = self.count * width
        return [
            [
                prefixes[j] + flat[base + j * width : base + (j + 1) * width]
                for j in range(self.count)
            ]
            for base in range(0, len(flat), row)
        ]

    def pack_band_values(self, hash_array: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The band values ``V`` of many hashes as big-endian bytes.

        Args:
            hash_array: the hashes' bytes, concatenated (``n * hash_bits/8`` ``uint8``).

        Returns:
            A ``(n, L, ceil(k/8))`` ``uint8`` array.
        """
        hashes = np.asarray(hash_array, dtype=np.uint8).reshape(-1, self.hash_bytes)
        # bits[:, p] = bit p of the big-endian integer: reverse bytes, little bit order.
        bits = np.unpackbits(hashes[:, ::-1], axis=1, bitorder="little")
        positions = np.asarray(self._positions, dtype=np.intp)  # (L, k)
        width = self.value_bytes
        selected = np.zeros((hashes.shape[0], self.count, 8 * width), dtype=np.uint8)
        selected[:, :, : self.k] = bits[:, positions]
        # V = sum bit_i << i; big-endian bytes = reversed little-endian packing.
        little = np.packbits(selected, axis=2, bitorder="little")
        return np.ascontiguousarray(little[:, :, ::-1])


def exact_banding(signal: str, hash_bits: int) -> Banding:
    """The banding of an exact signal: one band of all bits, threshold 1, empty seed.

    Raises:
        InvalidParameter: invalid ``signal`` or ``hash_bits``.
    """
    return Banding(signal=signal, hash_bits=hash_bits, k=hash_bits, count=1, threshold=1, seed=b"")


def pdq_banding(count: int = 384, seed: bytes = DEFAULT_PDQ_SEED) -> Banding:
    """The PDQ banding: 256-bit hashes, k = 32 bits per band, threshold 2.

    Args:
        count: number of bands, one of 256, 384 (default), 512.
        seed: the public seed of the position draw.

    Raises:
        InvalidParameter: unsupported ``count`` or bad ``seed``.
    """
    if count not in PDQ_BAND_COUNTS:
        raise InvalidParameter("PDQ band count must be 256, 384 or 512")
    return Banding(signal="pdq", hash_bits=256, k=32, count=count, threshold=2, seed=seed)
