"""Typed fingerprint values: hashes are small frozen classes, never loose ``str`` or ``bytes``.

A hash is validated when it is made (length, hex alphabet) and converts both ways:
``bytes(h)`` / ``Cls.from_bytes(b)`` and ``h.hex()`` / ``Cls.from_hex(s)``. The text form of
a PDQ hash is the one the reference implementation prints: 64 lowercase hex digits of the
256-bit integer ``sum(bit_k << k)``, so the first digit holds bits 255..252. The byte form
is that integer big-endian, so ``bytes(h).hex() == h.hex()``.

Low quality is a field (:attr:`PdqFingerprint.quality`), not an empty hash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, TypeGuard

from blindmatch._fixed import FixedBytes
from blindmatch.errors import InvalidEncoding

__all__ = [
    "BandingSpec",
    "ImageHash64",
    "Md5Digest",
    "PdqFingerprint",
    "PdqHash",
    "Sha256Digest",
    "VideoFingerprint",
    "VideoFrame",
]


@dataclass(frozen=True, slots=True)
class BandingSpec:
    """How a signal type's hashes are cut into bands for private matching: plain numbers.

    The signal type owns them (:attr:`blindmatch.fingerprint.signals.SignalType.banding`);
    the protocol layer makes the :class:`blindmatch.psi.bands.Banding` of the index from them
    (``blindmatch.protocols.signal_banding``), since fingerprinting knows nothing of the
    cryptography. The fields mean what they mean there (docs/index-format.md "Bandings").

    Attributes:
        hash_bits: bits of the hash the bands sample.
        k: bits per band.
        count: bands ``L``.
        threshold: bands that must agree for a match (1 for an exact signal, else 2).
        seed: the public seed of the position draw (empty for an exact signal).

    Raises:
        InvalidEncoding: a field of the wrong type or out of range.
    """

    hash_bits: int
    k: int
    count: int
    threshold: int
    seed: bytes = b""

    def __post_init__(self) -> None:
        numbers = (self.hash_bits, self.k, self.count, self.threshold)
        if not all(type(n) is int and n >= 1 for n in numbers) or not isinstance(self.seed, bytes):
            raise InvalidEncoding("a banding spec holds positive ints and a bytes seed")
        if self.hash_bits % 8 or self.k > self.hash_bits or self.threshold > self.count:
            raise InvalidEncoding("a banding spec's bands must fit its hash")

    @classmethod
    def whole(cls, hash_bits: int) -> BandingSpec:
        """The banding of an exact signal: one band of all ``hash_bits`` bits, t = 1."""
        return cls(hash_bits, hash_bits, 1, 1)

    @property
    def exact(self) -> bool:
        """Whether a match means equal hashes (one band of every bit)."""
        return self.count == 1 and self.k == self.hash_bits

    @property
    def hash_bytes(self) -> int:
        """Bytes of a hash of the signal."""
        return self.hash_bits // 8


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class PdqHash(FixedBytes):
    """A 256-bit PDQ hash. Distance is the Hamming distance; <= 31 is a match."""

    SIZE: ClassVar[int] = 32
    NAME: ClassVar[str] = "PDQ hash"

    @classmethod
    def from_int(cls, number: int) -> PdqHash:
        """Build from the 256-bit integer ``sum(bit_k << k)``."""
        if not 0 <= number < 1 << 256:
            raise InvalidEncoding("PDQ hash integer must be in [0, 2**256)")
        return cls(number.to_bytes(32, "big"))

    def to_int(self) -> int:
        """The 256-bit integer ``sum(bit_k << k)``."""
        return int.from_bytes(self.value, "big")

    def bit(self, k: int) -> int:
        """Bit ``k`` (0..255) in the reference numbering (bit k = row k // 16, column k % 16)."""
        if not 0 <= k < 256:
            raise IndexError("PDQ bit index must be in [0, 256)")
        return (self.value[31 - k // 8] >> (k % 8)) & 1

    def distance(self, other: PdqHash) -> int:
        """Hamming distance to ``other``."""
        return (self.to_int() ^ other.to_int()).bit_count()


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class ImageHash64(FixedBytes):
    """A 64-bit hash of the imagehash family (phash, dhash, ahash, whash at hash size 8).

    The text form is what ``str(imagehash.ImageHash)`` prints: 16 hex digits of the 8x8 bit
    array read row by row, the first bit most significant. Distance is the Hamming distance.
    """

    SIZE: ClassVar[int] = 8
    NAME: ClassVar[str] = "imagehash hash"

    def distance(self, other: ImageHash64) -> int:
        """Hamming distance to ``other``."""
        a, b = int.from_bytes(self.value, "big"), int.from_bytes(other.value, "big")
        return (a ^ b).bit_count()


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Md5Digest(FixedBytes):
    """MD5 of a file's bytes: the exact hash NCMEC's hash sharing accepts."""

    SIZE: ClassVar[int] = 16
    NAME: ClassVar[str] = "MD5 digest"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Sha256Digest(FixedBytes):
    """SHA-256 of a file's bytes."""

    SIZE: ClassVar[int] = 32
    NAME: ClassVar[str] = "SHA-256 digest"


@dataclass(frozen=True, slots=True)
class PdqFingerprint:
    """A PDQ hash with its quality (0..100); quality < 50 is not trusted for matching."""

    hash: PdqHash
    quality: int

    def __post_init__(self) -> None:
        if not isinstance(self.hash, PdqHash):
            raise InvalidEncoding("a PDQ fingerprint's hash must be a PdqHash")
        _check_quality(self.quality)


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One hashed frame of a video, as vPDQ reports it."""

    frame_number: int
    timestamp: float
    pdq: PdqHash
    quality: int

    def __post_init__(self) -> None:
        if not _is_int(self.frame_number) or self.frame_number < 0:
            raise InvalidEncoding("frame number must be an integer >= 0")
        if not _is_finite_non_negative(self.timestamp):
            raise InvalidEncoding("timestamp must be a finite number >= 0")
        if not isinstance(self.pdq, PdqHash):
            raise InvalidEncoding("a video frame's pdq must be a PdqHash")
        _check_quality(self.quality)


@dataclass(frozen=True, slots=True)
class VideoFingerprint:
    """The vPDQ fingerprint of a video: its sampled frames in decoding order."""

    frames: tuple[VideoFrame, ...]
    fps: float
    seconds_per_hash: float

    def __post_init__(self) -> None:
        if not isinstance(self.frames, tuple) or not all(
            isinstance(frame, VideoFrame) for frame in self.frames
        ):
            raise InvalidEncoding("frames must be a tuple of VideoFrame")
        if not _is_finite_non_negative(self.fps) or self.fps == 0:
            raise InvalidEncoding("fps must be a finite number > 0")
        if not _is_finite_non_negative(self.seconds_per_hash):
            raise InvalidEncoding("seconds_per_hash must be a finite number >= 0")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_non_negative(value: object) -> bool:
    """An ``int`` or ``float`` (not ``bool``), finite and >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and value >= 0


def _check_quality(quality: object) -> None:
    if not _is_int(quality) or not 0 <= quality <= 100:
        raise InvalidEncoding("PDQ quality must be an integer in [0, 100]")
