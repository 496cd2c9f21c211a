"""A local SQLite store of retro records: past uploads, matched again against new deltas.

Theory of operation
-------------------
A :class:`~blindmatch.protocols.platform.PlatformSession` made with ``retain=True`` keeps a
:class:`~blindmatch.protocols.retro.RetroRecord` per query of every upload it answered: the
upload's reference, and the ``L`` per-band tags and pads of its lookup (never its hash,
its band values or its OPRF outputs). :class:`RetroStore` keeps them on disk between
sessions so that a delta published later in the same key epoch is matched against the past
uploads locally (:meth:`RetroStore.matches`), without asking the clearinghouse again.

What the file holds and what its theft reveals is in docs/protocol.md "Retro-matching".
It is created owner-only (mode 0600; SQLite gives its ``-wal`` and ``-shm`` files the same
mode) and written in WAL mode, one transaction per :meth:`~RetroStore.add`: a batch is
stored whole or not at all.

Size. A record takes ``16 * L`` bytes of tags and pads plus its reference and binding: a
PDQ query (L = 384) about 6.2 KB, an MD5 or SHA-256 upload (L = 1) under 100 bytes, a PDQ
upload with its 8 dihedral variants about 50 KB. The store holds at most ``max_records``
records (:data:`DEFAULT_MAX_RECORDS`, about 6 GB of PDQ queries); an :meth:`add` beyond it
raises :class:`~blindmatch.errors.RetroStoreFull` and writes nothing. Records are only
useful within their key epoch: :meth:`~RetroStore.forget_epoch` deletes an epoch's records
once its grace period is over (SQLite reuses the freed pages).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from blindmatch import errors
from blindmatch.protocols.matches import DEFAULT_MAX_LOOKUP_TRIALS, Match
from blindmatch.protocols.retro import RetroRecord, retro_matches
from blindmatch.psi.index import Index, IndexKind

__all__ = ["DEFAULT_MAX_RECORDS", "RetroStore"]

DEFAULT_MAX_RECORDS: Final = 1_000_000
"""Records a store holds by default (see the module docstring for their size)."""
_CHUNK: Final = 4096
"""Records looked up at once by :meth:`RetroStore.matches`: bounds its memory (a chunk of
PDQ records holds 25 MB of tags and pads) whatever the store's size."""
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS retro_record (
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
    PRIMARY KEY (signal, base_digest, upload_ref, position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS retro_record_epoch ON retro_record (key_epoch);
"""
_INSERT: Final = (
    "INSERT OR REPLACE INTO retro_record (signal, base_digest, key_epoch, key_id, tag_bytes, "
    "upload_ref, position, variant, tags, pads) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT: Final = (
    "SELECT signal, base_digest, key_epoch, key_id, tag_bytes, upload_ref, position, variant, "
    "tags, pads FROM retro_record WHERE signal = ? AND base_digest = ? AND key_epoch = ? "
    "AND key_id = ? ORDER BY upload_ref, position"
)


class RetroStore:
    """Retro records on disk, per key epoch and base index.

    Args:
        path: the SQLite file; created owner-only (0600) if missing.
        max_records: the most records the store holds (:data:`DEFAULT_MAX_RECORDS`).

    Raises:
        TypeError: an argument of the wrong type.
        errors.InvalidArgument: ``max_records`` below 1.
        OSError: the file cannot be created or opened.
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
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA secure_delete=ON")  # forgotten records are overwritten
        self._db.executescript(_SCHEMA)

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
        """Checkpoint the WAL into the file and close it."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM retro_record").fetchone()[0])

    def add(self, records: Iterable[RetroRecord]) -> int:
        """Store records (``PlatformSession.retained``), replacing those of the same
        upload query and base; all or nothing.

        Returns:
            The number of records the store holds afterwards.

        Raises:
            TypeError: an item is not a :class:`~blindmatch.protocols.retro.RetroRecord`.
            errors.RetroStoreFull: the store would exceed ``max_records`` (nothing written).
        """
        rows = []
        for record in records:
            if not isinstance(record, RetroRecord):
                raise TypeError("records must be RetroRecord values")
            rows.append(
                (
                    record.signal,
                    record.base_digest,
                    record.key_epoch,
                    record.key_id,
                    record.tag_bytes,
                    record.upload_ref,
                    record.position,
                    record.variant,
                    record.tags,
                    record.pads,
                )
            )
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_INSERT, rows)
            held = len(self)
            if held > self.max_records:
                raise errors.RetroStoreFull(
                    f"the retro store would hold {held} records, over its bound of "
                    f"{self.max_records}: forget an old epoch or raise max_records"
                )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return held

    def epochs(self) -> tuple[int, ...]:
        """The key epochs the store holds records of, ascending."""
        rows = self._db.execute("SELECT DISTINCT key_epoch FROM retro_record ORDER BY key_epoch")
        return tuple(int(epoch) for (epoch,) in rows)

    def forget_epoch(self, key_epoch: int) -> int:
        """Delete every record of a key epoch (its indexes are no longer served).

        Returns:
            The number of records deleted.
        """
        if type(key_epoch) is not int:
            raise TypeError("key_epoch must be an int")
        cursor = self._db.execute("DELETE FROM retro_record WHERE key_epoch = ?", (key_epoch,))
        return cursor.rowcount

    def matches(
        self, delta: Index, *, max_trials: int | None = DEFAULT_MAX_LOOKUP_TRIALS
    ) -> list[Match]:
        """The stored uploads that match the new references of ``delta``.

        Looks the records bound to the delta's base (signal, base digest, key epoch and
        id) up in chunks of uploads, so memory stays bounded whatever the store holds.

        Args:
            delta: a verified delta index (kind ``DELTA``).
            max_trials: bound on each chunk's lookup work (as a session's).

        Returns:
            One :class:`~blindmatch.protocols.platform.Match` per (upload, report), as
            :func:`~blindmatch.protocols.retro.retro_matches` gives them.

        Raises:
            TypeError: ``delta`` is not an :class:`~blindmatch.psi.index.Index`.
            errors.RetroMismatch: ``delta`` is a full index, or the store holds no upload
                matched against its base (records of another base or key are never used).
            errors.IndexTooDense: the delta refuses a lookup.
        """
        if not isinstance(delta, Index):
            raise TypeError("delta must be an Index")
        header = delta.header
        if header.kind is not IndexKind.DELTA:
            raise errors.RetroMismatch("retro-matching takes a delta index, not a full one")
        found: list[Match] = []
        seen = False
        for chunk in self._chunks(
            header.banding.signal, header.base_digest, header.key_epoch, header.key_id
        ):
            seen = True
            found.extend(retro_matches(chunk, delta, max_trials=max_trials))
        if not seen:
            raise errors.RetroMismatch("the retro store holds no upload matched against this base")
        return found

    def _chunks(
        self, signal: str, base_digest: bytes, key_epoch: int, key_id: bytes
    ) -> Iterator[list[RetroRecord]]:
        """Records of one base, about :data:`_CHUNK` at a time, never splitting an upload
        (its variants must be looked up together to name the first that matched)."""
        rows = self._db.execute(
            _SELECT,
            (signal, base_digest, key_epoch, key_id),
        )
        chunk: list[RetroRecord] = []
        for row in rows:
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
