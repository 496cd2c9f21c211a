"""Images and videos to hashes: pure functions over numpy, no cryptography, no I/O beyond
reading the file handed in."""

from __future__ import annotations

from blindmatch.fingerprint.types import (
    Md5Digest,
    PdqFingerprint,
    PdqHash,
    Sha256Digest,
    VideoFingerprint,
    VideoFrame,
)

__all__ = [
    "Md5Digest",
    "PdqFingerprint",
    "PdqHash",
    "Sha256Digest",
    "VideoFingerprint",
    "VideoFrame",
]
