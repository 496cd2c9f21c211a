"""Building an index straight into its file (clearinghouse): the streaming assembly.

Theory of operation
-------------------
:func:`build_index_file` and :func:`add_references_file` make the bytes
:func:`~blindmatch.psi._index_build.build_index` and
:func:`~blindmatch.psi._index_build.add_references` make, from the same checked plan, the
same evaluation (local processes or an evaluator such as Ray) and the same random draws;
only the assembly differs. The evaluated chunks go to :class:`_BandWriter`, which writes
them in runs into each band's region of the output file and sorts each band in place at
the end, so the building process holds one run and one band instead of the ``N x L``
arrays, the sorted copies and the file (about 4x the file in memory).

The output is built as an owner-only temporary file in the target's directory (its
unsorted bands link one reference's entries across bands until they are sorted), made
public (0644) and renamed over the target only when complete; any failure removes it.

The public names are re-exported by :mod:`blindmatch.psi.index`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from blindmatch.errors import WorkerError
from blindmatch.psi._index_build import (
    ChunkEvaluator,
    Reference,
    U64Array,
    _delta_plan,
    _Lines,
    _Plan,
    _plan,
    default_canaries,
)
from blindmatch.psi._index_format import (
    DIGEST_OFFSET,
    DIGEST_SIZE,
    Canary,
    IndexHeader,
    IndexKind,
    Layout,
)
from blindmatch.psi.bands import Banding
from blindmatch.psi.kdf import HANDLE_SIZE, ReportHandle
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.shares import RandomBytes, evaluate_shares_at

__all__ = ["WrittenIndex", "add_references_file", "build_index_file"]

# Entries (rows x bands) gathered before they are written out as one run: 16 bytes each
# while gathered, so a run holds about 8 MiB whatever N is.
_RUN_ENTRIES = 1 << 19
_READ_BLOCK = 1 << 22


@dataclass(frozen=True, slots=True)
class WrittenIndex:
    """An index (or delta) built straight into a file, and the clearinghouse-private
    handle map: what :func:`build_index_file` returns instead of the bytes.

    Attributes:
        header: the decoded header of the file.
        path: where the file is.
        size: its length in bytes.
        handles: report handle -> report id, as :attr:`BuiltIndex.handles` (not in the file).
    """

    header: IndexHeader
    path: Path
    size: int
    handles: dict[ReportHandle, str]

    @property
    def canaries(self) -> tuple[Canary, ...]:
        """The public canaries built into this index."""
        return self.header.canaries

    @property
    def digest(self) -> bytes:
        """SHA-256 digest of the file (as in its header)."""
        return self.header.digest


def _pwrite_all(fd: int, data: bytes | npt.NDArray[np.generic], offset: int) -> None:
    # An array is written from its own buffer (contiguous here), not through a copy.
    view = (memoryview(data) if isinstance(data, bytes) else data.data).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _pread_all(fd: int, size: int, offset: int) -> bytearray:
    out = bytearray(size)
    view = memoryview(out)
    while view:
        read = os.preadv(fd, [view], offset)
        if read == 0:
            raise OSError("an index file being built is shorter than written")
        view, offset = view[read:], offset + read
    return out


class _BandWriter:
    """The file build's assembly: an external sort per band, in place in the output file.

    Theory of operation: the evaluation hands over chunks of whole references (all ``L``
    bands of a few rows); the file wants each band sorted, band after band. Chunks are
    gathered into a *run* of about :data:`_RUN_ENTRIES` entries; a run is masked (the
    lines' shares at ``j + 1``, XOR the pads: the lines are drawn at the first run if the
    evaluation has not drawn them yet) and each of its bands is written, unsorted, at the
    next free rows of that band's region of the file (``rows x (tag_bytes + 8)`` bytes per
    band and run). When every row is written, each band's region holds exactly that band's
    ``N`` entries, in run order; it is read back, sorted by (tag, masked share) and
    written in place. The order of the entries within a region before its sort cannot
    change the sorted bytes, so the file equals the in-memory build's byte for byte.

    Memory: one run (bounded, independent of ``N``), then one band's entries at a time
    (``N`` rows, about 1/L of the body), plus the build's ``O(N)`` lines and handle map;
    never the ``N x L`` arrays. Disk: the output's own length, no other temporary file.
    """

    def __init__(self, fd: int, plan: _Plan, lines: Callable[[], _Lines]) -> None:
        self._fd = fd
        self._plan = plan
        self._lines = lines
        self._count = len(plan.hashes)
        self._bands = plan.banding.count
        self._run_rows = max(1, _RUN_ENTRIES // self._bands)
        self._tag_dtype = "<u4" if plan.tag_bytes == 4 else "<u8"
        self._parts: list[tuple[int, U64Array, U64Array]] = []
        self._gathered = 0
        self._written = 0
        self._taken = np.zeros(self._count, dtype=bool)
        self._opened: tuple[IndexHeader, Layout] | None = None

    def _open(self) -> tuple[_Lines, IndexHeader, Layout]:
        """Draw the lines (if not yet), fix the header and size the file (sparse)."""
        lines = self._lines()
        if self._opened is None:
            header = self._plan.header(lines)
            layout = header.layout()
            os.ftruncate(self._fd, layout.total_length)
            self._opened = (header, layout)
        header, layout = self._opened
        return lines, header, layout

    def store(self, start: int, tags: U64Array, pads: U64Array) -> None:
        """Take one evaluated chunk (flat, reference-major); write a run when one is full.

        A chunk already taken is ignored: the local pool redoes, in this process, the
        chunks it cannot account for when a worker dies (``_evaluate_into``), and the work
        is deterministic, so a second answer is the same bytes. (An evaluator's repeated
        answer never gets here: :func:`_evaluate_elsewhere_into` refuses it.)
        """
        rows = tags.size // self._bands
        if not 0 <= start <= self._count - rows:
            raise WorkerError("a chunk's answer does not fit the build")
        taken = self._taken[start : start + rows]
        if taken.all():
            return
        if taken.any():
            raise WorkerError("a chunk's answer overlaps another's")
        taken[:] = True
        self._parts.append((start, tags, pads))
        self._gathered += rows
        if self._gathered >= self._run_rows:
            self._write_run()

    def _write_run(self) -> None:
        if not self._parts:
            return
        lines, _, layout = self._open()
        bands, count = self._bands, self._count
        rows = np.concatenate(
            [np.arange(start, start + part.size // bands) for start, part, _ in self._parts]
        )
        tags = np.concatenate([part for _, part, _ in self._parts]).reshape(-1, bands)
        pads = np.concatenate([part for _, _, part in self._parts]).reshape(-1, bands)
        self._parts.clear()
        self._gathered = 0
        if self._written + len(rows) > count:
            raise WorkerError("the build evaluated more rows than it has")
        secrets_of, slopes_of = lines.secrets[rows], lines.slopes[rows]
        tag_bytes = self._plan.tag_bytes
        for j in range(bands):
            masked = evaluate_shares_at(secrets_of, slopes_of, j + 1) ^ pads[:, j]
            position = j * count + self._written
            column = np.ascontiguousarray(tags[:, j], dtype=self._tag_dtype)
            _pwrite_all(self._fd, column, layout.tags_offset + position * tag_bytes)
            shares = np.ascontiguousarray(masked, dtype="<u8")
            _pwrite_all(self._fd, shares, layout.shares_offset + position * 8)
        self._written += len(rows)

    def finish(self) -> tuple[IndexHeader, _Lines]:
        """Write the last run, sort every band in place, write the handle and group
        sections and the header with its digest; return the final header."""
        self._write_run()
        lines, header, layout = self._open()
        count, fd = self._count, self._fd
        if self._written != count:
            raise WorkerError("the build did not evaluate every row")
        tag_bytes = self._plan.tag_bytes
        for j in range(self._bands):
            tag_at = layout.tags_offset + j * count * tag_bytes
            share_at = layout.shares_offset + j * count * 8
            tags = np.frombuffer(_pread_all(fd, count * tag_bytes, tag_at), self._tag_dtype)
            shares = np.frombuffer(_pread_all(fd, count * 8, share_at), "<u8")
            order = np.lexsort((shares, tags))
            _pwrite_all(fd, tags[order], tag_at)
            del tags
            _pwrite_all(fd, shares[order], share_at)
            del shares, order
        _pwrite_all(fd, lines.handle_set, layout.handles_offset)
        if lines.handle_groups is not None and lines.group_handles is not None:
            _pwrite_all(fd, lines.handle_groups, layout.handle_groups_offset)
            _pwrite_all(fd, lines.group_handles, layout.groups_offset)
        encoded = header.encode(digest=bytes(32))
        _pwrite_all(fd, encoded, 0)
        digest = self._digest(layout.total_length)
        final = replace(header, digest=digest)
        _pwrite_all(fd, final.encode(digest=digest), 0)
        return final, lines

    def _digest(self, length: int) -> bytes:
        """:func:`compute_digest` of the file, read in blocks (never whole)."""
        hasher = hashlib.sha256()
        skip = range(DIGEST_OFFSET, DIGEST_OFFSET + DIGEST_SIZE)
        offset = 0
        while offset < length:
            if offset == skip.start:
                offset = skip.stop
                continue
            end = min(length, offset + _READ_BLOCK)
            if offset < skip.start < end:
                end = skip.start
            hasher.update(_pread_all(self._fd, end - offset, offset))
            offset = end
        return hasher.digest()


def _write(path: str | os.PathLike[str], plan: _Plan) -> WrittenIndex:
    """The file build: evaluate into a :class:`_BandWriter` over a temporary file beside
    ``path``, renamed to ``path`` when complete; removed on any failure."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    drawn: list[_Lines] = []

    def lines() -> _Lines:
        # Once, whoever asks first: the evaluation's ``meanwhile`` or the first run.
        if not drawn:
            drawn.append(plan.draw())
        return drawn[0]

    # Owner-only until complete: before its bands are sorted, an entry's position in the
    # temporary file is its reference's row, which links one reference's entries across
    # bands (the finished file's order does not).
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            writer = _BandWriter(fd, plan, lines)
            plan.evaluate(lines, writer.store)
            header, drawn_lines = writer.finish()
            os.fchmod(fd, 0o644)  # a published index is public, like BuiltIndex.write's
        finally:
            os.close(fd)
        size = temporary.stat().st_size
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return WrittenIndex(header, target, size, drawn_lines.handle_map)


