"""The matching index: build it (clearinghouse), open it and look uploads up (platform).

Theory of operation
-------------------
The index is one file per signal type (docs/index-format.md): for every reference and
band a PRF-derived tag and a masked Shamir share, sorted per band, and the set of report
handles. It holds no hash and no hash bit. Three jobs, three private modules, one public
surface (this one):

- build (:mod:`blindmatch.psi._index_build`): :func:`build_index` evaluates the PRF over
  every band of every reference, on every core, and assembles the file;
  :func:`add_references` builds a delta of new references against a full index;
  :func:`build_index_file` and :func:`add_references_file` write the same bytes straight
  to a file, their memory a run and a band rather than a multiple of the file;
- lookup (:mod:`blindmatch.psi._index_lookup`): :class:`Index` memory-maps a file and
  turns an upload's ``L`` OPRF outputs into matched report handles, with bounded work,
  and (a grouped index, format version 2) maps a matched handle to its group
  (:meth:`Index.group_of`: a video report's frames);
- deltas (:mod:`blindmatch.psi._index_delta`): :class:`IndexSet` looks a base and its
  deltas up side by side; :func:`merge_indexes` merges them into one full index without
  the key; :func:`current_digest` names the published files of a signal (a full index, or
  one with its deltas) for the protocol's stale-index check.

A fourth job, for exact signals only: :mod:`blindmatch.psi.compact` builds and reads the
compact exact index (format version 3, a sharded Ribbon filter over the OPRF outputs with
the handle derived from the output: about 5 bytes per reference instead of 20..28).

The protocol behind it is in docs/design.md ("The index") and docs/protocol.md.
"""

from __future__ import annotations

import os

from blindmatch.errors import IndexFormatError
from blindmatch.psi._index_build import (
    BuiltIndex,
    ChunkEvaluator,
    EntryChunk,
    Reference,
    add_references,
    build_index,
    default_canaries,
)
from blindmatch.psi._index_delta import INDEX_SET_DOMAIN, IndexSet, current_digest, merge_indexes
from blindmatch.psi._index_file import WrittenIndex, add_references_file, build_index_file
from blindmatch.psi._index_format import (
    FORMAT_VERSION,
    GROUPED_VERSION,
    MAGIC,
    Canary,
    IndexHeader,
    IndexKind,
)
from blindmatch.psi._index_lookup import (
    HandleGroup,
    Index,
    MatchResult,
    default_max_hits,
    lookup_trials,
)
from blindmatch.psi.compact import (
    COMPACT_VERSION,
    BuiltCompactIndex,
    CompactIndex,
    CompactIndexSet,
    add_compact_references,
    build_compact_index,
)

__all__ = [
    "BuiltCompactIndex",
    "BuiltIndex",
    "Canary",
    "ChunkEvaluator",
    "CompactIndex",
    "CompactIndexSet",
    "EntryChunk",
    "HandleGroup",
    "INDEX_SET_DOMAIN",
    "Index",
    "IndexHeader",
    "IndexKind",
    "IndexSet",
    "MatchResult",
    "Reference",
    "WrittenIndex",
    "add_compact_references",
    "add_references",
    "add_references_file",
    "build_compact_index",
    "build_index",
    "build_index_file",
    "current_digest",
    "default_canaries",
    "default_max_hits",
    "index_from_bytes",
    "lookup_trials",
    "merge_indexes",
    "open_index",
]


def _format_version(head: bytes) -> int:
    if len(head) < len(MAGIC) + 2 or head[: len(MAGIC)] != MAGIC:
        raise IndexFormatError("not a blindmatch index file")
    version = int.from_bytes(head[len(MAGIC) : len(MAGIC) + 2], "little")
    if version not in (FORMAT_VERSION, GROUPED_VERSION, COMPACT_VERSION):
        raise IndexFormatError("an index format version this library does not read")
    return version


def index_from_bytes(data: bytes, *, verify: bool = True) -> Index | CompactIndex:
    """:func:`open_index` of an index held in memory.

    Raises:
        IndexFormatError: not an index, or a format version this library does not read.
    """
    if _format_version(bytes(data[: len(MAGIC) + 2])) == COMPACT_VERSION:
        return CompactIndex.from_bytes(data, verify=verify)
    return Index.from_bytes(data, verify=verify)


def open_index(path: str | os.PathLike[str], *, verify: bool = True) -> Index | CompactIndex:
    """Memory-map an index file of any published format: a banded index (versions 1 and
    2) as :class:`Index`, a compact exact index (version 3) as :class:`CompactIndex`, by
    the format version its header names.

    Raises:
        IndexFormatError: not an index file, or a format version this library does not read.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as file:
        head = file.read(len(MAGIC) + 2)
    if _format_version(head) == COMPACT_VERSION:
        return CompactIndex.open(path, verify=verify)
    return Index.open(path, verify=verify)
