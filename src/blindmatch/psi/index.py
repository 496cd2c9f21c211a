"""The matching index: build it (clearinghouse), open it and look uploads up (platform).

Theory of operation
-------------------
Build (MATCHING.md "Build"). For every reference ``i`` and band ``j`` the clearinghouse
evaluates its direct PRF ``F_ij = Evaluate(sk, band_input(j, y_i))`` (RFC 9497, VOPRF
mode), derives ``(tag_ij, pad_ij)`` from ``F_ij`` (:mod:`blindmatch.psi.kdf`) and stores
``(tag_ij, f_i(j + 1) XOR pad_ij)`` in band ``j``, where ``f_i`` is a fresh random line
whose secret ``s_i`` gives the report handle (:mod:`blindmatch.psi.shares`). Each band is
sorted by (tag, masked share), so the position of an entry says nothing about which
reference it came from, and nothing links one reference's entries across bands. The file
holds no hash and no hash bit: only PRF-derived tags, masked shares and handles.

Lookup (MATCHING.md "Query"). The platform finalizes one upload's ``L`` OPRF outputs
(band order), derives each band's tag and pad, binary-searches each band's tag array
(a memory-mapped ``uint32`` array: ``np.searchsorted``), unmasks the shares of the hits
and
- t = 1: each unmasked share is a candidate secret ``s``;
- t = 2: each pair of hits in different bands gives a candidate ``s`` by Lagrange
  interpolation at zero (at most ``L*(L-1)/2`` pairs per upload: bounded work);
and reports ``handle(s)`` for every candidate found in the handle set.

Incremental additions. :func:`add_references` builds a *delta*: a file of the same format
(kind ``DELTA``) for new references only, with the same banding, key and widths, naming
the digest of its base. A platform either looks up base and deltas side by side
(:class:`IndexSet`) or merges them into one full index (:func:`merge_indexes`), which
needs no key: entries are only re-sorted. A delta tells the platform which entries are
newer than the base (only that they exist, not what they are).

Builds run the PRF on all cores: the flat list of band inputs is cut into chunks (each
sent as one joined ``bytes``, not a pickled list) that ``processes - 1`` worker processes
(fork server, else spawn) evaluate (``oprf.evaluate_batch``) and turn into tags and pads
there, so only 16 bytes per entry travel back. The building process is the last worker:
it first draws the lines and handles (work that needs no PRF), then takes the chunks no
worker has started, from the end of the queue, so no core idles while a worker starts
up or while the other still has queued work.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import multiprocessing
import os
import secrets
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TypeVar

import numpy as np
import numpy.typing as npt

from blindmatch.errors import IndexFormatError, IndexTooDense, InvalidEncoding, InvalidParameter
from blindmatch.psi import oprf
from blindmatch.psi._index_format import (
    Canary,
    IndexHeader,
    IndexKind,
    Layout,
    compute_digest,
    decode_header,
)
from blindmatch.psi.bands import Banding
from blindmatch.psi.group import Scalar
from blindmatch.psi.kdf import (
    HANDLE_SIZE,
    ReportHandle,
    derive_entries,
    derive_handles,
)
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.parallel import worker_error
from blindmatch.psi.shares import (
    FIELD_MODULUS,
    RandomBytes,
    evaluate_shares_at,
    interpolate_at_zero_many,
    mul_mod_many,
    random_field_elements,
)

__all__ = [
    "BuiltIndex",
    "Canary",
    "Index",
    "IndexHeader",
    "IndexKind",
    "IndexSet",
    "MatchResult",
    "Reference",
    "add_references",
    "build_index",
    "default_canaries",
    "default_max_hits",
    "lookup_trials",
    "merge_indexes",
]

U64Array = npt.NDArray[np.uint64]
_T = TypeVar("_T")
_P = np.uint64(FIELD_MODULUS)
_CANARY_DOMAIN = b"blindmatch/v1/canary"
_MAX_REPORT_ID = 1024
_MIN_CHUNK = 256  # ~30 ms of group work: the task's pickling and pipe cost vanish against it
_MAX_CHUNK = 1024
# Small chunks keep the tail short: a worker holds at most its running chunk and one
# queued (``ProcessPoolExecutor`` pre-queues one call), which the building process cannot
# take over, so at the end it waits for at most about two chunks.
_CHUNKS_PER_PROCESS = 64


@dataclass(frozen=True, slots=True)
class Reference:
    """One reported hash: the report it belongs to, its signal type and its bytes.

    Raises:
        InvalidParameter: empty or over-long report id, or a signal that is not a string.
        InvalidEncoding: a hash that is not bytes.
    """

    report_id: str
    signal: str
    hash: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.report_id, str) or not 0 < len(self.report_id) <= _MAX_REPORT_ID:
            raise InvalidParameter(f"report id must be a string of 1..{_MAX_REPORT_ID} characters")
        if not isinstance(self.signal, str):
            raise InvalidParameter("signal must be a string")
        if not isinstance(self.hash, bytes):
            raise InvalidEncoding("reference hash must be bytes")

    def __repr__(self) -> str:
        # The hash is what the clearinghouse protects: keep it out of logs.
        return f"Reference(report_id={self.report_id!r}, signal={self.signal!r}, hash=<redacted>)"


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The lookup of one upload: matched handles and what else the platform saw.

    Attributes:
        handles: distinct matched report handles, sorted.
        tag_hits: single-band tag hits (entries whose tag equals the upload's in that band);
            MATCHING.md "What each party learns": about ``N*L/2**32`` for a non-match.
        bands_hit: number of bands with at least one tag hit.
    """

    handles: tuple[ReportHandle, ...]
    tag_hits: int
    bands_hit: int

    @property
    def matched(self) -> bool:
        """Whether any handle matched."""
        return bool(self.handles)


