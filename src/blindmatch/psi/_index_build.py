"""Building an index (clearinghouse): references in, index file and private handle map out.

Theory of operation
-------------------
For every reference ``i`` and band ``j`` the clearinghouse evaluates its direct PRF
``F_ij = Evaluate(sk, band_input(j, y_i))`` (RFC 9497, VOPRF mode), derives
``(tag_ij, pad_ij)`` from ``F_ij`` (:mod:`blindmatch.psi.kdf`) and stores
``(tag_ij, f_i(j + 1) XOR pad_ij)`` in band ``j``, where ``f_i`` is a fresh random line
whose secret ``s_i`` gives the report handle (:mod:`blindmatch.psi.shares`). Each band is
sorted by (tag, masked share), so the position of an entry says nothing about which
reference it came from, and nothing links one reference's entries across bands. The file
holds no hash and no hash bit: only PRF-derived tags, masked shares and handles.

Builds run the PRF on all cores: the flat list of band inputs is cut into chunks (each
sent as one joined ``bytes``, not a pickled list) that ``processes - 1`` worker processes
(fork server, else spawn) evaluate (``oprf.evaluate_batch``) and turn into tags and pads
there, so only 16 bytes per entry travel back. The building process is the last worker:
it first draws the lines and handles (work that needs no PRF), then takes the chunks no
worker has started, from the end of the queue, so no core idles while a worker starts
up or while the other still has queued work.

Builds elsewhere (``evaluator=``, e.g. :class:`blindmatch.psi.ray_build.RayBuild` on a
Ray cluster): the same chunks, each an :class:`EntryChunk`, go to a
:class:`ChunkEvaluator`, which runs only :func:`evaluate_chunk` (PRF, tags, pads) on them;
everything random is drawn here, in the building process, so the file is byte-identical
to a local build with the same key and random source. Answers are checked for length
and stored by their chunk's first row, and a build with a row stored twice or never
fails rather than publish uninitialised rows.

File builds (:mod:`blindmatch.psi._index_file`): the same plan (:class:`_Plan`),
evaluation and draws, written straight into the file with memory of one run and one band;
the bytes are the same.

Grouped builds (``grouped=True``, a video index, format version 2): the references of one
report id are one group (a reported video's frames). Each group gets a handle of 16 random
bytes (drawn after the lines, groups in order of first appearance, then sorted); the file
lists the group handles and, per stored handle, its group's number, and the private map
names the report of every group handle too. Nothing in the groups sections depends on a
hash or an entry: they partition the handles, which entries are not linked to without the
OPRF key.

The public names are re-exported by :mod:`blindmatch.psi.index`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from blindmatch.errors import InvalidEncoding, InvalidParameter, WorkerError
from blindmatch.psi import oprf
from blindmatch.psi._index_format import (
    NO_GROUP,
    Canary,
    FileHeader,
    IndexHeader,
    IndexKind,
    compute_digest,
    decode_header,
)
from blindmatch.psi.bands import Banding
from blindmatch.psi.group import Scalar
from blindmatch.psi.kdf import (
    HANDLE_SIZE,
    OUTPUT_SIZE,
    ReportHandle,
    derive_entries,
    derive_handles,
)
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.parallel import available_cores, process_pool, warn_one_process
from blindmatch.psi.shares import (
    RandomBytes,
    evaluate_shares_at,
    random_field_elements,
)

__all__ = [
    "BuiltFile",
    "BuiltIndex",
    "ChunkEvaluator",
    "EntryChunk",
    "RAW_OUTPUTS",
    "Reference",
    "add_references",
    "answer_sizes",
    "build_index",
    "default_canaries",
    "evaluate_chunk",
    "evaluate_outputs",
]

U64Array = npt.NDArray[np.uint64]
_T = TypeVar("_T")
# A build's sink for evaluated chunks: (first row, tags, pads), flat reference-major.
_Store = Callable[[int, U64Array, U64Array], None]
_CANARY_DOMAIN = b"blindmatch/v1/canary"
_MAX_REPORT_ID = 1024
_MIN_CHUNK = 256  # ~30 ms of group work: the task's pickling and pipe cost vanish against it
_MAX_CHUNK = 1024
# Small chunks keep the tail short: a worker holds at most its running chunk and one
# queued (``ProcessPoolExecutor`` pre-queues one call), which the building process cannot
# take over, so at the end it waits for at most about two chunks.
_CHUNKS_PER_PROCESS = 64
RAW_OUTPUTS: Final = 0
"""The ``tag_bytes`` of a chunk whose answer is its raw OPRF outputs, not tags and pads: a
compact exact build (:mod:`blindmatch.psi.compact`) needs the outputs themselves (its
filter keys and handles derive from them). The answer is then ``(outputs, b"")``: the
chunk's 64-byte outputs joined, and no pads."""


