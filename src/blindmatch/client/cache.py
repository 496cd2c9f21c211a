"""The local index cache: content-addressed files, verified on every open.

Theory of operation
-------------------
Layout of the cache directory (docs/client.md)::

    indexes/<sha256>.idx     a complete index or delta file, named by its SHA-256 (hex)
    partial/<sha256>.part    a download in progress (resumed with Range on the next try)
    state.json               per publication key, the newest (epoch, version) verified

Files are named by content, so a file is reused by every manifest that names it (a full
index keeps its name while deltas are added; a platform downloads only the new deltas),
and two publications never overwrite each other. A download goes to ``partial/``; only
once its size and SHA-256 are those of the signed manifest is it flushed to disk and
renamed into ``indexes/`` (``os.replace``, atomic), so ``indexes/`` holds only verified
files. ``state.json`` is rewritten the same way (temporary file, fsync, rename).

Trust. The cache is local storage, not a root of trust: the signed manifest is. Every
open of a cached file checks it again (:meth:`~blindmatch.psi.index.Index.open` verifies
the header digest over the whole file, which must be the manifest's ``index_digest``).
A cached file that fails (a disk fault, or someone edited it) is deleted and downloaded
again, and the new download is verified like any other: tampering with the cache can
cost a download, never a silent "no match". A *download* that fails verification is a
:class:`~blindmatch.errors.IndexIntegrityError` (the server or the network sent another
file than the one it signed).

Lock. Two clients sharing a directory (processes, or threads of one) would race on a
partial file and on ``state.json``. Whatever writes takes ``lock`` first: an exclusive
``fcntl.flock`` on that file (held by the open file, so a killed process never leaves it
held) plus a thread lock for clients of one process. :meth:`IndexCache.try_lock` never
blocks; the SDK's flows wait for it between short sleeps (so the async client never
blocks its event loop) up to ``ClientOptions.lock_timeout``, then raise
:class:`~blindmatch.errors.CacheLocked`. Reading verified files needs no lock (a file in
``indexes/`` is replaced atomically, and verified on every open).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import threading
from pathlib import Path

from blindmatch.client.manifest import DeltaEntry, IndexEntry, Manifest
from blindmatch.errors import IndexFormatError, IndexIntegrityError, StaleManifest
from blindmatch.psi.index import CompactIndex, Index, open_index

__all__ = ["IndexCache", "default_cache_dir"]

Entry = IndexEntry | DeltaEntry


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/blindmatch`` (``~/.cache/blindmatch`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "blindmatch"


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


class IndexCache:
    """The cache directory of one platform (module docstring).

    Args:
        directory: created (mode 0700) when missing.

    Raises:
        OSError: the directory cannot be created.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._indexes = self.directory / "indexes"
        self._partial = self.directory / "partial"
        for folder in (self.directory, self._indexes, self._partial):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_path = self.directory / "lock"
        self._thread_lock = threading.Lock()
        self._lock_fd: int | None = None

    def try_lock(self) -> bool:
        """Take the directory's write lock if free (module docstring); never blocks.

        Returns:
            ``True`` when taken (release it with :meth:`unlock`), ``False`` when another
            client, in this process or another, holds it.
        """
        if not self._thread_lock.acquire(blocking=False):
            return False
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except BaseException:
            self._thread_lock.release()
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self._thread_lock.release()
            return False
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        """Release the lock :meth:`try_lock` took."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
            self._thread_lock.release()

    def path(self, entry: Entry) -> Path:
        """Where the complete file of ``entry`` lives."""
        return self._indexes / f"{entry.sha256.hex()}.idx"

    def part(self, entry: Entry) -> Path:
        """Where the download of ``entry`` in progress lives."""
        return self._partial / f"{entry.sha256.hex()}.part"

    def resume_offset(self, entry: Entry) -> int:
        """Bytes of ``entry`` already downloaded (0 when none, or when the part is too long)."""
        part = self.part(entry)
        try:
            size = part.stat().st_size
        except FileNotFoundError:
            return 0
        if size >= entry.size:
            part.unlink()
            return 0
        return size

    def open(self, entry: Entry) -> Index | CompactIndex | None:
        """The cached file of ``entry``, memory-mapped and verified; ``None`` when absent.

        A banded index opens as :class:`~blindmatch.psi.index.Index`, a compact exact index
        (format version 3) as :class:`~blindmatch.psi.index.CompactIndex`; either is
        verified the same way (its header digest, and the manifest's digest, size and
        format version). A cached file that fails verification is deleted (module
        docstring) and ``None`` returned, so the caller downloads it again.
        """
        path = self.path(entry)
        if not path.is_file():
            return None
        try:
            index = open_index(path)
        except IndexFormatError:
            path.unlink(missing_ok=True)
            return None
        version = 3 if isinstance(index, CompactIndex) else index.header.version
        if entry.format_version is not None and version != entry.format_version:
            path.unlink(missing_ok=True)
            return None
        if index.digest != entry.index_digest or path.stat().st_size != entry.size:
            path.unlink(missing_ok=True)
            return None
        return index

    def finish(self, entry: Entry) -> Path:
        """Check a finished download against ``entry`` and move it into the cache.

        Raises:
            IndexIntegrityError: its size or SHA-256 is not the manifest's (the partial
                file is deleted, so the next try starts over).
        """
        part = self.part(entry)
        digest = hashlib.sha256()
        size = 0
        with open(part, "rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
            if size == entry.size and digest.digest() == entry.sha256:
                os.fsync(file.fileno())
        if size != entry.size or digest.digest() != entry.sha256:
            part.unlink(missing_ok=True)
            raise IndexIntegrityError("a downloaded index is not the one the manifest names")
        path = self.path(entry)
        os.replace(part, path)
        return path

    def check_fresh(self, publication_key: bytes, manifest: Manifest) -> None:
        """Refuse a manifest older than one verified before, then remember this one.

        Raises:
            StaleManifest: its (epoch, version) is below the newest seen for this key.
        """
        state_path = self.directory / "state.json"
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            if not isinstance(state, dict):
                state = {}
        except (FileNotFoundError, ValueError):
            state = {}
        name = publication_key.hex()
        seen = state.get(name)
        current = (manifest.epoch, manifest.version)
        if isinstance(seen, list) and len(seen) == 2 and all(type(v) is int for v in seen):
            if current < (seen[0], seen[1]):
                raise StaleManifest("the manifest is older than one already verified")
            if current == (seen[0], seen[1]):
                return
        state[name] = list(current)
        _write_atomic(state_path, json.dumps(state, sort_keys=True).encode())

    def prune(self, keep: Manifest) -> int:
        """Delete cached files the manifest ``keep`` does not name; the count deleted."""
        wanted = {f"{e.sha256.hex()}.idx" for e in keep.indexes.values()}
        wanted |= {f"{d.sha256.hex()}.idx" for d in keep.deltas}
        removed = 0
        for path in self._indexes.glob("*.idx"):
            if path.name not in wanted:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
