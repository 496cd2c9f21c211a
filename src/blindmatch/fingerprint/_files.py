"""Opening the files handed in, with OS errors turned into typed, content-free errors.

Every fingerprinting module reads files through here so that a missing file, a directory
or a permission problem is one :class:`~blindmatch.errors.UnreadableMedia` everywhere, with
a message that names the problem (``strerror``) but never the file's bytes.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

from blindmatch.errors import CorruptMedia, UnreadableMedia

__all__ = ["PathLike", "open_binary", "open_source", "read_head", "unreadable"]

PathLike = str | os.PathLike[str]


def unreadable(exc: OSError) -> UnreadableMedia:
    """The typed error for an ``OSError`` met while opening or reading a file.

    Args:
        exc: The error the OS reported.

    Returns:
        An :class:`UnreadableMedia` whose message is the OS reason (e.g. "No such file or
        directory"), without the path's contents.
    """
    reason = exc.strerror or type(exc).__name__
    return UnreadableMedia(f"cannot read the file: {reason}")


def open_binary(path: PathLike) -> BinaryIO:
    """Open ``path`` for binary reading.

    Args:
        path: The file to open.

    Returns:
        The open file; the caller closes it.

    Raises:
        UnreadableMedia: The path is missing, a directory, or not readable.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError("path must be a str or os.PathLike")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise unreadable(exc) from None


def open_source(source: PathLike | bytes) -> BinaryIO:
    """Open a path, or wrap bytes already in memory, for binary reading.

    Raises:
        UnreadableMedia: The path is missing, a directory, or not readable.
        TypeError: ``source`` is neither a path nor bytes.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        return open_binary(source)
    raise TypeError("source must be a path or bytes")


def read_head(handle: BinaryIO, size: int) -> bytes:
    """The first ``size`` bytes of an open file (for content sniffing), the file rewound.

    Raises:
        UnreadableMedia: Reading failed.
        CorruptMedia: The file is empty.
    """
    try:
        head = handle.read(size)
        handle.seek(0)
    except OSError as exc:
        raise unreadable(exc) from None
    if not head:
        raise CorruptMedia("the file is empty")
    return head
