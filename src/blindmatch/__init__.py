"""blindmatch: privacy-preserving matching of reported images and videos.

The recipes, importable from here (``from blindmatch import build_index, PlatformSession``):

- keys: :class:`SecretKey`, :class:`PublicKey`;
- signals and hashing: :func:`default_registry`, :class:`SignalRegistry`,
  :class:`SignalType`, :func:`hash_file`;
- the index: :class:`Reference`, :func:`build_index`, :func:`add_references`,
  :class:`BuiltIndex`, :class:`Index`, :class:`IndexSet`, :func:`merge_indexes`,
  :func:`signal_banding` (the banding of a signal type's index), :func:`index_digest`;
- the sessions: :class:`ClearinghouseSession`, :class:`PlatformSession`, :class:`Upload`,
  :class:`Match`, :class:`SessionPair` (both wired in memory), :class:`ThreadedEvaluator`;
- :class:`BlindmatchError`, the root of every error (the tree: :mod:`blindmatch.errors`).

The RFC-named hazmat functions stay in :mod:`blindmatch.psi.oprf` (and the rest of
:mod:`blindmatch.psi`). Subpackages, in the direction imports run (a test enforces it)::

    cli -> simulate -> protocols -> {psi, fingerprint} -> errors

- :mod:`blindmatch.fingerprint` turns images and videos into hashes (PDQ, vPDQ, MD5,
  SHA-256) on the device that holds them.
- :mod:`blindmatch.psi` is the cryptography: ristretto255, RFC 9497 (V/P)OPRF, the index.
- :mod:`blindmatch.protocols` holds wire messages and sans-IO client/server sessions.

The names are imported on first use (PEP 562), so ``import blindmatch.fingerprint.pdq`` or
the ``blindmatch hash`` command do not pay for the cryptography.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blindmatch.errors import BlindmatchError
    from blindmatch.fingerprint.signals import (
        SignalRegistry,
        SignalType,
        default_registry,
        hash_file,
    )
    from blindmatch.protocols import (
        ClearinghouseSession,
        Match,
        PlatformSession,
        SessionPair,
        Upload,
        index_digest,
        signal_banding,
    )
    from blindmatch.psi.index import (
        BuiltIndex,
        Index,
        IndexSet,
        Reference,
        add_references,
        build_index,
        merge_indexes,
    )
    from blindmatch.psi.keys import PublicKey, SecretKey
    from blindmatch.psi.parallel import ThreadedEvaluator

__version__ = "0.1.0.dev0"

_HOMES: dict[str, str] = {
    "BlindmatchError": "blindmatch.errors",
    "BuiltIndex": "blindmatch.psi.index",
    "ClearinghouseSession": "blindmatch.protocols",
    "Index": "blindmatch.psi.index",
    "IndexSet": "blindmatch.psi.index",
    "Match": "blindmatch.protocols",
    "PlatformSession": "blindmatch.protocols",
    "PublicKey": "blindmatch.psi.keys",
    "Reference": "blindmatch.psi.index",
    "SecretKey": "blindmatch.psi.keys",
    "SessionPair": "blindmatch.protocols",
    "SignalRegistry": "blindmatch.fingerprint.signals",
    "SignalType": "blindmatch.fingerprint.signals",
    "ThreadedEvaluator": "blindmatch.psi.parallel",
    "Upload": "blindmatch.protocols",
    "add_references": "blindmatch.psi.index",
    "build_index": "blindmatch.psi.index",
    "default_registry": "blindmatch.fingerprint.signals",
    "hash_file": "blindmatch.fingerprint.signals",
    "index_digest": "blindmatch.protocols",
    "merge_indexes": "blindmatch.psi.index",
    "signal_banding": "blindmatch.protocols",
}

__all__ = [
    "BlindmatchError",
    "BuiltIndex",
    "ClearinghouseSession",
    "Index",
    "IndexSet",
    "Match",
    "PlatformSession",
    "PublicKey",
    "Reference",
    "SecretKey",
    "SessionPair",
    "SignalRegistry",
    "SignalType",
    "ThreadedEvaluator",
    "Upload",
    "__version__",
    "add_references",
    "build_index",
    "default_registry",
    "hash_file",
    "index_digest",
    "merge_indexes",
    "signal_banding",
]


def __getattr__(name: str) -> Any:
    """Import a recipe name from its home module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'blindmatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
