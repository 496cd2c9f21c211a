"""The compact exact index (format version 3): a sharded Ribbon filter over OPRF outputs.

Theory of operation
-------------------
An exact signal (MD5, SHA-256) has one band and threshold 1, so an exact reference needs
no share: a platform holding the OPRF output ``F`` of a reported hash only has to learn
*that* it is reported and under which handle. This file stores, for the ``n`` distinct
outputs of the references and canaries, a Ribbon retrieval structure
(:mod:`blindmatch.psi._ribbon`) whose rows answer, for any ``F``, an ``r``-bit value that
equals ``F``'s fingerprint when ``F`` is a member. The report handle is derived from ``F``
(``BLAKE2b(key=F, "blindmatch/v1/compact/handle", 16)``), so it is not stored: the file is
about ``1.01 * r`` bits per reference, against ``log2(1/eps)`` for any structure with
false-hit rate ``eps``.

Keys are sharded (``B`` about ``n / 8192`` shards, each its own Ribbon) because a standard
Ribbon over many keys needs more spare rows (about 3 % at 10^5 keys with w = 128 where
4k..16k keys need about 1 %); each shard has its own seed byte: a shard that does not build
is retried with the next seed and 0.2 % more rows.
The shard's result width ``r_i`` is ``r`` or ``r + 1``: mixing the two lets the mean
false-hit rate ``mean(2**-r_i)`` meet any ``eps`` without rounding ``log2(1/eps)`` up to a
whole bit.

The file is a function of the key, the set of reference hashes (the insertion order is the
outputs sorted), the canaries, the rate, the seed and ``shard_keys``: golden files pin it
byte for byte (``tests/vectors/compact/``). docs/index-format.md, section 11, is normative.
"""

from __future__ import annotations

import abc
import enum
import hashlib
import itertools
import math
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Self

import numpy as np
import numpy.typing as npt

from blindmatch.errors import IndexFormatError, InvalidEncoding, InvalidParameter
from blindmatch.psi import _ribbon, oprf
from blindmatch.psi._index_build import (
    BuiltFile,
    ChunkEvaluator,
    Reference,
    _check_references,
    default_canaries,
    evaluate_outputs,
)
from blindmatch.psi._index_format import (
    DIGEST_OFFSET,
    FIXED_SIZE,
    MAGIC,
    SUITE_ID,
    VOPRF_MODE,
    Canary,
    HeaderReader,
    IndexKind,
    align,
    check_delta,
    check_fixed_fields,
    compute_digest,
    file_view,
    lp8,
)
from blindmatch.psi._index_lookup import IndexFile, Lookups, MatchResult
from blindmatch.psi.bands import Banding, exact_banding
from blindmatch.psi.kdf import OUTPUT_SIZE, ReportHandle
from blindmatch.psi.keys import SecretKey

__all__ = [
    "BuiltCompactIndex",
    "COMPACT_VERSION",
    "CompactHeader",
    "CompactIndex",
    "CompactIndexSet",
    "DEFAULT_FALSE_POSITIVE_RATE",
    "HANDLE_INFO",
    "ROW_INFO",
    "SHARD_INFO",
    "SHARD_KEYS",
    "ShardInfo",
    "Structure",
    "add_compact_references",
    "assemble_compact",
    "build_compact_index",
    "compact_handle",
    "decode_compact_header",
    "per_item_rate",
    "result_widths",
]

COMPACT_VERSION = 3
"""The format version of a compact exact index (versions 1 and 2 are the banded index)."""
SHARD_INFO = b"blindmatch/v1/compact/shard"
ROW_INFO = b"blindmatch/v1/compact/row"
HANDLE_INFO = b"blindmatch/v1/compact/handle"
SHARD_KEYS = 8192
"""Keys per shard the builder aims at (:func:`_shard_count`): a standard Ribbon of 4k..16k
keys builds with about 1 % spare rows, one of 10^5 keys needs about 3 %."""
DEFAULT_FALSE_POSITIVE_RATE = 1e-12
"""Per queried item: 1e-9 for a query of 1000 items (OpenMined PSI's benchmark setting)."""
_MAX_SHARD_SEEDS = 256
_FIXED = struct.Struct("<8sHBBIQQIHBBIIH6s32s32s8s")
_TABLE = struct.Struct("<IBBH")
_MAX_KEY_ID = 64
_MAX_CANARIES = 1024
_MAX_COUNT = 1 << 48
_MAX_SLOTS = 1 << 32
_ROW_BYTES = 28
_LOOKUP_CHUNK = 2048
U64Array = npt.NDArray[np.uint64]
I64Array = npt.NDArray[np.int64]

