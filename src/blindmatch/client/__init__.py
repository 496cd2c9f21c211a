"""The client side over HTTP (extra ``client``): the platform SDK, and the reporting tools in
:mod:`blindmatch.client.reporting`.

- :class:`PlatformClient` / :class:`AsyncPlatformClient`: ``match(uploads)``,
  ``match_videos(videos, uploads)`` (private vPDQ, :class:`VideoMatchReport`),
  ``feedback(handle, verdict)``, ``refresh()``, ``retro_matches()``; the same flows, sync
  or async.
- :class:`MatchReport`, :class:`ClientMatch`, :class:`ClientStats`: what ``match`` gives;
  :class:`RetroReport`: what ``retro_matches`` gives.
- :class:`ClientOptions`: batching, pipelining, audits, retries, retro-matching.
- :class:`IndexCache`, :class:`Manifest`, :class:`RetroStore`: the verified local state.

The protocol is :class:`blindmatch.protocols.PlatformSession`, embedded; this package
moves its bytes, verifies what the clearinghouse publishes and keeps the cache
(docs/client.md). Retro-matching keeps past uploads' per-band tags and pads in a local
SQLite store and matches them against later deltas without asking the clearinghouse
(:mod:`blindmatch.client.retro`).
"""

from __future__ import annotations

from blindmatch.client.cache import IndexCache, default_cache_dir
from blindmatch.client.manifest import Manifest, parse_publication_key, verify_manifest
from blindmatch.client.options import ClientOptions
from blindmatch.client.platform import AsyncPlatformClient, PlatformClient
from blindmatch.client.results import ClientMatch, ClientStats, MatchReport, RetroReport
from blindmatch.client.retro_store import RetroStore
from blindmatch.client.videos import VideoMatchReport

__all__ = [
    "AsyncPlatformClient",
    "ClientMatch",
    "ClientOptions",
    "ClientStats",
    "IndexCache",
    "Manifest",
    "MatchReport",
    "PlatformClient",
    "RetroReport",
    "RetroStore",
    "VideoMatchReport",
    "default_cache_dir",
    "parse_publication_key",
    "verify_manifest",
]
