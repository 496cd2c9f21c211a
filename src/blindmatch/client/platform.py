"""The platform SDK: :class:`PlatformClient` (sync) and :class:`AsyncPlatformClient`.

Both run the same flows (:mod:`blindmatch.client.flows`) with their own loop
(:mod:`blindmatch.client.loops`); they differ only in how bytes move. See docs/client.md
for what a platform trusts and how the cache is laid out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self

import httpx
from nacl.signing import VerifyKey

from blindmatch import __version__, errors
from blindmatch.client.cache import IndexCache, default_cache_dir
from blindmatch.client.flows import VERDICTS, Flow, Flows
from blindmatch.client.loops import run_async, run_sync
from blindmatch.client.manifest import Manifest, parse_publication_key
from blindmatch.client.options import ClientOptions
from blindmatch.client.results import MatchReport, RetroReport
from blindmatch.client.retro import retro_flow
from blindmatch.client.retro_store import RetroStore
from blindmatch.client.steps import Request
from blindmatch.client.videos import VideoMatchReport, match_videos
from blindmatch.fingerprint.types import VideoFingerprint
from blindmatch.protocols import Upload
from blindmatch.psi.kdf import ReportHandle

__all__ = ["AsyncPlatformClient", "PlatformClient", "RETRO_STORE_NAME"]

RETRO_STORE_NAME = "retro.sqlite"
"""The retro store's file name in the cache directory, by default."""


def _base_url(server: str) -> str:
    url = httpx.URL(server)
    if url.scheme not in ("http", "https") or not url.host:
        raise errors.InvalidArgument("the server URL must be http:// or https:// with a host")
    return str(url).rstrip("/")


def _feedback(flows: Flows, handle: ReportHandle | str, verdict: str) -> Flow[str]:
    text = handle.hex() if isinstance(handle, ReportHandle) else str(handle).lower()
    if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
        raise errors.InvalidArgument("a report handle is 32 hex digits")
    if verdict not in VERDICTS:
        raise errors.InvalidArgument(f"verdict must be one of {', '.join(VERDICTS)}")
    body = json.dumps({"handle": text, "verdict": verdict}).encode()
    headers = (*flows._auth, ("Content-Type", "application/json"))
    answer = yield from flows._call(Request("POST", "/v1/feedback", headers, body), "feedback")
    if answer.status != 200:
        raise flows._refused(answer, "the feedback")
    try:
        status = json.loads(answer.content)["status"]
    except (ValueError, KeyError, TypeError):
        raise errors.ServiceRefused(
            "the feedback answer is malformed", code="malformed", status=answer.status
        ) from None
    return str(status)


class _Base:
    """What both clients hold: the flows, built from the arguments (documented on them)."""

    def __init__(
        self,
        server: str,
        *,
        api_key: str,
        publication_key: str | bytes | VerifyKey,
        cache_dir: str | os.PathLike[str] | None = None,
        options: ClientOptions | None = None,
        retro_store: str | os.PathLike[str] | None = None,
    ) -> None:
        self.server = _base_url(server)
        pinned = (
            publication_key
            if isinstance(publication_key, VerifyKey)
            else parse_publication_key(publication_key)
        )
        self.options = options or ClientOptions()
        cache = IndexCache(default_cache_dir() if cache_dir is None else cache_dir)
        store = None
        if self.options.retro:
            path = cache.directory / RETRO_STORE_NAME if retro_store is None else retro_store
            store = RetroStore(path, max_records=self.options.retro_max_records)
        self._flows = Flows(api_key, pinned, cache, self.options, store)

    def _http_options(self) -> dict[str, Any]:
        return {
            "base_url": self.server,
            "timeout": self.options.timeout,
            "headers": {"User-Agent": f"blindmatch/{__version__}"},
            "limits": httpx.Limits(max_connections=self.options.pipeline + 2),
        }

    @property
    def manifest(self) -> Manifest | None:
        """The newest verified manifest (``None`` before the first call)."""
        return self._flows.manifest

    @property
    def cache(self) -> IndexCache:
        """The index cache."""
        return self._flows.cache

    @property
    def retro_store(self) -> RetroStore | None:
        """The retro store (``ClientOptions(retro=True)``), or ``None``."""
        return self._flows.retro

    def _retro(self) -> Flow[RetroReport]:
        if self._flows.retro is None:
            raise errors.InvalidArgument(
                "retro-matching is off: make the client with ClientOptions(retro=True)"
            )
        return retro_flow(self._flows, self._flows.retro)

    def _close_store(self) -> None:
        if self._flows.retro is not None:
            self._flows.retro.close()
            self._flows.retro = None


