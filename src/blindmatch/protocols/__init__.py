"""Wire messages and sans-IO sessions of the private matching protocol: bytes in, bytes
out; sockets, files and clocks live in thin adapters around them.

- :mod:`blindmatch.protocols.messages`: the versioned wire encodings (docs/protocol.md).
- :class:`ClearinghouseSession`: the server side (validate, evaluate, count, prove).
- :class:`PlatformSession`: the client side (blind, pad, finalize, look up, audit).
"""

from __future__ import annotations

from blindmatch.protocols.clearinghouse import (
    ClearinghouseSession,
    ClearinghouseState,
    ClearinghouseStats,
)
from blindmatch.protocols.indexes import index_digest
from blindmatch.protocols.messages import IndexDigest, decode
from blindmatch.protocols.platform import (
    MIN_PDQ_QUALITY,
    Match,
    PlatformSession,
    PlatformState,
    PlatformStats,
    Upload,
)

__all__ = [
    "ClearinghouseSession",
    "ClearinghouseState",
    "ClearinghouseStats",
    "IndexDigest",
    "MIN_PDQ_QUALITY",
    "Match",
    "PlatformSession",
    "PlatformState",
    "PlatformStats",
    "Upload",
    "decode",
    "index_digest",
]
