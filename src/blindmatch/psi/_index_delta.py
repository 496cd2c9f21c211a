"""Incremental additions: an index with its deltas, looked up side by side or merged.

Theory of operation
-------------------
:func:`~blindmatch.psi.index.add_references` builds a *delta*: a file of the same format
(kind ``DELTA``) for new references only, with the same banding, key and widths, naming
the digest of its base. A platform either looks up base and deltas side by side
(:class:`IndexSet`) or merges them into one full index (:func:`merge_indexes`), which
needs no key: entries are only re-sorted. A delta tells the platform which entries are
newer than the base (only that they exist, not what they are).

The public names are re-exported by :mod:`blindmatch.psi.index`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

import numpy as np

from blindmatch.errors import IndexFormatError, InvalidParameter
from blindmatch.psi._index_build import BuiltIndex, _assemble, _handle_set, _sorted_bands
from blindmatch.psi._index_format import Canary, IndexHeader, IndexKind, check_delta
from blindmatch.psi._index_lookup import Index, Lookups, MatchResult
from blindmatch.psi.compact import (
    BuiltCompactIndex,
    CompactHeader,
    CompactIndex,
    CompactIndexSet,
)
from blindmatch.psi.kdf import derive_entries

__all__ = [
    "INDEX_SET_DOMAIN",
    "IndexSet",
    "current_digest",
    "merge_indexes",
]

INDEX_SET_DOMAIN: Final = b"blindmatch/v1/index-set"
"""Domain tag of the digest of a base index with deltas (:func:`current_digest`)."""


class IndexSet(Lookups):
    """A full index and its deltas, looked up side by side (no merge needed).

    Raises:
        IndexFormatError: a delta names another base, or its parameters differ.
    """

    __slots__ = ("base", "deltas")

    def __init__(self, base: Index, deltas: Sequence[Index] = ()) -> None:
        if base.header.kind is not IndexKind.FULL:
            raise IndexFormatError("the base of an index set must be a full index")
        for delta in deltas:
            _check_delta(base.header, delta.header)
        self.base = base
        self.deltas = tuple(deltas)

    def lookup_many(
        self, outputs_per_upload: Sequence[Sequence[bytes]], *, max_trials: int | None = None
    ) -> list[MatchResult]:
        """:meth:`Index.lookup_many` over the base and every delta, results combined
        (``max_trials`` bounds each of them).

        The uploads' tags and pads are derived once: every delta has its base's key and
        tag width (checked on construction), so each delta costs only its searches (the
        KDF per delta made each one cost about as much as the base's lookup:
        benchmarks/results/rebuild.md)."""
        bands = self.base.header.banding.count
        uploads = len(outputs_per_upload)
        if any(len(outputs) != bands for outputs in outputs_per_upload):
            raise InvalidParameter(f"each upload needs exactly {bands} outputs (one per band)")
        if uploads == 0:
            return []
        flat = [out for outputs in outputs_per_upload for out in outputs]
        tags, pads = derive_entries(flat, self.base.header.tag_bytes)
        tags, pads = tags.reshape(uploads, bands), pads.reshape(uploads, bands)
        results = self.base.lookup_entries(tags, pads, max_trials=max_trials)
        for delta in self.deltas:
            more = delta.lookup_entries(tags, pads, max_trials=max_trials)
            results = [
                MatchResult(
                    handles=tuple(sorted(set(a.handles) | set(b.handles))),
                    tag_hits=a.tag_hits + b.tag_hits,
                    bands_hit=max(a.bands_hit, b.bands_hit),
                )
                for a, b in zip(results, more, strict=True)
            ]
        return results

    @property
    def header(self) -> IndexHeader:
        """The base index's header (banding, key, canaries are shared by the deltas)."""
        return self.base.header

    @property
    def canaries(self) -> tuple[Canary, ...]:
        """The base index's canaries (deltas carry none)."""
        return self.base.canaries

    @property
    def entry_count(self) -> int:
        """Entries per band over the base and every delta."""
        return self.base.entry_count + sum(d.entry_count for d in self.deltas)


def _check_delta(base: IndexHeader, delta: IndexHeader) -> None:
    same_widths = delta.tag_bytes == base.tag_bytes and delta.handle_bytes == base.handle_bytes
    check_delta(base, delta, same_format=same_widths)


