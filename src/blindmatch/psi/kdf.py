"""Key derivation of the index: entry tags, share pads and report handles.

Theory of operation
-------------------
Every value the index stores or the platform compares comes from one primitive, keyed
BLAKE2b (RFC 7693: ``BLAKE2b(key=K, data=info, digest_size=n)``, the keyed mode that is a
PRF and that libsodium's ``crypto_generichash`` and ``crypto_kdf`` are built on), keyed by
either

- a finalized OPRF output ``F`` (64 bytes, RFC 9497 ``Finalize``/``Evaluate``): one
  derivation ``E = BLAKE2b(key=F, data="blindmatch/v1/entry", digest_size=tag_bytes + 8)``
  gives the entry **tag** (``E[:tag_bytes]``, a big-endian integer) and the share **pad**
  (``E[tag_bytes:]``, big-endian, reduced to its low 61 bits: one lane of the share
  field), or
- a secret ``s`` of the share field, encoded as 8 bytes big-endian: the **report handle**
  (``BLAKE2b(key=s, data="blindmatch/v1/handle", digest_size=16)``).

The ``info`` strings are distinct and versioned, and the output length is part of
BLAKE2b's parameter block, so no derived value can stand in for another. Tag and pad come
from one derivation (disjoint bytes of one PRF output, so as independent as two) because
this KDF is on the hot path of both build and lookup.

Why BLAKE2b and not HKDF-SHA512: both are standard PRF-based KDFs, but an HKDF-Expand
through OpenSSL 3 (``cryptography``, or ``hmac``) costs 3.6-4.6 us per call on this
machine class, keyed BLAKE2b (the standard library's ``hashlib``, the RFC 7693 reference
code) 0.7 us; the build derives an entry and a handle per reference and a lookup an entry
per queried element, next to ~80 us of group work, so HKDF alone was 7% of the build. The
tests check every function here against libsodium's ``crypto_generichash`` (an
independent BLAKE2b implementation).

BLAKE2b takes keys of 1 to 64 bytes. ``F`` is 64 bytes. The handle key ``s`` has 61 bits
on purpose: the handle is the only value derived from ``s`` and a brute force of ``s``
against the public handle set yields ``s`` alone (see :mod:`blindmatch.psi.shares`);
keyed BLAKE2b stays a PRF with a short key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from blindmatch._fixed import FixedBytes
from blindmatch.errors import InvalidEncoding, InvalidParameter

__all__ = [
    "ENTRY_INFO",
    "HANDLE_INFO",
    "HANDLE_SIZE",
    "OUTPUT_SIZE",
    "PAD_MASK",
    "ReportHandle",
    "TAG_SIZES",
    "derive_entries",
    "derive_entry",
    "derive_handle",
    "derive_handles",
    "keyed_blake2b",
]

ENTRY_INFO = b"blindmatch/v1/entry"
"""KDF ``info`` (BLAKE2b message) of an entry's tag and pad."""
HANDLE_INFO = b"blindmatch/v1/handle"
"""KDF ``info`` (BLAKE2b message) of a report handle."""
OUTPUT_SIZE = 64
"""Bytes of a finalized RFC 9497 ristretto255-SHA512 output (``Nh``)."""
HANDLE_SIZE = 16
"""Bytes of a report handle."""
PAD_MASK = (1 << 61) - 1
"""A pad is one 61-bit lane: the low 61 bits of 8 big-endian bytes."""

TAG_SIZES = (4, 8)
"""Supported tag widths in bytes (an index header parameter)."""

_MAX_OUTPUT = 64
_MAX_KEY = 64
_TAG_DTYPES: dict[int, np.dtype[Any]] = {4: np.dtype(">u4"), 8: np.dtype(">u8")}


def keyed_blake2b(key: bytes, info: bytes, length: int) -> bytes:
    """The KDF: keyed BLAKE2b of ``info`` (RFC 7693), ``length`` bytes of output.

    Args:
        key: the PRF key, 1 to 64 bytes.
        info: context and application specific information (the hashed message).
        length: output bytes, 1 to 64 (part of BLAKE2b's parameter block, so outputs of
            different lengths are unrelated).

    Returns:
        ``length`` bytes of output keying material.

    Raises:
        InvalidParameter: ``key`` or ``length`` is out of range.
    """
    if not 1 <= length <= _MAX_OUTPUT:
        raise InvalidParameter("KDF output length must be in [1, 64]")
    if not 1 <= len(key) <= _MAX_KEY:
        raise InvalidParameter("KDF key must be 1 to 64 bytes")
    return hashlib.blake2b(info, key=key, digest_size=length).digest()


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class ReportHandle(FixedBytes):
    """An opaque 16-byte handle of one reference, derived from its share secret.

    The clearinghouse maps handles to report ids; the index holds only the handles (or a
    documented prefix of them). Compared in constant time.
    """

    SIZE: ClassVar[int] = HANDLE_SIZE
    NAME: ClassVar[str] = "report handle"

    @classmethod
    def _trusted(cls, data: bytes) -> ReportHandle:
        """Wrap 16 bytes this package derived itself, skipping validation (build hot path)."""
        handle = object.__new__(cls)
        object.__setattr__(handle, "value", data)
        return handle

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Build from exactly 16 bytes; raises :class:`InvalidEncoding` otherwise (a handle
        arrives from peers and files, so a wrong type is an encoding error too)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidEncoding("report handle must be bytes")
        return cls(bytes(data))

    def __lt__(self, other: ReportHandle) -> bool:
        return self.value < other.value