class PlatformClient(_Base):
    """A platform's client of a clearinghouse, synchronous (httpx).

    Args:
        server: the clearinghouse's base URL (``https://ch.example``).
        api_key: the platform's API key (``blindmatch admin platform create`` prints it).
        publication_key: the clearinghouse's Ed25519 publication key, pinned: hex, 32 raw
            bytes or a ``nacl.signing.VerifyKey``. Get it from the operator (``GET
            /v1/keys`` shows what the server says it is).
        cache_dir: the index cache (default ``~/.cache/blindmatch``).
        options: batching, pipelining, audits, retries, retro-matching
            (:class:`ClientOptions`).
        retro_store: the retro store's SQLite file when ``options.retro`` (default
            ``<cache_dir>/retro.sqlite``); docs/protocol.md 7.5 says what it holds.

    Raises:
        errors.InvalidArgument: a bad URL or API key.
        errors.InvalidEncoding: a publication key that is not 32 bytes.
        OSError: the cache directory or the retro store cannot be created.

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        server: str,
        *,
        api_key: str,
        publication_key: str | bytes | VerifyKey,
        cache_dir: str | os.PathLike[str] | None = None,
        options: ClientOptions | None = None,
        retro_store: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(
            server,
            api_key=api_key,
            publication_key=publication_key,
            cache_dir=cache_dir,
            options=options,
            retro_store=retro_store,
        )
        self._http = httpx.Client(**self._http_options())
        self._pool = ThreadPoolExecutor(self.options.pipeline, thread_name_prefix="blindmatch")

    def refresh(self) -> Manifest:
        """Fetch and verify the current manifest (see :mod:`blindmatch.client.flows`)."""
        return run_sync(self._flows.refresh(), self._http, self._pool)

    def match(self, uploads: Iterable[Upload]) -> MatchReport:
        """Match uploads privately; every upload ends matched, answered or unfinished.

        Args:
            uploads: :class:`~blindmatch.protocols.Upload` values (refs need not be unique).

        Returns:
            The matches (revoked handles dropped), the unfinished uploads, the counts.

        Raises:
            errors.ClientError: the service failed or refused, or a manifest or index did
                not verify (``partial`` holds the report so far).
            errors.ProtocolError, errors.VerifyError: a session's typed failure (a canary, a
                proof, a key).
        """
        return run_sync(self._flows.match(list(uploads)), self._http, self._pool)

    def match_videos(
        self,
        videos: Iterable[tuple[str, VideoFingerprint]],
        uploads: Iterable[Upload] = (),
    ) -> VideoMatchReport:
        """Match videos privately by vPDQ (and other uploads in the same sessions).

        Args:
            videos: ``(ref, fingerprint)`` pairs: the caller's ref of each video and its
                vPDQ fingerprint (``blindmatch.hash_file(path, "vpdq")``).
            uploads: other :class:`~blindmatch.protocols.Upload` values (md5, sha256, pdq).

        Returns:
            Per video, the reported videos it matches under the vPDQ rule (handle, query
            and compared shares); the other uploads' report (:mod:`blindmatch.client.videos`).

        Raises:
            TypeError: a video is not a ``(str, VideoFingerprint)`` pair.
            errors.InvalidArgument: the clearinghouse publishes no ``vpdq`` index.
            errors.ClientError, errors.ProtocolError, errors.VerifyError: as :meth:`match`.
        """
        flow = match_videos(self._flows, list(videos), list(uploads))
        return run_sync(flow, self._http, self._pool)

    def feedback(self, handle: ReportHandle | str, verdict: str) -> str:
        """Say what the platform did with a match (``actioned`` or ``not_reported_kind``);
        returns the report's state the service answers.

        Raises:
            errors.InvalidArgument: a bad handle or verdict.
            errors.ServiceRefused: the service refused it (unknown handle, bad key).
        """
        return run_sync(_feedback(self._flows, handle, verdict), self._http, self._pool)

    def retro_matches(self) -> RetroReport:
        """Past uploads that match reports published since they were matched, found
        locally from the retro store: fetches the manifest and the new delta (or rebuilt)
        index files, never an evaluation request (:mod:`blindmatch.client.retro`).

        Returns:
            The new matches (by the refs the uploads had), each reported once.

        Raises:
            errors.InvalidArgument: the client was made without ``ClientOptions(retro=True)``.
            errors.ClientError: the manifest or an index did not verify, the service failed,
                the cache lock stayed held.
        """
        return run_sync(self._retro(), self._http, self._pool)

    def close(self) -> None:
        """Close the connections, the threads and the retro store."""
        self._http.close()
        self._pool.shutdown(wait=True)
        self._close_store()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncPlatformClient(_Base):
    """The same client on ``httpx.AsyncClient`` (arguments as :class:`PlatformClient`).

    The protocol's own work (blinding, lookups) runs on the event loop's thread between
    requests; a server with other duties may run the client in a worker thread instead.
    """

    def __init__(
        self,
        server: str,
        *,
        api_key: str,
        publication_key: str | bytes | VerifyKey,
        cache_dir: str | os.PathLike[str] | None = None,
        options: ClientOptions | None = None,
        retro_store: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(
            server,
            api_key=api_key,
            publication_key=publication_key,
            cache_dir=cache_dir,
            options=options,
            retro_store=retro_store,
        )
        self._http = httpx.AsyncClient(**self._http_options())

    async def refresh(self) -> Manifest:
        """As :meth:`PlatformClient.refresh`."""
        return await run_async(self._flows.refresh(), self._http)

    async def match(self, uploads: Iterable[Upload]) -> MatchReport:
        """As :meth:`PlatformClient.match`."""
        return await run_async(self._flows.match(list(uploads)), self._http)

    async def match_videos(
        self,
        videos: Iterable[tuple[str, VideoFingerprint]],
        uploads: Iterable[Upload] = (),
    ) -> VideoMatchReport:
        """As :meth:`PlatformClient.match_videos`."""
        flow = match_videos(self._flows, list(videos), list(uploads))
        return await run_async(flow, self._http)

    async def feedback(self, handle: ReportHandle | str, verdict: str) -> str:
        """As :meth:`PlatformClient.feedback`."""
        return await run_async(_feedback(self._flows, handle, verdict), self._http)

    async def retro_matches(self) -> RetroReport:
        """As :meth:`PlatformClient.retro_matches`."""
        return await run_async(self._retro(), self._http)

    async def aclose(self) -> None:
        """Close the connections and the retro store."""
        await self._http.aclose()
        self._close_store()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
