"""Exact hashes of a file's bytes: MD5 (what NCMEC's hash sharing accepts) and SHA-256.

Files are streamed in :data:`CHUNK_SIZE` pieces, so memory stays flat for any file size, and
:func:`file_digests` computes both digests in one pass for callers (the CLI) that need both.
MD5 is requested with ``usedforsecurity=False``: it identifies known files, it does not
protect anything, and FIPS-mode Pythons refuse it otherwise.
"""

from __future__ import annotations

import hashlib

from blindmatch.fingerprint._files import PathLike, open_binary, unreadable
from blindmatch.fingerprint.types import Md5Digest, Sha256Digest

__all__ = [
    "CHUNK_SIZE",
    "file_digests",
    "md5_bytes",
    "md5_file",
    "sha256_bytes",
    "sha256_file",
]

CHUNK_SIZE = 1 << 20
"""Bytes read per step (1 MiB): large enough that the hash, not the syscalls, dominates."""


def _md5() -> hashlib._Hash:
    return hashlib.md5(usedforsecurity=False)


def md5_bytes(data: bytes) -> Md5Digest:
    """MD5 of ``data``.

    Args:
        data: The bytes to hash (``bytes``, ``bytearray`` or ``memoryview``).

    Returns:
        The 16-byte digest as an :class:`Md5Digest`.
    """
    h = _md5()
    h.update(data)
    return Md5Digest(h.digest())


def sha256_bytes(data: bytes) -> Sha256Digest:
    """SHA-256 of ``data``.

    Args:
        data: The bytes to hash.

    Returns:
        The 32-byte digest as a :class:`Sha256Digest`.
    """
    return Sha256Digest(hashlib.sha256(data).digest())


def file_digests(path: PathLike) -> tuple[Md5Digest, Sha256Digest]:
    """MD5 and SHA-256 of a file's bytes, read once.

    Args:
        path: The file to hash.

    Returns:
        ``(md5, sha256)``.

    Raises:
        UnreadableMedia: The file is missing, a directory, or cannot be read.
    """
    md5, sha256 = _md5(), hashlib.sha256()
    with open_binary(path) as handle:
        try:
            while chunk := handle.read(CHUNK_SIZE):
                md5.update(chunk)
                sha256.update(chunk)
        except OSError as exc:
            raise unreadable(exc) from None
    return Md5Digest(md5.digest()), Sha256Digest(sha256.digest())


def _file_digest(path: PathLike, h: hashlib._Hash) -> bytes:
    with open_binary(path) as handle:
        try:
            while chunk := handle.read(CHUNK_SIZE):
                h.update(chunk)
        except OSError as exc:
            raise unreadable(exc) from None
    return h.digest()


def md5_file(path: PathLike) -> Md5Digest:
    """MD5 of a file's bytes, streamed.

    Args:
        path: The file to hash.

    Returns:
        The file's :class:`Md5Digest`.

    Raises:
        UnreadableMedia: The file is missing, a directory, or cannot be read.
    """
    return Md5Digest(_file_digest(path, _md5()))


def sha256_file(path: PathLike) -> Sha256Digest:
    """SHA-256 of a file's bytes, streamed.

    Args:
        path: The file to hash.

    Returns:
        The file's :class:`Sha256Digest`.

    Raises:
        UnreadableMedia: The file is missing, a directory, or cannot be read.
    """
    return Sha256Digest(_file_digest(path, hashlib.sha256()))
