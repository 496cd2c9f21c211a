"""Helpers that forge well-formed index files for tests of what a reader must refuse."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from blindmatch.psi._index_build import evaluate_chunk
from blindmatch.psi._index_format import DIGEST_OFFSET, compute_digest
from blindmatch.psi.group import Scalar
from blindmatch.psi.index import EntryChunk, Index

__all__ = ["InProcessChunks", "densify", "reseal"]


class InProcessChunks:
    """A :class:`~blindmatch.psi.index.ChunkEvaluator` that evaluates every chunk in this
    process, in order, and notes each chunk's kind (``tag_bytes``); :meth:`answers` is the
    hook a test overrides to drop or repeat answers."""

    def __init__(self, chunk_entries: int) -> None:
        self.chunk_entries = chunk_entries
        self.kinds: list[int] = []

    def answers(
        self, answered: list[tuple[EntryChunk, bytes, bytes]]
    ) -> list[tuple[EntryChunk, bytes, bytes]]:
        """What the build is handed: every answer, as evaluated."""
        return answered

    def evaluate_chunks(
        self,
        secret_key: Scalar,
        chunks: Iterator[EntryChunk],
        tag_bytes: int,
        meanwhile: Callable[[], None],
    ) -> Iterator[tuple[EntryChunk, bytes, bytes]]:
        """Run ``meanwhile``, then :func:`evaluate_chunk` on each chunk here."""
        meanwhile()
        answered = []
        for chunk in chunks:
            self.kinds.append(tag_bytes)
            answer = evaluate_chunk(bytes(secret_key), chunk.joined, chunk.width, tag_bytes)
            answered.append((chunk, *answer))
        yield from self.answers(answered)


def reseal(data: bytearray) -> bytes:
    """Recompute the digest so a structural check (not the digest) must catch a change."""
    data[DIGEST_OFFSET : DIGEST_OFFSET + 32] = compute_digest(bytes(data))
    return bytes(data)


def densify(data: bytes, tags: list[int]) -> bytes:
    """A well-formed index whose every entry of band ``j`` carries ``tags[j]``: what a
    malicious clearinghouse would serve to make one upload hit all ``N`` entries."""
    index = Index.from_bytes(data)
    header, layout = index.header, index.layout
    count, bands = header.entry_count, header.banding.count
    body = bytearray(data)
    tag_dtype = np.dtype("<u4" if header.tag_bytes == 4 else "<u8")
    dense = np.repeat(np.array(tags, dtype=tag_dtype), count)
    body[layout.tags_offset : layout.tags_offset + dense.nbytes] = dense.tobytes()
    shares = np.frombuffer(
        data, dtype="<u8", count=count * bands, offset=layout.shares_offset
    ).reshape(bands, count)
    ordered = np.sort(shares, axis=1)  # ties on the tag: shares ascending keeps it sorted
    body[layout.shares_offset : layout.shares_offset + ordered.nbytes] = ordered.tobytes()
    return reseal(body)
