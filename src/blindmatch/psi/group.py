"""The ristretto255 prime-order group (RFC 9496) as typed values: ``Element`` and ``Scalar``.

Both are small immutable wrappers around their 32-byte canonical encodings, validated once
on construction so that every function taking an ``Element`` can rely on it being a
canonical, non-identity group element, and every ``Scalar`` a canonical integer below the
group order. Values produced by libsodium itself (products, sums, derived elements) are
canonical by construction and skip re-validation.

Elements are public (they travel on the wire): ``repr`` shows them and they hash. Scalars
are secrets in almost every use (keys, blinds): ``repr`` is redacted, they do not hash and
refuse to be pickled. Equality of both is constant-time (``hmac.compare_digest``).

Operators: ``scalar * element`` and ``element * scalar`` multiply, ``scalar * scalar``,
``+``, ``-`` and unary ``-`` are arithmetic modulo the group order, ``element + element`` and
``element - element`` are the group law (raising ``InvalidElement`` on an identity result).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Final, NoReturn, final, overload

from blindmatch import errors
from blindmatch.psi import _sodium

__all__ = [
    "ELEMENT_BYTES",
    "Element",
    "GENERATOR",
    "ORDER",
    "SCALAR_BYTES",
    "Scalar",
    "decode_elements",
    "encode_elements",
]

ELEMENT_BYTES: Final = _sodium.ELEMENT_BYTES
SCALAR_BYTES: Final = _sodium.SCALAR_BYTES
#: The order of the ristretto255 group, 2^252 + 27742317777372353535851937790883648493.
ORDER: Final = 2**252 + 27742317777372353535851937790883648493

_ZERO: Final = bytes(SCALAR_BYTES)
_ONE: Final = (1).to_bytes(SCALAR_BYTES, "little")


def _require_bytes(data: object, what: str) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"{what} must be bytes")


@final
class Element:
    """A ristretto255 group element other than the identity, held as its canonical encoding.

    Construct with :meth:`from_bytes` (validates) or get one from group operations.
    """

    __slots__ = ("_encoding",)
    _encoding: bytes

    def __init__(self, encoding: bytes) -> None:
        """Validate and wrap a 32-byte encoding (same as :meth:`from_bytes`).

        Raises:
            TypeError: ``encoding`` is not bytes-like.
            errors.InvalidElement: wrong length, non-canonical, not a point, or identity.
        """
        data = _require_bytes(encoding, "element encoding")
        if len(data) != ELEMENT_BYTES:
            raise errors.InvalidElement(f"an element encoding is {ELEMENT_BYTES} bytes")
        if not _sodium.is_valid_point(data):
            raise errors.InvalidElement("not a canonical ristretto255 encoding")
        if data == _sodium.IDENTITY:  # the identity is public: no need for constant time
            raise errors.InvalidElement("the identity element is not allowed")
        object.__setattr__(self, "_encoding", data)

    @classmethod
    def from_bytes(cls, data: bytes) -> Element:
        """Decode a canonical, non-identity element (RFC 9496 4.3.1, RFC 9497 DeserializeElement).

        Args:
            data: 32 bytes.

        Returns:
            The element.

        Raises:
            TypeError: ``data`` is not bytes-like.
            errors.InvalidElement: wrong length, non-canonical, not a point, or identity.
        """
        return cls(data)

    @classmethod
    def _trusted(cls, data: bytes) -> Element:
        """Wrap an encoding libsodium produced (canonical and non-identity by construction)."""
        element = object.__new__(cls)
        object.__setattr__(element, "_encoding", data)
        return element

    @classmethod
    def generator(cls) -> Element:
        """The conventional generator G of RFC 9496."""
        return GENERATOR

    def __bytes__(self) -> bytes:
        return self._encoding

    def hex(self) -> str:
        """The encoding as lowercase hex (elements are public)."""
        return self._encoding.hex()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Element):
            return NotImplemented
        return hmac.compare_digest(self._encoding, other._encoding)

    def __hash__(self) -> int:
        return hash((Element, self._encoding))

    def __repr__(self) -> str:
        return f"Element({self._encoding.hex()})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Element is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Element is immutable")

    def __add__(self, other: Element) -> Element:
        if not isinstance(other, Element):
            return NotImplemented
        total = _sodium.add(self._encoding, other._encoding)
        if total == _sodium.IDENTITY:
            raise errors.InvalidElement("the sum is the identity element")
        return Element._trusted(total)

    def __sub__(self, other: Element) -> Element:
        if not isinstance(other, Element):
            return NotImplemented
        difference = _sodium.sub(self._encoding, other._encoding)
        if difference == _sodium.IDENTITY:
            raise errors.InvalidElement("the difference is the identity element")
        return Element._trusted(difference)

    def __mul__(self, scalar: Scalar) -> Element:
        if not isinstance(scalar, Scalar):
            return NotImplemented
        return scalar * self

    def __rmul__(self, scalar: Scalar) -> Element:
        if not isinstance(scalar, Scalar):
            return NotImplemented
        return scalar * self


@final
class Scalar:
    """An integer modulo the ristretto255 group order, held as 32 bytes little-endian.

    Scalars are usually secrets (keys, blinds): ``repr`` is redacted, ``hash`` and pickling
    are refused, comparison is constant-time. Zero is rejected when decoding unless the
    caller allows it; arithmetic results may be zero (check :meth:`is_zero`).
    """

    __slots__ = ("_encoding",)
    _encoding: bytes

    def __init__(self, encoding: bytes, *, allow_zero: bool = False) -> None:
        """Validate and wrap a 32-byte little-endian encoding (same as :meth:`from_bytes`).

        Raises:
            TypeError: ``encoding`` is not bytes-like.
            errors.InvalidScalar: wrong length, not below the group order, or zero when
                ``allow_zero`` is false.
        """
        data = _require_bytes(encoding, "scalar encoding")
        if len(data) != SCALAR_BYTES:
            raise errors.InvalidScalar(f"a scalar encoding is {SCALAR_BYTES} bytes")
        # The comparison with the public order leaks at most whether a secret is canonical,
        # which every valid secret is.
        if int.from_bytes(data, "little") >= ORDER:
            raise errors.InvalidScalar("scalar is not below the group order")
        if not allow_zero and hmac.compare_digest(data, _ZERO):
            raise errors.InvalidScalar("scalar must not be zero")
        object.__setattr__(self, "_encoding", data)

    @classmethod
    def from_bytes(cls, data: bytes, *, allow_zero: bool = False) -> Scalar:
        """Decode a canonical scalar (RFC 9497 DeserializeScalar).

        Args:
            data: 32 bytes, little-endian, below the group order.
            allow_zero: accept the zero scalar (never for keys or blinds).

        Returns:
            The scalar.

        Raises:
            TypeError: ``data`` is not bytes-like.
            errors.InvalidScalar: wrong length, not canonical, or a forbidden zero.
        """
        return cls(data, allow_zero=allow_zero)

    @classmethod
    def from_int(cls, value: int, *, allow_zero: bool = False) -> Scalar:
        """The scalar ``value mod order`` (for tests and public constants, not secrets).

        Raises:
            errors.InvalidScalar: the value is zero modulo the order and zero is not allowed.
        """
        return cls((value % ORDER).to_bytes(SCALAR_BYTES, "little"), allow_zero=allow_zero)

    @classmethod
    def random(cls) -> Scalar:
        """A uniformly random non-zero scalar from libsodium's CSPRNG (RFC 9497 RandomScalar)."""
        return cls._trusted(_sodium.scalar_random())

    @classmethod
    def reduce(cls, wide: bytes) -> Scalar:
        """A 64-byte little-endian integer reduced modulo the order (may be zero).

        Raises:
            errors.InvalidEncoding: ``wide`` is not 64 bytes.
        """
        return cls._trusted(_sodium.scalar_reduce(_require_bytes(wide, "wide scalar")))

    @classmethod
    def _trusted(cls, data: bytes) -> Scalar:
        """Wrap 32 bytes libsodium produced (canonical by construction)."""
        scalar = object.__new__(cls)
        object.__setattr__(scalar, "_encoding", data)
        return scalar

    def __bytes__(self) -> bytes:
        return self._encoding

    def is_zero(self) -> bool:
        """True for the zero scalar (constant-time)."""
        return hmac.compare_digest(self._encoding, _ZERO)

    def invert(self) -> Scalar:
        """The multiplicative inverse (RFC 9497 ScalarInverse).

        Raises:
            errors.InverseError: the scalar is zero.
        """
        return Scalar._trusted(_sodium.scalar_invert(self._encoding))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scalar):
            return NotImplemented
        return hmac.compare_digest(self._encoding, other._encoding)

    __hash__ = None  # type: ignore[assignment]  # secrets are not dictionary keys

    def __repr__(self) -> str:
        return "Scalar(<redacted>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("scalars are secrets and are not pickled; use blindmatch.psi.keys")

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Scalar is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Scalar is immutable")

    def __neg__(self) -> Scalar:
        return Scalar._trusted(_sodium.scalar_negate(self._encoding))

    def __add__(self, other: Scalar) -> Scalar:
        if not isinstance(other, Scalar):
            return NotImplemented
        return Scalar._trusted(_sodium.scalar_add(self._encoding, other._encoding))

    def __sub__(self, other: Scalar) -> Scalar:
        if not isinstance(other, Scalar):
            return NotImplemented
        return Scalar._trusted(_sodium.scalar_sub(self._encoding, other._encoding))

    @overload
    def __mul__(self, other: Scalar) -> Scalar: ...
    @overload
    def __mul__(self, other: Element) -> Element: ...
    def __mul__(self, other: Scalar | Element) -> Scalar | Element:
        if isinstance(other, Scalar):
            return Scalar._trusted(_sodium.scalar_mul(self._encoding, other._encoding))
        if isinstance(other, Element):
            if self.is_zero():
                raise errors.InvalidScalar("multiplying by zero gives the identity")
            return Element._trusted(_sodium.scalarmult(self._encoding, other._encoding))
        return NotImplemented

    def multiply_base(self) -> Element:
        """``self * G`` (RFC 9497 ScalarMultGen).

        Raises:
            errors.InvalidScalar: the scalar is zero.
        """
        return Element._trusted(_sodium.scalarmult_base(self._encoding))


GENERATOR: Final = Element._trusted(_sodium.scalarmult_base(_ONE))


def decode_elements(data: bytes) -> list[Element]:
    """Decode a concatenation of element encodings, validating each.

    Args:
        data: ``32 * n`` bytes.

    Returns:
        The ``n`` elements in order.

    Raises:
        TypeError: ``data`` is not bytes-like.
        errors.InvalidElement: the length is not a multiple of 32, or some encoding is
            invalid (the message names its index, never its bytes).
    """
    raw = _require_bytes(data, "element batch")
    if len(raw) % ELEMENT_BYTES:
        raise errors.InvalidElement("element batch length is not a multiple of 32")
    result = []
    for index in range(0, len(raw), ELEMENT_BYTES):
        try:
            result.append(Element(raw[index : index + ELEMENT_BYTES]))
        except errors.InvalidElement:
            raise errors.InvalidElement(
                f"element {index // ELEMENT_BYTES} of the batch is invalid"
            ) from None
    return result


def encode_elements(elements: Sequence[Element]) -> bytes:
    """The concatenation of the elements' encodings (inverse of :func:`decode_elements`)."""
    return b"".join([e._encoding for e in elements])
