"""Opening the files handed in, with OS errors turned into typed, content-free errors.

Every fingerprinting module reads files through here so that a missing file, a directory
or a permission problem is one :class:`~blindmatch.errors.UnreadableMedia` everywhere, with
a message that names the problem (``strerror``) but never the file's bytes.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from blindmatch.errors import UnreadableMedia

__all__ = ["PathLike", "open_binary", "unreadable"]

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
