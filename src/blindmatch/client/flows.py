"""The platform client's logic, written once as sans-IO flows (generators of steps).

Theory of operation
-------------------
A flow yields :mod:`~blindmatch.client.steps` and gets their results back; the sync and
async clients only run it (:mod:`blindmatch.client.loops`). The protocol itself is the
embedded :class:`~blindmatch.protocols.PlatformSession`: a flow moves its bytes over HTTP,
keeps the uploads it has not answered yet, and decides what a failure means.

``match``:

1. Fetch the manifest and verify it under the pinned key (:mod:`.manifest`); refuse one
   older than the cache has seen (:class:`~blindmatch.errors.StaleManifest`).
2. For each signal the uploads need: the full index and its deltas from the cache or
   downloaded (resumed with ``Range``), each checked against the manifest (size, SHA-256,
   index digest, key), then the current digest of the set (:func:`~blindmatch.psi.index.
   current_digest`) against the manifest's, else :class:`~blindmatch.errors.
   IndexIntegrityError`.
3. A session: ``Hello``, then evaluation requests of the server's batch size, ``pipeline``
   at a time, then one sampled audit and ``Close``.
4. Whatever stops a session early leaves its unanswered uploads in
   :meth:`PlatformSession.unfinished`; they go to the next session, so no upload is
   dropped. What happens next depends on the failure:

   ========================================  ============================================
   failure                                   next
   ========================================  ============================================
   no answer, 5xx, 503, a lost session       backoff (doubling, jitter), a new session
   429 with a short Retry-After              wait that long, a new session
   429 quota spent (long Retry-After)        :class:`~blindmatch.errors.QuotaExhausted`
   stale index, another key epoch            fetch the manifest and indexes again, retry
   401                                       :class:`~blindmatch.errors.AuthenticationFailed`
   canary, proof, wrong key in the index     the session's typed error (never retried)
   ========================================  ============================================

   ``max_retries`` failures in a row without an answered upload end the call with
   :class:`~blindmatch.errors.ServiceUnavailable`. Every :class:`~blindmatch.errors.
   ClientError` raised by ``match`` carries the :class:`MatchReport` so far in
   ``partial``: the matches found stay true.
5. Before returning, the manifest is fetched once more and matches whose handle it (or
   the manifest used) revokes are dropped: a withdrawal takes effect at once.
6. With a retro store (``ClientOptions(retro=True)``), each session runs with
   ``retain=True`` and its records go to the store as the session ends, with the last
   delta sequence the session's index held and the matches it found
   (:mod:`blindmatch.client.retro` matches them later).

Cache lock. Downloads and the freshness state are written under the cache directory's lock
(:meth:`~blindmatch.client.cache.IndexCache.try_lock`), waited for with short ``Sleep``
steps up to ``lock_timeout``.

Key epochs. The service binds each session to the epoch current when it opened, and
answers it until the epoch retires (the grace period): a session in flight finishes on the
old key. A new session after a rotation gets the new key in ``ServerInfo``; the platform
session refuses it (:class:`~blindmatch.errors.KeyMismatch`) before sending anything, and
the flow fetches the new epoch's manifest and index and goes on.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from nacl.signing import VerifyKey

from blindmatch import errors
from blindmatch.client.cache import Entry, IndexCache
from blindmatch.client.manifest import IndexEntry, Manifest, verify_manifest
from blindmatch.client.options import ClientOptions
from blindmatch.client.results import ClientMatch, ClientStats, MatchReport
from blindmatch.client.retro_store import RetroStore
from blindmatch.client.steps import Download, Request, Response, Send, Sleep, Step
from blindmatch.protocols import Match, PlatformSession, Upload
from blindmatch.protocols.messages import ServerInfo, decode
from blindmatch.protocols.retro import AnyRetroRecord
from blindmatch.psi.index import (
    CompactIndex,
    CompactIndexSet,
    Index,
    IndexKind,
    IndexSet,
    current_digest,
)

__all__ = ["Flow", "Flows", "VERDICTS"]

T = TypeVar("T")
Flow = Generator[Step, Any, T]

VERDICTS = ("actioned", "not_reported_kind")
"""What a platform may say it did with a match (``POST /v1/feedback``)."""

_DONE, _RETRY, _REFRESH = "done", "retry", "refresh"
_LOCK_POLL = 0.05
_SESSIONS = "/v1/match/sessions"
_BINARY = "application/octet-stream"


class _Progress:
    """The state of one ``match`` call across its sessions."""

    def __init__(self, uploads: Sequence[Upload]) -> None:
        self.originals = list(uploads)
        # Internal refs (positions) let one file give several uploads (md5, sha256, pdq)
        # and let two uploads share a caller's ref.
        self.pending: dict[str, Upload] = {
            str(i): replace(u, ref=str(i)) for i, u in enumerate(self.originals)
        }
        self.found: list[tuple[str, Any]] = []  # (internal ref, Match)
        self.tag_hits: dict[str, int] = {}
        self.stats = ClientStats()
        self.failures = 0
        self.manifests: list[Manifest] = []
        self.covered: dict[str, int] = {}  # signal -> last delta sequence of the session's


class Flows:
    """The flows of one client: its configuration, cache and opened indexes.

    Args:
        api_key: the platform's API key (sent as ``Authorization: Bearer``).
        publication_key: the pinned Ed25519 key manifests must be signed with.
        cache: the index cache.
        options: batching, pipelining, audits and retries.
        retro: the retro store ``match`` keeps records in, or ``None`` (no retention).
    """

    def __init__(
        self,
        api_key: str,
        publication_key: VerifyKey,
        cache: IndexCache,
        options: ClientOptions,
        retro: RetroStore | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key or not api_key.isprintable():
            raise errors.InvalidArgument("an API key is a non-empty printable string")
        self._auth = (("Authorization", f"Bearer {api_key.strip()}"),)
        self.publication_key = publication_key
        self.cache = cache
        self.options = options
        self.manifest: Manifest | None = None
        self.retro = retro
        self._opened: dict[bytes, Index | CompactIndex] = {}

    # ------------------------------------------------------------------ HTTP helpers

    def _backoff(self, attempt: int) -> float:
        base = min(self.options.max_backoff, self.options.backoff * (2.0**attempt))
        return float(base * (0.5 + secrets.randbelow(1000) / 2000))

    def _refused(self, answer: Response, what: str) -> errors.ClientError:
        """The typed error of a JSON refusal (the service's text kept out of ``str``)."""
        code, text = "http_error", ""
        try:
            body = json.loads(answer.content)
            code = str(body["error"]["code"])[:64]
            text = str(body["error"]["message"])[:200]
        except (ValueError, KeyError, TypeError):
            code = answer.headers.get("blindmatch-error", code)[:64]
        if answer.status == 401:
            return errors.AuthenticationFailed(
                "the clearinghouse refused the API key", code=code, status=401, peer_text=text
            )
        if answer.status == 429:
            seconds = answer.retry_after()
            return errors.QuotaExhausted(
                "the daily element quota is spent"
                + (f"; it resets in {int(seconds)} s" if seconds is not None else ""),
                retry_after=None if seconds is None else int(seconds),
            )
        return errors.ServiceRefused(
            f"the clearinghouse refused {what}: HTTP {answer.status} {code}",
            code=code,
            status=answer.status,
            peer_text=text,
        )

    def _call(self, request: Request, what: str) -> Flow[Response]:
        """One request, retried on transient failures and short 429s."""
        attempt = 0
        while True:
            answers: tuple[Response, ...] = yield Send((request,))
            answer = answers[0]
            wait = answer.retry_after() if answer.status in (429, 503) else None
            retry = answer.transient or (answer.status == 429 and wait is not None)
            if not retry:
                return answer
            if wait is not None and wait > self.options.max_retry_after:
                raise self._refused(answer, what)
            if attempt >= self.options.max_retries:
                if answer.status == 429:
                    raise self._refused(answer, what)
                raise errors.ServiceUnavailable(
                    f"the clearinghouse did not answer {what} "
                    f"({answer.failure or f'HTTP {answer.status}'}) after {attempt} retries"
                )
            yield Sleep(wait if wait is not None else self._backoff(attempt))
            attempt += 1

    # ------------------------------------------------------------------ manifest, indexes

    def refresh(self) -> Flow[Manifest]:
        """Fetch and verify the current manifest (module docstring, step 1).

        Raises:
            errors.PublicationKeyMismatch, errors.ManifestError, errors.StaleManifest,
            errors.ServiceUnavailable, errors.ServiceRefused.
        """
        answer = yield from self._call(Request("GET", "/v1/index/manifest"), "the manifest")
        if answer.status != 200:
            raise self._refused(answer, "the manifest")
        try:
            body = json.loads(answer.content)
        except ValueError:
            raise errors.ManifestError("the manifest answer is not JSON") from None
        manifest = verify_manifest(body, self.publication_key)
        yield from self.locked()
        try:
            self.cache.check_fresh(bytes(self.publication_key), manifest)
        finally:
            self.cache.unlock()
        self.manifest = manifest
        return manifest

    def locked(self) -> Flow[None]:
        """Take the cache directory's lock, waiting for another client to release it.

        Raises:
            errors.CacheLocked: still held after ``lock_timeout`` seconds.
        """
        waited = 0.0
        while not self.cache.try_lock():
            if waited >= self.options.lock_timeout:
                raise errors.CacheLocked(
                    f"another client held the cache directory's lock for {waited:.0f} s"
                )
            yield Sleep(_LOCK_POLL)
            waited += _LOCK_POLL

    def _file(self, entry: Entry, stats: ClientStats) -> Flow[Index | CompactIndex]:
        """One index or delta file: from the cache, else downloaded and verified."""
        opened = self._opened.get(entry.sha256)
        if opened is not None:
            return opened
        index = self.cache.open(entry)
        if index is None:
            yield from self.locked()
            try:
                # Another client may have downloaded it while this one waited.
                index = self.cache.open(entry)
                if index is None:
                    index = yield from self._download(entry, stats)
            finally:
                self.cache.unlock()
        self._opened[entry.sha256] = index
        return index

    def _download(self, entry: Entry, stats: ClientStats) -> Flow[Index | CompactIndex]:
        """Download ``entry`` into the cache (the lock held), resuming; the verified file."""
        part = self.cache.part(entry)
        attempt = 0
        while True:
            offset = self.cache.resume_offset(entry)
            headers = [("Accept", _BINARY)]
            if offset:
                headers += [
                    ("Range", f"bytes={offset}-"),
                    ("If-Range", f'"{entry.sha256.hex()}"'),
                ]
            step = Download(Request("GET", entry.url, tuple(headers)), part, offset, entry.size)
            answer = yield step
            if answer.status in (200, 206):
                stats.bytes_downloaded += part.stat().st_size - (
                    offset if answer.status == 206 else 0
                )
                try:
                    self.cache.finish(entry)
                    break
                except errors.IndexIntegrityError:
                    if offset == 0 or attempt >= self.options.max_retries:
                        raise
                    # A partial file from an earlier run held other bytes: start over.
            elif not answer.transient:
                raise self._refused(answer, "an index download")
            if attempt >= self.options.max_retries:
                raise errors.ServiceUnavailable("an index download failed after retries")
            stats.retries += 1
            yield Sleep(self._backoff(attempt))
            attempt += 1
        stats.downloads += 1
        index = self.cache.open(entry)
        if index is None:
            raise errors.IndexIntegrityError("a downloaded index does not verify")
        return index

    def _source(
        self, manifest: Manifest, signal: str, stats: ClientStats
    ) -> Flow[Index | IndexSet | CompactIndex | CompactIndexSet]:
        """The full index of ``signal`` with its deltas, checked against the manifest."""
        entry: IndexEntry | None = manifest.indexes.get(signal)
        if entry is None:
            raise errors.InvalidArgument(f"the clearinghouse publishes no {signal} index")
        base = yield from self._file(entry, stats)
        deltas = []
        for delta_entry in manifest.deltas_of(signal):
            deltas.append((yield from self._file(delta_entry, stats)))
        header = base.header
        key = manifest.public_key
        if (
            header.kind is not IndexKind.FULL
            or header.banding.signal != signal
            or header.key_epoch != key.epoch
            or header.key_id != key.key_id
            or any(d.header.kind is not IndexKind.DELTA for d in deltas)
        ):
            raise errors.IndexIntegrityError("an index is not of the manifest's signal or key")
        source: Index | IndexSet | CompactIndex | CompactIndexSet
        try:
            if isinstance(base, CompactIndex):
                # A compact exact index (format version 3): its deltas are compact too.
                compact = [d for d in deltas if isinstance(d, CompactIndex)]
                if len(compact) != len(deltas):
                    raise errors.IndexFormatError("a delta's format differs from its base's")
                source = CompactIndexSet(base, compact) if compact else base
            else:
                banded = [d for d in deltas if isinstance(d, Index)]
                if len(banded) != len(deltas):
                    raise errors.IndexFormatError("a delta's format differs from its base's")
                source = IndexSet(base, banded) if banded else base
            _, digest = current_digest(source)
        except (errors.IndexFormatError, errors.InvalidParameter):
            raise errors.IndexIntegrityError("a delta does not extend its full index") from None
        if digest != entry.current_digest:
            raise errors.IndexIntegrityError("the indexes are not the manifest's current set")
        return source

    # ------------------------------------------------------------------ matching

    def match(self, uploads: Sequence[Upload]) -> Flow[MatchReport]:
        """Match ``uploads`` (module docstring); the report of what was found.

        Raises:
            TypeError: an upload is not an :class:`~blindmatch.protocols.Upload`.
            errors.ClientError: see the module docstring (``partial`` holds the report).
            errors.ProtocolError, errors.VerifyError: a session's typed failure.
        """
        if not all(isinstance(u, Upload) for u in uploads):
            raise TypeError("uploads must be Upload values")
        progress = _Progress(uploads)
        try:
            manifest = yield from self.refresh()
            progress.manifests.append(manifest)
            while progress.pending:
                signals = sorted({u.signal for u in progress.pending.values()})
                sources = []
                for signal in signals:
                    sources.append((yield from self._source(manifest, signal, progress.stats)))
                session = PlatformSession(
                    sources,
                    manifest.public_key,
                    batch_size=self.options.batch_size,
                    canary_interval=self.options.canary_interval,
                    retain=self.retro is not None,
                )
                progress.covered = {
                    s: max((d.sequence for d in manifest.deltas_of(s)), default=0) for s in signals
                }
                waiting = len(progress.pending)
                outcome = yield from self._session(session, progress)
                if outcome == _DONE and len(progress.pending) < waiting:
                    continue
                if outcome == _DONE:
                    outcome = _RETRY  # a session that answered nothing: never loop freely
                progress.failures += 1
                progress.stats.retries += 1
                if progress.failures > self.options.max_retries:
                    raise errors.ServiceUnavailable(
                        f"matching failed {progress.failures} times in a row"
                    )
                if outcome == _REFRESH:
                    progress.stats.manifest_refreshes += 1
                    fresh = yield from self.refresh()
                    if (fresh.epoch, fresh.version) == (manifest.epoch, manifest.version):
                        yield Sleep(self._backoff(progress.failures - 1))
                    manifest = fresh
                    progress.manifests.append(manifest)
                else:
                    yield Sleep(self._backoff(progress.failures - 1))
            latest = yield from self.refresh()
            progress.manifests.append(latest)
        except errors.ClientError as exc:
            exc.partial = self._report(progress)
            raise
        return self._report(progress)

    def _report(self, progress: _Progress) -> MatchReport:
        revoked: set[bytes] = set()
        for manifest in progress.manifests:
            revoked |= manifest.revoked_handles
        matches: list[ClientMatch] = []
        for ref, match in progress.found:
            if bytes(match.handle) in revoked:
                progress.stats.revoked_dropped += 1
                continue
            upload = progress.originals[int(ref)]
            bands = 1 if upload.quality is None else progress.tag_hits.get(ref, 0)
            matches.append(ClientMatch(upload, match.handle, match.variant, bands))
        unfinished = tuple(
            progress.originals[int(ref)] for ref in sorted(progress.pending, key=int)
        )
        last = progress.manifests[-1] if progress.manifests else None
        return MatchReport(
            matches=tuple(matches),
            unfinished=unfinished,
            answered=len(progress.originals) - len(unfinished),
            epoch=last.epoch if last else -1,
            version=last.version if last else 0,
            stats=progress.stats,
        )

    def _session(self, session: PlatformSession, progress: _Progress) -> Flow[str]:
        """One session over HTTP; returns what to do next (module docstring, step 4)."""
        session.add_uploads(progress.pending.values())
        progress.stats.sessions += 1
        found_before = len(progress.found)
        # Records are kept from a session that ended or that the service failed; never from
        # one that failed verification (a canary, a proof, a key): its outputs are suspect.
        trusted = False
        try:
            outcome = yield from self._converse(session, progress)
            trusted = True
            return outcome
        except errors.ClientError:
            trusted = True
            raise
        finally:
            if self.retro is not None and trusted:
                self._retain(session, progress, progress.found[found_before:])
            before = len(progress.pending)
            unfinished = set(session.unfinished())
            progress.pending = {r: u for r, u in progress.pending.items() if r in unfinished}
            if len(progress.pending) < before:
                progress.failures = 0
            for ref, hits in session.stats.tag_hits_per_upload.items():
                progress.tag_hits[ref] = progress.tag_hits.get(ref, 0) + hits
            s, t = session.stats, progress.stats
            t.requests += s.requests
            t.elements_sent += s.elements_sent
            t.pad_elements += s.pad_elements
            t.bytes_sent += s.bytes_sent
            t.bytes_received += s.bytes_received
            t.canaries_matched += s.canaries_matched
            t.audits_verified += s.audits_verified
            t.elements_audited += s.elements_audited

    def _retain(
        self, session: PlatformSession, progress: _Progress, found: list[tuple[str, Any]]
    ) -> None:
        """Keep a session's records in the retro store, under the caller's refs, with the
        matches it found (never reported again by a retro check)."""
        assert self.retro is not None
        originals = progress.originals
        per_signal: dict[str, list[AnyRetroRecord]] = {}
        for record in session.retained:
            ref = originals[int(record.upload_ref)].ref
            per_signal.setdefault(record.signal, []).append(replace(record, upload_ref=ref))
        if not per_signal:
            return
        epoch = next(iter(per_signal.values()))[0].key_epoch
        for old in self.retro.epochs():
            if old < epoch:
                self.retro.forget_epoch(old)  # a new key epoch: the old records are useless
        seen = [
            Match(originals[int(ref)].ref, match.signal, match.handle, match.variant)
            for ref, match in found
        ]
        for signal, records in per_signal.items():
            try:
                self.retro.add(
                    records,
                    covered=progress.covered.get(signal, 0),
                    seen=[m for m in seen if m.signal == signal],
                    evict=True,
                )
            except errors.RetroStoreFull:
                # One session's records alone exceed the bound: the matches stand, these
                # uploads are not kept (counted; a larger retro_max_records keeps them).
                progress.stats.retro_not_kept += len(records)
                continue
            progress.stats.retro_records += len(records)

    def _post(self, path: str, data: bytes) -> Request:
        return Request("POST", path, (*self._auth, ("Content-Type", _BINARY)), data)

    def _converse(self, session: PlatformSession, progress: _Progress) -> Flow[str]:
        (opened,) = yield Send((self._post(_SESSIONS, session.hello()),))
        if opened.transient:
            return _RETRY
        if opened.status in (401, 429):
            return (yield from self._refusal(opened, "the session"))
        if opened.status != 201 or not opened.headers.get("location", "").startswith(
            _SESSIONS + "/"
        ):
            if opened.headers.get("content-type", "").startswith(_BINARY):
                session.receive(opened.content)  # the protocol's refusal: RequestRejected
            raise self._refused(opened, "the session")
        info = decode(opened.content)
        try:
            session.receive(opened.content)
        except errors.CanaryMismatch:
            raise
        except (errors.StaleIndex, errors.KeyMismatch):
            return _REFRESH
        path = opened.headers["location"]
        limit = info.element_limit if isinstance(info, ServerInfo) else 0
        while session.wants_to_send:
            wave: list[Request] = []
            while session.wants_to_send and len(wave) < self.options.pipeline:
                if session.stats.elements_sent + session.batch_size > limit:
                    # The last request of a flush may be smaller: ask the session.
                    try:
                        wave.append(self._post(path, session.next_request()))
                    except errors.LocalProtocolError:
                        if not wave:
                            raise errors.QuotaExhausted(
                                "the daily element quota does not cover these uploads",
                                retry_after=None,
                            ) from None
                        break
                else:
                    wave.append(self._post(path, session.next_request()))
            answers = yield Send(tuple(wave))
            outcome = _DONE
            # Answers first, refusals after: a 429 (another client spent the quota) or an
            # error that ends the session must not discard a batch answered beside it in
            # the same wave (its elements are charged, its matches are the caller's).
            for answer in sorted(answers, key=lambda a: a.status != 200):
                if answer.status == 200:
                    progress.found.extend(
                        (m.upload_ref, m) for m in session.receive(answer.content)
                    )
                elif answer.transient or answer.status == 404:
                    outcome = _RETRY  # no answer, or the session is gone (expired)
                elif answer.status == 409 and answer.headers.get("blindmatch-error") == (
                    "key_mismatch"
                ):
                    outcome = _REFRESH
                elif answer.status in (401, 429):
                    outcome = yield from self._refusal(answer, "an evaluation request")
                else:
                    session.receive(answer.content)  # the protocol's refusal, typed
                    raise self._refused(answer, "an evaluation request")
            if outcome != _DONE:
                return outcome
        yield from self._audit(session, path)
        (closed,) = yield Send((self._post(path, session.close()),))
        if closed.status == 200:
            # Every answer is in: a bad acknowledgement costs nothing.
            with contextlib.suppress(errors.RemoteProtocolError):
                session.receive(closed.content)
        return _DONE

    def _refusal(self, answer: Response, what: str) -> Flow[str]:
        """401 raises; a 429 with a short Retry-After waits and retries, else raises."""
        wait = answer.retry_after()
        if answer.status == 429 and wait is not None and wait <= self.options.max_retry_after:
            yield Sleep(wait)
            return _RETRY
        raise self._refused(answer, what)

    def _audit(self, session: PlatformSession, path: str) -> Flow[None]:
        """One DLEQ proof over a random sample of the answered batches."""
        wanted = min(self.options.audit_batches, len(session.auditable_batches))
        if wanted <= 0:
            return
        request = session.audit_request(session.sample_for_audit(wanted))
        answer = yield from self._call(self._post(path, request), "an audit")
        if answer.status != 200 and not answer.headers.get("content-type", "").startswith(_BINARY):
            raise self._refused(answer, "an audit")
        session.receive(answer.content)  # VerifyError, or the refusal as RequestRejected
