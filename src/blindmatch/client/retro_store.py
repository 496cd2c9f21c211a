"""A local SQLite store of retro records: past uploads, matched again against new deltas.

Theory of operation
-------------------
A :class:`~blindmatch.protocols.platform.PlatformSession` made with ``retain=True`` keeps a
:class:`~blindmatch.protocols.retro.RetroRecord` per query of every upload it answered: the
upload's reference, and the ``L`` per-band tags and pads of its lookup (never its hash,
its band values or its OPRF outputs); for an upload looked up in a compact exact index, a
:class:`~blindmatch.protocols.retro.CompactRetroRecord`: the query's OPRF output, which
that lookup needs (:mod:`blindmatch.protocols.retro`). :class:`RetroStore` keeps them on
disk between sessions so that a delta published later in the same key epoch is matched
against the past uploads locally (:meth:`RetroStore.matches`), without asking the
clearinghouse again.

What the file holds and what its theft reveals is in docs/protocol.md "Retro-matching".
It is created owner-only (mode 0600; SQLite gives its ``-wal`` and ``-shm`` files the same
mode) and written in WAL mode, one transaction per :meth:`~RetroStore.add`: a batch is
stored whole or not at all.

Several processes may share one store (two SDK clients with their own cache directories,
say). Every write, and every :meth:`~RetroStore.check` from its first read to its commit,
runs under an exclusive ``fcntl.flock`` on the sibling file ``<store>.lock`` (created 0600;
held by the open file, so a killed process never leaves it held) and inside one
``BEGIN IMMEDIATE`` transaction: two checks of one delta never both see its records
uncovered, so a match is reported by one process, once.

Schema. ``PRAGMA user_version`` is :data:`SCHEMA_VERSION` (2): a ``format`` column says
what a record holds (1: the tags and pads of a banded lookup; 3: a compact lookup's OPRF
output in ``tags``, ``pads`` empty, ``tag_bytes`` 0). A store of version 0 (blindmatch
before compact retro records) is migrated in place when opened (the column is added, its
records are banded ones) and stays readable; a store of a later version is refused with
:class:`~blindmatch.errors.InvalidArgument` rather than misread.

Bookkeeping for the SDK (``PlatformClient(options=ClientOptions(retro=True))``). Each
record keeps ``covered``: the last delta sequence of its base it was matched against (the
session's own deltas when stored; -1 once moved onto a rebuilt base not yet looked up).
:meth:`~RetroStore.check` looks up only the records a delta has not been matched against
and raises their ``covered``, so each delta is matched once per upload. A second table,
``retro_seen``, holds the (upload reference, report handle) pairs already reported for a
kept upload, by the session or an earlier check. When the clearinghouse rebuilds its full
index within the epoch (a withdrawal, too many deltas), :meth:`~RetroStore.rebase` moves
the records onto the new base, looked up once. Handles are drawn afresh for every build
(a report's handles in two builds are unlinkable), so that lookup cannot tell an old
report under its new handle from a new one: it names only uploads that had no match of
that signal before. An upload that matched a report and whose *second* report arrived
folded into a rebuild is therefore not named again (the platform has acted on it already);
a second report arriving in a delta is named.

Size. A record takes ``16 * L`` bytes of tags and pads plus its reference and binding: a
PDQ query (L = 384) 6 KB of tags and pads, about 10 KB of file with SQLite's overhead, a PDQ
upload with its 8 dihedral variants about 75 KB; a compact exact record 64 bytes of output
plus its reference and binding (the file measured 295 bytes per compact MD5 record, 233
per banded one: benchmarks/results/retro.md). The store holds at most ``max_records``
records (:data:`DEFAULT_MAX_RECORDS`, about 10 GB of PDQ queries); an :meth:`add` beyond it
raises :class:`~blindmatch.errors.RetroStoreFull` and writes nothing, or, with
``evict=True`` (what the SDK does), forgets the oldest uploads first. Records are only
useful within their key epoch: :meth:`~RetroStore.forget_epoch` deletes an epoch's records
once its grace period is over (SQLite reuses the freed pages).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from blindmatch import errors
from blindmatch.protocols.matches import DEFAULT_MAX_LOOKUP_TRIALS, Match
from blindmatch.protocols.retro import (
    AnyRetroRecord,
    CompactRetroRecord,
    RetroRecord,
    retro_matches,
)
from blindmatch.psi.compact import CompactHeader
from blindmatch.psi.index import CompactIndex, Index, IndexHeader, IndexKind
from blindmatch.psi.kdf import OUTPUT_SIZE

__all__ = ["DEFAULT_MAX_RECORDS", "RetroStore", "SCHEMA_VERSION"]

DEFAULT_MAX_RECORDS: Final = 1_000_000
"""Records a store holds by default (see the module docstring for their size)."""
_CHUNK: Final = 4096
"""Records looked up at once by :meth:`RetroStore.matches`: bounds its memory (a chunk of
PDQ records holds 25 MB of tags and pads) whatever the store's size."""
SCHEMA_VERSION: Final = 2
"""The store's ``PRAGMA user_version`` (module docstring: 0 is migrated, later refused)."""
_BANDED: Final = 1
"""``format`` of a banded record (tags and pads; index format versions 1 and 2)."""
_COMPACT: Final = 3
"""``format`` of a compact record (the OPRF output; index format version 3)."""
_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS retro_record (
    signal TEXT NOT NULL,
    base_digest BLOB NOT NULL,
    key_epoch INTEGER NOT NULL,
    key_id BLOB NOT NULL,
    tag_bytes INTEGER NOT NULL,
    upload_ref TEXT NOT NULL,
    position INTEGER NOT NULL,
    variant TEXT,
    tags BLOB NOT NULL,
    pads BLOB NOT NULL,
    covered INTEGER NOT NULL DEFAULT 0,
    added INTEGER NOT NULL DEFAULT 0,
    format INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (signal, base_digest, upload_ref, position)
) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS retro_record_epoch ON retro_record (key_epoch)",
    "CREATE INDEX IF NOT EXISTS retro_record_added ON retro_record (added)",
    """CREATE TABLE IF NOT EXISTS retro_seen (
    signal TEXT NOT NULL,
    key_epoch INTEGER NOT NULL,
    upload_ref TEXT NOT NULL,
    handle BLOB NOT NULL,
    PRIMARY KEY (signal, key_epoch, upload_ref, handle)
) WITHOUT ROWID""",
)
_INSERT: Final = (
    "INSERT OR REPLACE INTO retro_record (signal, base_digest, key_epoch, key_id, tag_bytes, "
    "upload_ref, position, variant, tags, pads, covered, added, format) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT: Final = (
    "SELECT signal, base_digest, key_epoch, key_id, tag_bytes, upload_ref, position, variant, "
    "tags, pads, format FROM retro_record WHERE signal = ? AND base_digest = ? AND key_epoch = ? "
    "AND key_id = ? AND covered < ? ORDER BY upload_ref, position"
)
_NEVER: Final = 1 << 62
"""A ``covered`` bound above every sequence: :meth:`RetroStore.matches` takes all records."""
_BUSY_SECONDS: Final = 60.0
"""SQLite's busy timeout: a reader waits this long for a checkpoint (writers queue on the
lock file first, so they never meet a busy database)."""