@dataclass(frozen=True, slots=True)
class Reference:
    """One reported hash: the report it belongs to, its signal type and its bytes.

    Raises:
        TypeError: a report id or signal that is not a ``str``, a hash that is not bytes.
        InvalidParameter: an empty or over-long report id.
    """

    report_id: str
    signal: str
    hash: bytes

    def __post_init__(self) -> None:
        # A wrong type is a TypeError everywhere (blindmatch.errors), a wrong value typed.
        if not isinstance(self.report_id, str) or not isinstance(self.signal, str):
            raise TypeError("a reference's report id and signal must be str")
        if not isinstance(self.hash, bytes):
            raise TypeError("a reference's hash must be bytes")
        if not 0 < len(self.report_id) <= _MAX_REPORT_ID:
            raise InvalidParameter(f"report id must be a string of 1..{_MAX_REPORT_ID} characters")

    def __repr__(self) -> str:
        # The hash is what the clearinghouse protects: keep it out of logs.
        return f"Reference(report_id={self.report_id!r}, signal={self.signal!r}, hash=<redacted>)"


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


@dataclass(frozen=True, slots=True)
class EntryChunk:
    """One task of a build's PRF work: the band inputs of ``rows`` references from
    ``start`` on, joined (``width`` bytes each, reference-major, ``rows * bands`` inputs).

    What a :class:`ChunkEvaluator` evaluates elsewhere; its result is the chunk's tags and
    pads, ``rows * bands`` little-endian ``u64`` each (:func:`evaluate_chunk`).
    """

    start: int
    rows: int
    joined: bytes
    width: int

    @property
    def entries(self) -> int:
        """Band inputs in the chunk."""
        return len(self.joined) // self.width


@runtime_checkable
class ChunkEvaluator(Protocol):
    """Evaluates a build's chunks somewhere other than this machine's process pool
    (:class:`blindmatch.psi.ray_build.RayBuild`), for :func:`build_index` and
    :func:`add_references` (``evaluator=``).

    The build keeps everything random on its own side (lines, handles, group handles are
    drawn by ``meanwhile``, in this process); an evaluator only runs the deterministic
    :func:`evaluate_chunk`, so where it runs cannot change a byte of the index. The build
    checks every answer's length (:func:`answer_sizes`), stores it by the chunk's
    ``start``, and fails with :class:`~blindmatch.errors.WorkerError` unless every row was
    stored exactly once.

    Two kinds of chunk reach it, told apart by ``tag_bytes``: a banded build's (4 or 8:
    the answer is tags and pads) and a compact exact build's (:data:`RAW_OUTPUTS`: the
    answer is the OPRF outputs, :func:`evaluate_outputs`). An evaluator passes
    ``tag_bytes`` through to :func:`evaluate_chunk` and need not know which.
    """

    @property
    def chunk_entries(self) -> int:
        """Band inputs per chunk (about; a chunk holds whole references)."""
        ...

    def evaluate_chunks(
        self,
        secret_key: Scalar,
        chunks: Iterator[EntryChunk],
        tag_bytes: int,
        meanwhile: Callable[[], None],
    ) -> Iterator[tuple[EntryChunk, bytes, bytes]]:
        """Yield ``(chunk, tags, pads)`` for every chunk, in any order, pulling ``chunks``
        lazily (a bounded number in flight); call ``meanwhile()`` exactly once, while the
        first chunks are being evaluated."""
        ...


