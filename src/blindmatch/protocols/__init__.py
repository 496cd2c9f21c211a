"""Wire messages and sans-IO sessions of the private matching protocol: bytes in, bytes
out; sockets, files and clocks live in thin adapters around them.

- :mod:`blindmatch.protocols.messages`: the versioned wire encodings (docs/protocol.md).
- :class:`ClearinghouseSession`: the server side (validate, evaluate, count, prove).
- :class:`PlatformSession`: the client side (blind, pad, finalize, look up, audit).
- :class:`SessionPair`: the two wired together in memory (simulation, tests, examples).
- :func:`index_digest`, :func:`signal_banding`: what an index is called on the wire, and
  the banding an index of a signal type is built with.
- :class:`RetroRecord`, :class:`CompactRetroRecord`, :func:`retro_matches`: what a
  retaining session keeps of past uploads (banded or compact lookups), matched locally
  against a later delta (:mod:`blindmatch.protocols.retro`).
- :class:`VideoMatcher`, :func:`video_references`: private vPDQ matching, the vPDQ rule
  one layer above the platform session (:mod:`blindmatch.protocols.video`).
"""

from __future__ import annotations

from blindmatch.protocols.clearinghouse import (
    ClearinghouseSession,
    ClearinghouseState,
    ClearinghouseStats,
)
from blindmatch.protocols.indexes import index_digest
from blindmatch.protocols.messages import IndexDigest, decode
from blindmatch.protocols.pair import SessionPair, TranscriptEntry
from blindmatch.protocols.platform import (
    Match,
    PlatformSession,
    PlatformState,
    PlatformStats,
    Upload,
)
from blindmatch.protocols.retro import CompactRetroRecord, RetroRecord, retro_matches
from blindmatch.protocols.signals import signal_banding
from blindmatch.protocols.video import VideoMatcher, VideoReportMatch, video_references

__all__ = [
    "ClearinghouseSession",
    "ClearinghouseState",
    "ClearinghouseStats",
    "CompactRetroRecord",
    "IndexDigest",
    "Match",
    "PlatformSession",
    "PlatformState",
    "PlatformStats",
    "RetroRecord",
    "SessionPair",
    "TranscriptEntry",
    "Upload",
    "VideoMatcher",
    "VideoReportMatch",
    "decode",
    "index_digest",
    "retro_matches",
    "signal_banding",
    "video_references",
]