def _row(record: AnyRetroRecord) -> tuple[int, int, bytes, bytes]:
    """``(format, tag_bytes, tags, pads)`` of a record as the table holds it."""
    if isinstance(record, CompactRetroRecord):
        return (_COMPACT, 0, record.output, b"")
    return (_BANDED, record.tag_bytes, record.tags, record.pads)


class RetroStore:
    """Retro records on disk, per key epoch and base index.

    Args:
        path: the SQLite file; created owner-only (0600) if missing.
        max_records: the most records the store holds (:data:`DEFAULT_MAX_RECORDS`).

    Raises:
        TypeError: an argument of the wrong type.
        errors.InvalidArgument: ``max_records`` below 1, or the file is a store of a later
            schema version than this blindmatch reads.
        OSError: the file or its lock file cannot be created or opened.
        sqlite3.DatabaseError: the file is not a SQLite database.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, max_records: int = DEFAULT_MAX_RECORDS
    ) -> None:
        if type(max_records) is not int:
            raise TypeError("max_records must be an int")
        if max_records < 1:
            raise errors.InvalidArgument("max_records must be at least 1")
        self.path = Path(path)
        self.max_records = max_records
        # Create the file owner-only before SQLite opens it (it would use the umask).
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._lock_fd = os.open(
            self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600
        )
        self._thread_lock = threading.Lock()
        try:
            # The SDK may use it from another thread than the one that opened it (one at a
            # time: the thread lock).
            self._db = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=_BUSY_SECONDS,
            )
            with self._write():
                self._migrate()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA secure_delete=ON")  # forgotten records are overwritten
        except BaseException:
            if hasattr(self, "_db"):
                self._db.close()
            os.close(self._lock_fd)
            raise

    def _migrate(self) -> None:
        """Create or upgrade the schema (module docstring), inside :meth:`_write`."""
        db = self._db
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise errors.InvalidArgument(
                f"the retro store {self.path} has schema version {version}, newer than this "
                f"blindmatch reads ({SCHEMA_VERSION}): upgrade blindmatch, or delete the file "
                "(later matches keep records again)"
            )
        for statement in _SCHEMA:
            db.execute(statement)
        columns = {row[1] for row in db.execute("PRAGMA table_info(retro_record)")}
        if "format" not in columns:  # version 0: every record is a banded one
            db.execute(
                f"ALTER TABLE retro_record ADD COLUMN format INTEGER NOT NULL DEFAULT {_BANDED}"
            )
        if version != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One writing transaction, exclusive across threads and processes (module
        docstring): committed when the block ends, rolled back if it raises."""
        with self._thread_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                db = self._db
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Checkpoint the WAL into the file and close it (and the lock file)."""
        with self._thread_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.close()
            finally:
                os.close(self._lock_fd)  # releases the lock

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM retro_record").fetchone()[0])

    def add(
        self,
        records: Iterable[AnyRetroRecord],
        *,
        covered: int = 0,
        seen: Iterable[Match] = (),
        evict: bool = False,
    ) -> int:
        """Store records (``PlatformSession.retained``); all or nothing.

        An upload's records replace every record of the same upload reference, signal and
        base (a reference uploaded again is the newer upload).

        Args:
            records: the records of one or more uploads (banded or compact ones).
            covered: the last delta sequence of their base they were matched against (0:
                the full index alone).
            seen: matches the session reported for these uploads (never reported again by
                :meth:`check`); matches of uploads without a record here are ignored.
            evict: when the store would exceed ``max_records``, forget the oldest uploads
                instead of refusing the batch.

        Returns:
            The number of records the store holds afterwards.

        Raises:
            TypeError: an item is not a :class:`~blindmatch.protocols.retro.RetroRecord`
                or :class:`~blindmatch.protocols.retro.CompactRetroRecord`.
            errors.RetroStoreFull: the store would exceed ``max_records`` (nothing written);
                with ``evict``, only when the batch alone exceeds it.
        """
        if type(covered) is not int:
            raise TypeError("covered must be an int")
        batch = list(records)
        if not all(isinstance(record, AnyRetroRecord) for record in batch):
            raise TypeError("records must be RetroRecord values")
        epochs = {(r.signal, r.upload_ref): r.key_epoch for r in batch}
        with self._write() as db:
            (last,) = db.execute("SELECT coalesce(max(added), 0) FROM retro_record").fetchone()
            order: dict[tuple[str, bytes, str], int] = {}
            for r in batch:
                order.setdefault(
                    (r.signal, r.base_digest, r.upload_ref), int(last) + len(order) + 1
                )
            db.executemany(
                "DELETE FROM retro_record WHERE signal = ? AND base_digest = ? AND upload_ref = ?",
                list(order),
            )
            rows = []
            for r in batch:
                kind, tag_bytes, tags, pads = _row(r)
                rows.append(
                    (
                        r.signal,
                        r.base_digest,
                        r.key_epoch,
                        r.key_id,
                        tag_bytes,
                        r.upload_ref,
                        r.position,
                        r.variant,
                        tags,
                        pads,
                        covered,
                        order[(r.signal, r.base_digest, r.upload_ref)],
                        kind,
                    )
                )
            db.executemany(_INSERT, rows)
            db.executemany(
                "INSERT OR IGNORE INTO retro_seen VALUES (?, ?, ?, ?)",
                [
                    (m.signal, epochs[(m.signal, m.upload_ref)], m.upload_ref, bytes(m.handle))
                    for m in seen
                    if (m.signal, m.upload_ref) in epochs
                ],
            )
            held = len(self)
            if held > self.max_records and evict and len(batch) <= self.max_records:
                self._evict(held - self.max_records)
                held = len(self)
            if held > self.max_records:
                raise errors.RetroStoreFull(
                    f"the retro store would hold {held} records, over its bound of "
                    f"{self.max_records}: forget an old epoch or raise max_records"
                )
        return held

    def _evict(self, excess: int) -> None:
        """Forget the oldest uploads, whole, until ``excess`` records are gone."""
        (threshold,) = self._db.execute(
            "SELECT added FROM retro_record ORDER BY added LIMIT 1 OFFSET ?", (excess - 1,)
        ).fetchone()
        self._db.execute("DELETE FROM retro_record WHERE added <= ?", (threshold,))
        self._forget_orphaned_seen()

    def _forget_orphaned_seen(self) -> None:
        self._db.execute(
            "DELETE FROM retro_seen WHERE NOT EXISTS (SELECT 1 FROM retro_record r WHERE "
            "r.signal = retro_seen.signal AND r.key_epoch = retro_seen.key_epoch AND "
            "r.upload_ref = retro_seen.upload_ref)"
        )

    def epochs(self) -> tuple[int, ...]:
        """The key epochs the store holds records of, ascending."""
        rows = self._db.execute("SELECT DISTINCT key_epoch FROM retro_record ORDER BY key_epoch")
        return tuple(int(epoch) for (epoch,) in rows)

    def bases(self, key_epoch: int) -> tuple[tuple[str, bytes], ...]:
        """The ``(signal, base digest)`` pairs the store holds records of in an epoch."""
        rows = self._db.execute(
            "SELECT DISTINCT signal, base_digest FROM retro_record WHERE key_epoch = ? "
            "ORDER BY signal, base_digest",
            (key_epoch,),
        )
        return tuple((str(signal), bytes(base)) for signal, base in rows)

    def pending(self, signal: str, base_digest: bytes, sequence: int) -> int:
        """Records of a base not yet matched against its delta ``sequence`` (0: the base)."""
        (count,) = self._db.execute(
            "SELECT count(*) FROM retro_record WHERE signal = ? AND base_digest = ? "
            "AND covered < ?",
            (signal, base_digest, sequence),
        ).fetchone()
        return int(count)

    def forget_epoch(self, key_epoch: int) -> int:
        """Delete every record of a key epoch (its indexes are no longer served).

        Returns:
            The number of records deleted.
        """
        if type(key_epoch) is not int:
            raise TypeError("key_epoch must be an int")
        with self._write() as db:
            cursor = db.execute("DELETE FROM retro_record WHERE key_epoch = ?", (key_epoch,))
            db.execute("DELETE FROM retro_seen WHERE key_epoch = ?", (key_epoch,))
        return cursor.rowcount

    def forget_base(self, signal: str, base_digest: bytes) -> int:
        """Delete the records of one base (its signal is no longer published); the count."""
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM retro_record WHERE signal = ? AND base_digest = ?",
                (signal, base_digest),
            )
            self._forget_orphaned_seen()
        return cursor.rowcount

    def rebase(self, signal: str, old_digest: bytes, new_base: Index | CompactIndex) -> int:
        """Move the records of ``old_digest`` onto a rebuilt full index of the same epoch.

        The tags and pads depend on the key and tag width only, and a compact record's
        OPRF output on the key only, so records of the same key epoch and key id (and, for
        a banded base, tag width and band count) are still valid against ``new_base``;
        they are moved with ``covered = -1`` (the new base is not looked up yet:
        :meth:`check` with sequence 0 does it once). Records of another key, shape or
        format (banded records when the signal is now published compact, or the reverse)
        are deleted, and so are records of an upload the store also holds against the new
        base (the newer).

        Returns:
            The number of records moved.

        Raises:
            TypeError: ``new_base`` is not an index.
            errors.RetroMismatch: ``new_base`` is not a full index of ``signal``.
        """
        if not isinstance(new_base, Index | CompactIndex):
            raise TypeError("new_base must be an Index or a CompactIndex")
        header = new_base.header
        if header.kind is not IndexKind.FULL or header.banding.signal != signal:
            raise errors.RetroMismatch("records move onto a full index of their signal only")
        if isinstance(header, CompactHeader):
            shape: tuple[int, int, int] = (_COMPACT, 0, OUTPUT_SIZE)
        else:
            shape = (_BANDED, header.tag_bytes, 8 * header.banding.count)
        with self._write() as db:
            db.execute(
                "DELETE FROM retro_record WHERE signal = ? AND base_digest = ? AND (key_epoch != ? "
                "OR key_id != ? OR format != ? OR tag_bytes != ? OR length(tags) != ? "
                "OR upload_ref IN "
                "(SELECT upload_ref FROM retro_record WHERE signal = ? AND base_digest = ?))",
                (
                    signal,
                    old_digest,
                    header.key_epoch,
                    header.key_id,
                    *shape,
                    signal,
                    header.digest,
                ),
            )
            cursor = db.execute(
                "UPDATE retro_record SET base_digest = ?, covered = -1 "
                "WHERE signal = ? AND base_digest = ?",
                (header.digest, signal, old_digest),
            )
            self._forget_orphaned_seen()
        return cursor.rowcount

    def matches(
        self, delta: Index | CompactIndex, *, max_trials: int | None = DEFAULT_MAX_LOOKUP_TRIALS
    ) -> list[Match]:
        """The stored uploads that match the new references of ``delta``.

        Looks the records bound to the delta's base (signal, base digest, key epoch and
        id) up in chunks of uploads, so memory stays bounded whatever the store holds. A
        pure lookup: :meth:`check` is the SDK's, which remembers what it matched.

        Args:
            delta: a verified delta index (kind ``DELTA``), banded or compact.
            max_trials: bound on each chunk's lookup work (as a session's).

        Returns:
            One :class:`~blindmatch.protocols.platform.Match` per (upload, report), as
            :func:`~blindmatch.protocols.retro.retro_matches` gives them.

        Raises:
            TypeError: ``delta`` is not an index.
            errors.RetroMismatch: ``delta`` is a full index, or the store holds no upload
                matched against its base (records of another base or key are never used).
            errors.IndexTooDense: the delta refuses a lookup.
        """
        if not isinstance(delta, Index | CompactIndex):
            raise TypeError("delta must be an Index or a CompactIndex")
        header = delta.header
        if header.kind is not IndexKind.DELTA:
            raise errors.RetroMismatch("retro-matching takes a delta index, not a full one")
        found: list[Match] = []
        seen = False
        for chunk in self._chunks(header, header.base_digest, _NEVER):
            seen = True
            found.extend(retro_matches(chunk, delta, max_trials=max_trials))
        if not seen:
            raise errors.RetroMismatch("the retro store holds no upload matched against this base")
        return found

    def check(
        self,
        index: Index | CompactIndex,
        sequence: int,
        *,
        max_trials: int | None = DEFAULT_MAX_LOOKUP_TRIALS,
    ) -> list[Match]:
        """Match the records not yet matched against ``index``; remember it (the SDK's).

        Looks up the records of the index's base whose ``covered`` is below ``sequence``,
        drops the (upload, report) pairs already seen (for a rebuilt base, sequence 0, every
        match of an upload seen to match before: module docstring), then records the new
        pairs as seen and raises those records' ``covered`` to ``sequence``, all in one
        exclusive transaction (module docstring): a delta is matched once per upload, a
        report named once per upload, however many processes share the store.

        Args:
            index: a verified delta (``sequence`` >= 1, its sequence in the manifest) or
                the records' base itself (``sequence`` 0, after :meth:`rebase`), banded or
                compact.
            sequence: as above.
            max_trials: bound on each chunk's lookup work.

        Returns:
            The new matches, as :meth:`matches` gives them.

        Raises:
            TypeError: ``index`` is not an index.
            errors.InvalidArgument: ``sequence`` does not fit the index's kind.
            errors.IndexTooDense: the index refuses a lookup.
        """
        if not isinstance(index, Index | CompactIndex):
            raise TypeError("index must be an Index or a CompactIndex")
        header = index.header
        full = header.kind is IndexKind.FULL
        if type(sequence) is not int or (sequence == 0) != full or sequence < 0:
            raise errors.InvalidArgument("sequence 0 is the full index, a delta's is >= 1")
        base = header.digest if full else header.base_digest
        signal = header.banding.signal
        with self._write() as db:
            found = [
                match
                for chunk in self._chunks(header, base, sequence)
                for match in retro_matches(chunk, index, max_trials=max_trials)
            ]
            seen = {
                (str(ref), bytes(handle))
                for ref, handle in db.execute(
                    "SELECT upload_ref, handle FROM retro_seen WHERE signal = ? AND key_epoch = ?",
                    (signal, header.key_epoch),
                )
            }
            matched_before = {ref for ref, _ in seen} if full else set()
            new = [
                m
                for m in found
                if (m.upload_ref, bytes(m.handle)) not in seen
                and m.upload_ref not in matched_before
            ]
            db.executemany(
                "INSERT OR IGNORE INTO retro_seen VALUES (?, ?, ?, ?)",
                [(signal, header.key_epoch, m.upload_ref, bytes(m.handle)) for m in new],
            )
            db.execute(
                "UPDATE retro_record SET covered = ? WHERE signal = ? AND base_digest = ? "
                "AND key_epoch = ? AND key_id = ? AND covered < ?",
                (sequence, signal, base, header.key_epoch, header.key_id, sequence),
            )
        return new

    def _chunks(
        self, header: IndexHeader | CompactHeader, base: bytes, below: int
    ) -> Iterator[list[AnyRetroRecord]]:
        """Records of one base with ``covered < below``, about :data:`_CHUNK` at a time,
        never splitting an upload (its variants must be looked up together to name the
        first that matched)."""
        rows = self._db.execute(
            _SELECT,
            (header.banding.signal, base, header.key_epoch, header.key_id, below),
        )
        chunk: list[AnyRetroRecord] = []
        for row in rows:
            record: AnyRetroRecord
            if row[10] == _COMPACT:
                record = CompactRetroRecord(
                    upload_ref=row[5],
                    signal=row[0],
                    variant=row[7],
                    position=row[6],
                    base_digest=row[1],
                    key_epoch=row[2],
                    key_id=row[3],
                    output=row[8],
                )
            else:
                record = RetroRecord(
                    upload_ref=row[5],
                    signal=row[0],
                    variant=row[7],
                    position=row[6],
                    base_digest=row[1],
                    key_epoch=row[2],
                    key_id=row[3],
                    tag_bytes=row[4],
                    tags=row[8],
                    pads=row[9],
                )
            if len(chunk) >= _CHUNK and chunk[-1].upload_ref != record.upload_ref:
                yield chunk
                chunk = []
            chunk.append(record)
        if chunk:
            yield chunk
