"""Images and videos to hashes: pure functions over numpy, no cryptography, no I/O beyond
reading the file handed in.

The parts: :mod:`.types` (typed hash values), :mod:`.frontend` (the pinned decoder: file to
RGB array, content sniffing), :mod:`.pdq` (the PDQ core), :mod:`.exact` (MD5/SHA-256 of the
bytes), :mod:`.distance` (vectorised Hamming distances), :mod:`.signals` (the signal-type
contract and registry). Videos live in ``blindmatch.fingerprint.video``, imported on demand
because it needs PyAV.
"""

from __future__ import annotations

from blindmatch.fingerprint.distance import (
    hamming_many_to_many,
    hamming_one_to_many,
    pack_hashes,
    unpack_hashes,
)
from blindmatch.fingerprint.exact import (
    file_digests,
    md5_bytes,
    md5_file,
    sha256_bytes,
    sha256_file,
)
from blindmatch.fingerprint.frontend import (
    DEFAULT_MAX_PIXELS,
    MediaKind,
    Policy,
    load_rgb,
    load_rgb_image,
    sniff_file,
    sniff_kind,
)
from blindmatch.fingerprint.pdq import (
    DIHEDRAL_NAMES,
    pdq_backend,
    pdq_dihedral_from_rgb,
    pdq_from_luma,
    pdq_from_rgb,
)
from blindmatch.fingerprint.signals import (
    ContentType,
    SignalRegistry,
    SignalType,
    default_registry,
    hash_file,
)
from blindmatch.fingerprint.types import (
    BandingSpec,
    ImageHash64,
    Md5Digest,
    PdqFingerprint,
    PdqHash,
    Sha256Digest,
    VideoFingerprint,
    VideoFrame,
)

__all__ = [
    "BandingSpec",
    "ContentType",
    "DEFAULT_MAX_PIXELS",
    "DIHEDRAL_NAMES",
    "ImageHash64",
    "Md5Digest",
    "MediaKind",
    "PdqFingerprint",
    "PdqHash",
    "Policy",
    "Sha256Digest",
    "SignalRegistry",
    "SignalType",
    "VideoFingerprint",
    "VideoFrame",
    "default_registry",
    "file_digests",
    "hamming_many_to_many",
    "hamming_one_to_many",
    "hash_file",
    "load_rgb",
    "load_rgb_image",
    "md5_bytes",
    "md5_file",
    "pack_hashes",
    "pdq_backend",
    "pdq_dihedral_from_rgb",
    "pdq_from_luma",
    "pdq_from_rgb",
    "sha256_bytes",
    "sha256_file",
    "sniff_file",
    "sniff_kind",
    "unpack_hashes",
]
