"""The byte layout of an index file: header encoding, decoding and section offsets.

docs/index-format.md is the normative description; this module is its implementation and
must change only together with it (and the golden files in tests/vectors/index/).

Layout (all integers little-endian; offsets in bytes)::

    fixed header (128 bytes)
      0   8  magic 89 42 4D 49 44 58 0D 0A ("\\x89BMIDX\\r\\n")
      8   2  format version (1; 2 = with the groups sections)
     10   1  kind: 0 full index, 1 delta
     11   1  RFC 9497 mode of the OPRF (1 = VOPRF)
     12   4  header length H (a multiple of 64, >= 128)
     16   8  entry count n (entries per band)
     24   8  handle count m
     32   4  band count L
     36   2  hash bits
     38   2  k (bits per band)
     40   1  threshold t
     41   1  tag bytes (4 or 8)
     42   1  share bytes (8: one 61-bit lane)
     43   1  handle bytes stored per handle (8..16)
     44   4  key epoch
     48   2  canary count c
     50   4  group count g (version 2; zero in version 1)
     54   2  reserved, zero
     56  32  base digest (delta: the digest of its base; full: zero)
     88  32  digest: SHA-256 of the whole file without these 32 bytes
    120   8  reserved, zero
    variable header (from offset 128)
      lp8(suite id) lp8(signal) lp8(seed) lp8(key id)
      c canaries, each: hash (hash bits / 8 bytes) || full handle (16 bytes)
      zero padding up to H
    body (from offset H)
      tags     L*n*tag_bytes, band-major; each band ascending by (tag, share)
      zeros    up to a multiple of 64
      shares   L*n*8, same order as the tags
      zeros    up to a multiple of 64
      handles  m*handle_bytes, ascending, distinct
    version 2 only:
      zeros    up to a multiple of 64
      handle groups  m*4: per handle (same order) its group number, or 0xFFFFFFFF for none
      zeros    up to a multiple of 64
      groups   g*16: the group handles, ascending, distinct
    end of file
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass
from typing import Protocol

from blindmatch.errors import IndexFormatError, InvalidParameter
from blindmatch.psi.bands import Banding
from blindmatch.psi.kdf import HANDLE_SIZE, TAG_SIZES, ReportHandle

__all__ = [
    "Canary",
    "DIGEST_OFFSET",
    "DIGEST_SIZE",
    "FileHeader",
    "FIXED_SIZE",
    "FORMAT_VERSION",
    "GROUPED_VERSION",
    "HeaderReader",
    "NO_GROUP",
    "IndexHeader",
    "IndexKind",
    "Layout",
    "MAGIC",
    "MAX_BAND_POSITIONS",
    "SHARE_BYTES",
    "SUITE_ID",
    "VOPRF_MODE",
    "align",
    "check_delta",
    "check_fixed_fields",
    "compute_digest",
    "decode_header",
    "file_view",
    "lp8",
]

MAGIC = b"\x89BMIDX\r\n"
FORMAT_VERSION = 1
GROUPED_VERSION = 2
"""The format version of an index with groups sections (a video index); without groups an
index is written as version 1, byte for byte as before."""
NO_GROUP = 0xFFFF_FFFF
"""The group number of a handle that belongs to no group (a canary's)."""
_GROUP_HANDLE_SIZE = 16
_MAX_GROUPS = NO_GROUP  # group numbers are below it
SUITE_ID = "ristretto255-SHA512"
VOPRF_MODE = 1
SHARE_BYTES = 8
FIXED_SIZE = 128
DIGEST_OFFSET = 88
DIGEST_SIZE = 32
_ALIGN = 64
_FIXED = struct.Struct("<8sHBBIQQIHHBBBBIHI2s32s32s8s")
_MIN_HANDLE_BYTES = 8
_MAX_KEY_ID = 64
_MAX_CANARIES = 1024
_MAX_COUNT = 1 << 48
#: Band positions (``L * k``) a header may ask for. Drawing them is the one piece of work a
#: header alone controls: ``L = k = 4096`` (each within ``Banding``'s own bounds) took 40 s
#: and 900 MB for a 192-byte file. PDQ at L = 512 needs 16,384; the worst case under this
#: bound draws in about 0.3 s.
MAX_BAND_POSITIONS = 1 << 16

assert _FIXED.size == FIXED_SIZE


def align(offset: int) -> int:
    """``offset`` rounded up to a multiple of 64 (section alignment)."""
    return -(-offset // _ALIGN) * _ALIGN


class IndexKind(enum.IntEnum):
    """Whether a file is a full index or a delta to merge into its base."""

    FULL = 0
    DELTA = 1


@dataclass(frozen=True, slots=True)
class Canary:
    """A public canary reference: its hash and the handle a platform must match."""

    hash: bytes
    handle: ReportHandle


class FileHeader(Protocol):
    """What the header of every format version says (:class:`IndexHeader`, the compact
    index's ``CompactHeader``), as far as opening a file and pairing deltas need."""

    @property
    def kind(self) -> IndexKind:
        """Full index or delta."""
        ...

    @property
    def banding(self) -> Banding:
        """The signal's banding."""
        ...

    @property
    def key_epoch(self) -> int:
        """The key epoch."""
        ...

    @property
    def key_id(self) -> bytes:
        """The key id."""
        ...

    @property
    def canaries(self) -> tuple[Canary, ...]:
        """The public canaries."""
        ...

    @property
    def base_digest(self) -> bytes:
        """A delta's base's digest (zero for a full index)."""
        ...

    @property
    def digest(self) -> bytes:
        """The file's digest."""
        ...


def check_delta(base: FileHeader, delta: FileHeader, *, same_format: bool = True) -> None:
    """That ``delta`` is a delta of ``base``: it names ``base``'s digest and has its
    signal, banding and key (and ``same_format``: the caller's format-specific widths
    agree).

    Raises:
        IndexFormatError: it is not.
    """
    if delta.kind is not IndexKind.DELTA or delta.base_digest != base.digest:
        raise IndexFormatError("a delta does not name this base index")
    same = (
        delta.banding == base.banding
        and delta.key_epoch == base.key_epoch
        and delta.key_id == base.key_id
        and same_format
    )
    if not same:
        raise IndexFormatError("a delta's parameters differ from its base")


@dataclass(frozen=True, slots=True)
class Layout:
    """Byte offsets of the body sections of one index file."""

    header_length: int
    tags_offset: int
    shares_offset: int
    handles_offset: int
    handle_groups_offset: int
    """Start of the handle groups section (version 2; ``total_length`` in version 1)."""
    groups_offset: int
    """Start of the group handles (version 2; ``total_length`` in version 1)."""
    total_length: int


@dataclass(frozen=True, slots=True)
class IndexHeader:
    """Everything the header of an index file says (see the module docstring).

    ``digest`` and ``base_digest`` are SHA-256 values (32 bytes); a full index has an
    all-zero ``base_digest``. ``group_count`` is ``None`` for an index without groups
    (format version 1), else the number of groups (version 2, a full index only).
    """

    kind: IndexKind
    banding: Banding
    key_epoch: int
    key_id: bytes
    entry_count: int
    handle_count: int
    tag_bytes: int
    handle_bytes: int
    canaries: tuple[Canary, ...]
    base_digest: bytes
    digest: bytes
    group_count: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.key_epoch < 1 << 32:
            raise IndexFormatError("key epoch must fit 32 bits")
        if len(self.key_id) > _MAX_KEY_ID:
            raise IndexFormatError(f"key id must be at most {_MAX_KEY_ID} bytes")
        if not 0 <= self.entry_count < _MAX_COUNT or not 0 <= self.handle_count < _MAX_COUNT:
            raise IndexFormatError("entry and handle counts must be below 2**48")
        if self.banding.count * self.banding.k > MAX_BAND_POSITIONS:
            raise IndexFormatError(f"a banding may have at most {MAX_BAND_POSITIONS} positions")
        if self.tag_bytes not in TAG_SIZES:
            raise IndexFormatError("tag width must be 4 or 8 bytes")
        if not _MIN_HANDLE_BYTES <= self.handle_bytes <= HANDLE_SIZE:
            raise IndexFormatError("stored handle width must be 8..16 bytes")
        if len(self.canaries) > _MAX_CANARIES:
            raise IndexFormatError(f"at most {_MAX_CANARIES} canaries")
        for canary in self.canaries:
            if len(canary.hash) != self.banding.hash_bytes:
                raise IndexFormatError("canary hash length does not match the signal")
        if len(self.base_digest) != DIGEST_SIZE or len(self.digest) != DIGEST_SIZE:
            raise IndexFormatError("digests must be 32 bytes")
        if (self.kind is IndexKind.FULL) != (self.base_digest == bytes(DIGEST_SIZE)):
            raise IndexFormatError("a delta names its base digest; a full index names none")
        if self.group_count is not None:
            if type(self.group_count) is not int or not 0 <= self.group_count < _MAX_GROUPS:
                raise IndexFormatError("group count must fit 32 bits")
            if self.kind is not IndexKind.FULL:
                raise IndexFormatError("only a full index has groups")

    @property
    def version(self) -> int:
        """The format version this header is written with: 2 with groups, else 1."""
        return FORMAT_VERSION if self.group_count is None else GROUPED_VERSION

    def layout(self) -> Layout:
        """Section offsets implied by this header."""
        return _layout(
            align(len(self.variable_part()) + FIXED_SIZE),
            self.entry_count * self.banding.count,
            self.tag_bytes,
            self.handle_count * self.handle_bytes,
            None if self.group_count is None else (self.handle_count, self.group_count),
        )

    def variable_part(self) -> bytes:
        """The variable header fields, unpadded."""
        parts = [
            lp8(SUITE_ID.encode("ascii")),
            lp8(self.banding.signal.encode("ascii")),
            lp8(self.banding.seed),
            lp8(self.key_id),
        ]
        parts.extend(canary.hash + bytes(canary.handle) for canary in self.canaries)
        return b"".join(parts)

    def encode(self, digest: bytes | None = None) -> bytes:
        """The padded header bytes, with ``digest`` (or this header's) in its field."""
        banding = self.banding
        variable = self.variable_part()
        header_length = align(FIXED_SIZE + len(variable))
        fixed = _FIXED.pack(
            MAGIC,
            self.version,
            int(self.kind),
            VOPRF_MODE,
            header_length,
            self.entry_count,
            self.handle_count,
            banding.count,
            banding.hash_bits,
            banding.k,
            banding.threshold,
            self.tag_bytes,
            SHARE_BYTES,
            self.handle_bytes,
            self.key_epoch,
            len(self.canaries),
            self.group_count or 0,
            bytes(2),
            self.base_digest,
            self.digest if digest is None else digest,
            bytes(8),
        )
        return (fixed + variable).ljust(header_length, b"\x00")


def _layout(
    header_length: int,
    entries: int,
    tag_bytes: int,
    handle_bytes: int,
    groups: tuple[int, int] | None = None,
) -> Layout:
    """Section offsets from the header length, the entries over all bands, the tag width,
    the handle section's size and (version 2) the handle and group counts."""
    tags_offset = header_length
    shares_offset = align(tags_offset + entries * tag_bytes)
    handles_offset = align(shares_offset + entries * SHARE_BYTES)
    if groups is None:
        total = handles_offset + handle_bytes
        return Layout(
            header_length, tags_offset, shares_offset, handles_offset, total, total, total
        )
    handles, group_count = groups
    handle_groups_offset = align(handles_offset + handle_bytes)
    groups_offset = align(handle_groups_offset + 4 * handles)
    total = groups_offset + _GROUP_HANDLE_SIZE * group_count
    return Layout(
        header_length,
        tags_offset,
        shares_offset,
        handles_offset,
        handle_groups_offset,
        groups_offset,
        total,
    )


def lp8(data: bytes) -> bytes:
    """``data`` with a one-byte length prefix (a variable header field of every version)."""
    if len(data) > 255:
        raise IndexFormatError("a length-prefixed header field is over 255 bytes")
    return bytes([len(data)]) + data


def compute_digest(data: bytes | memoryview) -> bytes:
    """SHA-256 of an index file's bytes without its digest field."""
    view = memoryview(data)
    hasher = hashlib.sha256(view[:DIGEST_OFFSET])
    hasher.update(view[DIGEST_OFFSET + DIGEST_SIZE :])
    return hasher.digest()


def file_view(data: bytes | memoryview) -> memoryview:
    """The file as bytes, at least as long as the fixed header every version has.

    Raises:
        IndexFormatError: it is shorter.
    """
    view = memoryview(data).cast("B")
    if len(view) < FIXED_SIZE:
        raise IndexFormatError("index file is shorter than its fixed header")
    return view


def check_fixed_fields(
    view: memoryview,
    fields: tuple[bytes, int, int, int, int],
    versions: tuple[int, ...],
    wrong_version: str,
) -> None:
    """The fixed-header checks every format version shares (banded 1 and 2, compact 3), in
    this order: the magic, the format version (one of ``versions``, else
    ``wrong_version`` is the error), the kind, the OPRF mode and a header length ``H`` that
    is a multiple of 64 within the file.

    Args:
        view: the whole file.
        fields: magic, version, kind, mode and ``H`` as the fixed header holds them.
        versions: the versions the caller reads.
        wrong_version: the error message of another version.

    Raises:
        IndexFormatError: any of them is wrong.
    """
    magic, version, kind, mode, length = fields
    if magic != MAGIC:
        raise IndexFormatError("not a blindmatch index (bad magic)")
    if version not in versions:
        raise IndexFormatError(wrong_version)
    if kind not in (IndexKind.FULL, IndexKind.DELTA):
        raise IndexFormatError("unknown index kind")
    if mode != VOPRF_MODE:
        raise IndexFormatError("index OPRF mode must be VOPRF")
    if length < FIXED_SIZE or length % _ALIGN or length > len(view):
        raise IndexFormatError("bad or truncated header length")


class HeaderReader:
    """Reads the variable header of any format version, from offset 128 up to ``H``: the
    length-prefixed fields (the suite id first), the canaries, and zero padding."""

    __slots__ = ("data", "end", "offset")

    def __init__(self, data: memoryview, end: int) -> None:
        self.data = data
        self.offset = FIXED_SIZE
        self.end = end

    def take(self, count: int) -> bytes:
        """The next ``count`` bytes."""
        if self.offset + count > self.end:
            raise IndexFormatError("index header is truncated")
        chunk = bytes(self.data[self.offset : self.offset + count])
        self.offset += count
        return chunk

    def lp8(self) -> bytes:
        """The next length-prefixed field."""
        return self.take(self.take(1)[0])

    def ascii(self, what: str) -> str:
        """The next length-prefixed field, which must be ASCII."""
        try:
            return self.lp8().decode("ascii")
        except UnicodeDecodeError:
            raise IndexFormatError(f"index {what} is not ASCII") from None

    def suite(self) -> None:
        """The suite id, which must be :data:`SUITE_ID`."""
        if self.ascii("suite id") != SUITE_ID:
            raise IndexFormatError("unsupported OPRF suite")

    def canaries(self, hash_bytes: int, count: int) -> tuple[Canary, ...]:
        """The ``count`` canaries (hash, full handle) that end the fields, then the check
        that the padding up to ``H`` is zero."""
        canaries = []
        for _ in range(count):
            canary_hash = self.take(hash_bytes)
            canaries.append(Canary(canary_hash, ReportHandle(self.take(HANDLE_SIZE))))
        if any(self.data[self.offset : self.end]):
            raise IndexFormatError("header padding must be zero")
        return tuple(canaries)


def decode_header(
    data: bytes | memoryview, *, verify_digest: bool = False
) -> tuple[IndexHeader, Layout]:
    """Parse and check the header of an index file.

    Cheap checks come first and nothing is expanded before they pass: the fixed fields,
    then the file length against the counts, then (``verify_digest``) the digest, then
    the bound on band positions (:data:`MAX_BAND_POSITIONS`); only then are the band
    positions drawn (``Banding``) and the canaries read.

    Args:
        data: the whole file (its length is checked against the header's counts).
        verify_digest: also check the SHA-256 digest (a full read of the file).

    Returns:
        The header and the section layout.

    Raises:
        IndexFormatError: wrong magic or version, truncated or inconsistent fields,
            nonzero reserved or padding bytes, a file length that does not match, a
            banding over the bound, or (``verify_digest``) a digest that does not match.
    """
    view = file_view(data)
    (
        magic,
        version,
        kind,
        mode,
        header_length,
        entry_count,
        handle_count,
        band_count,
        hash_bits,
        k,
        threshold,
        tag_bytes,
        share_bytes,
        handle_bytes,
        key_epoch,
        canary_count,
        group_count,
        reserved1,
        base_digest,
        digest,
        reserved2,
    ) = _FIXED.unpack_from(view, 0)
    check_fixed_fields(
        view,
        (magic, version, kind, mode, header_length),
        (FORMAT_VERSION, GROUPED_VERSION),
        "unsupported index format version",
    )
    if version == FORMAT_VERSION and group_count:
        raise IndexFormatError("reserved header bytes must be zero")
    if share_bytes != SHARE_BYTES:
        raise IndexFormatError("unsupported share width")
    if reserved1 != bytes(2) or reserved2 != bytes(8):
        raise IndexFormatError("reserved header bytes must be zero")
    if tag_bytes not in TAG_SIZES:
        raise IndexFormatError("tag width must be 4 or 8 bytes")
    if not _MIN_HANDLE_BYTES <= handle_bytes <= HANDLE_SIZE:
        raise IndexFormatError("stored handle width must be 8..16 bytes")
    if entry_count >= _MAX_COUNT or handle_count >= _MAX_COUNT:
        raise IndexFormatError("entry and handle counts must be below 2**48")
    groups = (handle_count, group_count) if version == GROUPED_VERSION else None
    expected = _layout(
        header_length, entry_count * band_count, tag_bytes, handle_count * handle_bytes, groups
    )
    if expected.total_length != len(view):
        raise IndexFormatError("index file length does not match its header (truncated?)")
    if verify_digest and compute_digest(view) != digest:
        raise IndexFormatError("index digest does not match its contents")
    if band_count * k > MAX_BAND_POSITIONS:
        raise IndexFormatError(f"a banding may have at most {MAX_BAND_POSITIONS} positions")
    reader = HeaderReader(view, header_length)
    reader.suite()
    signal = reader.ascii("signal")
    seed = reader.lp8()
    key_id = reader.lp8()
    try:
        banding = Banding(
            signal=signal,
            hash_bits=hash_bits,
            k=k,
            count=band_count,
            threshold=threshold,
            seed=seed,
        )
    except InvalidParameter:
        raise IndexFormatError("invalid banding parameters") from None
    canaries = reader.canaries(banding.hash_bytes, canary_count)
    header = IndexHeader(
        kind=IndexKind(kind),
        banding=banding,
        key_epoch=key_epoch,
        key_id=key_id,
        entry_count=entry_count,
        handle_count=handle_count,
        tag_bytes=tag_bytes,
        handle_bytes=handle_bytes,
        canaries=canaries,
        base_digest=base_digest,
        digest=digest,
        group_count=group_count if version == GROUPED_VERSION else None,
    )
    layout = header.layout()
    if layout.header_length != header_length:
        raise IndexFormatError("header length does not match its fields")
    if layout.total_length != len(view):
        raise IndexFormatError("index file length does not match its header (truncated?)")
    for start, end in (
        (layout.tags_offset + entry_count * band_count * tag_bytes, layout.shares_offset),
        (layout.shares_offset + entry_count * band_count * SHARE_BYTES, layout.handles_offset),
        (layout.handles_offset + handle_count * handle_bytes, layout.handle_groups_offset),
        (layout.handle_groups_offset + 4 * handle_count, layout.groups_offset),
    ):
        if any(view[start:end]):
            raise IndexFormatError("section padding must be zero")
    return header, layout