def merge_indexes(base: Index, deltas: Sequence[Index]) -> bytes:
    """Merge deltas into their base: a new full index file (no key needed).

    The result has the base's header fields and canaries, every entry of base and deltas
    re-sorted per band, the union of the handle sets, and a new digest.

    Raises:
        IndexFormatError: a delta names another base, or its parameters differ, or the
            base is grouped (a video index is rebuilt, never extended).
    """
    header = base.header
    if header.kind is not IndexKind.FULL:
        raise IndexFormatError("merge needs a full base index")
    if header.group_count is not None:
        # A grouped (video) index has no deltas (add_references refuses it); merging would
        # drop its groups sections.
        raise IndexFormatError("a grouped (video) index has no deltas to merge")
    for delta in deltas:
        _check_delta(header, delta.header)
    parts = [base, *deltas]
    tags = np.concatenate([p._tags.astype(np.uint64) for p in parts], axis=1).T
    shares = np.concatenate([p._shares.astype(np.uint64) for p in parts], axis=1).T
    tag_raw, share_raw = _sorted_bands(tags, lambda j: shares[:, j], header.tag_bytes)
    handle_set = _handle_set(
        np.concatenate([p._handles for p in parts], axis=0), header.handle_bytes
    )
    merged = IndexHeader(
        kind=IndexKind.FULL,
        banding=header.banding,
        key_epoch=header.key_epoch,
        key_id=header.key_id,
        entry_count=tags.shape[0],
        handle_count=len(handle_set) // header.handle_bytes,
        tag_bytes=header.tag_bytes,
        handle_bytes=header.handle_bytes,
        canaries=header.canaries,
        base_digest=bytes(32),
        digest=bytes(32),
    )
    return _assemble(merged, tag_raw, share_raw, handle_set)


def current_digest(
    index: Index | BuiltIndex | IndexSet | CompactIndex | BuiltCompactIndex | CompactIndexSet,
    deltas: Sequence[Index | BuiltIndex | CompactIndex | BuiltCompactIndex] = (),
) -> tuple[str, bytes]:
    """The signal and the digest that name a full index, or a full index with its deltas.

    For one full index, the SHA-256 digest its header carries (docs/index-format.md 5.4);
    for a full index with deltas, ``SHA-256(lp8(INDEX_SET_DOMAIN) || base digest || u32(d)
    || the d distinct delta digests, ascending)``: each delta names only its base and a
    lookup is the union over the files, so their order carries no meaning. A clearinghouse
    announces it, a platform compares it (docs/protocol.md section 5.2).

    Args:
        index: a full index (opened or freshly built), or an :class:`IndexSet` (its deltas
            included).
        deltas: the deltas of a full ``index`` (not with an ``IndexSet``).

    Raises:
        TypeError: something else than indexes.
        InvalidParameter: a delta given alone, deltas given with an ``IndexSet``, or a delta
            that does not name ``index`` as its base.
    """
    base: IndexHeader | CompactHeader
    chosen: Sequence[IndexHeader | CompactHeader]
    if isinstance(index, IndexSet | CompactIndexSet):
        if deltas:
            raise InvalidParameter("an IndexSet carries its own deltas")
        base, chosen = index.header, [d.header for d in index.deltas]
    elif isinstance(index, Index | BuiltIndex):
        base = index.header
        if not all(isinstance(delta, Index | BuiltIndex) for delta in deltas):
            raise TypeError("deltas must be Index or BuiltIndex values")
        chosen = [delta.header for delta in deltas]
    elif isinstance(index, CompactIndex | BuiltCompactIndex):
        # A compact index (format version 3) and its compact deltas are named the same way.
        base = index.header
        if not all(isinstance(delta, CompactIndex | BuiltCompactIndex) for delta in deltas):
            raise TypeError("the deltas of a compact index must be compact")
        chosen = [delta.header for delta in deltas]
    else:
        raise TypeError("give an Index, a BuiltIndex or an IndexSet (or their compact kinds)")
    if base.kind is not IndexKind.FULL:
        raise InvalidParameter("a delta alone is not a current index")
    for header in chosen:
        if header.kind is not IndexKind.DELTA or header.base_digest != base.digest:
            raise InvalidParameter("a delta does not name this base index")
    signal = base.banding.signal
    if not chosen:
        return signal, base.digest
    digests = sorted({header.digest for header in chosen})
    material = b"".join(
        (
            bytes([len(INDEX_SET_DOMAIN)]),
            INDEX_SET_DOMAIN,
            base.digest,
            len(digests).to_bytes(4, "big"),
            *digests,
        )
    )
    return signal, hashlib.sha256(material).digest()