def build_index_file(
    path: str | os.PathLike[str],
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
) -> WrittenIndex:
    """:func:`build_index` written straight to ``path``, its memory bounded by one run
    and one band instead of growing with the file.

    The file is byte-identical to ``build_index(...).data`` with the same arguments (same
    key and ``random_bytes``). It is assembled in a temporary file in ``path``'s
    directory (``.NAME.RANDOM.tmp``), renamed to ``path`` when complete and removed if the
    build fails; the directory needs the file's length free, nothing more.

    Args:
        path: the index file to write (replaced atomically if it exists).
        secret_key, banding, references, canaries, tag_bytes, handle_bytes, processes,
            random_bytes, grouped, evaluator: as for :func:`build_index`.

    Returns:
        The file's header, path, size and the private handle -> report id map.

    Raises:
        As :func:`build_index`, and ``OSError`` when the file cannot be written.
    """
    chosen = default_canaries(banding) if canaries is None else list(canaries)
    plan = _plan(
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
    return _write(path, plan)


def add_references_file(
    path: str | os.PathLike[str],
    secret_key: SecretKey,
    base: IndexHeader,
    references: Sequence[Reference],
    *,
    processes: int | None = None,
    random_bytes: RandomBytes = secrets.token_bytes,
    evaluator: ChunkEvaluator | None = None,
) -> WrittenIndex:
    """:func:`add_references` written straight to ``path`` (as :func:`build_index_file`).

    Raises:
        As :func:`add_references`, and ``OSError`` when the file cannot be written.
    """
    plan = _delta_plan(secret_key, base, references, processes, random_bytes, evaluator)
    return _write(path, plan)
