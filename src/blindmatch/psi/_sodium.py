"""The one binding of libsodium's ristretto255 API: nothing else in blindmatch touches it.

Theory of operation
-------------------
libsodium (>= 1.0.18) provides every ristretto255 primitive blindmatch needs: element
derivation from 64 uniform bytes (RFC 9496 4.3.4), point decoding/validation, variable- and
fixed-base scalar multiplication, point addition and scalar arithmetic modulo the group
order. We load it through ``pysodium`` (which finds the system library) but call the C
functions on ``pysodium.sodium``, the ``ctypes.CDLL`` object, directly: pysodium's Python
wrappers re-check the library version, re-validate lengths and allocate a fresh buffer on
every call, which costs more than the Python work a whole OPRF step needs.

This module is bytes in, bytes out. It checks lengths (a wrong length passed to C would read
or write out of bounds) but knows nothing of typed values; ``group`` builds ``Element`` and
``Scalar`` on top of it. Swapping the backend (another binding, a C extension) means
rewriting this file only.

Batch functions (``*_many``) run their loop here, with the C function and the output buffer
bound to locals, one foreign call per element and no per-element Python objects beyond the
result ``bytes``: a Python loop around a ctypes call costs about half a microsecond, against
tens of microseconds for a scalar multiplication.

Canonical decoding: RFC 9496 4.3.1 decodes only a field element ``s`` that is
non-negative and reduced, which rules out every encoding with bit 255 set. libsodium
1.0.18 (Debian 12's) masks that bit off before its canonical check, so ``00...0080``
decodes as the identity and ``e2f2...2df6`` as the generator: one point, two encodings,
and a "non-identity" element that is the identity. Every function here that decodes a
point therefore refuses a set bit 255 itself, before any foreign call, whatever version
is loaded (newer releases check it too; the test of the RFC 9496 negative vectors and of
``tests/vectors/ristretto255-noncanonical.json`` runs against the loaded one).

Return codes: ``crypto_scalarmult_ristretto255`` returns -1 when the point does not decode
(non-canonical, not on the group) *or* the product is the identity; with a non-zero scalar
below the group order (prime) the product is the identity only if the point is. One call
therefore multiplies *and* validates a peer's element, with no separate decode.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any, Final

from blindmatch import errors

__all__ = [
    "ELEMENT_BYTES",
    "HASH_BYTES",
    "IDENTITY",
    "NONREDUCED_SCALAR_BYTES",
    "RAW",
    "SCALAR_BYTES",
    "add",
    "from_hash",
    "from_hash_many",
    "is_valid_point",
    "library_version",
    "scalar_add",
    "scalar_invert",
    "scalar_invert_many",
    "scalar_mul",
    "scalar_negate",
    "scalar_random",
    "scalar_random_many",
    "scalar_reduce",
    "scalar_reduce_many",
    "scalar_sub",
    "scalarmult",
    "scalarmult_base",
    "scalarmult_concat",
    "scalarmult_many",
    "scalarmult_pairs",
    "sub",
    "sum_of_products",
]

ELEMENT_BYTES: Final = 32
SCALAR_BYTES: Final = 32
HASH_BYTES: Final = 64
NONREDUCED_SCALAR_BYTES: Final = 64
IDENTITY: Final = bytes(32)

MINIMUM_VERSION: Final = (1, 0, 18)
_INSTALL_HINT: Final = (
    "blindmatch needs libsodium >= 1.0.18 with the ristretto255 API. Install it with "
    "'apt-get install libsodium23' (Debian/Ubuntu), 'dnf install libsodium' (Fedora) or "
    "'brew install libsodium' (macOS), and the Python binding with 'pip install pysodium'."
)
_REQUIRED_SYMBOLS: Final = (
    "crypto_core_ristretto255_add",
    "crypto_core_ristretto255_from_hash",
    "crypto_core_ristretto255_is_valid_point",
    "crypto_core_ristretto255_scalar_add",
    "crypto_core_ristretto255_scalar_invert",
    "crypto_core_ristretto255_scalar_mul",
    "crypto_core_ristretto255_scalar_negate",
    "crypto_core_ristretto255_scalar_random",
    "crypto_core_ristretto255_scalar_reduce",
    "crypto_core_ristretto255_scalar_sub",
    "crypto_core_ristretto255_sub",
    "crypto_scalarmult_ristretto255",
    "crypto_scalarmult_ristretto255_base",
    "randombytes_buf",
)


def _parse_version(text: str) -> tuple[int, int, int]:
    parts = text.split(".")
    if len(parts) < 3:
        raise errors.BackendUnavailable(f"cannot parse the libsodium version. {_INSTALL_HINT}")
    try:
        return int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        raise errors.BackendUnavailable(
            f"cannot parse the libsodium version. {_INSTALL_HINT}"
        ) from None


def _require_version(version: tuple[int, int, int]) -> None:
    if version < MINIMUM_VERSION:
        found = ".".join(map(str, version))
        raise errors.BackendUnavailable(f"libsodium {found} is too old. {_INSTALL_HINT}")


def _require_symbols(lib: object) -> None:
    for name in _REQUIRED_SYMBOLS:
        if not hasattr(lib, name):
            raise errors.BackendUnavailable(f"libsodium lacks {name}. {_INSTALL_HINT}")


def _load() -> Any:
    """Load libsodium through pysodium and check version and symbols.

    Raises:
        errors.BackendUnavailable: pysodium or libsodium is missing, too old, or lacks
            ristretto255.
    """
    try:
        import pysodium  # imported here so that a missing library raises our error
    except (ImportError, OSError, ValueError) as exc:  # pysodium raises ValueError if no lib
        raise errors.BackendUnavailable(
            f"libsodium/pysodium not loadable. {_INSTALL_HINT}"
        ) from exc
    lib = pysodium.sodium
    lib.sodium_version_string.restype = ctypes.c_char_p
    _require_version(_parse_version(lib.sodium_version_string().decode("ascii", "replace")))
    _require_symbols(lib)
    if lib.sodium_init() < 0:
        raise errors.BackendUnavailable(f"sodium_init failed. {_INSTALL_HINT}")
    return lib


_lib: Final = _load()
library_version: Final[tuple[int, int, int]] = _parse_version(
    _lib.sodium_version_string().decode("ascii")
)

# C functions bound once. No argtypes on purpose: ctypes passes a ``bytes`` argument as
# ``const char *`` and a buffer (or byref of one) as a pointer without any converter call.
_from_hash: Final = _lib.crypto_core_ristretto255_from_hash
_is_valid_point: Final = _lib.crypto_core_ristretto255_is_valid_point
_add: Final = _lib.crypto_core_ristretto255_add
_sub: Final = _lib.crypto_core_ristretto255_sub
_scalarmult: Final = _lib.crypto_scalarmult_ristretto255
_scalarmult_base: Final = _lib.crypto_scalarmult_ristretto255_base
_scalar_random: Final = _lib.crypto_core_ristretto255_scalar_random
_scalar_invert: Final = _lib.crypto_core_ristretto255_scalar_invert
_scalar_negate: Final = _lib.crypto_core_ristretto255_scalar_negate
_scalar_add: Final = _lib.crypto_core_ristretto255_scalar_add
_scalar_sub: Final = _lib.crypto_core_ristretto255_scalar_sub
_scalar_mul: Final = _lib.crypto_core_ristretto255_scalar_mul
_scalar_reduce: Final = _lib.crypto_core_ristretto255_scalar_reduce
_randombytes_buf: Final = _lib.randombytes_buf
_new_buffer: Final = ctypes.create_string_buffer
_byref: Final = ctypes.byref

# The bare C functions and the buffer constructor, for benchmarks/bench_oprf.py: it times
# raw loops over them as the floor our wrappers are measured against, without itself
# importing ctypes (this module stays the only one that does).
RAW: Final[dict[str, Any]] = {
    "create_string_buffer": _new_buffer,
    "crypto_core_ristretto255_add": _add,
    "crypto_core_ristretto255_from_hash": _from_hash,
    "crypto_core_ristretto255_is_valid_point": _is_valid_point,
    "crypto_core_ristretto255_scalar_invert": _scalar_invert,
    "crypto_core_ristretto255_scalar_mul": _scalar_mul,
    "crypto_core_ristretto255_scalar_reduce": _scalar_reduce,
    "crypto_scalarmult_ristretto255": _scalarmult,
    "crypto_scalarmult_ristretto255_base": _scalarmult_base,
}


def _check(value: bytes, length: int, what: str) -> None:
    if type(value) is not bytes:
        raise TypeError(f"{what} must be bytes")
    if len(value) != length:
        raise errors.InvalidEncoding(f"{what} must be {length} bytes")


def _element_error(what: str) -> errors.InvalidElement:
    return errors.InvalidElement(f"{what} is not a valid non-identity ristretto255 element")


_HIGH_BIT: Final = 0x80


def _check_point(value: bytes, what: str) -> None:
    """Length and type as :func:`_check`, and bit 255 clear (RFC 9496 4.3.1: ``s`` must be
    a reduced, non-negative field element; libsodium 1.0.18 ignores that bit)."""
    _check(value, ELEMENT_BYTES, what)
    if value[31] & _HIGH_BIT:
        raise _element_error(what)


def _check_points(points: Sequence[bytes]) -> None:
    """:func:`_check_point` of every point, naming the index (never the bytes) of a bad one."""
    for index, p in enumerate(points):
        _check(p, ELEMENT_BYTES, "element")
        if p[31] & _HIGH_BIT:
            raise _element_error(f"element {index}")


def from_hash(uniform: bytes) -> bytes:
    """ristretto255 element derivation (RFC 9496 4.3.4) of 64 uniform bytes."""
    _check(uniform, HASH_BYTES, "hash input")
    out = _new_buffer(ELEMENT_BYTES)
    _from_hash(out, uniform)
    return out.raw


def from_hash_many(uniforms: Sequence[bytes]) -> list[bytes]:
    """Element derivation of many 64-byte strings, one foreign call each."""
    for u in uniforms:
        _check(u, HASH_BYTES, "hash input")
    out = _new_buffer(ELEMENT_BYTES)
    f = _from_hash
    result: list[bytes] = []
    append = result.append
    for u in uniforms:
        f(out, u)
        append(out.raw)
    return result


def is_valid_point(encoding: bytes) -> bool:
    """True if ``encoding`` is a canonical ristretto255 encoding (the identity included)."""
    _check(encoding, ELEMENT_BYTES, "element")
    if encoding[31] & _HIGH_BIT:  # non-canonical (RFC 9496 4.3.1), whatever libsodium says
        return False
    return bool(_is_valid_point(encoding) == 1)


def scalarmult(scalar: bytes, point: bytes) -> bytes:
    """``scalar * point``, validating ``point`` on the way.

    Raises:
        errors.InvalidElement: the point does not decode or the product is the identity.
    """
    _check(scalar, SCALAR_BYTES, "scalar")
    _check_point(point, "element")
    out = _new_buffer(ELEMENT_BYTES)
    if _scalarmult(out, scalar, point) != 0:
        raise _element_error("element")
    return out.raw


def scalarmult_many(scalar: bytes, points: Sequence[bytes]) -> list[bytes]:
    """``scalar * P`` for every P, one foreign call each, every P validated.

    Raises:
        errors.InvalidElement: naming the index of the first invalid point.
    """
    _check(scalar, SCALAR_BYTES, "scalar")
    _check_points(points)
    out = _new_buffer(ELEMENT_BYTES)
    f = _scalarmult
    result: list[bytes] = []
    append = result.append
    for p in points:
        if f(out, scalar, p):
            raise _element_error(f"element {len(result)}")
        append(out.raw)
    return result


def scalarmult_concat(scalar: bytes, points: bytes) -> bytes:
    """``scalar * P`` for every 32-byte P of a concatenation, returned concatenated.

    Encoded elements multiplied in place, each validated by the multiplication itself,
    the result in one piece (for :func:`blindmatch.psi.oprf.blind_evaluate_encoded`).

    Raises:
        errors.InvalidEncoding: ``points`` is not a whole number of elements.
        errors.InvalidElement: naming the index of the first invalid point.
    """
    _check(scalar, SCALAR_BYTES, "scalar")
    if type(points) is not bytes:
        raise TypeError("points must be bytes")
    total = len(points)
    if total % ELEMENT_BYTES:
        raise errors.InvalidEncoding("element batch length is not a multiple of 32")
    if total and max(points[31::ELEMENT_BYTES]) & _HIGH_BIT:
        first = next(i for i, top in enumerate(points[31::ELEMENT_BYTES]) if top & _HIGH_BIT)
        raise _element_error(f"element {first}")
    src = _new_buffer(points, total)
    out = _new_buffer(total)
    f = _scalarmult
    byref = _byref
    for offset in range(0, total, ELEMENT_BYTES):
        if f(byref(out, offset), scalar, byref(src, offset)):
            raise _element_error(f"element {offset // ELEMENT_BYTES}")
    return out.raw


def scalarmult_pairs(scalars: Sequence[bytes], points: Sequence[bytes]) -> list[bytes]:
    """``s_i * P_i`` elementwise.

    Raises:
        errors.InvalidEncoding: the sequences differ in length.
        errors.InvalidElement: naming the index of the first invalid point.
    """
    if len(scalars) != len(points):
        raise errors.InvalidEncoding("scalars and elements differ in number")
    for s in scalars:
        _check(s, SCALAR_BYTES, "scalar")
    _check_points(points)
    out = _new_buffer(ELEMENT_BYTES)
    f = _scalarmult
    result: list[bytes] = []
    append = result.append
    for s, p in zip(scalars, points, strict=True):
        if f(out, s, p):
            raise _element_error(f"element {len(result)}")
        append(out.raw)
    return result


def sum_of_products(scalars: Sequence[bytes], points: Sequence[bytes]) -> bytes:
    """``sum s_i * P_i`` (the identity for an empty sum or a cancelling one).

    The composites of a batched DLEQ proof (RFC 9497 ComputeComposites), with one product
    buffer and one accumulator reused across the loop.

    Raises:
        errors.InvalidEncoding: the sequences differ in length.
        errors.InvalidElement: naming the index of the first invalid point (or of a zero
            scalar, whose product is the identity).
    """
    if len(scalars) != len(points):
        raise errors.InvalidEncoding("scalars and elements differ in number")
    for s in scalars:
        _check(s, SCALAR_BYTES, "scalar")
    _check_points(points)
    product = _new_buffer(ELEMENT_BYTES)
    total = _new_buffer(IDENTITY, ELEMENT_BYTES)
    mult = _scalarmult
    add_ = _add
    for index, (s, p) in enumerate(zip(scalars, points, strict=True)):
        if mult(product, s, p):
            raise _element_error(f"element {index}")
        add_(total, total, product)  # both operands are valid encodings: cannot fail
    return total.raw


def scalar_reduce_many(wides: Sequence[bytes]) -> list[bytes]:
    """:func:`scalar_reduce` of every 64-byte string."""
    for w in wides:
        _check(w, NONREDUCED_SCALAR_BYTES, "wide scalar")
    out = _new_buffer(SCALAR_BYTES)
    reduce = _scalar_reduce
    result: list[bytes] = []
    append = result.append
    for w in wides:
        reduce(out, w)
        append(out.raw)
    return result


def scalarmult_base(scalar: bytes) -> bytes:
    """``scalar * G``.

    Raises:
        errors.InvalidScalar: the scalar is zero modulo the group order.
    """
    _check(scalar, SCALAR_BYTES, "scalar")
    out = _new_buffer(ELEMENT_BYTES)
    if _scalarmult_base(out, scalar) != 0:
        raise errors.InvalidScalar("scalar is zero modulo the group order")
    return out.raw


def add(p: bytes, q: bytes) -> bytes:
    """``p + q`` (may be the identity).

    Raises:
        errors.InvalidElement: an operand does not decode.
    """
    _check_point(p, "element")
    _check_point(q, "element")
    out = _new_buffer(ELEMENT_BYTES)
    if _add(out, p, q) != 0:
        raise _element_error("operand")
    return out.raw


def sub(p: bytes, q: bytes) -> bytes:
    """``p - q`` (may be the identity).

    Raises:
        errors.InvalidElement: an operand does not decode.
    """
    _check_point(p, "element")
    _check_point(q, "element")
    out = _new_buffer(ELEMENT_BYTES)
    if _sub(out, p, q) != 0:
        raise _element_error("operand")
    return out.raw


def scalar_random() -> bytes:
    """A uniformly random scalar in [1, order) from libsodium's CSPRNG."""
    out = _new_buffer(SCALAR_BYTES)
    zero = bytes(SCALAR_BYTES)
    while True:
        _scalar_random(out)
        raw = out.raw
        if raw != zero:  # libsodium draws in [0, order); zero is practically unreachable
            return raw