def default_canaries(banding: Banding, count: int = 4) -> list[bytes]:
    """Public canary hashes: ``SHAKE-256(lp8(domain) || lp8(signal) || u16(i))``.

    Anyone can recompute them, which is the point: a platform queries them and must match.

    Raises:
        InvalidParameter: ``count`` outside 0..1024.
    """
    if not 0 <= count <= 1024:
        raise InvalidParameter("canary count must be in [0, 1024]")
    signal = banding.signal.encode("ascii")
    prefix = bytes([len(_CANARY_DOMAIN)]) + _CANARY_DOMAIN + bytes([len(signal)]) + signal
    return [
        hashlib.shake_256(prefix + i.to_bytes(2, "big")).digest(banding.hash_bytes)
        for i in range(count)
    ]


# --------------------------------------------------------------------------- build


def _entries_worker(key: bytes, joined: bytes, width: int, tag_bytes: int) -> tuple[bytes, bytes]:
    """Worker: evaluate a chunk of ``width``-byte inputs (joined) and return its tags and
    pads as raw arrays."""
    inputs = [joined[i : i + width] for i in range(0, len(joined), width)]
    tags, pads = _chunk_entries(Scalar.from_bytes(key), inputs, tag_bytes)
    return tags.tobytes(), pads.tobytes()


def _chunk_entries(
    secret_key: Scalar, inputs: Sequence[bytes], tag_bytes: int
) -> tuple[U64Array, U64Array]:
    outputs = oprf.evaluate_batch(secret_key, inputs, oprf.Mode.VOPRF)
    return derive_entries(outputs, tag_bytes)


