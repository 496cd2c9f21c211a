"""Shamir shares over GF(2**61 - 1): the secret a reference's bands agree on.

Theory of operation
-------------------
Each reference ``i`` gets a random line ``f_i(z) = s_i + a_i*z`` over the prime field
``GF(p)``, ``p = 2**61 - 1`` (threshold t = 2), or a constant ``f_i(z) = s_i`` (t = 1).
Band ``j`` (0-based) stores the share ``f_i(j + 1)``, masked by a pad only the OPRF key
holder can derive for that band's value. The share point is ``z = j + 1`` and never
``z = 0``: ``f_i(0) = s_i`` is the secret itself. A platform whose upload agrees with the
reference on two bands unmasks two points of the line and recovers ``s_i`` by Lagrange
interpolation at zero; ``handle(s_i)`` found in the index's handle set is a match.

Why 61 bits is enough (docs/design.md "Share field")
----------------------------------------------------
The report handle ``BLAKE2b(key=s_i, data="blindmatch/v1/handle")`` is public (it is in the
index), so ``s_i`` can be brute-forced against it with about 2**61 work. That is fine
*because the handle is the only value ever derived from* ``s_i``: recovering ``s_i``
yields ``s_i`` and nothing more. It does not unmask any share: every band's share is
XORed with a pad derived from the band's OPRF output, which needs the server's key (or an
evaluation of the true band value, i.e. already knowing the hash bits). Knowing ``s_i``
and even the slope ``a_i`` tells the attacker the share values but not which band values
produced the pads, so no bit of the reference hash follows. The same holds for a platform
that legitimately recovered ``s_i`` after a match: it learns the line, which it already
uses to get the handle. Were anything else ever derived from ``s_i`` (a record key, an
encryption key for report metadata), a 2**61 search would expose it: then the field must
be widened to >= 120 bits (two 61-bit lanes). Do not derive anything else from ``s_i``.

Arithmetic
----------
Scalar helpers use Python integers. The vectorised helpers work on ``uint64`` numpy arrays
of canonical field elements (values in ``[0, p)``) with a 32-bit split multiplication and
Mersenne folding (``2**61 = 1 mod p``), so no intermediate overflows 64 bits.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from blindmatch.errors import InvalidParameter

__all__ = [
    "FIELD_MODULUS",
    "RandomBytes",
    "add_mod",
    "evaluate_shares",
    "evaluate_shares_at",
    "field_inverse",
    "interpolate_at_zero",
    "interpolate_at_zero_many",
    "line_through",
    "mul_mod",
    "mul_mod_many",
    "random_field_elements",
    "random_lines",
]

FIELD_MODULUS = (1 << 61) - 1
"""The share field's prime, the Mersenne prime ``2**61 - 1``."""

RandomBytes = Callable[[int], bytes]
"""A source of random bytes like :func:`secrets.token_bytes` (injectable for vectors)."""

_P = np.uint64(FIELD_MODULUS)
_LOW32 = np.uint64(0xFFFFFFFF)
_LOW29 = np.uint64((1 << 29) - 1)
_S32 = np.uint64(32)
_S29 = np.uint64(29)
_S61 = np.uint64(61)
_S3 = np.uint64(3)

U64Array = npt.NDArray[np.uint64]