def _check_tag_bytes(tag_bytes: int) -> np.dtype[Any]:
    dtype = _TAG_DTYPES.get(tag_bytes)
    if dtype is None:
        raise InvalidParameter("tag width must be 4 or 8 bytes")
    return dtype


def _check_outputs(outputs: Sequence[bytes]) -> None:
    if not all(type(out) is bytes and len(out) == OUTPUT_SIZE for out in outputs):
        raise InvalidEncoding(f"OPRF outputs must be {OUTPUT_SIZE} bytes each")


def derive_entry(output: bytes, tag_bytes: int = 4) -> tuple[int, int]:
    """The tag and the 61-bit pad of one finalized OPRF output.

    Args:
        output: a 64-byte finalized OPRF output ``F``.
        tag_bytes: tag width, 4 or 8 (an index header parameter).

    Returns:
        ``(tag, pad)``: the tag below ``2**(8*tag_bytes)``, the pad below ``2**61``.

    Raises:
        InvalidEncoding: ``output`` is not 64 bytes.
        InvalidParameter: unsupported ``tag_bytes``.
    """
    _check_tag_bytes(tag_bytes)
    _check_outputs([output])
    block = keyed_blake2b(output, ENTRY_INFO, tag_bytes + 8)
    tag = int.from_bytes(block[:tag_bytes], "big")
    pad = int.from_bytes(block[tag_bytes : tag_bytes + 8], "big") & PAD_MASK
    return tag, pad


def derive_entries(
    outputs: Sequence[bytes], tag_bytes: int = 4
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Tags and pads of many outputs at once: one BLAKE2b each, one array conversion.

    Returns:
        ``(tags, pads)``, two ``uint64`` arrays in the order of ``outputs``.

    Raises:
        InvalidEncoding: an output is not 64 bytes.
        InvalidParameter: unsupported ``tag_bytes``.
    """
    _check_tag_bytes(tag_bytes)
    _check_outputs(outputs)
    width = tag_bytes + 8
    blake2b = hashlib.blake2b
    joined = b"".join([blake2b(ENTRY_INFO, key=out, digest_size=width).digest() for out in outputs])
    table = np.frombuffer(joined, dtype=np.uint8).reshape(-1, width)
    tags = table[:, :tag_bytes].copy().view(_TAG_DTYPES[tag_bytes]).astype(np.uint64).ravel()
    pads = table[:, tag_bytes:].copy().view(">u8").astype(np.uint64).ravel() & np.uint64(PAD_MASK)
    return tags, pads


def derive_handle(secret: int) -> ReportHandle:
    """The report handle of a share secret ``s`` (0 <= s < 2**61 - 1).

    ``handle = BLAKE2b(key=s as 8 bytes big-endian, data="blindmatch/v1/handle",
    digest_size=16)``.

    Raises:
        InvalidParameter: ``secret`` is not a field element.
    """
    if not isinstance(secret, int) or isinstance(secret, bool) or not 0 <= secret < PAD_MASK:
        raise InvalidParameter("share secret must be an element of GF(2**61 - 1)")
    return ReportHandle(keyed_blake2b(secret.to_bytes(8, "big"), HANDLE_INFO, HANDLE_SIZE))


def derive_handles(secrets: npt.NDArray[np.uint64]) -> list[bytes]:
    """Raw 16-byte handles of many secrets (the build's hot path: no object per handle).

    Raises:
        InvalidParameter: a value is not a field element.
    """
    values = np.asarray(secrets, dtype=np.uint64)
    if values.size and int(values.max()) >= PAD_MASK:
        raise InvalidParameter("share secrets must be elements of GF(2**61 - 1)")
    keys = values.astype(">u8").tobytes()
    blake2b = hashlib.blake2b
    return [
        blake2b(HANDLE_INFO, key=keys[i : i + 8], digest_size=HANDLE_SIZE).digest()
        for i in range(0, len(keys), 8)
    ]