def _context() -> multiprocessing.context.BaseContext:
    """Where available, a fork server with this module preloaded: workers start as cheap
    forks of a clean single-threaded server that already imported numpy and blindmatch
    (never of the caller, whose threads and state a plain fork would copy); else spawn.
    Both need only what spawn needs: an importable worker and picklable arguments."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def _input_chunks(
    banding: Banding, hashes: Sequence[bytes], size: int
) -> Iterator[tuple[int, list[bytes]]]:
    """``(first reference, band inputs of a run of references)``, about ``size`` inputs each,
    in order: a build holds the inputs of the chunks in flight, never all ``N * L``."""
    step = max(1, size // banding.count)
    for start in range(0, len(hashes), step):
        rows = banding.band_inputs_many(hashes[start : start + step])
        yield start, [item for row in rows for item in row]


def _joined(inputs: list[bytes]) -> tuple[bytes, int]:
    width = len(inputs[0])
    if any(len(item) != width for item in inputs):
        raise InvalidParameter("band inputs of one build must have one length")
    return b"".join(inputs), width


def _evaluate_entries(
    secret_key: Scalar,
    banding: Banding,
    hashes: Sequence[bytes],
    tag_bytes: int,
    processes: int,
    meanwhile: Callable[[], _T],
) -> tuple[U64Array, U64Array, _T]:
    """Tags and pads (``(N, L)`` arrays) of every band of every hash, and ``meanwhile()``
    run while the workers evaluate.

    Band inputs are made chunk by chunk as the evaluation goes, so memory holds the chunks
    in flight plus the result arrays (16 bytes per entry), never the ``N * L`` inputs.
    ``meanwhile`` is the build's work that does not need the PRF (secrets, handles): with
    worker processes it overlaps their evaluation. ``processes - 1`` workers are kept fed
    with a window of chunks; this process evaluates the next chunk itself whenever the
    window is full, and at the end takes back every chunk no worker has started
    (``Future.cancel`` succeeds only for those), so ``processes`` cores stay busy, and a
    worker that starts late (the fork server's first start imports numpy and blindmatch)
    delays nothing.
    """
    count, bands = len(hashes), banding.count
    tags = np.empty((count, bands), dtype=np.uint64)
    pads = np.empty((count, bands), dtype=np.uint64)

    def store(start: int, part: tuple[U64Array, U64Array]) -> None:
        rows = part[0].size // bands
        tags[start : start + rows] = part[0].reshape(rows, bands)
        pads[start : start + rows] = part[1].reshape(rows, bands)

    total = count * bands
    if processes <= 1 or total < 2 * _MIN_CHUNK:
        for start, inputs in _input_chunks(banding, hashes, _MAX_CHUNK):
            store(start, _chunk_entries(secret_key, inputs, tag_bytes))
        return tags, pads, meanwhile()
    size = min(_MAX_CHUNK, max(_MIN_CHUNK, -(-total // (_CHUNKS_PER_PROCESS * processes))))
    chunks = _input_chunks(banding, hashes, size)
    # The key travels to the workers over the pool's pipes (child processes of this one).
    key = bytes(secret_key)
    window = 2 * (processes - 1)
    pending: deque[tuple[int, list[bytes], Future[tuple[bytes, bytes]]]] = deque()
    pool = ProcessPoolExecutor(max_workers=processes - 1, mp_context=_context())

    def submit(start: int, inputs: list[bytes]) -> None:
        joined, width = _joined(inputs)
        try:
            future = pool.submit(_entries_worker, key, joined, width, tag_bytes)
        except BrokenProcessPool:
            raise worker_error() from None
        pending.append((start, inputs, future))

    def collect(start: int, future: Future[tuple[bytes, bytes]]) -> None:
        try:
            tag_raw, pad_raw = future.result()
        except BrokenProcessPool:
            raise worker_error() from None
        store(start, (np.frombuffer(tag_raw, np.uint64), np.frombuffer(pad_raw, np.uint64)))

    try:
        for start, inputs in itertools.islice(chunks, window):
            submit(start, inputs)
        extra = meanwhile()
        for start, inputs in chunks:
            while pending and pending[0][2].done():
                first, _, future = pending.popleft()
                collect(first, future)
            if len(pending) < window:
                submit(start, inputs)
            else:
                store(start, _chunk_entries(secret_key, inputs, tag_bytes))
        for first, inputs, future in reversed(pending):
            if future.cancel():
                store(first, _chunk_entries(secret_key, inputs, tag_bytes))
        for first, _, future in pending:
            if not future.cancelled():
                collect(first, future)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return tags, pads, extra


@dataclass(frozen=True, slots=True)
class _Lines:
    """The build's PRF-independent half: lines, handles, the private handle map."""

    secrets: U64Array
    slopes: U64Array
    raw_handles: list[bytes]
    handle_map: dict[ReportHandle, str]
    handle_set: bytes


def _draw_lines(
    references: Sequence[Reference],
    count: int,
    threshold: int,
    handle_bytes: int,
    random_bytes: RandomBytes,
) -> _Lines:
    secrets = _unique_secrets(count, random_bytes)
    if threshold == 1:
        slopes = np.zeros(count, dtype=np.uint64)
    else:
        slopes = random_field_elements(count, random_bytes)
    raw_handles = derive_handles(secrets)
    trusted = ReportHandle._trusted
    handle_map = {
        trusted(handle): reference.report_id
        for handle, reference in zip(raw_handles, references, strict=False)
    }
    rows = np.frombuffer(b"".join(raw_handles), dtype=np.uint8).reshape(count, HANDLE_SIZE)
    return _Lines(secrets, slopes, raw_handles, handle_map, _handle_set(rows, handle_bytes))


def _unique_secrets(count: int, random_bytes: RandomBytes) -> U64Array:
    """Secrets drawn as in :func:`random_field_elements`, a repeated value redrawn."""
    secrets = random_field_elements(count, random_bytes)
    while True:
        _, first = np.unique(secrets, return_index=True)
        if len(first) == count:
            return secrets
        repeated = np.setdiff1d(np.arange(count), first)
        secrets[repeated] = random_field_elements(len(repeated), random_bytes)


def _sorted_bands(
    tags: U64Array, masked_band: Callable[[int], U64Array], tag_bytes: int
) -> tuple[bytes, bytes]:
    """Sort each band (column of ``tags``, with its masked shares ``masked_band(j)``) by
    (tag, masked share); return band-major raw arrays. One band at a time: the temporaries
    are one column, not ``N * L``."""
    count, bands = tags.shape
    tag_out = np.empty((bands, count), dtype="<u4" if tag_bytes == 4 else "<u8")
    share_out = np.empty((bands, count), dtype="<u8")
    for j in range(bands):
        masked = masked_band(j)
        column = tags[:, j]
        order = np.lexsort((masked, column))
        tag_out[j] = column[order]
        share_out[j] = masked[order]
    return tag_out.tobytes(), share_out.tobytes()


def _masked_sorted_entries(
    evaluated: tuple[U64Array, U64Array, _Lines], tag_bytes: int
) -> tuple[bytes, bytes, _Lines]:
    """The sorted band arrays of a build from its tags, pads and lines (the ``(N, L)``
    tag and pad arrays are freed when this returns, before the file is assembled)."""
    tags, pads, lines = evaluated
    tag_raw, share_raw = _sorted_bands(
        tags,
        lambda j: evaluate_shares_at(lines.secrets, lines.slopes, j + 1) ^ pads[:, j],
        tag_bytes,
    )
    return tag_raw, share_raw, lines


def _assemble(header: IndexHeader, tags: bytes, shares: bytes, handles: bytes) -> bytes:
    """The file: header, bands and handle set written into one buffer, the digest (which
    skips its own field) patched in last; one copy of the body, not several."""
    layout = header.layout()
    encoded = header.encode(digest=bytes(32))
    out = bytearray(layout.total_length)
    out[: len(encoded)] = encoded
    out[layout.tags_offset : layout.tags_offset + len(tags)] = tags
    out[layout.shares_offset : layout.shares_offset + len(shares)] = shares
    out[layout.handles_offset :] = handles
    digest = compute_digest(memoryview(out))
    signed = header.encode(digest=digest)
    out[: len(signed)] = signed
    return bytes(out)


def _handle_set(rows: npt.NDArray[np.uint8], width: int) -> bytes:
    """The distinct ``width``-byte prefixes of the handle rows (``(n, >= width)`` uint8),
    ascending as byte strings, joined.

    Sorted in numpy, not through per-handle ``bytes``: a prefix of 8..16 bytes is the pair
    (first 8 bytes, the rest zero-padded to 8) as big-endian integers, whose order is the
    byte strings' order because all prefixes have one length.
    """
    count = rows.shape[0]
    if count == 0:
        return b""
    padded = np.zeros((count, 16), dtype=np.uint8)
    padded[:, :width] = rows[:, :width]
    keys = padded.view(">u8").astype(np.uint64)  # (count, 2): high, low
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    ordered = keys[order]
    distinct = np.ones(count, dtype=bool)
    distinct[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    return np.ascontiguousarray(padded[order[distinct], :width]).tobytes()


@dataclass(frozen=True, slots=True)
class BuiltIndex:
    """A freshly built index (or delta) and the clearinghouse-private handle map.

    Attributes:
        header: the decoded header of :attr:`data`.
        data: the index file's bytes (what platforms download).
        handles: report handle -> report id. NOT in the file: only the clearinghouse holds
            it, to tell a platform which report a matched handle stands for.
    """

    header: IndexHeader
    data: bytes
    handles: dict[ReportHandle, str]

    def to_bytes(self) -> bytes:
        """The index file's bytes."""
        return self.data

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the index file (to a temporary name, then an atomic rename)."""
        target = Path(path)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_bytes(self.data)
        temporary.replace(target)

    @property
    def canaries(self) -> tuple[Canary, ...]:
        """The public canaries built into this index."""
        return self.header.canaries

    @property
    def digest(self) -> bytes:
        """SHA-256 digest of the file (as in its header)."""
        return self.header.digest


def _check_references(banding: Banding, references: Sequence[Reference]) -> None:
    for reference in references:
        if not isinstance(reference, Reference):
            raise TypeError("references must be Reference values")
        if reference.signal != banding.signal:
            raise InvalidParameter("a reference's signal differs from the banding's")
        if len(reference.hash) != banding.hash_bytes:
            raise InvalidEncoding(f"a {banding.signal} hash must be {banding.hash_bytes} bytes")


def _build(
    secret_key: SecretKey,
    banding: Banding,
    references: Sequence[Reference],
    canary_hashes: Sequence[bytes],
    *,
    kind: IndexKind,
    base_digest: bytes,
    tag_bytes: int,
    handle_bytes: int,
    processes: int | None,
    random_bytes: RandomBytes,
) -> BuiltIndex:
    if not isinstance(secret_key, SecretKey):
        raise TypeError("secret_key must be a SecretKey")
    if secret_key.mode is not oprf.Mode.VOPRF:
        raise InvalidParameter("index keys are VOPRF keys (MATCHING.md)")
    _check_references(banding, references)
    for canary in canary_hashes:
        if not isinstance(canary, bytes) or len(canary) != banding.hash_bytes:
            raise InvalidEncoding(f"a {banding.signal} canary must be {banding.hash_bytes} bytes")
    hashes = [r.hash for r in references] + list(canary_hashes)
    count = len(hashes)
    if not isinstance(handle_bytes, int) or not 8 <= handle_bytes <= HANDLE_SIZE:
        raise InvalidParameter("stored handle width must be 8..16 bytes")
    workers = (os.cpu_count() or 1) if processes is None else processes
    if workers < 1:
        raise InvalidParameter("processes must be >= 1")
    tag_raw, share_raw, lines = _masked_sorted_entries(
        _evaluate_entries(
            secret_key.scalar,
            banding,
            hashes,
            tag_bytes,
            workers,
            lambda: _draw_lines(references, count, banding.threshold, handle_bytes, random_bytes),
        ),
        tag_bytes,
    )
    raw_handles = lines.raw_handles
    canaries = tuple(
        Canary(canary_hashes[i], ReportHandle(raw_handles[len(references) + i]))
        for i in range(len(canary_hashes))
    )
    handle_set = lines.handle_set
    header = IndexHeader(
        kind=kind,
        banding=banding,
        key_epoch=secret_key.epoch,
        key_id=secret_key.key_id,
        entry_count=count,
        handle_count=len(handle_set) // handle_bytes,
        tag_bytes=tag_bytes,
        handle_bytes=handle_bytes,
        canaries=canaries,
        base_digest=base_digest,
        digest=bytes(32),
    )
    data = _assemble(header, tag_raw, share_raw, handle_set)
    final_header, _ = decode_header(data)
    return BuiltIndex(final_header, data, lines.handle_map)


def build_index(
    secret_key: SecretKey,
    banding: Banding,
    references: Sequence[Reference],
    *,
    canaries: Sequence[bytes] | None = None,
    tag_bytes: int = 4,
    handle_bytes: int = HANDLE_SIZE,
    processes: int | None = None,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> BuiltIndex:
    """Build a full index of ``references`` under the OPRF key ``secret_key``.

    Args:
        secret_key: the clearinghouse's OPRF key (VOPRF mode); its epoch and key id go
            into the header, so a platform can check them against the published key.
        banding: the public banding of the references' signal type.
        references: the reported hashes, all of ``banding.signal``.
        canaries: public canary hashes built in like references; ``None`` means
            :func:`default_canaries`.
        tag_bytes: tag width, 4 (default) or 8.
        handle_bytes: stored handle prefix, 8..16 bytes (docs/index-format.md, false
            positives).
        processes: worker processes for the PRF; ``None`` uses every core, 1 runs inline.
        random_bytes: source of the line coefficients (``secrets.token_bytes``; injectable so
            golden files can be rebuilt byte for byte).

    Returns:
        The index bytes with their header and the private handle -> report id map.

    Raises:
        TypeError: ``secret_key`` or a reference has the wrong type.
        InvalidParameter: not a VOPRF key, a reference of another signal, bad widths or
            process count.
        InvalidEncoding: a reference or canary hash of the wrong length.
    """
    chosen = default_canaries(banding) if canaries is None else list(canaries)
    return _build(
        secret_key,
        banding,
        references,
        chosen,
        kind=IndexKind.FULL,
        base_digest=bytes(32),
        tag_bytes=tag_bytes,
        handle_bytes=handle_bytes,
        processes=processes,
        random_bytes=random_bytes,
    )


def add_references(
    secret_key: SecretKey,
    base: IndexHeader,
    references: Sequence[Reference],
    *,
    processes: int | None = None,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> BuiltIndex:
    """Build a delta of new references against ``base`` (same banding, key and widths).

    Args:
        secret_key: the key ``base`` was built with (same key id).
        base: the header of the index the delta extends (``Index.header`` or
            ``BuiltIndex.header``); a delta of a delta is refused.
        references: the new references.
        processes: as for :func:`build_index`.
        random_bytes: as for :func:`build_index`.

    Returns:
        A delta index (kind ``DELTA``, no canaries) and its handle map.

    Raises:
        InvalidParameter: ``base`` is not a full index or has another key, or references do
            not fit its banding.
    """
    if base.kind is not IndexKind.FULL:
        raise InvalidParameter("a delta extends a full index")
    if not isinstance(secret_key, SecretKey):
        raise TypeError("secret_key must be a SecretKey")
    if secret_key.key_id != base.key_id or secret_key.epoch != base.key_epoch:
        raise InvalidParameter("the delta's key differs from its base's")
    return _build(
        secret_key,
        base.banding,
        references,
        [],
        kind=IndexKind.DELTA,
        base_digest=base.digest,
        tag_bytes=base.tag_bytes,
        handle_bytes=base.handle_bytes,
        processes=processes,
        random_bytes=random_bytes,
    )


# --------------------------------------------------------------------------- lookup


class Index:
    """A read-only index, memory-mapped from a file or viewed over bytes.

    Build one with :meth:`open` or :meth:`from_bytes`; both check the header and, unless
    ``verify=False``, the digest and the body invariants (sorted tags, shares below
    ``2**61``, handles ascending and distinct).

    Lookups are bounded: an upload may hit at most ``max_hits`` entries over all bands
    (default :func:`default_max_hits`), else :class:`IndexTooDense` is raised before any
    per-hit work. An honest index gives a non-matching upload about ``N * L / 2**32`` hits
    and each matching reference at most ``L``; an index whose entries share tags would
    otherwise make a lookup's memory linear and its pair trials (t = 2) quadratic in ``N``.
    """

    __slots__ = (
        "_handle_prefix",
        "_handles",
        "_max_hits",
        "_shares",
        "_tags",
        "header",
        "layout",
    )

    header: IndexHeader
    layout: Layout

    def __init__(
        self,
        data: bytes | memoryview | npt.NDArray[np.uint8],
        *,
        verify: bool,
        max_hits: int | None = None,
    ) -> None:
        buffer = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
        view = buffer.data
        # Length, digest and bounds are checked before the header is expanded.
        header, layout = decode_header(view, verify_digest=verify)
        per_band = header.entry_count
        bands = header.banding.count
        tag_dtype = np.dtype("<u4" if header.tag_bytes == 4 else "<u8")
        self.header = header
        self.layout = layout
        self._max_hits = _check_max_hits(header.banding, max_hits)
        self._tags = np.ndarray(
            (bands, per_band), dtype=tag_dtype, buffer=buffer, offset=layout.tags_offset
        )
        self._shares = np.ndarray(
            (bands, per_band), dtype="<u8", buffer=buffer, offset=layout.shares_offset
        )
        self._handles = np.ndarray(
            (header.handle_count, header.handle_bytes),
            dtype=np.uint8,
            buffer=buffer,
            offset=layout.handles_offset,
        )
        self._handle_prefix: U64Array | None = None
        if verify:
            self._verify_body()

    def _verify_body(self) -> None:
        if _per_band_unsorted(self._tags, self._shares):
            raise IndexFormatError("index band entries are not sorted")
        if any(band.size and int(band.max()) >> 61 for band in self._shares):
            raise IndexFormatError("index shares must be below 2**61")
        prefix = self._prefix()
        if len(prefix) > 1:
            rows = self._handles
            same = prefix[1:] == prefix[:-1]
            if np.any(prefix[1:] < prefix[:-1]) or any(
                rows[i].tobytes() >= rows[i + 1].tobytes() for i in np.flatnonzero(same)
            ):
                raise IndexFormatError("index handles are not ascending and distinct")

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, verify: bool = True, max_hits: int | None = None
    ) -> Self:
        """Memory-map an index file.

        Args:
            path: the index file.
            verify: check the digest and the body invariants (a full read of the file).
            max_hits: entries one upload may hit over all bands (class docstring);
                ``None`` means :func:`default_max_hits`.

        Raises:
            InvalidParameter: ``max_hits`` is below ``L``.
            IndexFormatError: the file is not a valid index of this version.
            OSError: the file cannot be read.
        """
        size = os.path.getsize(path)
        if size == 0:
            raise IndexFormatError("index file is empty")
        mapped = np.memmap(path, dtype=np.uint8, mode="r")
        return cls(mapped, verify=verify, max_hits=max_hits)

    @classmethod
    def from_bytes(
        cls, data: bytes, *, verify: bool = True, max_hits: int | None = None
    ) -> Self:
        """View an index held in memory (arguments as for :meth:`open`).

        Raises:
            InvalidParameter: ``max_hits`` is below ``L``.
            IndexFormatError: the bytes are not a valid index of this version.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("index data must be bytes")
        return cls(bytes(data), verify=verify, max_hits=max_hits)

    @property
    def digest(self) -> bytes:
        """The file's SHA-256 digest (from its header)."""
        return self.header.digest

    @property
    def canaries(self) -> tuple[Canary, ...]:
        """The public canaries a platform should query and must match."""
        return self.header.canaries

    @property
    def entry_count(self) -> int:
        """Entries per band (references plus canaries): the global ``N`` a platform learns."""
        return self.header.entry_count

    def _prefix(self) -> U64Array:
        """First 8 bytes of every stored handle as native integers (cached)."""
        if self._handle_prefix is None:
            rows = np.ascontiguousarray(self._handles[:, :8])
            self._handle_prefix = rows.view(">u8").ravel().astype(np.uint64)
        return self._handle_prefix

    def contains_handles(self, candidates: Sequence[bytes]) -> list[bool]:
        """Whether each 16-byte candidate handle is in the handle set (prefix compare)."""
        width = self.header.handle_bytes
        if not candidates:
            return []
        if len(candidates) < 16:
            rows = self._handles
            found = []
            for candidate in candidates:
                key = candidate[:width]
                low = bisect.bisect_left(range(len(rows)), key, key=lambda i: rows[i].tobytes())
                found.append(low < len(rows) and rows[low].tobytes() == key)
            return found
        prefix = self._prefix()
        wanted = np.frombuffer(b"".join(c[:width] for c in candidates), dtype=np.uint8)
        wanted = wanted.reshape(len(candidates), width)
        keys = np.ascontiguousarray(wanted[:, :8]).view(">u8").ravel().astype(np.uint64)
        left = np.searchsorted(prefix, keys, side="left")
        right = np.searchsorted(prefix, keys, side="right")
        # Stored handles are distinct, so an 8-byte prefix almost never repeats: compare
        # the one row a prefix hit names in numpy, and walk the rows of a repeated prefix.
        single = right - left == 1
        present = np.zeros(len(candidates), dtype=bool)
        rows = self._handles[left[single]]
        present[single] = np.all(rows == wanted[single], axis=1)
        for i in np.flatnonzero(right - left > 1).tolist():
            key = wanted[i].tobytes()
            present[i] = any(self._handles[e].tobytes() == key for e in range(left[i], right[i]))
        return [bool(hit) for hit in present.tolist()]

    def match(self, outputs: Sequence[bytes]) -> list[ReportHandle]:
        """The handles one upload matches.

        Args:
            outputs: the upload's ``L`` finalized OPRF outputs (64 bytes each), band order.

        Returns:
            Distinct matched handles, sorted.

        Raises:
            InvalidParameter: not ``L`` outputs.
            InvalidEncoding: an output is not 64 bytes.
        """
        return list(self.lookup_many([outputs])[0].handles)

    def lookup(self, outputs: Sequence[bytes]) -> MatchResult:
        """:meth:`match` with the diagnostics of :class:`MatchResult`."""
        return self.lookup_many([outputs])[0]

    def match_many(self, outputs_per_upload: Sequence[Sequence[bytes]]) -> list[list[ReportHandle]]:
        """:meth:`match` of many uploads in one vectorised pass."""
        return [list(r.handles) for r in self.lookup_many(outputs_per_upload)]

    def lookup_many(
        self, outputs_per_upload: Sequence[Sequence[bytes]], *, max_trials: int | None = None
    ) -> list[MatchResult]:
        """:meth:`lookup` of many uploads: one KDF batch and one search per band.

        Args:
            outputs_per_upload: each upload's ``L`` finalized outputs.
            max_trials: bound on the candidate trials of this call (:func:`lookup_trials`),
                checked with ``max_hits`` before any per-hit work; ``None``: no bound.

        Raises:
            InvalidParameter: an upload does not have ``L`` outputs.
            InvalidEncoding: an output is not 64 bytes.
            IndexTooDense: an upload hits more than ``max_hits`` entries, or the call's
                trials exceed ``max_trials``.
        """
        bands = self.header.banding.count
        uploads = len(outputs_per_upload)
        if any(len(outputs) != bands for outputs in outputs_per_upload):
            raise InvalidParameter(f"each upload needs exactly {bands} outputs (one per band)")
        if uploads == 0:
            return []
        flat = [out for outputs in outputs_per_upload for out in outputs]
        tags, pads = derive_entries(flat, self.header.tag_bytes)
        tags = tags.reshape(uploads, bands)
        pads = pads.reshape(uploads, bands)
        hit_upload, hit_band, hit_share = self._hits(tags, pads, max_trials)
        tag_hits = np.bincount(hit_upload, minlength=uploads)
        bands_hit = np.zeros(uploads, dtype=np.int64)
        if hit_upload.size:
            pairs = np.unique(hit_upload * bands + hit_band)
            bands_hit = np.bincount(pairs // bands, minlength=uploads)
        candidates = self._candidates(hit_upload, hit_band, hit_share)
        return self._resolve(candidates, tag_hits, bands_hit, uploads)

    def _hits(
        self, tags: U64Array, pads: U64Array, max_trials: int | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], U64Array]:
        uploads_parts: list[npt.NDArray[np.int64]] = []
        band_parts: list[npt.NDArray[np.int64]] = []
        share_parts: list[U64Array] = []
        bands = self.header.banding.count
        ranges: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]] = []
        totals = np.zeros(tags.shape[0], dtype=np.int64)
        for j in range(bands):
            column = self._tags[j]
            keys = tags[:, j].astype(column.dtype)
            left = np.searchsorted(column, keys, side="left")
            right = np.searchsorted(column, keys, side="right")
            if np.any(right < left):  # only on an unverified index with unsorted tags
                raise IndexFormatError("index band entries are not sorted")
            totals += right - left
            ranges.append((left, right))
        # Count before expanding: a dense index must cost no memory or pair trials.
        if totals.size and int(totals.max()) > self._max_hits:
            raise IndexTooDense(
                f"an upload hits {int(totals.max())} index entries, over the limit of "
                f"{self._max_hits}: the index is not one an honest clearinghouse builds"
            )
        _check_trials(totals, self.header.banding.threshold, max_trials)
        for j, (left, right) in enumerate(ranges):
            counts = right - left
            hit = np.flatnonzero(counts)
            if hit.size == 0:
                continue
            repeats = counts[hit]
            upload = np.repeat(hit, repeats)
            starts = np.repeat(left[hit], repeats)
            offsets = np.arange(upload.size) - np.repeat(np.cumsum(repeats) - repeats, repeats)
            entries = starts + offsets
            shares = self._shares[j][entries].astype(np.uint64) ^ pads[upload, j]
            uploads_parts.append(upload.astype(np.int64))
            band_parts.append(np.full(upload.size, j, dtype=np.int64))
            share_parts.append(shares)
        if not uploads_parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.uint64)
        return (
            np.concatenate(uploads_parts),
            np.concatenate(band_parts),
            np.concatenate(share_parts),
        )

    def _candidates(
        self,
        hit_upload: npt.NDArray[np.int64],
        hit_band: npt.NDArray[np.int64],
        hit_share: U64Array,
    ) -> tuple[npt.NDArray[np.int64], U64Array]:
        """Candidate secrets per upload: the shares (t = 1) or pair interpolations (t = 2)."""
        if self.header.banding.threshold == 1:
            valid = hit_share < _P
            return hit_upload[valid], hit_share[valid]
        order = np.lexsort((hit_band, hit_upload))
        hit_upload, hit_band, hit_share = hit_upload[order], hit_band[order], hit_share[order]
        boundaries = np.flatnonzero(np.diff(hit_upload)) + 1
        upload_parts: list[npt.NDArray[np.int64]] = []
        secret_parts: list[U64Array] = []
        for start, end in zip(
            np.concatenate(([0], boundaries)),
            np.concatenate((boundaries, [hit_upload.size])),
            strict=True,
        ):
            if end - start < 2:
                continue
            secrets = _pair_secrets(hit_band[start:end], hit_share[start:end])
            if secrets.size == 0:
                continue
            upload_parts.append(np.full(secrets.size, hit_upload[start], dtype=np.int64))
            secret_parts.append(secrets)
        if not upload_parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
        return np.concatenate(upload_parts), np.concatenate(secret_parts)

    def _resolve(
        self,
        candidates: tuple[npt.NDArray[np.int64], U64Array],
        tag_hits: npt.NDArray[np.int64],
        bands_hit: npt.NDArray[np.int64],
        uploads: int,
    ) -> list[MatchResult]:
        candidate_upload, candidate_secret = candidates
        found: dict[int, set[bytes]] = {}
        if candidate_secret.size:
            raw = derive_handles(candidate_secret)
            present = self.contains_handles(raw)
            for upload, handle, hit in zip(candidate_upload.tolist(), raw, present, strict=True):
                if hit:
                    found.setdefault(upload, set()).add(handle)
        hits_list = tag_hits.tolist()
        bands_list = bands_hit.tolist()
        empty: tuple[ReportHandle, ...] = ()
        # The handles were derived here (16 bytes each): wrap them without re-validation.
        trusted = ReportHandle._trusted
        return [
            MatchResult(
                handles=tuple(sorted(trusted(h) for h in found[u])) if u in found else empty,
                tag_hits=hits_list[u],
                bands_hit=bands_list[u],
            )
            for u in range(uploads)
        ]