def _check_element(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < FIELD_MODULUS:
        raise InvalidParameter("share field elements must be integers in [0, 2**61 - 1)")
    return value


def add_mod(a: int, b: int) -> int:
    """``a + b mod p``."""
    return (_check_element(a) + _check_element(b)) % FIELD_MODULUS


def mul_mod(a: int, b: int) -> int:
    """``a * b mod p``."""
    return (_check_element(a) * _check_element(b)) % FIELD_MODULUS


def field_inverse(a: int) -> int:
    """``a**-1 mod p`` (Fermat).

    Raises:
        InvalidParameter: ``a`` is zero or not a field element.
    """
    if _check_element(a) == 0:
        raise InvalidParameter("zero has no inverse in the share field")
    return pow(a, FIELD_MODULUS - 2, FIELD_MODULUS)


def line_through(z1: int, y1: int, z2: int, y2: int) -> tuple[int, int]:
    """The line ``(s, a)`` with ``s + a*z1 = y1`` and ``s + a*z2 = y2``.

    Raises:
        InvalidParameter: ``z1 == z2`` or a value is not a field element.
    """
    for value in (z1, y1, z2, y2):
        _check_element(value)
    if z1 == z2:
        raise InvalidParameter("two shares of one point do not define a line")
    slope = (y2 - y1) * field_inverse((z2 - z1) % FIELD_MODULUS) % FIELD_MODULUS
    return (y1 - slope * z1) % FIELD_MODULUS, slope


def interpolate_at_zero(z1: int, y1: int, z2: int, y2: int) -> int:
    """Lagrange interpolation at 0 of two points: the secret ``s`` of a t = 2 line.

    Raises:
        InvalidParameter: ``z1 == z2`` or a value is not a field element.
    """
    return line_through(z1, y1, z2, y2)[0]


def _reduce(x: U64Array) -> U64Array:
    """Fold a value below 2**64 into [0, p) (two folds and one conditional subtract)."""
    x = (x & _P) + (x >> _S61)
    x = (x & _P) + (x >> _S61)
    return np.where(x >= _P, x - _P, x)


def mul_mod_many(a: U64Array, b: U64Array) -> U64Array:
    """Element-wise ``a * b mod p`` of canonical ``uint64`` arrays (broadcasting).

    With ``a = ah*2**32 + al`` and ``b = bh*2**32 + bl`` (``ah, bh < 2**29``):
    ``a*b = ah*bh*2**64 + (ah*bl + al*bh)*2**32 + al*bl`` and ``2**64 = 8 mod p``; the middle
    term is split at bit 29 so that ``mid*2**32 = mid_hi*2**61 + mid_lo*2**32 = mid_hi +
    mid_lo*2**32 mod p``. Every partial product fits in 64 bits.
    """
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    ah, al = a >> _S32, a & _LOW32
    bh, bl = b >> _S32, b & _LOW32
    high = (ah * bh) << _S3
    mid = ah * bl + al * bh
    mid_part = (mid >> _S29) + ((mid & _LOW29) << _S32)
    low = _reduce(al * bl)
    return _reduce(_reduce(high + mid_part) + low)


def random_field_elements(count: int, random_bytes: RandomBytes = secrets.token_bytes) -> U64Array:
    """``count`` uniform elements of GF(p), by rejection sampling 61-bit lanes.

    Each element takes 8 bytes of ``random_bytes`` read big-endian, keeps the low 61 bits
    and is redrawn (from the next 8 bytes) when it equals ``p``. Which draws happen depends
    only on the bytes, so an injected deterministic source gives reproducible lines.

    Raises:
        InvalidParameter: ``count`` is negative.
    """
    if count < 0:
        raise InvalidParameter("count must be >= 0")
    values = np.frombuffer(random_bytes(8 * count), dtype=">u8").astype(np.uint64) & _P
    bad = np.flatnonzero(values == _P)
    for position in bad:
        while True:
            value = int.from_bytes(random_bytes(8), "big") & FIELD_MODULUS
            if value != FIELD_MODULUS:
                values[position] = value
                break
    return values


def random_lines(
    count: int, threshold: int, random_bytes: RandomBytes = secrets.token_bytes
) -> tuple[U64Array, U64Array]:
    """Random lines for ``count`` references: secrets ``s`` and slopes ``a``.

    For t = 1 every slope is zero (a constant polynomial) and only ``8*count`` random bytes
    are read; for t = 2 the secrets are read first, then the slopes.

    Raises:
        InvalidParameter: ``threshold`` is not 1 or 2, or ``count`` is negative.
    """
    if threshold not in (1, 2):
        raise InvalidParameter("threshold must be 1 or 2")
    secrets = random_field_elements(count, random_bytes)
    if threshold == 1:
        return secrets, np.zeros(count, dtype=np.uint64)
    return secrets, random_field_elements(count, random_bytes)


def evaluate_shares(secrets: U64Array, slopes: U64Array, band_count: int) -> U64Array:
    """Shares ``f_i(j + 1) = s_i + a_i*(j + 1)`` for every reference ``i`` and band ``j``.

    Returns:
        A ``(len(secrets), band_count)`` ``uint64`` array.

    Raises:
        InvalidParameter: shapes differ or ``band_count`` < 1.
    """
    secrets = np.asarray(secrets, dtype=np.uint64)
    slopes = np.asarray(slopes, dtype=np.uint64)
    if secrets.shape != slopes.shape or secrets.ndim != 1:
        raise InvalidParameter("secrets and slopes must be 1-D arrays of one length")
    if band_count < 1:
        raise InvalidParameter("band_count must be >= 1")
    points = np.arange(1, band_count + 1, dtype=np.uint64)
    products = mul_mod_many(slopes[:, None], points[None, :])
    total = secrets[:, None] + products
    return np.where(total >= _P, total - _P, total)


def evaluate_shares_at(secrets: U64Array, slopes: U64Array, z: int) -> U64Array:
    """Shares ``f_i(z) = s_i + a_i*z`` of every reference at one point (one band's column:
    ``z = j + 1``), so a build needs temporary memory of one band, not ``N * L`` shares.

    Raises:
        InvalidParameter: shapes differ or ``z`` is not in ``[1, p)``.
    """
    if type(z) is not int or not 0 < z < FIELD_MODULUS:
        raise InvalidParameter("the share point must be in [1, p)")
    secrets = np.asarray(secrets, dtype=np.uint64)
    slopes = np.asarray(slopes, dtype=np.uint64)
    if secrets.shape != slopes.shape or secrets.ndim != 1:
        raise InvalidParameter("secrets and slopes must be 1-D arrays of one length")
    total = secrets + mul_mod_many(slopes, np.full(slopes.shape, z, dtype=np.uint64))
    return np.where(total >= _P, total - _P, total)


def interpolate_at_zero_many(z1: U64Array, y1: U64Array, z2: U64Array, y2: U64Array) -> U64Array:
    """Vectorised :func:`interpolate_at_zero` for trial recovery over pairs of hits.

    ``s = (y1*z2 - y2*z1) / (z2 - z1)``. The share points are small (``z <= L``), so the
    inverses of the differences are computed once per distinct difference.

    Raises:
        InvalidParameter: some pair has ``z1 == z2``.
    """
    z1 = np.asarray(z1, dtype=np.uint64)
    z2 = np.asarray(z2, dtype=np.uint64)
    y1 = np.asarray(y1, dtype=np.uint64)
    y2 = np.asarray(y2, dtype=np.uint64)
    if np.any(z1 == z2):
        raise InvalidParameter("two shares of one point do not define a line")
    diff = np.where(z2 > z1, z2 - z1, _P - (z1 - z2))
    distinct, where = np.unique(diff, return_inverse=True)
    inverses = np.array(
        [pow(int(d), FIELD_MODULUS - 2, FIELD_MODULUS) for d in distinct], dtype=np.uint64
    )[where.reshape(diff.shape)]
    left = mul_mod_many(y1, z2)
    right = mul_mod_many(y2, z1)
    numerator = np.where(left >= right, left - right, left + (_P - right))
    return mul_mod_many(numerator, inverses)
