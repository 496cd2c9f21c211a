"""The retro-matching flow: past uploads against what was published since, locally.

Theory of operation
-------------------
``match`` with a retro store (``ClientOptions(retro=True)``) keeps, per answered upload,
its per-band tags and pads (for a compact exact index: each query's OPRF output) bound to
the full index it was matched against, with ``covered``,
the last delta of that base the session held (:mod:`blindmatch.client.retro_store`).
:func:`retro_flow`:

1. Fetches and verifies the manifest (as ``match`` does).
2. Forgets the records of other key epochs: tags, pads and outputs are the epoch's OPRF
   key's, so they match nothing the clearinghouse publishes under a new one.
3. For each (signal, base) the store holds in the current epoch: when the manifest still
   names that full index, the deltas above the records' ``covered`` are downloaded (or
   found in the cache) and verified like ``match``'s (the whole set against the manifest's
   current digest), then each is looked up once (:meth:`~blindmatch.client.retro_store.
   RetroStore.check`). When the clearinghouse has rebuilt the full index within the epoch
   (a withdrawal, too many deltas), the records move onto the new full index
   (:meth:`~blindmatch.client.retro_store.RetroStore.rebase`), which is looked up once,
   then its deltas. Handles are drawn afresh for each build, so the rebuilt base names
   only uploads that had no match of that signal before (the store's docstring says what
   this misses). Records of a signal the manifest no longer publishes are forgotten, and
   so are records of a format the rebuilt index no longer has (banded records when the
   signal is now published as a compact exact index, or the reverse).
4. Drops matches whose handle the manifest revokes (a withdrawn or suspended report).

Only the manifest and index files are fetched (``GET`` requests any platform makes to stay
current): no evaluation request, so the clearinghouse learns nothing of which past uploads
were looked up, or that a retro check happened at all beyond the downloads.
"""

from __future__ import annotations

from blindmatch.client.flows import Flow, Flows
from blindmatch.client.manifest import DeltaEntry, IndexEntry
from blindmatch.client.results import ClientStats, RetroReport
from blindmatch.client.retro_store import RetroStore
from blindmatch.protocols import Match
from blindmatch.psi.index import CompactIndex, Index

__all__ = ["retro_flow"]

_ALL = 1 << 62
"""A ``covered`` bound above every delta sequence: :meth:`RetroStore.pending` counts all."""


def retro_flow(flows: Flows, store: RetroStore) -> Flow[RetroReport]:
    """Match the store's past uploads against what is new (module docstring).

    Raises:
        errors.ClientError: the manifest or an index did not verify, the service failed,
            the cache lock stayed held.
        errors.IndexTooDense: a delta refuses a lookup (an index no honest build makes).
    """
    stats = ClientStats()
    manifest = yield from flows.refresh()
    forgotten = 0
    for epoch in store.epochs():
        if epoch != manifest.epoch:
            forgotten += store.forget_epoch(epoch)
    found: list[Match] = []
    checked = 0
    for signal, base in store.bases(manifest.epoch):
        entry = manifest.indexes.get(signal)
        if entry is None:
            forgotten += store.forget_base(signal, base)
            continue
        deltas = manifest.deltas_of(signal)
        last = max((d.sequence for d in deltas), default=0)
        current = entry.index_digest
        if base == current and not store.pending(signal, base, last):
            continue  # nothing published since these uploads were matched
        yield from flows._source(manifest, signal, stats)  # downloads, verifies the set
        files: list[tuple[int, Index | CompactIndex]] = []
        chosen: list[tuple[int, IndexEntry | DeltaEntry]] = [(0, entry)]
        chosen += [(d.sequence, d) for d in deltas]
        for sequence, file_entry in chosen:
            index = yield from flows._file(file_entry, stats)
            files.append((sequence, index))
        yield from flows.locked()  # one retro check at a time per cache directory
        try:
            if base != current:
                held = store.pending(signal, base, _ALL)
                # Records of another key, shape or format are dropped, not moved.
                forgotten += held - store.rebase(signal, base, files[0][1])
            for sequence, index in files:
                if store.pending(signal, current, sequence):
                    found.extend(store.check(index, sequence))
                    checked += 1
        finally:
            flows.cache.unlock()
    revoked = manifest.revoked_handles
    kept = tuple(m for m in found if bytes(m.handle) not in revoked)
    stats.revoked_dropped = len(found) - len(kept)
    return RetroReport(
        matches=kept,
        checked=checked,
        records=len(store),
        forgotten=forgotten,
        epoch=manifest.epoch,
        version=manifest.version,
        stats=stats,
    )
