"""Looking uploads up in an index (platform): memory-mapped file, bounded lookups.

Theory of operation
-------------------
The platform finalizes one upload's ``L`` OPRF outputs (band order), derives each band's
tag and pad, binary-searches each band's tag array (a memory-mapped ``uint32`` array:
``np.searchsorted``), unmasks the shares of the hits and
- t = 1: each unmasked share is a candidate secret ``s``;
- t = 2: each pair of hits in different bands gives a candidate ``s`` by Lagrange
  interpolation at zero (at most ``L*(L-1)/2`` pairs per upload: bounded work);
and reports ``handle(s)`` for every candidate found in the handle set.

The public names are re-exported by :mod:`blindmatch.psi.index`.
"""

from __future__ import annotations

import abc
import bisect
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from blindmatch.errors import IndexFormatError, IndexTooDense, InvalidParameter
from blindmatch.psi._index_format import (
    NO_GROUP,
    Canary,
    FileHeader,
    IndexHeader,
    Layout,
    decode_header,
)
from blindmatch.psi.bands import Banding
from blindmatch.psi.kdf import ReportHandle, derive_entries, derive_handles
from blindmatch.psi.shares import (
    FIELD_MODULUS,
    interpolate_at_zero_many,
    mul_mod_many,
)

__all__ = [
    "HandleGroup",
    "Index",
    "IndexFile",
    "MatchResult",
    "default_max_hits",
    "lookup_trials",
]

