"""A fixed-length byte string with typed construction, hex and bytes round trips.

Shared by :mod:`blindmatch.fingerprint` (hashes, digests) and :mod:`blindmatch.psi`
(report handles), which do not import each other; like :mod:`blindmatch.errors` it sits
below both.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import ClassVar, Self

from blindmatch.errors import InvalidEncoding

__all__ = ["FixedBytes"]

_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True, eq=False)
class FixedBytes:
    """A fixed-length byte string with hex and bytes round trips."""

    value: bytes
    SIZE: ClassVar[int] = 0
    NAME: ClassVar[str] = "value"

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes):
            raise InvalidEncoding(f"{self.NAME} must be bytes")
        if len(self.value) != self.SIZE:
            raise InvalidEncoding(f"{self.NAME} must be {self.SIZE} bytes")

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Build from exactly ``SIZE`` bytes (``bytes``, ``bytearray`` or ``memoryview``).

        Raises:
            TypeError: ``data`` is not bytes-like (``bytes(32)`` of an int would otherwise
                make 32 zero bytes, a valid all-zero hash).
            InvalidEncoding: ``data`` is not ``SIZE`` bytes long.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"{cls.NAME} must be built from bytes, bytearray or memoryview")
        return cls(bytes(data))

    @classmethod
    def from_hex(cls, text: str) -> Self:
        """Build from ``2*SIZE`` hex digits (either case); raises :class:`InvalidEncoding`."""
        if not isinstance(text, str) or len(text) != 2 * cls.SIZE or not _HEX.issuperset(text):
            raise InvalidEncoding(f"{cls.NAME} must be {2 * cls.SIZE} hex digits")
        return cls(bytes.fromhex(text))

    def hex(self) -> str:
        """Lowercase hex, as the reference tools print it."""
        return self.value.hex()

    def __bytes__(self) -> bytes:
        return self.value

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, FixedBytes)
        return hmac.compare_digest(self.value, other.value)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.value))

    def __str__(self) -> str:
        return self.hex()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hex()!r})"