def default_max_hits(banding: Banding) -> int:
    """The default bound on the entries one upload may hit: ``max(1024, 8 * L)``.

    Room for 8 references that agree with the upload on every band (near-duplicate
    references of one image), or 1024 exact duplicates of one hash (t = 1), plus the
    ~``N * L / 2**32`` chance tag hits; bounds the pair trials of t = 2 at about 4.7
    million per upload for L = 384.
    """
    return max(1024, 8 * banding.count)


def lookup_trials(hits_per_upload: npt.NDArray[np.int64], threshold: int) -> int:
    """The candidate trials a lookup makes: ``sum h`` (t = 1, one handle derivation per
    hit) or ``sum h*(h-1)/2`` (t = 2, one interpolation per pair of hits), over uploads.

    Its cost is what a malicious index controls: measured on 2 cores, one PDQ upload
    (L = 384) with 768 hits (294,528 trials) took 0.22 s and 95 MB, 1152 hits (662,976)
    0.86 s and 161 MB, 3072 hits (the default ``max_hits``, 4.7 million) 15 s and 880 MB.
    """
    hits = hits_per_upload.astype(np.int64)
    if threshold == 1:
        return int(hits.sum())
    return int((hits * (hits - 1) // 2).sum())


def _check_trials(totals: npt.NDArray[np.int64], threshold: int, max_trials: int | None) -> None:
    """Refuse a lookup whose trials exceed ``max_trials``, before any per-hit work."""
    if max_trials is None:
        return
    trials = lookup_trials(totals, threshold)
    if trials > max_trials:
        raise IndexTooDense(
            f"a lookup needs {trials} candidate trials, over the limit of {max_trials}: "
            "the index is not one an honest clearinghouse builds, or the limit is too low"
        )


def _check_max_hits(banding: Banding, max_hits: int | None) -> int:
    if max_hits is None:
        return default_max_hits(banding)
    if type(max_hits) is not int or max_hits < banding.count:
        raise InvalidParameter("max_hits must be an int of at least L (one hit per band)")
    return max_hits


def _pair_secrets(bands: npt.NDArray[np.int64], values: U64Array) -> U64Array:
    """Candidate secrets of one upload's hits (t = 2): Lagrange at 0 over pairs of bands.

    Every pair of hits in different bands gives a candidate. A true line usually has many
    hits, so its secret comes from many pairs; with two such lines (a reference reported
    twice, near-duplicate references) the cross pairs would add up to ``h**2/4`` garbage
    candidates, each costing an HMAC. So secrets supported by >= 3 pairs (>= 3 collinear
    hits) are taken first, their lines' hits are set aside, and only pairs of the remaining
    hits contribute further candidates: a reference with exactly two agreeing bands is
    still found. All work is bounded by ``h*(h-1)/2`` pairs, ``h <= hits in L bands``.
    """
    count = bands.size
    first, second = np.triu_indices(count, k=1)
    keep = (bands[first] != bands[second]) & (values[first] < _P) & (values[second] < _P)
    first, second = first[keep], second[keep]
    if first.size == 0:
        return np.zeros(0, dtype=np.uint64)
    points = (bands + 1).astype(np.uint64)
    secrets = interpolate_at_zero_many(points[first], values[first], points[second], values[second])
    distinct, where, support = np.unique(secrets, return_index=True, return_counts=True)
    strong = support >= 3
    if not strong.any():
        return distinct
    on_line = np.zeros(count, dtype=bool)
    for secret, pair in zip(distinct[strong].tolist(), where[strong].tolist(), strict=True):
        z, y = int(points[first[pair]]), int(values[first[pair]])
        slope = (y - secret) * pow(z, FIELD_MODULUS - 2, FIELD_MODULUS) % FIELD_MODULUS
        expected = mul_mod_many(np.full(count, slope, dtype=np.uint64), points) + np.uint64(secret)
        expected = np.where(expected >= _P, expected - _P, expected)
        on_line |= expected == values
    rest = ~on_line[first] & ~on_line[second]
    return np.union1d(distinct[strong], np.unique(secrets[rest]))


def _per_band_unsorted(tags: npt.NDArray[np.unsignedinteger], shares: U64Array) -> bool:
    """Whether some band is not ascending by (tag, share). One band at a time, so a
    multi-GB memory-mapped index needs temporary memory of one band only."""
    if tags.shape[1] < 2:
        return False
    for band_tags, band_shares in zip(tags, shares, strict=True):
        down = band_tags[1:] < band_tags[:-1]
        tie = band_tags[1:] == band_tags[:-1]
        if down.any() or (tie & (band_shares[1:] < band_shares[:-1])).any():
            return True
    return False


class IndexSet:
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
        (``max_trials`` bounds each of them)."""
        results = self.base.lookup_many(outputs_per_upload, max_trials=max_trials)
        for delta in self.deltas:
            more = delta.lookup_many(outputs_per_upload, max_trials=max_trials)
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

    def match(self, outputs: Sequence[bytes]) -> list[ReportHandle]:
        """:meth:`Index.match` over the base and every delta."""
        return list(self.lookup_many([outputs])[0].handles)

    def lookup(self, outputs: Sequence[bytes]) -> MatchResult:
        """:meth:`Index.lookup` over the base and every delta."""
        return self.lookup_many([outputs])[0]

    def match_many(self, outputs_per_upload: Sequence[Sequence[bytes]]) -> list[list[ReportHandle]]:
        """:meth:`Index.match_many` over the base and every delta."""
        return [list(r.handles) for r in self.lookup_many(outputs_per_upload)]


def _check_delta(base: IndexHeader, delta: IndexHeader) -> None:
    if delta.kind is not IndexKind.DELTA or delta.base_digest != base.digest:
        raise IndexFormatError("a delta does not name this base index")
    same = (
        delta.banding == base.banding
        and delta.key_epoch == base.key_epoch
        and delta.key_id == base.key_id
        and delta.tag_bytes == base.tag_bytes
        and delta.handle_bytes == base.handle_bytes
    )
    if not same:
        raise IndexFormatError("a delta's parameters differ from its base")


def merge_indexes(base: Index, deltas: Sequence[Index]) -> bytes:
    """Merge deltas into their base: a new full index file (no key needed).

    The result has the base's header fields and canaries, every entry of base and deltas
    re-sorted per band, the union of the handle sets, and a new digest.

    Raises:
        IndexFormatError: a delta names another base, or its parameters differ.
    """
    header = base.header
    if header.kind is not IndexKind.FULL:
        raise IndexFormatError("merge needs a full base index")
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