U64Array = npt.NDArray[np.uint64]
_P = np.uint64(FIELD_MODULUS)


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The lookup of one upload: matched handles and what else the platform saw.

    Attributes:
        handles: distinct matched report handles, sorted.
        tag_hits: single-band tag hits (entries whose tag equals the upload's in that band);
            docs/design.md "What each party learns": about ``N*L/2**32`` for a non-match.
        bands_hit: number of bands with at least one tag hit.
    """

    handles: tuple[ReportHandle, ...]
    tag_hits: int
    bands_hit: int

    @property
    def matched(self) -> bool:
        """Whether any handle matched."""
        return bool(self.handles)


@dataclass(frozen=True, slots=True)
class HandleGroup:
    """The group a handle of a grouped index (format version 2) belongs to.

    Attributes:
        handle: the group's handle (a video report's handle; the clearinghouse maps it to
            the report).
        size: how many handles the group holds (a reported video's frame references).
    """

    handle: ReportHandle
    size: int


class Lookups(abc.ABC):
    """The lookup methods of :class:`Index` and :class:`~blindmatch.psi.index.IndexSet`, all
    from one :meth:`lookup_many`."""

    __slots__ = ()

    @abc.abstractmethod
    def lookup_many(
        self, outputs_per_upload: Sequence[Sequence[bytes]], *, max_trials: int | None = None
    ) -> list[MatchResult]:
        """:meth:`lookup` of many uploads (``max_trials``: see :meth:`Index.lookup_many`)."""

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


class IndexFile(Lookups):
    """What every one-file view (:class:`Index`, the compact ``CompactIndex``) shares: its
    header's digest and canaries, and the two ways to get at its bytes."""

    __slots__ = ()

    header: FileHeader

    @staticmethod
    def _map(path: str | os.PathLike[str]) -> npt.NDArray[np.uint8]:
        """The file, memory-mapped read-only.

        Raises:
            IndexFormatError: the file is empty (numpy cannot map it).
            OSError: the file cannot be read.
        """
        if os.path.getsize(path) == 0:
            raise IndexFormatError("index file is empty")
        return np.memmap(path, dtype=np.uint8, mode="r")

    @staticmethod
    def _own(data: bytes | bytearray | memoryview) -> bytes:
        """A private copy of in-memory file bytes (a caller's buffer may change later)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("index data must be bytes")
        return bytes(data)

    @property
    def digest(self) -> bytes:
        """The file's SHA-256 digest (from its header)."""
        return self.header.digest

    @property
    def canaries(self) -> tuple[Canary, ...]:
        """The public canaries a platform should query and must match."""
        return self.header.canaries


class Index(IndexFile):
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
        "_group_handles",
        "_group_sizes",
        "_handle_groups",
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
        self._handle_groups: npt.NDArray[np.uint32] | None = None
        self._group_handles: npt.NDArray[np.uint8] | None = None
        self._group_sizes: npt.NDArray[np.int64] | None = None
        if header.group_count is not None:
            self._open_groups(buffer, header.group_count)
        if verify:
            self._verify_body()

    def _open_groups(self, buffer: npt.NDArray[np.uint8], group_count: int) -> None:
        """Map the groups sections and check them whole (4 bytes per handle, 16 per group:
        small beside the bands, and a lookup trusts them)."""
        groups = np.ndarray(
            (self.header.handle_count,),
            dtype="<u4",
            buffer=buffer,
            offset=self.layout.handle_groups_offset,
        )
        handles = np.ndarray(
            (group_count, 16), dtype=np.uint8, buffer=buffer, offset=self.layout.groups_offset
        )
        member = groups != NO_GROUP
        if np.any(groups[member] >= group_count):
            raise IndexFormatError("a handle names a group the index does not hold")
        sizes = np.bincount(groups[member].astype(np.int64), minlength=group_count)
        if group_count and int(sizes.min()) == 0:
            raise IndexFormatError("every group of an index holds at least one handle")
        rows = [handles[i].tobytes() for i in range(group_count)]
        if any(a >= b for a, b in itertools.pairwise(rows)):
            raise IndexFormatError("index group handles are not ascending and distinct")
        self._handle_groups = groups.astype(np.uint32)
        self._group_handles = handles
        self._group_sizes = sizes

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
        return cls(cls._map(path), verify=verify, max_hits=max_hits)

    @classmethod
    def from_bytes(cls, data: bytes, *, verify: bool = True, max_hits: int | None = None) -> Self:
        """View an index held in memory (arguments as for :meth:`open`).

        Raises:
            InvalidParameter: ``max_hits`` is below ``L``.
            IndexFormatError: the bytes are not a valid index of this version.
        """
        return cls(cls._own(data), verify=verify, max_hits=max_hits)

    @property
    def entry_count(self) -> int:
        """Entries per band (references plus canaries): the global ``N`` a platform learns."""
        return self.header.entry_count

    @property
    def grouped(self) -> bool:
        """Whether the index groups its handles (format version 2: a video index)."""
        return self._handle_groups is not None

    def group_of(self, handle: ReportHandle) -> HandleGroup | None:
        """The group of a matched handle (docs/index-format.md "Groups").

        Args:
            handle: a handle the index matched (a frame reference's).

        Returns:
            Its group handle and the group's size; ``None`` for a handle the set does not
            hold or one in no group (a canary's).

        Raises:
            InvalidParameter: the index has no groups (format version 1).
        """
        groups, group_handles, sizes = self._handle_groups, self._group_handles, self._group_sizes
        if groups is None or group_handles is None or sizes is None:
            raise InvalidParameter("this index has no groups")
        if not isinstance(handle, ReportHandle):
            raise TypeError("handle must be a ReportHandle")
        key = bytes(handle)[: self.header.handle_bytes]
        rows = self._handles
        row = bisect.bisect_left(range(len(rows)), key, key=lambda i: rows[i].tobytes())
        if row >= len(rows) or rows[row].tobytes() != key:
            return None
        number = int(groups[row])
        if number == NO_GROUP:
            return None
        return HandleGroup(ReportHandle(group_handles[number].tobytes()), int(sizes[number]))

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
        return self.lookup_entries(
            tags.reshape(uploads, bands), pads.reshape(uploads, bands), max_trials=max_trials
        )

    def lookup_entries(
        self, tags: U64Array, pads: U64Array, *, max_trials: int | None = None
    ) -> list[MatchResult]:
        """:meth:`lookup_many` from the uploads' derived tags and pads (``uploads x L``
        ``uint64`` arrays, :func:`~blindmatch.psi.kdf.derive_entries` at this index's tag
        width): what a retained upload keeps for retro-matching
        (:mod:`blindmatch.protocols.retro`), without its OPRF outputs.

        Raises:
            InvalidParameter: the arrays are not ``uploads x L`` of one shape.
            IndexTooDense: as :meth:`lookup_many`.
        """
        bands = self.header.banding.count
        if tags.ndim != 2 or tags.shape != pads.shape or tags.shape[1] != bands:
            raise InvalidParameter(f"tags and pads must be two uploads x {bands} arrays")
        uploads = tags.shape[0]
        if uploads == 0:
            return []
        tags = tags.astype(np.uint64)
        pads = pads.astype(np.uint64)
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