def scalar_random_many(n: int) -> list[bytes]:
    """``n`` uniformly random non-zero scalars: 64 random bytes each, reduced mod the order.

    One CSPRNG call fills the whole batch (the per-call cost of libsodium's generator is
    several microseconds); reducing 512 uniform bits leaves a bias below 2^-250 (RFC 9497
    RandomScalar allows any uniform method; RFC 9380 5 uses the same reduction).
    """
    if n < 0:
        raise errors.InvalidArgument("n must be non-negative")
    wide = NONREDUCED_SCALAR_BYTES
    source = _new_buffer(wide * n)
    _randombytes_buf(source, ctypes.c_size_t(wide * n))
    out = _new_buffer(SCALAR_BYTES)
    reduce = _scalar_reduce
    byref = _byref
    zero = bytes(SCALAR_BYTES)
    result: list[bytes] = []
    append = result.append
    for offset in range(0, wide * n, wide):
        reduce(out, byref(source, offset))
        raw = out.raw
        if raw == zero:  # probability 2^-252 per scalar
            raw = scalar_random()
        append(raw)
    ctypes.memset(source, 0, wide * n)
    return result


def scalar_invert(s: bytes) -> bytes:
    """``s^-1`` modulo the group order.

    Raises:
        errors.InverseError: ``s`` is zero.
    """
    _check(s, SCALAR_BYTES, "scalar")
    out = _new_buffer(SCALAR_BYTES)
    if _scalar_invert(out, s) != 0:
        raise errors.InverseError("scalar has no inverse")
    return out.raw


