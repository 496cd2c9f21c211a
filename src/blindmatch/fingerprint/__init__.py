"""Images and videos to hashes: pure functions over numpy, no cryptography, no I/O beyond
reading the file handed in.

The parts: :mod:`.types` (typed hash values), :mod:`.frontend` (the pinned decoder: file to
RGB array, content sniffing), :mod:`.pdq` (the PDQ core), :mod:`.exact` (MD5/SHA-256 of the
bytes), :mod:`.distance` (vectorised Hamming distances), :mod:`.signals` (the signal-type
contract and registry). Videos live in ``blindmatch.fingerprint.video``, imported on demand
because it needs PyAV.

The names below are re-exported lazily (PEP 562 ``__getattr__``): importing
``blindmatch.fingerprint.frontend`` or ``.pdq`` runs this file first, and a command that
only hashes should not pay for the parts it does not use (the signal registry, the
distance kernels). Each name loads its module on first access; type checkers see plain
imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY: dict[str, str] = {
    "BandingSpec": "types",
    "ContentType": "signals",
    "DEFAULT_MAX_PIXELS": "frontend",
    "DIHEDRAL_NAMES": "pdq",
    "ImageHash64": "types",
    "Md5Digest": "types",
    "MediaKind": "frontend",
    "PdqFingerprint": "types",
    "PdqHash": "types",
    "Policy": "frontend",
    "Sha256Digest": "types",
    "SignalRegistry": "signals",
    "SignalType": "signals",
    "VideoFingerprint": "types",
    "VideoFrame": "types",
    "default_registry": "signals",
    "hash_file": "signals",
    "file_digests": "exact",
    "hamming_many_to_many": "distance",
    "hamming_one_to_many": "distance",
    "load_rgb": "frontend",
    "load_rgb_image": "frontend",
    "md5_bytes": "exact",
    "md5_file": "exact",
    "pack_hashes": "distance",
    "pdq_backend": "pdq",
    "pdq_dihedral_from_rgb": "pdq",
    "pdq_from_luma": "pdq",
    "pdq_from_rgb": "pdq",
    "sha256_bytes": "exact",
    "sha256_file": "exact",
    "sniff_file": "frontend",
    "sniff_kind": "frontend",
    "unpack_hashes": "distance",
}
"""Public name -> the submodule that defines it."""


def __getattr__(name: str) -> Any:
    """Import the submodule defining ``name`` on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
