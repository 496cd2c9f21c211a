"""Strict big-endian readers and writers for the wire messages.

Every read checks the bytes that remain, so a truncated message fails as
:class:`~blindmatch.errors.MessageDecodeError` at the field that is short, never as an
``IndexError`` or a ``struct.error``; :meth:`Reader.finish` rejects trailing bytes, so each
message has exactly one encoding. Error messages name the field, never its bytes.
"""

from __future__ import annotations

import struct

from blindmatch.errors import MessageDecodeError

__all__ = ["Reader", "u8", "u16", "u32", "u64"]

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def u8(value: int) -> bytes:
    """One unsigned byte."""
    return bytes((value,))


def u16(value: int) -> bytes:
    """Two bytes, big-endian (RFC 8017 I2OSP)."""
    return _U16.pack(value)


def u32(value: int) -> bytes:
    """Four bytes, big-endian."""
    return _U32.pack(value)


def u64(value: int) -> bytes:
    """Eight bytes, big-endian."""
    return _U64.pack(value)


class Reader:
    """A cursor over one message's bytes that only moves forward."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self._data) - self._pos

    def take(self, size: int, field: str) -> bytes:
        """The next ``size`` bytes of ``field``.

        Raises:
            MessageDecodeError: fewer than ``size`` bytes remain.
        """
        end = self._pos + size
        if end > len(self._data):
            raise MessageDecodeError(f"message truncated in field {field}")
        chunk = bytes(self._data[self._pos : end])
        self._pos = end
        return chunk

    def u8(self, field: str) -> int:
        """The next unsigned byte."""
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        """The next big-endian 16-bit integer."""
        value: int = _U16.unpack(self.take(2, field))[0]
        return value

    def u32(self, field: str) -> int:
        """The next big-endian 32-bit integer."""
        value: int = _U32.unpack(self.take(4, field))[0]
        return value

    def u64(self, field: str) -> int:
        """The next big-endian 64-bit integer."""
        value: int = _U64.unpack(self.take(8, field))[0]
        return value

    def finish(self) -> None:
        """Require that every byte was read.

        Raises:
            MessageDecodeError: bytes remain after the last field.
        """
        if self._pos != len(self._data):
            raise MessageDecodeError("trailing bytes after the message")