def _answer_words(tag_bytes: int) -> tuple[int, int]:
    """``u64`` words per entry in the two parts of a chunk's answer: a tag and a pad, or
    (:data:`RAW_OUTPUTS`) the 64-byte output and nothing."""
    return (OUTPUT_SIZE // 8, 0) if tag_bytes == RAW_OUTPUTS else (1, 1)


def answer_sizes(entries: int, tag_bytes: int) -> tuple[int, int]:
    """The byte lengths of the two parts of the answer to a chunk of ``entries`` band
    inputs (:func:`evaluate_chunk`): 8 and 8 per entry, or 64 and 0 (:data:`RAW_OUTPUTS`)."""
    first, second = _answer_words(tag_bytes)
    return entries * 8 * first, entries * 8 * second


def evaluate_chunk(key: bytes, joined: bytes, width: int, tag_bytes: int) -> tuple[bytes, bytes]:
    """Evaluate a chunk of ``width``-byte band inputs (joined) under the secret key scalar
    ``key`` (32 bytes) and return its tags and pads as raw little-endian ``u64`` arrays
    (``tag_bytes`` :data:`RAW_OUTPUTS`: its OPRF outputs joined, and ``b""``).

    The work of a worker process or a remote worker: deterministic, no randomness. The
    byte order is fixed (not the worker's native one), so a cluster of mixed machines
    answers the same bytes.
    """
    inputs = [joined[i : i + width] for i in range(0, len(joined), width)]
    tags, pads = _chunk_entries(Scalar.from_bytes(key), inputs, tag_bytes)
    return tags.astype("<u8", copy=False).tobytes(), pads.astype("<u8", copy=False).tobytes()


def _chunk_entries(
    secret_key: Scalar, inputs: Sequence[bytes], tag_bytes: int
) -> tuple[U64Array, U64Array]:
    outputs = oprf.evaluate_batch(secret_key, inputs, oprf.Mode.VOPRF)
    if tag_bytes == RAW_OUTPUTS:
        # The outputs as 8 words each, read little-endian: written back the same way
        # (evaluate_chunk, evaluate_outputs) they are the output bytes on any machine.
        words = np.frombuffer(b"".join(outputs), dtype="<u8").astype(np.uint64)
        return words, np.zeros(0, dtype=np.uint64)
    return derive_entries(outputs, tag_bytes)


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


def _evaluate_elsewhere_into(
    evaluator: ChunkEvaluator,
    secret_key: Scalar,
    banding: Banding,
    hashes: Sequence[bytes],
    tag_bytes: int,
    meanwhile: Callable[[], _T],
    store: _Store,
) -> _T:
    """:func:`_evaluate_into` over a :class:`ChunkEvaluator`: every answer is checked
    for length and handed to ``store`` by its chunk's first row; a row answered twice or
    never fails the build (:class:`~blindmatch.errors.WorkerError`) rather than leave
    unevaluated rows in an index (``np.empty`` garbage, or a file's unwritten zeros)."""
    count, bands = len(hashes), banding.count
    stored = np.zeros(count, dtype=bool)
    extra: list[_T] = []
    size = evaluator.chunk_entries
    if type(size) is not int or size < 1:
        raise InvalidParameter("an evaluator's chunk_entries must be a positive int")

    def chunks() -> Iterator[EntryChunk]:
        for start, inputs in _input_chunks(banding, hashes, size):
            joined, width = _joined(inputs)
            yield EntryChunk(start, len(inputs) // bands, joined, width)

    def run_meanwhile() -> None:
        if extra:
            raise WorkerError("an evaluator ran the build's own work twice")
        extra.append(meanwhile())

    results = evaluator.evaluate_chunks(secret_key, chunks(), tag_bytes, run_meanwhile)
    try:
        for chunk, tag_raw, pad_raw in results:
            start, rows = chunk.start, chunk.rows
            if (len(tag_raw), len(pad_raw)) != answer_sizes(rows * bands, tag_bytes):
                raise WorkerError("a chunk's answer has the wrong length")
            if not 0 <= start <= count - rows or stored[start : start + rows].any():
                raise WorkerError("a chunk's answer does not fit the build")
            store(
                start,
                np.frombuffer(tag_raw, "<u8").astype(np.uint64, copy=False),
                np.frombuffer(pad_raw, "<u8").astype(np.uint64, copy=False),
            )
            stored[start : start + rows] = True
    finally:
        # A failed build stops the evaluator's work in flight (a generator's cleanup).
        close = getattr(results, "close", None)
        if close is not None:
            close()
    if not stored.all():
        raise WorkerError("the evaluator did not answer every chunk")
    if not extra:
        extra.append(meanwhile())
    return extra[0]


def _gathering_store(count: int, bands: int, tag_bytes: int) -> tuple[U64Array, U64Array, _Store]:
    """``(N, L)`` tag and pad arrays (:data:`RAW_OUTPUTS`: ``(N, 8 L)`` output words and
    ``(N, 0)``) and the store that fills them."""
    first_words, second_words = _answer_words(tag_bytes)
    tags = np.empty((count, bands * first_words), dtype=np.uint64)
    pads = np.empty((count, bands * second_words), dtype=np.uint64)

    def store(start: int, part_tags: U64Array, part_pads: U64Array) -> None:
        rows = part_tags.size // (bands * first_words)
        tags[start : start + rows] = part_tags.reshape(rows, -1)
        pads[start : start + rows] = part_pads.reshape(rows, -1)

    return tags, pads, store


def _evaluate_into(
    secret_key: Scalar,
    banding: Banding,
    hashes: Sequence[bytes],
    tag_bytes: int,
    processes: int,
    meanwhile: Callable[[], _T],
    store: _Store,
) -> _T:
    """Evaluate the tags and pads of every band of every hash, handing each chunk's to
    ``store(first row, tags, pads)`` (flat, reference-major, ``rows * L`` each), in any
    order, every row exactly once; return ``meanwhile()``, run while the workers evaluate.

    Band inputs are made chunk by chunk as the evaluation goes, so memory holds the chunks
    in flight, never the ``N * L`` inputs; what ``store`` keeps is its own affair (the
    in-memory build gathers ``(N, L)`` arrays, the file build a bounded run).
    ``meanwhile`` is the build's work that does not need the PRF (secrets, handles): with
    worker processes it overlaps their evaluation. ``processes - 1`` workers are kept fed
    with a window of chunks; this process evaluates the next chunk itself whenever the
    window is full, and at the end takes back every chunk no worker has started
    (``Future.cancel`` succeeds only for those), so ``processes`` cores stay busy, and a
    worker that starts late (the fork server's first start imports numpy and blindmatch)
    delays nothing.
    """
    count, bands = len(hashes), banding.count

    def inline(chunks: Iterable[tuple[int, list[bytes]]]) -> None:
        for start, inputs in chunks:
            store(start, *_chunk_entries(secret_key, inputs, tag_bytes))

    total = count * bands
    pool = None
    if processes > 1 and total >= 2 * _MIN_CHUNK:
        pool = process_pool(processes - 1, preload=__name__)
        if pool is None:
            warn_one_process("worker processes cannot import the main module", 4)
    if pool is None:
        inline(_input_chunks(banding, hashes, _MAX_CHUNK))
        return meanwhile()
    size = min(_MAX_CHUNK, max(_MIN_CHUNK, -(-total // (_CHUNKS_PER_PROCESS * processes))))
    chunks = _input_chunks(banding, hashes, size)
    # The key travels to the workers over the pool's pipes (child processes of this one).
    key = bytes(secret_key)
    window = 2 * (processes - 1)
    # A chunk stays here until its result is stored, so a pool that breaks loses none.
    pending: deque[tuple[int, list[bytes], Future[tuple[bytes, bytes]]]] = deque()
    extra: list[_T] = []
    # The chunk taken from ``chunks`` and not yet stored or handed to a worker: a pool that
    # breaks while collecting before it is placed must not lose it (its rows would keep the
    # garbage of ``np.empty``).
    in_hand: list[tuple[int, list[bytes]]] = []

    def submit(start: int, inputs: list[bytes]) -> None:
        joined, width = _joined(inputs)
        try:
            future = pool.submit(evaluate_chunk, key, joined, width, tag_bytes)
        except BrokenProcessPool:
            store(start, *_chunk_entries(secret_key, inputs, tag_bytes))
            raise
        pending.append((start, inputs, future))

    def collect(start: int, future: Future[tuple[bytes, bytes]]) -> None:
        tag_raw, pad_raw = future.result()
        store(start, np.frombuffer(tag_raw, "<u8"), np.frombuffer(pad_raw, "<u8"))

    try:
        for start, inputs in itertools.islice(chunks, window):
            submit(start, inputs)
        extra.append(meanwhile())
        for start, inputs in chunks:
            in_hand.append((start, inputs))
            while pending and pending[0][2].done():
                collect(pending[0][0], pending[0][2])
                pending.popleft()
            if len(pending) < window:
                submit(start, inputs)
            else:
                store(start, *_chunk_entries(secret_key, inputs, tag_bytes))
            in_hand.clear()
        for first, inputs, future in reversed(pending):
            if future.cancel():
                store(first, *_chunk_entries(secret_key, inputs, tag_bytes))
        for first, _, future in pending:
            if not future.cancelled():
                collect(first, future)
    except BrokenProcessPool:
        # A worker died: most often it could not import the main script, or that script
        # started this build again at its top level (parallel.process_pool). The work is
        # deterministic, so this process redoes what is not stored and goes on alone.
        warn_one_process("a worker process died (is the work under a main guard?)", 4)
        inline((first, inputs) for first, inputs, _ in pending)
        inline(in_hand)
        inline(chunks)
        if not extra:
            extra.append(meanwhile())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return extra[0]


@dataclass(frozen=True, slots=True)
class _Lines:
    """The build's PRF-independent half: lines, handles, the private handle map."""

    secrets: U64Array
    slopes: U64Array
    raw_handles: list[bytes]
    handle_map: dict[ReportHandle, str]
    handle_set: bytes
    handle_groups: bytes | None
    group_handles: bytes | None


def _draw_lines(
    references: Sequence[Reference],
    count: int,
    threshold: int,
    handle_bytes: int,
    random_bytes: RandomBytes,
    grouped: bool,
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
    kept = _handle_order(rows, handle_bytes)
    handle_set = np.ascontiguousarray(rows[kept, :handle_bytes]).tobytes()
    if not grouped:
        return _Lines(secrets, slopes, raw_handles, handle_map, handle_set, None, None)
    reports = list(dict.fromkeys(r.report_id for r in references))
    drawn: dict[bytes, str] = {}
    for report in reports:
        group_handle = random_bytes(HANDLE_SIZE)
        while group_handle in drawn:
            group_handle = random_bytes(HANDLE_SIZE)
        drawn[group_handle] = report
    ordered = sorted(drawn)
    number = {drawn[h]: i for i, h in enumerate(ordered)}
    per_row = np.full(count, NO_GROUP, dtype="<u4")
    per_row[: len(references)] = [number[r.report_id] for r in references]
    handle_map.update({trusted(h): report for h, report in drawn.items()})
    return _Lines(
        secrets,
        slopes,
        raw_handles,
        handle_map,
        handle_set,
        per_row[kept].tobytes(),
        b"".join(ordered),
    )


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


def _assemble(
    header: IndexHeader,
    tags: bytes,
    shares: bytes,
    handles: bytes,
    groups: tuple[bytes, bytes] | None = None,
) -> bytes:
    """The file: header, bands, handle set and (version 2) the groups sections written into
    one buffer, the digest (which skips its own field) patched in last; one copy of the
    body, not several."""
    layout = header.layout()
    encoded = header.encode(digest=bytes(32))
    out = bytearray(layout.total_length)
    out[: len(encoded)] = encoded
    out[layout.tags_offset : layout.tags_offset + len(tags)] = tags
    out[layout.shares_offset : layout.shares_offset + len(shares)] = shares
    out[layout.handles_offset : layout.handles_offset + len(handles)] = handles
    if groups is not None:
        handle_groups, group_handles = groups
        out[layout.handle_groups_offset : layout.handle_groups_offset + len(handle_groups)] = (
            handle_groups
        )
        out[layout.groups_offset :] = group_handles
    digest = compute_digest(memoryview(out))
    signed = header.encode(digest=digest)
    out[: len(signed)] = signed
    return bytes(out)


def _handle_set(rows: npt.NDArray[np.uint8], width: int) -> bytes:
    """The distinct ``width``-byte prefixes of the handle rows (``(n, >= width)`` uint8),
    ascending as byte strings, joined."""
    return np.ascontiguousarray(rows[_handle_order(rows, width), :width]).tobytes()


def _handle_order(rows: npt.NDArray[np.uint8], width: int) -> npt.NDArray[np.intp]:
    """Indices of the rows whose ``width``-byte prefixes form the handle set: ascending as
    byte strings, the first row of each distinct prefix.

    Sorted in numpy, not through per-handle ``bytes``: a prefix of 8..16 bytes is the pair
    (first 8 bytes, the rest zero-padded to 8) as big-endian integers, whose order is the
    byte strings' order because all prefixes have one length.
    """
    count = rows.shape[0]
    if count == 0:
        return np.zeros(0, dtype=np.intp)
    padded = np.zeros((count, 16), dtype=np.uint8)
    padded[:, :width] = rows[:, :width]
    keys = padded.view(">u8").astype(np.uint64)  # (count, 2): high, low
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    ordered = keys[order]
    distinct = np.ones(count, dtype=bool)
    distinct[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    result: npt.NDArray[np.intp] = order[distinct]
    return result


class BuiltFile:
    """What a freshly built file of any format version offers (:class:`BuiltIndex`, the
    compact ``BuiltCompactIndex``): its bytes, an atomic write, its digest and canaries."""

    __slots__ = ()

    header: FileHeader
    data: bytes

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


@dataclass(frozen=True, slots=True)
class BuiltIndex(BuiltFile):
    """A freshly built index (or delta) and the clearinghouse-private handle map.

    Attributes:
        header: the decoded header of :attr:`data`.
        data: the index file's bytes (what platforms download).
        handles: report handle -> report id (for a grouped index the group handles too).
            NOT in the file: only the clearinghouse holds it, to tell a platform which
            report a matched handle stands for.
    """

    header: IndexHeader
    data: bytes
    handles: dict[ReportHandle, str]


def _check_references(
    banding: Banding, references: Sequence[Reference], canaries: Sequence[bytes] = ()
) -> None:
    for reference in references:
        if not isinstance(reference, Reference):
            raise TypeError("references must be Reference values")
        if reference.signal != banding.signal:
            raise InvalidParameter("a reference's signal differs from the banding's")
        if len(reference.hash) != banding.hash_bytes:
            raise InvalidEncoding(f"a {banding.signal} hash must be {banding.hash_bytes} bytes")
    for canary in canaries:
        if not isinstance(canary, bytes) or len(canary) != banding.hash_bytes:
            raise InvalidEncoding(f"a {banding.signal} canary must be {banding.hash_bytes} bytes")


def _check_workers(processes: int | None, evaluator: ChunkEvaluator | None) -> None:
    if processes is not None and (type(processes) is not int or processes < 1):
        raise InvalidParameter("processes must be a positive int")
    if evaluator is not None and not isinstance(evaluator, ChunkEvaluator):
        raise TypeError("evaluator must be a ChunkEvaluator")


def evaluate_outputs(
    secret_key: SecretKey,
    banding: Banding,
    hashes: Sequence[bytes],
    *,
    processes: int | None,
    evaluator: ChunkEvaluator | None,
) -> list[bytes]:
    """The VOPRF outputs of every band input of ``hashes`` (reference-major), evaluated as a
    build's PRF work is: on ``evaluator`` when given, else on ``processes`` local processes
    (``None``: every core; small batches run inline). A compact exact build's half that
    needs the key (:mod:`blindmatch.psi.compact`); the answer is the same wherever it runs.

    Raises:
        InvalidParameter: ``processes`` is not a positive int.
        TypeError: ``evaluator`` is not a :class:`ChunkEvaluator`.
        WorkerError: the evaluator failed or answered wrongly.
    """
    _check_workers(processes, evaluator)
    if not hashes:
        return []
    scalar = secret_key.scalar
    words, _, store = _gathering_store(len(hashes), banding.count, RAW_OUTPUTS)
    if evaluator is None:
        workers = available_cores() if processes is None else processes
        _evaluate_into(scalar, banding, hashes, RAW_OUTPUTS, workers, _nothing, store)
    else:
        _evaluate_elsewhere_into(evaluator, scalar, banding, hashes, RAW_OUTPUTS, _nothing, store)
    raw = words.astype("<u8", copy=False).tobytes()
    return [raw[i : i + OUTPUT_SIZE] for i in range(0, len(raw), OUTPUT_SIZE)]


def _nothing() -> None:
    """The ``meanwhile`` of a build that draws nothing random (a compact build)."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """A checked build: every hash to evaluate (references, then canaries) and how to
    evaluate them and draw the lines; shared by the in-memory and the file build."""

    secret_key: SecretKey
    banding: Banding
    references: Sequence[Reference]
    canary_hashes: Sequence[bytes]
    hashes: list[bytes]
    kind: IndexKind
    base_digest: bytes
    tag_bytes: int
    handle_bytes: int
    processes: int | None
    random_bytes: RandomBytes
    grouped: bool
    evaluator: ChunkEvaluator | None

    def draw(self) -> _Lines:
        """The lines, handles and groups (every random draw of the build, in order)."""
        return _draw_lines(
            self.references,
            len(self.hashes),
            self.banding.threshold,
            self.handle_bytes,
            self.random_bytes,
            self.grouped,
        )

    def evaluate(self, meanwhile: Callable[[], _T], store: _Store) -> _T:
        """Evaluate every row into ``store`` locally or on the evaluator; ``meanwhile()``."""
        scalar = self.secret_key.scalar
        if self.evaluator is None:
            workers = available_cores() if self.processes is None else self.processes
            return _evaluate_into(
                scalar, self.banding, self.hashes, self.tag_bytes, workers, meanwhile, store
            )
        return _evaluate_elsewhere_into(
            self.evaluator, scalar, self.banding, self.hashes, self.tag_bytes, meanwhile, store
        )

    def header(self, lines: _Lines) -> IndexHeader:
        """The header (digest zero) of this build with these lines."""
        raw_handles = lines.raw_handles
        first = len(self.references)
        canaries = tuple(
            Canary(hash_, ReportHandle(raw_handles[first + i]))
            for i, hash_ in enumerate(self.canary_hashes)
        )
        return IndexHeader(
            kind=self.kind,
            banding=self.banding,
            key_epoch=self.secret_key.epoch,
            key_id=self.secret_key.key_id,
            entry_count=len(self.hashes),
            handle_count=len(lines.handle_set) // self.handle_bytes,
            tag_bytes=self.tag_bytes,
            handle_bytes=self.handle_bytes,
            canaries=canaries,
            base_digest=self.base_digest,
            digest=bytes(32),
            group_count=None if lines.group_handles is None else len(lines.group_handles) // 16,
        )


def _plan(
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
    grouped: bool = False,
    evaluator: ChunkEvaluator | None = None,
) -> _Plan:
    if not isinstance(secret_key, SecretKey):
        raise TypeError("secret_key must be a SecretKey")
    if secret_key.mode is not oprf.Mode.VOPRF:
        raise InvalidParameter("index keys are VOPRF keys (docs/design.md)")
    _check_references(banding, references, canary_hashes)
    hashes = [r.hash for r in references] + list(canary_hashes)
    if not isinstance(handle_bytes, int) or not 8 <= handle_bytes <= HANDLE_SIZE:
        raise InvalidParameter("stored handle width must be 8..16 bytes")
    _check_workers(processes, evaluator)
    return _Plan(
        secret_key,
        banding,
        references,
        canary_hashes,
        hashes,
        kind,
        base_digest,
        tag_bytes,
        handle_bytes,
        processes,
        random_bytes,
        grouped,
        evaluator,
    )


def _build(plan: _Plan) -> BuiltIndex:
    """The in-memory build: ``(N, L)`` tag and pad arrays, sorted bands, one buffer."""
    tags, pads, store = _gathering_store(len(plan.hashes), plan.banding.count, plan.tag_bytes)
    evaluated = (tags, pads, plan.evaluate(plan.draw, store))
    del tags, pads
    tag_raw, share_raw, lines = _masked_sorted_entries(evaluated, plan.tag_bytes)
    header = plan.header(lines)
    groups = None
    if lines.handle_groups is not None and lines.group_handles is not None:
        groups = (lines.handle_groups, lines.group_handles)
    data = _assemble(header, tag_raw, share_raw, lines.handle_set, groups)
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
    grouped: bool = False,
    evaluator: ChunkEvaluator | None = None,
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
        grouped: group the references by report id (a video index, format version 2: the
            frames of one reported video are one group; docs/index-format.md "Groups").
        evaluator: where the PRF work runs instead of local processes (``processes`` is
            then ignored), e.g. :class:`blindmatch.psi.ray_build.RayBuild`; the index is
            byte-identical to a local build with the same key and ``random_bytes``.

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
        _plan(
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
            grouped=grouped,
            evaluator=evaluator,
        )
    )


def _delta_plan(
    secret_key: SecretKey,
    base: IndexHeader,
    references: Sequence[Reference],
    processes: int | None,
    random_bytes: RandomBytes,
    evaluator: ChunkEvaluator | None,
) -> _Plan:
    if base.kind is not IndexKind.FULL:
        raise InvalidParameter("a delta extends a full index")
    if base.group_count is not None:
        # A delta has no groups sections; a video index is rebuilt instead (its groups
        # would otherwise be split across files).
        raise InvalidParameter("a grouped (video) index has no deltas: rebuild it")
    if not isinstance(secret_key, SecretKey):
        raise TypeError("secret_key must be a SecretKey")
    if secret_key.key_id != base.key_id or secret_key.epoch != base.key_epoch:
        raise InvalidParameter("the delta's key differs from its base's")
    return _plan(
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
        evaluator=evaluator,
    )


def add_references(
    secret_key: SecretKey,
    base: IndexHeader,
    references: Sequence[Reference],
    *,
    processes: int | None = None,
    random_bytes: RandomBytes = secrets.token_bytes,
    evaluator: ChunkEvaluator | None = None,
) -> BuiltIndex:
    """Build a delta of new references against ``base`` (same banding, key and widths).

    Args:
        secret_key: the key ``base`` was built with (same key id).
        base: the header of the index the delta extends (``Index.header`` or
            ``BuiltIndex.header``); a delta of a delta is refused.
        references: the new references.
        processes: as for :func:`build_index`.
        random_bytes: as for :func:`build_index`.
        evaluator: as for :func:`build_index`.

    Returns:
        A delta index (kind ``DELTA``, no canaries) and its handle map.

    Raises:
        InvalidParameter: ``base`` is not a full index or has another key, is grouped (a
            video index is rebuilt), or references do not fit its banding.
    """
    return _build(_delta_plan(secret_key, base, references, processes, random_bytes, evaluator))
