"""RFC 9380 ``expand_message_xmd`` with SHA-512, and hashing to ristretto255 and to scalars.

``hash_to_ristretto255(msg, DST)`` is RFC 9380 Appendix B: 64 bytes from
``expand_message_xmd(SHA-512)``, mapped by the ristretto255 element derivation of RFC 9496
4.3.4. ``hash_to_scalar`` reduces the same 64 bytes modulo the group order (RFC 9497 4.1).

With SHA-512 (64-byte blocks out, 128-byte blocks in) and 64 bytes requested, the expansion
is exactly two hash calls, ``b_0 = H(Z_pad || msg || l_i_b_str || 0 || DST')`` and
``b_1 = H(b_0 || 1 || DST')``. The batch forms precompute ``DST'`` and the SHA-512 state
after the all-zero first block ``Z_pad``, so each message costs two short hash calls and one
foreign call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

from blindmatch import errors
from blindmatch.psi import _sodium
from blindmatch.psi.group import Element, Scalar

__all__ = [
    "MAX_DST_BYTES",
    "MAX_MESSAGE_BYTES",
    "expand_message_xmd",
    "hash_to_ristretto255",
    "hash_to_ristretto255_encodings",
    "hash_to_ristretto255_many",
    "hash_to_scalar",
    "hash_to_scalar_encodings",
    "hash_to_scalar_many",
]

#: SHA-512 output (b_in_bytes) and input block (s_in_bytes) sizes.
_B_IN_BYTES: Final = 64
_S_IN_BYTES: Final = 128
MAX_DST_BYTES: Final = 255
#: Messages are bounded only by SHA-512; this bound keeps one call's memory sane.
MAX_MESSAGE_BYTES: Final = 2**32
_OVERSIZE_PREFIX: Final = b"H2C-OVERSIZE-DST-"
_Z_PAD_STATE: Final = hashlib.sha512(bytes(_S_IN_BYTES))


def _dst_prime(dst: bytes) -> bytes:
    """``DST || I2OSP(len(DST), 1)``, hashing DSTs over 255 bytes first (RFC 9380 5.3.3)."""
    if type(dst) is not bytes:
        raise TypeError("DST must be bytes")
    if len(dst) > MAX_DST_BYTES:
        dst = hashlib.sha512(_OVERSIZE_PREFIX + dst).digest()
    return dst + bytes((len(dst),))


def _check_message(msg: bytes) -> None:
    if type(msg) is not bytes:
        raise TypeError("message must be bytes")
    if len(msg) >= MAX_MESSAGE_BYTES:
        raise errors.InvalidEncoding("message too long for expand_message_xmd")


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 5.3.1 ``expand_message_xmd`` with SHA-512.

    Args:
        msg: the message.
        dst: the domain separation tag (over 255 bytes it is hashed as in RFC 9380 5.3.3).
        length: bytes wanted, 1..min(255 * 64, 65535).

    Returns:
        ``length`` uniform bytes.

    Raises:
        TypeError: ``msg`` or ``dst`` is not bytes.
        InvalidArgument: ``length`` is out of range.
    """
    _check_message(msg)
    dst_prime = _dst_prime(dst)
    ell = -(-length // _B_IN_BYTES)
    if not 0 < length <= 65535 or ell > 255:
        raise errors.InvalidArgument("expand_message_xmd length out of range")
    h = _Z_PAD_STATE.copy()
    h.update(msg + length.to_bytes(2, "big") + b"\x00" + dst_prime)
    b_0 = h.digest()
    b_i = hashlib.sha512(b_0 + b"\x01" + dst_prime).digest()
    blocks = [b_i]
    for i in range(2, ell + 1):
        mixed = (int.from_bytes(b_0, "big") ^ int.from_bytes(b_i, "big")).to_bytes(64, "big")
        b_i = hashlib.sha512(mixed + bytes((i,)) + dst_prime).digest()
        blocks.append(b_i)
    return b"".join(blocks)[:length]


def _uniform_64_many(msgs: Sequence[bytes], dst: bytes) -> list[bytes]:
    """``expand_message_xmd(msg, dst, 64)`` for every message, with the loop kept tight."""
    for m in msgs:
        _check_message(m)
    dst_prime = _dst_prime(dst)
    suffix_0 = b"\x00\x40\x00" + dst_prime
    suffix_1 = b"\x01" + dst_prime
    z_copy = _Z_PAD_STATE.copy
    sha512 = hashlib.sha512
    result: list[bytes] = []
    append = result.append
    for m in msgs:
        h = z_copy()
        h.update(m + suffix_0)
        append(sha512(h.digest() + suffix_1).digest())
    return result


def hash_to_ristretto255(msg: bytes, dst: bytes) -> Element:
    """RFC 9380 Appendix B ``hash_to_ristretto255`` (the RFC 9497 HashToGroup).

    Args:
        msg: the input.
        dst: the domain separation tag.

    Returns:
        The element. The identity is reached with probability about 2^-252; then
        :class:`errors.InvalidInput` is raised, as RFC 9497 Blind does.

    Raises:
        TypeError: ``msg`` or ``dst`` is not bytes.
        errors.InvalidInput: the message hashes to the identity.
    """
    return hash_to_ristretto255_many([msg], dst)[0]


def hash_to_ristretto255_many(msgs: Sequence[bytes], dst: bytes) -> list[Element]:
    """:func:`hash_to_ristretto255` of every message, one SHA-512 pair and C call each.

    Raises:
        TypeError: a message or ``dst`` is not bytes.
        errors.InvalidInput: some message hashes to the identity.
    """
    trusted = Element._trusted
    return [trusted(e) for e in hash_to_ristretto255_encodings(msgs, dst)]


def hash_to_ristretto255_encodings(msgs: Sequence[bytes], dst: bytes) -> list[bytes]:
    """:func:`hash_to_ristretto255_many` as raw encodings, for pipelines that feed them
    straight back into libsodium (``oprf``'s batch paths) without building Elements.

    Raises:
        TypeError: a message or ``dst`` is not bytes.
        errors.InvalidInput: some message hashes to the identity.
    """
    encodings = _sodium.from_hash_many(_uniform_64_many(msgs, dst))
    if _sodium.IDENTITY in encodings:
        raise errors.InvalidInput("an input hashes to the identity element")
    return encodings


def hash_to_scalar(msg: bytes, dst: bytes) -> Scalar:
    """RFC 9497 4.1 HashToScalar: 64 bytes of ``expand_message_xmd`` mod the group order.

    Returns:
        The scalar (zero with probability about 2^-252; callers that need a non-zero
        scalar check :meth:`Scalar.is_zero`).

    Raises:
        TypeError: ``msg`` or ``dst`` is not bytes.
    """
    return hash_to_scalar_many([msg], dst)[0]


def hash_to_scalar_many(msgs: Sequence[bytes], dst: bytes) -> list[Scalar]:
    """:func:`hash_to_scalar` of every message."""
    trusted = Scalar._trusted
    return [trusted(s) for s in hash_to_scalar_encodings(msgs, dst)]


def hash_to_scalar_encodings(msgs: Sequence[bytes], dst: bytes) -> list[bytes]:
    """:func:`hash_to_scalar_many` as raw 32-byte encodings (for libsodium pipelines)."""
    return _sodium.scalar_reduce_many(_uniform_64_many(msgs, dst))
