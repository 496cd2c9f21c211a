"""Retro-matching: past uploads matched against a new delta index, locally.

Theory of operation
-------------------
A platform that matched uploads in a key epoch may, when asked
(``PlatformSession(..., retain=True)``), keep for each finished upload and query (its own
hash and each dihedral variant) a :class:`RetroRecord`: the ``L`` per-band *tags* and
*pads* the lookup derived from the upload's OPRF outputs
(:func:`~blindmatch.psi.kdf.derive_entries`), and nothing else of the upload. A lookup
needs exactly these: it searches each band's tag array for the tag and unmasks the hit
shares with the pad (:meth:`~blindmatch.psi.index.Index.lookup_entries`). Neither the hash,
nor its band values, nor the OPRF outputs are kept: the tags and pads are BLAKE2b outputs
keyed by the OPRF outputs, so without the clearinghouse's key they say nothing of the hash.

A delta of the same base (:func:`~blindmatch.psi.index.add_references`) holds the entries of
new references, made with the same key and tag width, so :func:`retro_matches` looks the
records up in it and returns the very :class:`~blindmatch.protocols.platform.Match` values
the session would have returned had the delta been part of its index: the same threshold
rule (pairs of agreeing bands for PDQ), canary handles dropped, one match per upload and
report naming the first variant (in the upload's order) that matched. No message is sent:
the clearinghouse learns nothing of it.

Records are bound to the full index they were matched against (its digest, key epoch and
key id, signal and tag width): a delta that names another base is refused with
:class:`~blindmatch.errors.RetroMismatch` rather than silently finding nothing. The tags
and pads depend only on the key and the tag width, not on the index, so when the
clearinghouse rebuilds the full index within the epoch (a withdrawal, too many deltas) a
store may move the records onto the new base and look them up in it once: that lookup
finds every report of the new base, old ones too, under handles new to this build (the
client's store says what it reports of them: :mod:`blindmatch.client.retro_store`). A session
over an :class:`~blindmatch.psi.index.IndexSet` binds its records to the set's base: the
deltas it already held were matched then, so only later deltas are worth a retro lookup
(one already held would return the same matches again).

Compact exact indexes
---------------------
A compact exact index (format version 3, :mod:`blindmatch.psi.compact`) holds no tags or
pads: its lookup derives the shard, the filter's row material and the report handle from
the upload's OPRF output ``F`` itself, each a BLAKE2b keyed by ``F`` with the index's own
seed, shard number and shard seed in the message (docs/index-format.md section 11). Those
differ from one build to the next (a delta's shard count follows its size; a shard that
does not solve is retried under another seed), so no value short of ``F`` serves every
later delta and rebuilt base of the epoch. For a query looked up in a compact index the
session therefore keeps a :class:`CompactRetroRecord`: ``F`` (64 bytes), with the same
binding (signal, base digest, key epoch, key id) and no tag width. :func:`retro_matches`
queries the filter with it exactly as :meth:`~blindmatch.psi.compact.CompactIndex.
match_outputs` does for a session, so a record matched against a delta gives what a
session over the base and that delta would have added. What ``F`` reveals, against tags
and pads, is in docs/protocol.md section 7.5.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from blindmatch import errors
from blindmatch.protocols.matches import DEFAULT_MAX_LOOKUP_TRIALS, Match
from blindmatch.psi.compact import CompactHeader
from blindmatch.psi.index import Canary, CompactIndex, Index, IndexHeader, IndexKind
from blindmatch.psi.kdf import OUTPUT_SIZE, ReportHandle

__all__ = ["AnyRetroRecord", "CompactRetroRecord", "RetroRecord", "retro_matches"]

_ENTRY = np.dtype("<u8")


@dataclass(frozen=True, slots=True, eq=False)
class RetroRecord:
    """What one query of one past upload keeps for retro-matching.

    Attributes:
        upload_ref: the platform's reference of the upload (never sent).
        signal: the signal type (the index's banding name).
        variant: the name of the query (``"original"``, ``"flipX"``, ...) for an upload
            queried with variants, ``None`` for one without.
        position: the query's position in the upload's order (0: its own hash), which
            decides the variant a match names when several match one report.
        base_digest: digest of the full index the upload was matched against.
        key_epoch: the key epoch of that index.
        key_id: the key id of that index.
        tag_bytes: the tag width the tags were derived with.
        tags: ``L`` tags, little-endian ``uint64`` each (band order).
        pads: ``L`` pads, little-endian ``uint64`` each (band order).

    Raises:
        TypeError: a field has the wrong type.
        errors.LocalProtocolError: tags and pads of different or bad lengths.
    """

    upload_ref: str
    signal: str
    variant: str | None
    position: int
    base_digest: bytes
    key_epoch: int
    key_id: bytes
    tag_bytes: int
    tags: bytes
    pads: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.upload_ref, str) or not isinstance(self.signal, str):
            raise TypeError("a record's upload_ref and signal must be str")
        if self.variant is not None and not isinstance(self.variant, str):
            raise TypeError("a record's variant must be str or None")
        for name in ("base_digest", "key_id", "tags", "pads"):
            if not isinstance(getattr(self, name), bytes):
                raise TypeError(f"a record's {name} must be bytes")
        for name in ("position", "key_epoch", "tag_bytes"):
            if type(getattr(self, name)) is not int:
                raise TypeError(f"a record's {name} must be an int")
        if (
            not self.tags
            or len(self.tags) != len(self.pads)
            or len(self.tags) % _ENTRY.itemsize
            or len(self.base_digest) != 32
            or self.position < 0
        ):
            raise errors.LocalProtocolError("a retro record's fields are malformed")

    @property
    def bands(self) -> int:
        """``L``, the number of bands the record holds."""
        return len(self.tags) // _ENTRY.itemsize

    def binding(self) -> tuple[str, bytes, int, bytes, int]:
        """``(signal, base digest, key epoch, key id, tag width)``: what the record is for."""
        return (self.signal, self.base_digest, self.key_epoch, self.key_id, self.tag_bytes)

    def __repr__(self) -> str:
        return (
            f"RetroRecord(upload_ref={self.upload_ref!r}, signal={self.signal!r}, "
            f"variant={self.variant!r}, bands={self.bands}, entries=<redacted>)"
        )


@dataclass(frozen=True, slots=True, eq=False)
class CompactRetroRecord:
    """What one query of one past upload keeps for retro-matching a compact exact index.

    Attributes:
        upload_ref: the platform's reference of the upload (never sent).
        signal: the signal type (an exact one: ``md5``, ``sha256``).
        variant: the name of the query, ``None`` for an upload without variants.
        position: the query's position in the upload's order (0: its own hash).
        base_digest: digest of the full compact index the upload was matched against.
        key_epoch: the key epoch of that index.
        key_id: the key id of that index.
        output: the query's finalized OPRF output ``F`` (64 bytes; module docstring says
            why nothing shorter serves).

    Raises:
        TypeError: a field has the wrong type.
        errors.LocalProtocolError: an output that is not 64 bytes, or a bad digest.
    """

    upload_ref: str
    signal: str
    variant: str | None
    position: int
    base_digest: bytes
    key_epoch: int
    key_id: bytes
    output: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.upload_ref, str) or not isinstance(self.signal, str):
            raise TypeError("a record's upload_ref and signal must be str")
        if self.variant is not None and not isinstance(self.variant, str):
            raise TypeError("a record's variant must be str or None")
        for name in ("base_digest", "key_id", "output"):
            if not isinstance(getattr(self, name), bytes):
                raise TypeError(f"a record's {name} must be bytes")
        for name in ("position", "key_epoch"):
            if type(getattr(self, name)) is not int:
                raise TypeError(f"a record's {name} must be an int")
        if len(self.output) != OUTPUT_SIZE or len(self.base_digest) != 32 or self.position < 0:
            raise errors.LocalProtocolError("a retro record's fields are malformed")

    def binding(self) -> tuple[str, bytes, int, bytes]:
        """``(signal, base digest, key epoch, key id)``: what the record is for."""
        return (self.signal, self.base_digest, self.key_epoch, self.key_id)

    def __repr__(self) -> str:
        return (
            f"CompactRetroRecord(upload_ref={self.upload_ref!r}, signal={self.signal!r}, "
            f"variant={self.variant!r}, output=<redacted>)"
        )


AnyRetroRecord = RetroRecord | CompactRetroRecord
"""A record of either kind: what :attr:`PlatformSession.retained
<blindmatch.protocols.platform.PlatformSession.retained>` and a store hold."""


def make_compact_records(
    upload_ref: str,
    signal: str,
    variants: Sequence[tuple[str | None, int, bytes]],
    header: CompactHeader,
) -> tuple[CompactRetroRecord, ...]:
    """The records of one upload looked up in a compact index: ``(variant name, position,
    OPRF output)`` per query, bound to the full compact index ``header`` (the session's)."""
    return tuple(
        CompactRetroRecord(
            upload_ref,
            signal,
            name,
            position,
            header.digest,
            header.key_epoch,
            header.key_id,
            output,
        )
        for name, position, output in variants
    )


def make_records(
    upload_ref: str,
    signal: str,
    variants: Sequence[tuple[str | None, int, np.ndarray, np.ndarray]],
    header: IndexHeader,
) -> tuple[RetroRecord, ...]:
    """The records of one upload: ``(variant name, position, tags, pads)`` per query, with
    the binding of the full index ``header`` (used by the session)."""
    return tuple(
        RetroRecord(
            upload_ref,
            signal,
            name,
            position,
            header.digest,
            header.key_epoch,
            header.key_id,
            header.tag_bytes,
            np.asarray(tags, dtype=_ENTRY).tobytes(),
            np.asarray(pads, dtype=_ENTRY).tobytes(),
        )
        for name, position, tags, pads in variants
    )


def retro_matches(
    records: Iterable[AnyRetroRecord],
    delta: Index | CompactIndex,
    *,
    max_trials: int | None = DEFAULT_MAX_LOOKUP_TRIALS,
) -> list[Match]:
    """Which past uploads match the new references of ``delta``.

    Records of other signal types than the delta's are passed over (a delta serves one).

    Args:
        records: retained records (:attr:`PlatformSession.retained
            <blindmatch.protocols.platform.PlatformSession.retained>`, or a store's).
        delta: a delta index (kind ``DELTA``) of the base the records were matched against;
            or that base itself (kind ``FULL``, its digest the records' base digest), which
            a caller does only for records it moved onto a rebuilt full version
            (:meth:`blindmatch.client.retro_store.RetroStore.rebase`): the lookup then
            finds every report of the base, the old ones too. A compact exact index
            (:class:`~blindmatch.psi.compact.CompactIndex`, either kind) takes
            :class:`CompactRetroRecord` values; a banded one :class:`RetroRecord` values.
        max_trials: bound on the lookup's candidate trials (as the session's).

    Returns:
        One :class:`~blindmatch.protocols.platform.Match` per (upload, report), uploads in
        the order their first record came, each upload's matches sorted by handle.

    Raises:
        TypeError: ``delta`` is not an index or a record is not a retro record.
        errors.RetroMismatch: a record of the index's signal was made against another base,
            key epoch, key id or tag width (a full index other than the records' base), or
            against an index of the other format (banded or compact).
        errors.IndexTooDense: the delta refuses the lookup (as in a session).
    """
    if isinstance(delta, CompactIndex):
        return _compact_matches(records, delta)
    if not isinstance(delta, Index):
        raise TypeError("delta must be an Index or a CompactIndex")
    header = delta.header
    # A delta extends the records' base; a full index may only be that base itself (records
    # moved onto a rebuilt full version are matched against it once, module docstring).
    base = header.digest if header.kind is IndexKind.FULL else header.base_digest
    signal = header.banding.signal
    expected = (signal, base, header.key_epoch, header.key_id, header.tag_bytes)
    chosen: list[RetroRecord] = []
    for record in records:
        if not isinstance(record, AnyRetroRecord):
            raise TypeError("records must be RetroRecord values")
        if record.signal != signal:
            continue
        if not isinstance(record, RetroRecord):
            raise errors.RetroMismatch("a record of a compact index given a banded one")
        if record.binding() != expected or record.bands != header.banding.count:
            raise errors.RetroMismatch("a record was made against another index or key")
        chosen.append(record)
    if not chosen:
        return []
    tags = np.frombuffer(b"".join(r.tags for r in chosen), dtype=_ENTRY).reshape(len(chosen), -1)
    pads = np.frombuffer(b"".join(r.pads for r in chosen), dtype=_ENTRY).reshape(len(chosen), -1)
    results = delta.lookup_entries(tags, pads, max_trials=max_trials)
    return _gathered(signal, chosen, [r.handles for r in results], delta.canaries)


def _compact_matches(records: Iterable[AnyRetroRecord], index: CompactIndex) -> list[Match]:
    """:func:`retro_matches` of a compact exact index: one filter query per record, as
    :meth:`~blindmatch.psi.compact.CompactIndex.match_outputs` answers a session."""
    header = index.header
    base = header.digest if header.kind is IndexKind.FULL else header.base_digest
    signal = header.banding.signal
    expected = (signal, base, header.key_epoch, header.key_id)
    chosen: list[CompactRetroRecord] = []
    for record in records:
        if not isinstance(record, AnyRetroRecord):
            raise TypeError("records must be RetroRecord values")
        if record.signal != signal:
            continue
        if not isinstance(record, CompactRetroRecord):
            raise errors.RetroMismatch("a record of a banded index given a compact one")
        if record.binding() != expected:
            raise errors.RetroMismatch("a record was made against another index or key")
        chosen.append(record)
    if not chosen:
        return []
    answers = index.match_outputs([r.output for r in chosen])
    handles = [() if a is None else (a,) for a in answers]
    return _gathered(signal, chosen, handles, index.canaries)


def _gathered(
    signal: str,
    records: Sequence[AnyRetroRecord],
    handles_per_record: Sequence[Sequence[ReportHandle]],
    canaries: Iterable[Canary],
) -> list[Match]:
    """Matches of looked-up records: canary handles dropped, one per (upload, report)
    naming the first query (by position) that matched it, as a session answers."""
    dropped = frozenset(c.handle for c in canaries)
    # upload ref -> handle -> (position, variant name) of the first query that matched it
    found: dict[str, dict[ReportHandle, tuple[int, str | None]]] = {}
    for record, hits in zip(records, handles_per_record, strict=True):
        handles = found.setdefault(record.upload_ref, {})
        for handle in hits:
            if handle in dropped:
                continue
            held = handles.get(handle)
            if held is None or record.position < held[0]:
                handles[handle] = (record.position, record.variant)
    return [
        Match(ref, signal, handle, variant)
        for ref, handles in found.items()
        for handle, (_, variant) in sorted(handles.items(), key=lambda item: bytes(item[0]))
    ]