assert _FIXED.size == FIXED_SIZE
assert _TABLE.size == 8


class Structure(enum.IntEnum):
    """The filter structure a compact file holds (header byte 38)."""

    SHARDED_RIBBON = 1
    """Standard Ribbon (Dillinger & Walzer 2021), w = 128, one per shard."""


def per_item_rate(total: float, queries: int) -> float:
    """The per-item false-hit rate ``eps`` that keeps a query of ``queries`` items at
    ``total`` (a union bound: ``eps = total / queries``).

    Raises:
        InvalidParameter: ``total`` outside (0, 1) or ``queries`` < 1.
    """
    if not 0 < total < 1 or type(queries) is not int or queries < 1:
        raise InvalidParameter("need 0 < total < 1 and a positive query count")
    return total / queries


def result_widths(rate: float, shards: int) -> list[int]:
    """The result width of every shard for a mean false-hit rate of at most ``rate``.

    ``r`` is the smallest integer with ``2**-(r+1) <= rate``; the first ``h`` shards get
    ``r + 1`` bits and the rest ``r``, with the smallest ``h`` such that ``(h 2**-(r+1) +
    (B - h) 2**-r) / B <= rate`` (exact rational arithmetic on the float ``rate``;
    docs/index-format.md section 11.3).

    Raises:
        InvalidParameter: ``rate`` outside ``[2**-55, 1)`` or ``shards`` < 1.
    """
    if not isinstance(rate, float | int) or not 2.0**-55 <= rate < 1:
        raise InvalidParameter("false-hit rate must be in [2**-55, 1)")
    if type(shards) is not int or shards < 1:
        raise InvalidParameter("shard count must be a positive int")
    eps = Fraction(rate)
    low = 0
    while Fraction(1, 2 ** (low + 1)) > eps:
        low += 1
    # Now 2**-(low+1) <= eps < 2**-low.
    need = 2 * shards * (1 - eps * 2**low)  # h >= 2 B (1 - eps 2**r)
    high = min(shards, math.ceil(need))
    return [low + 1] * high + [low] * (shards - high)


def compact_handle(output: bytes) -> ReportHandle:
    """The report handle of a compact-index key: ``BLAKE2b(key=F,
    "blindmatch/v1/compact/handle", 16)``.

    Raises:
        InvalidEncoding: ``output`` is not a 64-byte OPRF output.
    """
    _check_outputs([output])
    return _handle(output)


def _handle(output: bytes) -> ReportHandle:
    """:func:`compact_handle` of a checked output."""
    return ReportHandle._trusted(hashlib.blake2b(HANDLE_INFO, key=output, digest_size=16).digest())


def _check_outputs(outputs: Sequence[bytes]) -> None:
    if not all(type(out) is bytes and len(out) == OUTPUT_SIZE for out in outputs):
        raise InvalidEncoding(f"OPRF outputs must be {OUTPUT_SIZE} bytes each")


def _shard_numbers(outputs: Sequence[bytes], seed: int, shards: int) -> npt.NDArray[np.int64]:
    """Per output its shard: ``(u32le(BLAKE2b(key=F, SHARD_INFO || u32be(seed), 4)) * B)
    >> 32``."""
    info = SHARD_INFO + seed.to_bytes(4, "big")
    blake2b = hashlib.blake2b
    raw = b"".join([blake2b(info, key=out, digest_size=4).digest() for out in outputs])
    values = np.frombuffer(raw, dtype="<u4").astype(np.uint64)
    result: npt.NDArray[np.int64] = ((values * np.uint64(shards)) >> np.uint64(32)).astype(np.int64)
    return result


def _row_info(seed: int, shard: int, shard_seed: int) -> bytes:
    """The row derivation's message of one shard: ``ROW_INFO || u32be(seed) ||
    u32be(shard) || u8(shard seed)``."""
    return ROW_INFO + seed.to_bytes(4, "big") + shard.to_bytes(4, "big") + bytes([shard_seed])