def scalar_invert_many(scalars: Sequence[bytes]) -> list[bytes]:
    """Invert many scalars with one inversion (Montgomery's trick, 3(n-1) multiplications).

    Raises:
        errors.InverseError: some scalar is zero (which one is not said).
    """
    for s in scalars:
        _check(s, SCALAR_BYTES, "scalar")
    n = len(scalars)
    if n == 0:
        return []
    mul = _scalar_mul
    # prefix[i] = s_0 * ... * s_i
    prefix = [scalars[0]]
    buf = _new_buffer(SCALAR_BYTES)
    acc = scalars[0]
    for s in scalars[1:]:
        mul(buf, acc, s)
        acc = buf.raw
        prefix.append(acc)
    inv = _new_buffer(SCALAR_BYTES)
    if _scalar_invert(inv, acc) != 0:
        raise errors.InverseError("a scalar has no inverse")
    running = inv.raw  # (s_0 ... s_i)^-1
    result = [b""] * n
    for i in range(n - 1, 0, -1):
        mul(buf, running, prefix[i - 1])
        result[i] = buf.raw
        mul(buf, running, scalars[i])
        running = buf.raw
    result[0] = running
    return result


def scalar_negate(s: bytes) -> bytes:
    """``-s`` modulo the group order."""
    _check(s, SCALAR_BYTES, "scalar")
    out = _new_buffer(SCALAR_BYTES)
    _scalar_negate(out, s)
    return out.raw


