"""The indexes as the protocol names them: the :class:`IndexDigest` of a published index.

The wire codec (:mod:`blindmatch.protocols.messages`) carries an ``IndexDigest`` as a signal
name and 32 bytes and knows nothing of index files; what those bytes are is the index
side's business (:func:`blindmatch.psi.index.current_digest`). This module joins the two
for the sessions and their callers.
"""

from __future__ import annotations

from collections.abc import Sequence

from blindmatch.protocols.messages import IndexDigest
from blindmatch.psi.index import (
    BuiltCompactIndex,
    BuiltIndex,
    CompactIndex,
    CompactIndexSet,
    Index,
    IndexSet,
    current_digest,
)

__all__ = ["index_digest"]


def index_digest(
    index: Index | BuiltIndex | IndexSet | CompactIndex | BuiltCompactIndex | CompactIndexSet,
    deltas: Sequence[Index | BuiltIndex | CompactIndex | BuiltCompactIndex] = (),
) -> IndexDigest:
    """The digest that names a full index, or a full index with its deltas, on the wire.

    A clearinghouse lists one per signal in ``ServerInfo``
    (``ClearinghouseSession(index_digests=...)``); a platform session computes its own from
    the indexes it holds and fails with :class:`~blindmatch.errors.StaleIndex` when they
    differ.

    Args:
        index: a full index (opened or freshly built), or an
            :class:`~blindmatch.psi.index.IndexSet` (its deltas included); a compact
            exact index (format version 3) and its compact deltas likewise.
        deltas: the deltas of a full ``index`` (not with an ``IndexSet``).

    Raises:
        TypeError: something else than indexes.
        errors.InvalidParameter: a delta given alone, deltas given with an ``IndexSet``, or
            a delta that does not name ``index`` as its base.
    """
    signal, digest = current_digest(index, deltas)
    return IndexDigest(signal, digest)