def _row_material(outputs: Sequence[bytes], infos: Iterable[bytes]) -> bytes:
    """28 bytes per output: ``BLAKE2b(key=F, info, 28)`` with its shard's
    :func:`_row_info` (``infos``: one per output, or one repeated), joined."""
    blake2b = hashlib.blake2b
    return b"".join(
        [
            blake2b(info, key=out, digest_size=_ROW_BYTES).digest()
            for out, info in zip(outputs, infos, strict=False)
        ]
    )


def _shard_count(keys: int, rate: float, shard_keys: int) -> int:
    """``B``: of ``round(n / shard_keys)`` and ``round(2 n / shard_keys)`` (at least 1, half
    up), the one whose result widths have the smaller mean (the first on a tie). More
    shards let the widths mix more finely (section 11.3); a shard of fewer keys needs a
    little more spare rows, which the tie rule prefers to avoid."""
    candidates = [max(1, (f * keys + shard_keys // 2) // shard_keys) for f in (1, 2)]
    means = [sum(result_widths(rate, b)) / b for b in candidates]
    return candidates[0] if means[0] <= means[1] else candidates[1]


def _slot_count(keys: int, attempt: int) -> int:
    """Rows of a shard of ``keys`` keys at build attempt ``attempt`` (0, 1, ...):
    ``max(w, keys + ceil(keys * (8 + 2 * attempt) / 1024) + 16)``. About 1 % spare rows
    build a shard of 4k..16k keys with probability about 1/2; each failed attempt retries
    with the next shard seed and 0.2 % more rows."""
    return max(_ribbon.WIDTH, keys + -(-keys * (8 + 2 * attempt) // 1024) + 16)


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """One row of the shard table: its row count, seed byte and result width."""

    slots: int
    seed: int
    result_bits: int


@dataclass(frozen=True, slots=True)
class CompactHeader:
    """Everything the header and shard table of a compact file say."""

    kind: IndexKind
    banding: Banding
    key_epoch: int
    key_id: bytes
    key_count: int
    seed: int
    shards: tuple[ShardInfo, ...]
    canaries: tuple[Canary, ...]
    base_digest: bytes
    digest: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.key_epoch < 1 << 32 or not 0 <= self.seed < 1 << 32:
            raise IndexFormatError("key epoch and seed must fit 32 bits")
        if len(self.key_id) > _MAX_KEY_ID:
            raise IndexFormatError(f"key id must be at most {_MAX_KEY_ID} bytes")
        if not 0 <= self.key_count < _MAX_COUNT:
            raise IndexFormatError("key count must be below 2**48")
        if not self.shards:
            raise IndexFormatError("a compact index has at least one shard")
        for shard in self.shards:
            if not _ribbon.WIDTH <= shard.slots < _MAX_SLOTS:
                raise IndexFormatError("a shard's row count is out of range")
            if not 1 <= shard.result_bits <= _ribbon.MAX_RESULT_BITS:
                raise IndexFormatError("a shard's result width must be 1..56 bits")
            if not 0 <= shard.seed < _MAX_SHARD_SEEDS:
                raise IndexFormatError("a shard seed is one byte")
        if sum(s.slots for s in self.shards) < self.key_count:
            raise IndexFormatError("the shards have fewer rows than the index has keys")
        if len(self.canaries) > _MAX_CANARIES:
            raise IndexFormatError(f"at most {_MAX_CANARIES} canaries")
        for canary in self.canaries:
            if len(canary.hash) != self.banding.hash_bytes:
                raise IndexFormatError("canary hash length does not match the signal")
        if len(self.base_digest) != 32 or len(self.digest) != 32:
            raise IndexFormatError("digests must be 32 bytes")
        if (self.kind is IndexKind.FULL) != (self.base_digest == bytes(32)):
            raise IndexFormatError("a delta names its base digest; a full index names none")

    @property
    def solution_bits(self) -> int:
        """Bits of the packed rows: ``sum(m_i * r_i)``."""
        return sum(s.slots * s.result_bits for s in self.shards)

    @property
    def false_positive_rate(self) -> float:
        """The false-hit rate of one queried non-member: ``mean(2**-r_i)`` over shards."""
        return sum(2.0**-s.result_bits for s in self.shards) / len(self.shards)

    def variable_part(self) -> bytes:
        """The variable header fields, unpadded."""
        parts = [
            lp8(SUITE_ID.encode("ascii")),
            lp8(self.banding.signal.encode("ascii")),
            lp8(self.key_id),
        ]
        parts.extend(canary.hash + bytes(canary.handle) for canary in self.canaries)
        return b"".join(parts)

    @property
    def header_length(self) -> int:
        """``H``: the fixed and variable header, padded to 64."""
        return align(FIXED_SIZE + len(self.variable_part()))

    @property
    def rows_offset(self) -> int:
        """Start of the packed rows: after the shard table, padded to 64."""
        return align(self.header_length + _TABLE.size * len(self.shards))

    @property
    def total_length(self) -> int:
        """The file's exact length."""
        return self.rows_offset + -(-self.solution_bits // 8)

    def encode(self, digest: bytes | None = None) -> bytes:
        """Fixed header, variable header, padding and shard table (everything before the
        rows, padded), with ``digest`` (or this header's) in its field."""
        fixed = _FIXED.pack(
            MAGIC,
            COMPACT_VERSION,
            int(self.kind),
            VOPRF_MODE,
            self.header_length,
            self.key_count,
            self.solution_bits,
            len(self.shards),
            self.banding.hash_bits,
            int(Structure.SHARDED_RIBBON),
            _ribbon.WIDTH,
            self.key_epoch,
            self.seed,
            len(self.canaries),
            bytes(6),
            self.base_digest,
            self.digest if digest is None else digest,
            bytes(8),
        )
        head = (fixed + self.variable_part()).ljust(self.header_length, b"\x00")
        table = b"".join(_TABLE.pack(s.slots, s.seed, s.result_bits, 0) for s in self.shards)
        return (head + table).ljust(self.rows_offset, b"\x00")


def decode_compact_header(
    data: bytes | memoryview, *, verify_digest: bool = False
) -> CompactHeader:
    """Parse and check the header and shard table of a compact file (section 11.5).

    Cheap checks first: the fixed fields, then the file length they imply, then the digest
    (``verify_digest``), then the variable header and the shard table.

    Raises:
        IndexFormatError: any malformed, inconsistent or (``verify_digest``) corrupt field.
    """
    view = file_view(data)
    (
        magic,
        version,
        kind,
        mode,
        header_length,
        key_count,
        solution_bits,
        shard_count,
        hash_bits,
        structure,
        width,
        key_epoch,
        seed,
        canary_count,
        reserved1,
        base_digest,
        digest,
        reserved2,
    ) = _FIXED.unpack_from(view, 0)
    check_fixed_fields(
        view,
        (magic, version, kind, mode, header_length),
        (COMPACT_VERSION,),
        "not a compact index (format version 3)",
    )
    if structure != Structure.SHARDED_RIBBON or width != _ribbon.WIDTH:
        raise IndexFormatError("unsupported compact structure")
    if reserved1 != bytes(6) or reserved2 != bytes(8):
        raise IndexFormatError("reserved header bytes must be zero")
    if shard_count < 1:
        raise IndexFormatError("a compact index has at least one shard")
    rows_offset = align(header_length + _TABLE.size * shard_count)
    if rows_offset + -(-solution_bits // 8) != len(view):
        raise IndexFormatError("index file length does not match its header (truncated?)")
    if verify_digest and compute_digest(view) != digest:
        raise IndexFormatError("index digest does not match its contents")
    reader = HeaderReader(view, header_length)
    reader.suite()
    signal = reader.ascii("signal")
    key_id = reader.lp8()
    try:
        banding = exact_banding(signal, hash_bits)
    except InvalidParameter:
        raise IndexFormatError("invalid exact signal parameters") from None
    canaries = reader.canaries(banding.hash_bytes, canary_count)
    shards = []
    for i in range(shard_count):
        slots, shard_seed, bits, reserved = _TABLE.unpack_from(view, header_length + 8 * i)
        if reserved:
            raise IndexFormatError("reserved shard table bytes must be zero")
        shards.append(ShardInfo(slots, shard_seed, bits))
    table_end = header_length + _TABLE.size * shard_count
    if any(view[table_end:rows_offset]):
        raise IndexFormatError("section padding must be zero")
    header = CompactHeader(
        kind=IndexKind(kind),
        banding=banding,
        key_epoch=key_epoch,
        key_id=key_id,
        key_count=key_count,
        seed=seed,
        shards=tuple(shards),
        canaries=canaries,
        base_digest=base_digest,
        digest=digest,
    )
    if header.header_length != header_length:
        raise IndexFormatError("header length does not match its fields")
    if header.solution_bits != solution_bits:
        raise IndexFormatError("the shard table does not add up to the row bits")
    if solution_bits % 8 and view[len(view) - 1] >> (solution_bits % 8):
        raise IndexFormatError("section padding must be zero")
    return header


def _key_rows(
    material: bytes, spans: U64Array | int, bits: I64Array | int
) -> tuple[I64Array, U64Array, U64Array, U64Array]:
    """Per key (28 bytes of row material each): start, coefficient low and high 64 bits,
    fingerprint (section 11.1), as arrays; ``spans`` (rows - w + 1) and ``bits`` (result
    width) of the key's shard, one for all keys (a build) or one per key (a lookup)."""
    table = np.frombuffer(material, dtype=np.uint8).reshape(-1, _ROW_BYTES)
    words = np.ascontiguousarray(table[:, 0:4]).view("<u4").ravel().astype(np.uint64)
    starts = ((words * np.asarray(spans, dtype=np.uint64)) >> np.uint64(32)).astype(np.int64)
    low = np.ascontiguousarray(table[:, 4:12]).view("<u8").ravel() | np.uint64(1)
    high = np.ascontiguousarray(table[:, 12:20]).view("<u8").ravel().copy()
    masks = (np.uint64(1) << np.asarray(bits, dtype=np.uint64)) - np.uint64(1)
    fingerprints = np.ascontiguousarray(table[:, 20:28]).view("<u8").ravel() & masks
    return starts, low.astype(np.uint64), high.astype(np.uint64), fingerprints.astype(np.uint64)


@dataclass(frozen=True, slots=True)
class BuiltCompactIndex(BuiltFile):
    """A freshly built compact index and the clearinghouse-private handle map.

    Attributes:
        header: the decoded header of :attr:`data`.
        data: the file's bytes.
        handles: report handle -> report id (the first reference of each distinct hash);
            NOT in the file.
    """

    header: CompactHeader
    data: bytes
    handles: dict[ReportHandle, str]


def build_compact_index(
    secret_key: SecretKey,
    banding: Banding,
    references: Sequence[Reference],
    *,
    canaries: Sequence[bytes] | None = None,
    false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
    seed: int = 0,
    base_digest: bytes | None = None,
    shard_keys: int = SHARD_KEYS,
    processes: int | None = None,
    evaluator: ChunkEvaluator | None = None,
) -> BuiltCompactIndex:
    """Build a compact exact index (docs/index-format.md section 11).

    The OPRF evaluation of the hashes runs as a banded build's does, in chunks on local
    worker processes or on ``evaluator`` (a Ray cluster); the shard split, the filter solve
    and the file's assembly run in this process. The file does not depend on where the
    OPRF ran.

    Args:
        secret_key: the clearinghouse's OPRF key (VOPRF mode).
        banding: an exact banding (one band of all bits, t = 1: ``md5``, ``sha256``).
        references: the reported hashes, all of ``banding.signal``.
        canaries: public canary hashes; ``None`` means ``default_canaries`` (a delta:
            pass ``[]``).
        false_positive_rate: the mean false-hit rate of one queried non-member, ``eps``
            (:func:`per_item_rate` turns a bound for a query of Q items into it).
        seed: a public 32-bit value mixed into every shard and row derivation.
        base_digest: ``None`` for a full index; for a delta the digest of its base.
        shard_keys: keys per shard aimed at (``B = max(1, round(n / shard_keys))``); the
            default suits every size, smaller values make small multi-shard test files.
        processes: worker processes for the OPRF; ``None`` uses every core, 1 runs inline
            (as :func:`~blindmatch.psi.index.build_index`).
        evaluator: where the OPRF runs instead of local processes (``processes`` is then
            ignored), e.g. :class:`blindmatch.psi.ray_build.RayBuild`.

    Returns:
        The file and the private handle -> report id map.

    Raises:
        TypeError: a key or reference of the wrong type.
        InvalidParameter: not an exact banding, not a VOPRF key, a reference of another
            signal, a rate, seed or process count out of range, a shard that no seed
            builds.
        InvalidEncoding: a reference or canary hash of the wrong length.
        WorkerError: the evaluator failed or answered wrongly.
    """
    if not isinstance(secret_key, SecretKey):
        raise TypeError("secret_key must be a SecretKey")
    if secret_key.mode is not oprf.Mode.VOPRF:
        raise InvalidParameter("index keys are VOPRF keys (docs/design.md)")
    if banding != exact_banding(banding.signal, banding.hash_bits):
        raise InvalidParameter("a compact index holds an exact signal (one band, t = 1)")
    if type(seed) is not int or not 0 <= seed < 1 << 32:
        raise InvalidParameter("seed must be a 32-bit unsigned int")
    if type(shard_keys) is not int or shard_keys < 1:
        raise InvalidParameter("shard_keys must be a positive int")
    chosen = default_canaries(banding) if canaries is None else list(canaries)
    _check_references(banding, references, chosen)
    kind = IndexKind.FULL if base_digest is None else IndexKind.DELTA
    if kind is IndexKind.DELTA and chosen:
        raise InvalidParameter("a delta has no canaries")
    result_widths(false_positive_rate, 1)  # refuse a bad rate before any OPRF work
    hashes = [r.hash for r in references] + chosen
    outputs = evaluate_outputs(
        secret_key, banding, hashes, processes=processes, evaluator=evaluator
    )
    return assemble_compact(
        secret_key,
        banding,
        references,
        chosen,
        outputs,
        false_positive_rate=false_positive_rate,
        seed=seed,
        base_digest=base_digest,
        shard_keys=shard_keys,
    )


def assemble_compact(
    secret_key: SecretKey,
    banding: Banding,
    references: Sequence[Reference],
    canaries: Sequence[bytes],
    outputs: Sequence[bytes],
    *,
    false_positive_rate: float,
    seed: int,
    base_digest: bytes | None,
    shard_keys: int,
) -> BuiltCompactIndex:
    """The filter and file of :func:`build_compact_index` from the OPRF outputs of the
    references then the canaries, already evaluated under ``secret_key`` (arguments
    checked by the caller; the benchmark times this half on its own)."""
    kind = IndexKind.FULL if base_digest is None else IndexKind.DELTA
    chosen = list(canaries)
    handles: dict[ReportHandle, str] = {}
    for reference, output in zip(references, outputs, strict=False):
        handles.setdefault(_handle(output), reference.report_id)
    keys = sorted(set(outputs))
    shard_count = _shard_count(len(keys), false_positive_rate, shard_keys)
    widths = result_widths(false_positive_rate, shard_count)
    numbers = _shard_numbers(keys, seed, shard_count)
    members: list[list[bytes]] = [[] for _ in range(shard_count)]
    for key, number in zip(keys, numbers.tolist(), strict=True):
        members[number].append(key)
    shards: list[ShardInfo] = []
    solved: list[tuple[U64Array, int]] = []
    for number, shard_members in enumerate(members):
        for shard_seed in range(_MAX_SHARD_SEEDS):
            slots = _slot_count(len(shard_members), shard_seed)
            material = _row_material(
                shard_members, itertools.repeat(_row_info(seed, number, shard_seed))
            )
            span = slots - _ribbon.WIDTH + 1
            starts, low, high, fingerprints = _key_rows(material, span, widths[number])
            solution = _ribbon.solve_arrays(starts, low, high, fingerprints, slots)
            if solution is not None:
                break
        else:  # pragma: no cover - by attempt 256 a shard has 51 % spare rows
            raise InvalidParameter("no shard seed builds this shard")
        shards.append(ShardInfo(slots, shard_seed, widths[number]))
        solved.append((solution, widths[number]))
    header = CompactHeader(
        kind=kind,
        banding=banding,
        key_epoch=secret_key.epoch,
        key_id=secret_key.key_id,
        key_count=len(keys),
        seed=seed,
        shards=tuple(shards),
        canaries=tuple(
            Canary(h, _handle(o)) for h, o in zip(chosen, outputs[len(references) :], strict=True)
        ),
        base_digest=bytes(32) if base_digest is None else base_digest,
        digest=bytes(32),
    )
    body = header.encode(digest=bytes(32)) + _ribbon.pack_rows(solved)
    digest = compute_digest(body)
    data = body[:DIGEST_OFFSET] + digest + body[DIGEST_OFFSET + 32 :]
    return BuiltCompactIndex(decode_compact_header(data), data, handles)


def add_compact_references(
    secret_key: SecretKey,
    base: CompactHeader,
    references: Sequence[Reference],
    *,
    false_positive_rate: float | None = None,
    seed: int = 0,
    shard_keys: int = SHARD_KEYS,
    processes: int | None = None,
    evaluator: ChunkEvaluator | None = None,
) -> BuiltCompactIndex:
    """A compact delta: a separate compact file of new references naming ``base``.

    Args:
        secret_key: the key ``base`` was built with.
        base: the header of the full compact index this delta extends.
        references: the new references.
        false_positive_rate: ``None`` keeps the base's rate.
        seed: as for :func:`build_compact_index`.
        shard_keys: as for :func:`build_compact_index`.
        processes: as for :func:`build_compact_index`.
        evaluator: as for :func:`build_compact_index`.

    Raises:
        InvalidParameter: ``base`` is a delta or has another key.
    """
    if base.kind is not IndexKind.FULL:
        raise InvalidParameter("a delta extends a full index")
    if not isinstance(secret_key, SecretKey):
        raise TypeError("secret_key must be a SecretKey")
    if secret_key.key_id != base.key_id or secret_key.epoch != base.key_epoch:
        raise InvalidParameter("the delta's key differs from its base's")
    rate = base.false_positive_rate if false_positive_rate is None else false_positive_rate
    return build_compact_index(
        secret_key,
        base.banding,
        references,
        canaries=[],
        false_positive_rate=rate,
        seed=seed,
        base_digest=base.digest,
        shard_keys=shard_keys,
        processes=processes,
        evaluator=evaluator,
    )


class _CompactLookups(Lookups):
    """:meth:`lookup_many` of a compact file or set, from its :meth:`match_outputs`."""

    __slots__ = ()

    @abc.abstractmethod
    def match_outputs(self, outputs: Sequence[bytes]) -> list[ReportHandle | None]:
        """Per OPRF output its handle if the filter answers a hit, else ``None``."""

    def lookup_many(
        self, outputs_per_upload: Sequence[Sequence[bytes]], *, max_trials: int | None = None
    ) -> list[MatchResult]:
        """:meth:`~blindmatch.psi.index.Index.lookup` of many uploads of one output each.

        ``max_trials`` is accepted for the common interface and unused: a lookup here is
        one filter query per upload (per file of a set), never pair trials.

        Raises:
            InvalidParameter: an upload that does not have exactly one output.
            InvalidEncoding: an output is not 64 bytes.
        """
        del max_trials
        if any(len(outputs) != 1 for outputs in outputs_per_upload):
            raise InvalidParameter("an exact upload has exactly one OPRF output")
        results = self.match_outputs([outputs[0] for outputs in outputs_per_upload])
        return [
            MatchResult((handle,), 1, 1) if handle is not None else MatchResult((), 0, 0)
            for handle in results
        ]


class CompactIndex(IndexFile, _CompactLookups):
    """A read-only compact exact index, memory-mapped from a file or viewed over bytes.

    A lookup of one OPRF output is a membership query: a member answers its handle, a
    non-member nothing except, with probability :attr:`false_positive_rate`, a handle the
    clearinghouse holds no report for. :meth:`lookup_many` takes uploads of one output
    each (the exact banding has one band), so this class stands in for
    :class:`~blindmatch.psi.index.Index` wherever an exact signal is looked up.
    """

    __slots__ = ("_bases", "_bits", "_infos", "_rows", "_spans", "header")

    header: CompactHeader

    def __init__(self, data: bytes | npt.NDArray[np.uint8], *, verify: bool) -> None:
        buffer = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
        header = decode_compact_header(buffer.data, verify_digest=verify)
        self.header = header
        self._rows = buffer[header.rows_offset :]
        bits = np.array([s.result_bits for s in header.shards], dtype=np.int64)
        slots = np.array([s.slots for s in header.shards], dtype=np.int64)
        self._bits = bits
        self._spans = (slots - (_ribbon.WIDTH - 1)).astype(np.uint64)
        self._bases = np.concatenate([[0], np.cumsum(slots * bits)[:-1]]).astype(np.int64)
        self._infos = [
            _row_info(header.seed, number, shard.seed) for number, shard in enumerate(header.shards)
        ]

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, verify: bool = True) -> Self:
        """Memory-map a compact index file.

        Args:
            path: the file.
            verify: check the digest (a full read of the file).

        Raises:
            IndexFormatError: the file is not a valid compact index.
            OSError: the file cannot be read.
        """
        return cls(cls._map(path), verify=verify)

    @classmethod
    def from_bytes(cls, data: bytes, *, verify: bool = True) -> Self:
        """View a compact index held in memory (arguments as for :meth:`open`).

        Raises:
            IndexFormatError: the bytes are not a valid compact index.
        """
        return cls(cls._own(data), verify=verify)

    @property
    def key_count(self) -> int:
        """Distinct keys (references and canaries): the ``n`` a platform learns."""
        return self.header.key_count

    @property
    def false_positive_rate(self) -> float:
        """Mean false-hit rate of one queried non-member."""
        return self.header.false_positive_rate

    def match_outputs(self, outputs: Sequence[bytes]) -> list[ReportHandle | None]:
        """Look a batch of OPRF outputs up, vectorised.

        Args:
            outputs: finalized OPRF outputs (64 bytes each) of exact band inputs.

        Returns:
            Per output its handle if the filter answers a hit, else ``None``.

        Raises:
            InvalidEncoding: an output is not 64 bytes.
        """
        _check_outputs(outputs)
        found: list[ReportHandle | None] = []
        for at in range(0, len(outputs), _LOOKUP_CHUNK):
            found.extend(self._match_chunk(outputs[at : at + _LOOKUP_CHUNK]))
        return found

    def _match_chunk(self, outputs: Sequence[bytes]) -> list[ReportHandle | None]:
        """The build's row derivation (:func:`_row_material`, :func:`_key_rows`) with each
        output's own shard, then one filter query per output."""
        numbers = _shard_numbers(outputs, self.header.seed, len(self.header.shards))
        infos = self._infos
        material = _row_material(outputs, [infos[number] for number in numbers.tolist()])
        bits = self._bits[numbers]
        starts, low, high, fingerprints = _key_rows(material, self._spans[numbers], bits)
        offsets = self._bases[numbers] + starts * bits
        values = _ribbon.query(self._rows, offsets, bits, low, high)
        hits = values == fingerprints
        return [
            _handle(out) if hit else None for out, hit in zip(outputs, hits.tolist(), strict=True)
        ]


class CompactIndexSet(_CompactLookups):
    """A full compact index and its compact deltas, looked up side by side.

    A hit in any file is a hit; the handle is ``handle(F)`` whichever file answers, so the
    files never disagree on it. The false-hit rate is the sum of the files' rates.

    Raises:
        IndexFormatError: the base is a delta, or a delta names another base or has
            another signal or key.
    """

    __slots__ = ("base", "deltas")

    def __init__(self, base: CompactIndex, deltas: Sequence[CompactIndex] = ()) -> None:
        if base.header.kind is not IndexKind.FULL:
            raise IndexFormatError("the base of an index set must be a full index")
        for delta in deltas:
            check_delta(base.header, delta.header)
        self.base = base
        self.deltas = tuple(deltas)

    @property
    def header(self) -> CompactHeader:
        """The base's header (signal, key and canaries are shared by the deltas)."""
        return self.base.header

    @property
    def canaries(self) -> tuple[Canary, ...]:
        """The base's canaries (deltas carry none)."""
        return self.base.canaries

    @property
    def false_positive_rate(self) -> float:
        """The sum of the files' false-hit rates (a union bound)."""
        return self.base.false_positive_rate + sum(d.false_positive_rate for d in self.deltas)

    def match_outputs(self, outputs: Sequence[bytes]) -> list[ReportHandle | None]:
        """:meth:`CompactIndex.match_outputs` over the base and every delta."""
        found = self.base.match_outputs(outputs)
        for delta in self.deltas:
            more = delta.match_outputs(outputs)
            found = [a if a is not None else b for a, b in zip(found, more, strict=True)]
        return found