def scalar_add(a: bytes, b: bytes) -> bytes:
    """``a + b`` modulo the group order."""
    _check(a, SCALAR_BYTES, "scalar")
    _check(b, SCALAR_BYTES, "scalar")
    out = _new_buffer(SCALAR_BYTES)
    _scalar_add(out, a, b)
    return out.raw


def scalar_sub(a: bytes, b: bytes) -> bytes:
    """``a - b`` modulo the group order."""
    _check(a, SCALAR_BYTES, "scalar")
    _check(b, SCALAR_BYTES, "scalar")
    out = _new_buffer(SCALAR_BYTES)
    _scalar_sub(out, a, b)
    return out.raw


def scalar_mul(a: bytes, b: bytes) -> bytes:
    """``a * b`` modulo the group order."""
    _check(a, SCALAR_BYTES, "scalar")
    _check(b, SCALAR_BYTES, "scalar")
    out = _new_buffer(SCALAR_BYTES)
    _scalar_mul(out, a, b)
    return out.raw


def scalar_reduce(wide: bytes) -> bytes:
    """A 64-byte little-endian integer reduced modulo the group order."""
    _check(wide, NONREDUCED_SCALAR_BYTES, "wide scalar")
    out = _new_buffer(SCALAR_BYTES)
    _scalar_reduce(out, wide)
    return out.raw
