"""The compact exact index (format version 3): Ribbon core, widths, header, goldens, lookups."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import random
import secrets
import struct
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch.errors import IndexFormatError, InvalidEncoding, InvalidParameter
from blindmatch.psi import _ribbon, oprf
from blindmatch.psi._index_format import DIGEST_OFFSET, IndexKind, compute_digest
from blindmatch.psi.bands import Banding, exact_banding, pdq_banding
from blindmatch.psi.compact import (
    COMPACT_VERSION,
    BuiltCompactIndex,
    CompactHeader,
    ShardInfo,
    compact_handle,
    decode_compact_header,
    per_item_rate,
    result_widths,
)
from blindmatch.psi.index import (
    CompactIndex,
    CompactIndexSet,
    Index,
    Reference,
    add_compact_references,
    build_compact_index,
    build_index,
)
from blindmatch.psi.keys import SecretKey

_Built = tuple[BuiltCompactIndex, list[Reference]]
VECTORS = Path(__file__).parent / "vectors" / "compact"
KEY = SecretKey.derive(bytes(range(32)), b"test_compact", mode=oprf.Mode.VOPRF, epoch=4)
SHA = exact_banding("sha256", 256)
MD5 = exact_banding("md5", 128)


def _generator() -> ModuleType:
    path = VECTORS / "generate_compact.py"
    spec = importlib.util.spec_from_file_location("compact_vectors", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATE = _generator()
CASES: list[dict[str, object]] = json.loads((VECTORS / "cases.json").read_text())["cases"]


def _golden(name: str) -> bytes:
    return (VECTORS / f"{name}.bmidx").read_bytes()


def _outputs(key: SecretKey, banding: Banding, hashes: list[bytes]) -> list[bytes]:
    inputs = [row[0] for row in banding.band_inputs_many(hashes)]
    return oprf.evaluate_batch(key.scalar, inputs, oprf.Mode.VOPRF)


def _references(count: int, tag: str = "ref") -> list[Reference]:
    return [
        Reference(f"{tag}{i}", "sha256", hashlib.sha256(f"{tag} {i}".encode()).digest())
        for i in range(count)
    ]


def _reseal(data: bytearray) -> bytes:
    data[DIGEST_OFFSET : DIGEST_OFFSET + 32] = compute_digest(bytes(data))
    return bytes(data)


# --------------------------------------------------------------------------- Ribbon core


@settings(max_examples=30, deadline=None)
@given(count=st.integers(0, 300), bits=st.integers(1, 56), seed=st.integers(0, 2**32 - 1))
def test_ribbon_answers_every_key_its_fingerprint(count: int, bits: int, seed: int) -> None:
    draw = random.Random(seed)
    slots = count + -(-count // 64) + _ribbon.WIDTH - 1
    starts = [draw.randrange(slots - _ribbon.WIDTH + 1) for _ in range(count)]
    coefficients = [draw.getrandbits(_ribbon.WIDTH) | 1 for _ in range(count)]
    fingerprints = [draw.getrandbits(bits) for _ in range(count)]
    solution = _ribbon.solve(starts, coefficients, fingerprints, slots)
    if solution is None:  # a rare unsolvable draw: the builder retries another seed
        return
    assert len(solution) == slots
    assert all(0 <= row < 1 << bits for row in solution)
    stream = np.frombuffer(_ribbon.pack_rows([(solution, bits)]), dtype=np.uint8)
    assert len(stream) == -(-slots * bits // 8)
    answers = _ribbon.query(
        stream,
        np.array(starts, dtype=np.int64) * bits,
        np.full(count, bits, dtype=np.int64),
        np.array([c & (2**64 - 1) for c in coefficients], dtype=np.uint64),
        np.array([c >> 64 for c in coefficients], dtype=np.uint64),
    )
    assert answers.tolist() == fingerprints


def test_ribbon_equal_keys_are_one_equation_and_conflicts_fail() -> None:
    key = (3, (1 << 100) | 5, 0xABC)
    assert _ribbon.solve([key[0]] * 2, [key[1]] * 2, [key[2]] * 2, 200) is not None
    assert _ribbon.solve([3, 3], [key[1]] * 2, [1, 2], 200) is None


def test_pack_rows_layout_is_lsb_first_across_shards() -> None:
    # Shard 1: rows 0b101, 0b011 (3 bits); shard 2: row 0b1 (1 bit): bits 1,0,1,1,1,0,1.
    packed = _ribbon.pack_rows([([0b101, 0b011], 3), ([0b1], 1)])
    assert packed == bytes([0b1011101])
    assert _ribbon.pack_rows([]) == b""


# --------------------------------------------------------------------------- widths


@pytest.mark.parametrize(
    ("rate", "shards", "expected"),
    [
        (2.0**-40, 3, [40, 40, 40]),
        (1e-12, 1, [40]),
        (1e-12, 10, [40] * 10),  # h >= 2*10*(1 - 1e-12 * 2**39) = 9.004 -> 10
        (1e-13, 5, [44, 44, 43, 43, 43]),
        (0.75 * 2.0**-8, 4, [9, 9, 8, 8]),
        (0.5, 2, [1, 1]),
    ],
)
def test_result_widths(rate: float, shards: int, expected: list[int]) -> None:
    widths = result_widths(rate, shards)
    assert widths == expected
    mean = sum(Fraction(1, 2**r) for r in widths) / shards
    assert mean <= Fraction(rate)
    # Minimal: one wider shard fewer would miss the rate (unless none is wider).
    high = widths.count(widths[0]) if widths[0] != widths[-1] else 0
    if high:
        fewer = [widths[0]] * (high - 1) + [widths[-1]] * (shards - high + 1)
        assert sum(Fraction(1, 2**r) for r in fewer) / shards > Fraction(rate)


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(2.0**-55, 0.999, allow_nan=False), shards=st.integers(1, 2000))
def test_result_widths_meet_the_rate_within_a_bit(rate: float, shards: int) -> None:
    widths = result_widths(rate, shards)
    assert sum(Fraction(1, 2**r) for r in widths) / shards <= Fraction(rate)
    assert max(widths) - min(widths) <= 1
    assert max(widths) <= -np.log2(rate) + 1 + 1e-9


@pytest.mark.parametrize("rate", [0.0, 1.0, 2.0**-56, -1e-3, float("nan")])
def test_result_widths_refuse_bad_rates(rate: float) -> None:
    with pytest.raises(InvalidParameter):
        result_widths(rate, 1)
    with pytest.raises(InvalidParameter):
        result_widths(1e-6, 0)


def test_per_item_rate() -> None:
    assert per_item_rate(1e-9, 1000) == pytest.approx(1e-12)
    assert per_item_rate(1e-9, 10_000) == pytest.approx(1e-13)
    for total, queries in ((0.0, 10), (1.0, 10), (1e-9, 0)):
        with pytest.raises(InvalidParameter):
            per_item_rate(total, queries)


# --------------------------------------------------------------------------- goldens


@pytest.mark.parametrize("case", CASES, ids=lambda c: str(c["id"]))
def test_golden_rebuilds_byte_for_byte(case: dict[str, object]) -> None:
    built = GENERATE.build_case(case)
    golden = (VECTORS / str(case["file"])).read_bytes()
    assert hashlib.sha256(golden).hexdigest() == case["file_sha256"]
    assert built.data == golden
    assert {bytes(h).hex(): rid for h, rid in built.handles.items()} == case["handles"]
    assert [s.result_bits for s in built.header.shards] == case["result_bits"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: str(c["id"]))
def test_golden_lookups(case: dict[str, object]) -> None:
    """Every golden reference, through the real blind/evaluate/finalize, hits its handle."""
    index = CompactIndex.from_bytes((VECTORS / str(case["file"])).read_bytes())
    key = SecretKey.derive(
        bytes.fromhex(str(case["key_seed"])),
        str(case["key_info"]).encode(),
        mode=oprf.Mode.VOPRF,
        epoch=int(str(case["epoch"])),
    )
    banding = exact_banding(str(case["signal"]), int(str(case["hash_bits"])))
    assert index.header.key_id == key.key_id
    assert index.header.key_epoch == key.epoch
    references = case["references"]
    handles = case["handles"]
    assert isinstance(references, list)
    assert isinstance(handles, dict)
    inputs = [
        row[0] for row in banding.band_inputs_many([bytes.fromhex(r["hash"]) for r in references])
    ]
    blind, blinded = oprf.blind_batch_shared(inputs, oprf.Mode.VOPRF)
    evaluated = oprf.blind_evaluate_batch(key.scalar, blinded, oprf.Mode.VOPRF)
    outputs = oprf.finalize_batch_shared(inputs, blind, evaluated, oprf.Mode.VOPRF)
    found = index.match_outputs(outputs)
    first: dict[str, str] = {}
    for reference in references:
        first.setdefault(reference["hash"], reference["report_id"])
    for reference, handle in zip(references, found, strict=True):
        assert handle is not None
        assert handles[bytes(handle).hex()] == first[reference["hash"]]
    canaries = index.match_outputs(_outputs(key, banding, [c.hash for c in index.canaries]))
    assert canaries == [c.handle for c in index.canaries]


def test_golden_base_and_delta_side_by_side() -> None:
    base = CompactIndex.from_bytes(_golden("sha256-compact"))
    delta = CompactIndex.from_bytes(_golden("sha256-compact-delta"))
    both = CompactIndexSet(base, [delta])
    assert both.false_positive_rate == base.false_positive_rate + delta.false_positive_rate
    assert both.canaries == base.canaries
    key = SecretKey.derive(bytes([5]) * 32, b"blindmatch golden", mode=oprf.Mode.VOPRF, epoch=7)
    texts = ["compact golden 1", "compact golden 5", "compact golden 6", "not reported"]
    outputs = _outputs(key, SHA, [hashlib.sha256(t.encode()).digest() for t in texts])
    expected = [compact_handle(o) for o in outputs[:3]] + [None]
    assert both.match_outputs(outputs) == expected
    assert [r.matched for r in both.lookup_many([[o] for o in outputs])] == [True] * 3 + [False]
    assert base.match_outputs(outputs[1:3]) == [None, None]
    with pytest.raises(IndexFormatError):
        CompactIndexSet(delta)
    with pytest.raises(IndexFormatError):
        CompactIndexSet(base, [base])
    other = build_compact_index(KEY, SHA, _references(3))
    with pytest.raises(IndexFormatError):
        CompactIndexSet(CompactIndex.from_bytes(other.data), [delta])
    with pytest.raises(InvalidParameter):
        both.lookup_many([[]])


def test_golden_delta_names_its_base() -> None:
    base = CompactIndex.from_bytes(_golden("sha256-compact"))
    delta = CompactIndex.from_bytes(_golden("sha256-compact-delta"))
    assert base.header.kind is IndexKind.FULL
    assert delta.header.kind is IndexKind.DELTA
    assert delta.header.base_digest == base.digest
    assert delta.canaries == ()
    assert delta.key_count == 2
    assert base.key_count == 4 + 2  # four distinct references (one hash twice), two canaries


# --------------------------------------------------------------------------- build and look up


@pytest.fixture(scope="module")
def built_sha() -> _Built:
    refs = _references(300)
    return build_compact_index(KEY, SHA, refs, shard_keys=64), refs


def test_members_hit_with_their_handle_and_strangers_miss(
    built_sha: _Built,
) -> None:
    built, refs = built_sha
    index = CompactIndex.from_bytes(built.data)
    assert len(index.header.shards) == 5  # 5 or 10 shards: all 40 bits either way
    outputs = _outputs(KEY, SHA, [r.hash for r in refs])
    found = index.match_outputs(outputs)
    assert found == [compact_handle(o) for o in outputs]
    assert [built.handles[h] for h in found if h is not None] == [r.report_id for r in refs]
    strangers = _outputs(KEY, SHA, [r.hash for r in _references(200, "stranger")])
    assert index.match_outputs(strangers) == [None] * 200
    results = index.lookup_many([[o] for o in outputs[:3] + strangers[:2]])
    assert [r.matched for r in results] == [True, True, True, False, False]
    assert results[0].handles == (compact_handle(outputs[0]),)
    assert index.match_many([[outputs[5]]]) == [[compact_handle(outputs[5])]]


def test_the_file_is_a_function_of_the_set(
    built_sha: _Built,
) -> None:
    built, refs = built_sha
    shuffled = list(refs)
    random.Random(5).shuffle(shuffled)
    again = build_compact_index(KEY, SHA, shuffled, shard_keys=64)
    assert again.data == built.data
    other_seed = build_compact_index(KEY, SHA, refs, shard_keys=64, seed=1)
    assert other_seed.data != built.data
    assert other_seed.handles == built.handles


@pytest.mark.parametrize(("rate", "low", "high"), [(2.0**-6, 40, 130), (0.75 * 2.0**-6, 25, 100)])
def test_false_hits_follow_the_rate(rate: float, low: int, high: int) -> None:
    """5000 random outputs against r = 6 (and a 6/7 mix): about 78 (59) false hits."""
    built = build_compact_index(KEY, SHA, _references(200), false_positive_rate=rate, shard_keys=40)
    index = CompactIndex.from_bytes(built.data)
    assert index.false_positive_rate <= rate
    draw = random.Random(9)
    strangers = [draw.randbytes(64) for _ in range(5000)]
    hits = sum(h is not None for h in index.match_outputs(strangers))
    expected = 5000 * index.false_positive_rate
    assert low <= hits <= high, (hits, expected)


def test_no_false_hit_at_the_default_rate(
    built_sha: _Built,
) -> None:
    built, _ = built_sha
    index = CompactIndex.from_bytes(built.data)
    strangers = [secrets.token_bytes(64) for _ in range(20_000)]
    assert index.match_outputs(strangers) == [None] * 20_000


def test_compact_is_about_five_bytes_per_reference() -> None:
    refs = _references(3000)
    built = build_compact_index(KEY, SHA, refs, canaries=[], shard_keys=1000)
    header = built.header
    sizes = _shard_sizes(built.data, refs)
    assert sum(sizes) == 3000
    for size, shard in zip(sizes, header.shards, strict=True):
        attempt = shard.seed  # attempt k uses seed k and ceil(n (8 + 2k) / 1024) + 16 spare
        assert shard.slots == max(128, size + -(-size * (8 + 2 * attempt) // 1024) + 16)
    bits = sum(s.slots * s.result_bits for s in header.shards)
    assert len(built.data) == header.rows_offset + -(-bits // 8)
    assert header.false_positive_rate <= 1e-12
    per_reference = (len(built.data) - header.rows_offset) / len(refs)
    assert 4.98 < per_reference < 5.0 * 1.06


def _shard_sizes(data: bytes, refs: list[Reference]) -> list[int]:
    from blindmatch.psi.compact import _shard_numbers

    header = decode_compact_header(data)
    outputs = sorted(_outputs(KEY, SHA, [r.hash for r in refs]))
    numbers = _shard_numbers(outputs, 0, len(header.shards))
    return [int(c) for c in np.bincount(numbers, minlength=len(header.shards))]


def test_open_memory_maps_a_file(tmp_path: Path, built_sha: _Built) -> None:
    built, refs = built_sha
    path = tmp_path / "sha.bmcx"
    built.write(path)
    index = CompactIndex.open(path)
    outputs = _outputs(KEY, SHA, [refs[7].hash])
    assert index.match_outputs(outputs) == [compact_handle(outputs[0])]
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(IndexFormatError):
        CompactIndex.open(tmp_path / "empty")


def test_delta_is_a_separate_compact_file() -> None:
    base = build_compact_index(KEY, SHA, _references(20))
    delta = add_compact_references(KEY, base.header, _references(5, "new"))
    assert delta.header.kind is IndexKind.DELTA
    assert delta.header.base_digest == base.digest
    assert delta.header.false_positive_rate == base.header.false_positive_rate
    index = CompactIndex.from_bytes(delta.data)
    new = _outputs(KEY, SHA, [r.hash for r in _references(5, "new")])
    assert index.match_outputs(new) == [compact_handle(o) for o in new]
    with pytest.raises(InvalidParameter):
        add_compact_references(KEY, delta.header, _references(1))
    other = SecretKey.derive(bytes(32), b"other", mode=oprf.Mode.VOPRF, epoch=4)
    with pytest.raises(InvalidParameter):
        add_compact_references(other, base.header, _references(1))


def test_a_two_process_build_and_delta_equal_the_inline_ones() -> None:
    """The OPRF of a compact build runs in chunks on the process pool (over 512 hashes:
    several chunks, some on the worker, some here); the file is the inline build's."""
    refs = _references(1500)
    inline = build_compact_index(KEY, SHA, refs, shard_keys=256, processes=1)
    spread = build_compact_index(KEY, SHA, refs, shard_keys=256, processes=2)
    assert len(spread.header.shards) > 1
    assert spread.data == inline.data
    assert spread.handles == inline.handles
    new = _references(700, "new")
    delta_inline = add_compact_references(KEY, inline.header, new, processes=1)
    delta_spread = add_compact_references(KEY, spread.header, new, processes=2)
    assert delta_spread.data == delta_inline.data
    outputs = _outputs(KEY, SHA, [r.hash for r in new[-3:]])
    found = CompactIndex.from_bytes(delta_spread.data).match_outputs(outputs)
    assert found == [compact_handle(o) for o in outputs]


def test_the_file_holds_no_piece_of_any_hash(
    built_sha: _Built,
) -> None:
    built, refs = built_sha
    data: bytes = built.data
    pieces = {r.hash[i : i + 4] for r in refs for i in range(len(r.hash) - 3)}
    found = {data[i : i + 4] for i in range(len(data) - 3)} & pieces
    # A random 4-byte string occurs in a file of n bytes with probability about n / 2^32.
    assert len(found) <= 1


# --------------------------------------------------------------------------- bad input


def test_build_refuses_bad_arguments() -> None:
    refs = _references(3)
    with pytest.raises(InvalidParameter):
        build_compact_index(KEY, pdq_banding(), refs)
    oprf_key = SecretKey.derive(bytes(32), b"x", mode=oprf.Mode.OPRF)
    with pytest.raises(InvalidParameter):
        build_compact_index(oprf_key, SHA, refs)
    with pytest.raises(TypeError):
        build_compact_index("key", SHA, refs)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        build_compact_index(KEY, MD5, refs)
    with pytest.raises(InvalidEncoding):
        build_compact_index(KEY, SHA, [Reference("r", "sha256", b"short")])
    with pytest.raises(InvalidEncoding):
        build_compact_index(KEY, SHA, refs, canaries=[b"short"])
    for seed, shard_keys, rate in ((-1, 1, 0.1), (2**32, 1, 0.1), (0, 0, 0.1), (0, 1, 1.5)):
        with pytest.raises(InvalidParameter):
            build_compact_index(
                KEY, SHA, refs, seed=seed, shard_keys=shard_keys, false_positive_rate=rate
            )
    with pytest.raises(InvalidParameter):
        build_compact_index(KEY, SHA, refs, base_digest=bytes(range(32)))  # canaries in a delta
    for processes in (0, -1, 1.5, True):
        with pytest.raises(InvalidParameter):
            build_compact_index(KEY, SHA, refs, processes=processes)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        build_compact_index(KEY, SHA, refs, evaluator=object())  # type: ignore[arg-type]


def test_lookup_refuses_bad_outputs(built_sha: _Built) -> None:
    built, _ = built_sha
    index = CompactIndex.from_bytes(built.data)
    with pytest.raises(InvalidEncoding):
        index.match_outputs([bytes(63)])
    with pytest.raises(InvalidEncoding):
        index.match_outputs(["x" * 64])  # type: ignore[list-item]
    with pytest.raises(InvalidParameter):
        index.lookup_many([[bytes(64), bytes(64)]])
    with pytest.raises(InvalidParameter):
        index.lookup_many([[]])
    assert index.match_outputs([]) == []
    with pytest.raises(TypeError):
        CompactIndex.from_bytes("text")  # type: ignore[arg-type]


def test_banded_and_compact_readers_refuse_each_other() -> None:
    compact = _golden("sha256-compact")
    with pytest.raises(IndexFormatError):
        Index.from_bytes(compact)
    banded = build_index(KEY, SHA, _references(2), processes=1).data
    with pytest.raises(IndexFormatError):
        CompactIndex.from_bytes(banded)


@pytest.mark.parametrize("name", ["sha256-compact", "md5-compact-shards", "md5-compact-r43"])
def test_flip_any_byte_is_a_typed_error(name: str) -> None:
    golden = _golden(name)
    for position in range(len(golden)):
        data = bytearray(golden)
        data[position] ^= 0x41
        with pytest.raises(IndexFormatError):
            CompactIndex.from_bytes(bytes(data))


def test_truncated_or_extended_files_are_refused() -> None:
    golden = _golden("md5-compact-shards")
    for length in (0, 50, 127, 128, 200, len(golden) - 1):
        with pytest.raises(IndexFormatError):
            CompactIndex.from_bytes(golden[:length], verify=False)
    with pytest.raises(IndexFormatError):
        CompactIndex.from_bytes(golden + b"\x00", verify=False)


# Resealed corruptions: the digest matches, so each field check must catch it by itself.
_FIELD_CORRUPTIONS = [
    ("magic", 0, b"\x89BMIDY\r\n"),
    ("version 1", 8, struct.pack("<H", 1)),
    ("version 4", 8, struct.pack("<H", 4)),
    ("kind", 10, b"\x02"),
    ("mode", 11, b"\x00"),
    ("header length", 12, struct.pack("<I", 64)),
    ("solution bits", 24, struct.pack("<Q", 8)),
    ("shard count 0", 32, struct.pack("<I", 0)),
    ("shard count", 32, struct.pack("<I", 2)),
    ("hash bits", 36, struct.pack("<H", 160)),
    ("structure", 38, b"\x02"),
    ("width", 39, b"\x40"),
    ("canary count past the header", 48, struct.pack("<H", 9)),
    ("reserved", 52, b"\x01"),
    ("reserved tail", 125, b"\x01"),
    ("base digest of a full index", 60, b"\x01"),
    ("key count over the rows", 16, struct.pack("<Q", 10**6)),
]


@pytest.mark.parametrize(("what", "offset", "value"), _FIELD_CORRUPTIONS, ids=lambda v: str(v))
def test_each_header_field_is_checked(what: str, offset: int, value: bytes) -> None:
    data = bytearray(_golden("sha256-compact"))
    data[offset : offset + len(value)] = value
    with pytest.raises(IndexFormatError):
        CompactIndex.from_bytes(_reseal(data))


def test_shard_table_and_padding_are_checked() -> None:
    golden = _golden("sha256-compact")
    header = decode_compact_header(golden)
    table = header.header_length
    cases = {
        "slots below w": (table, struct.pack("<I", 100)),
        "r = 0": (table + 5, b"\x00"),
        "r = 57": (table + 5, b"\x39"),
        "reserved": (table + 6, b"\x01"),
        "table padding": (table + 8, b"\x01"),
        "header padding": (header.header_length - 1, b"\x01"),
    }
    for what, (offset, value) in cases.items():
        data = bytearray(golden)
        data[offset : offset + len(value)] = value
        with pytest.raises(IndexFormatError):
            CompactIndex.from_bytes(_reseal(data))
        assert what
    # The unused high bits of the last row byte (the r = 43 file's rows end mid-byte).
    md5 = decode_compact_header(_golden("md5-compact-r43"))
    assert md5.solution_bits % 8
    data = bytearray(_golden("md5-compact-r43"))
    data[-1] |= 0x80
    with pytest.raises(IndexFormatError):
        CompactIndex.from_bytes(_reseal(data))


# --------------------------------------------------------------------------- header round trip

_shards = st.lists(
    st.builds(ShardInfo, st.integers(128, 4000), st.integers(0, 255), st.integers(1, 56)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(
    shards=_shards,
    signal=st.sampled_from([("sha256", 256), ("md5", 128), ("x.y-z", 64)]),
    epoch=st.integers(0, 2**32 - 1),
    seed=st.integers(0, 2**32 - 1),
    key_id=st.binary(max_size=64),
    canaries=st.integers(0, 3),
    delta=st.booleans(),
)
def test_header_round_trips(
    shards: list[ShardInfo],
    signal: tuple[str, int],
    epoch: int,
    seed: int,
    key_id: bytes,
    canaries: int,
    delta: bool,
) -> None:
    banding = exact_banding(*signal)
    from blindmatch.psi.index import Canary
    from blindmatch.psi.kdf import ReportHandle

    header = CompactHeader(
        kind=IndexKind.DELTA if delta else IndexKind.FULL,
        banding=banding,
        key_epoch=epoch,
        key_id=key_id,
        key_count=sum(s.slots - 127 for s in shards),
        seed=seed,
        shards=tuple(shards),
        canaries=tuple(
            Canary(bytes([i]) * banding.hash_bytes, ReportHandle(bytes([i]) * 16))
            for i in range(0 if delta else canaries)
        ),
        base_digest=bytes(range(32)) if delta else bytes(32),
        digest=bytes(32),
    )
    body = bytearray(header.encode() + bytes(-(-header.solution_bits // 8)))
    data = _reseal(body)
    decoded = decode_compact_header(data, verify_digest=True)
    assert decoded == dataclasses.replace(header, digest=data[DIGEST_OFFSET : DIGEST_OFFSET + 32])
    assert int.from_bytes(data[8:10], "little") == COMPACT_VERSION
    assert len(data) == header.total_length


@settings(max_examples=15, deadline=None)
@given(
    hashes=st.lists(st.binary(min_size=16, max_size=16), max_size=40),
    rate=st.sampled_from([1e-3, 1e-12, 1e-13, 2.0**-20]),
    seed=st.integers(0, 2**32 - 1),
    shard_keys=st.integers(1, 64),
)
def test_build_then_lookup_round_trips(
    hashes: list[bytes], rate: float, seed: int, shard_keys: int
) -> None:
    """Any multiset of MD5 hashes: every one hits with its handle, the header says what was
    asked, and the file reads back identically from its bytes."""
    refs = [Reference(f"h{i}", "md5", h) for i, h in enumerate(hashes)]
    built = build_compact_index(
        KEY, MD5, refs, canaries=[], false_positive_rate=rate, seed=seed, shard_keys=shard_keys
    )
    index = CompactIndex.from_bytes(built.data)
    assert index.header == built.header
    assert index.key_count == len(set(hashes))
    assert index.false_positive_rate <= rate
    outputs = _outputs(KEY, MD5, hashes) if hashes else []
    assert index.match_outputs(outputs) == [compact_handle(o) for o in outputs]
    first = {h: f"h{i}" for i, h in reversed(list(enumerate(hashes)))}
    assert {built.handles[compact_handle(o)] for o in outputs} == set(first.values())


@settings(max_examples=40, deadline=None)
@given(count=st.integers(0, 400), bits=st.integers(1, 56), seed=st.integers(0, 2**32 - 1))
def test_ribbon_c_and_python_solve_alike(count: int, bits: int, seed: int) -> None:
    """The C solve and the Python solve give the same rows (or both fail), bit for bit."""
    if _ribbon.BACKEND != "c":  # pragma: no cover - the C extension was not built
        pytest.fail("the Ribbon C extension is not built (no C compiler at install?)")
    draw = np.random.default_rng(seed)
    slots = count + count // 100 + 130
    starts = draw.integers(0, slots - _ribbon.WIDTH + 1, size=count, dtype=np.int64)
    low = draw.integers(0, 2**64, size=count, dtype=np.uint64) | np.uint64(1)
    high = draw.integers(0, 2**64, size=count, dtype=np.uint64)
    fingerprints = draw.integers(0, 2**bits, size=count, dtype=np.uint64)
    in_c = _ribbon.solve_arrays(starts, low, high, fingerprints, slots, backend="c")
    in_python = _ribbon.solve_arrays(starts, low, high, fingerprints, slots, backend="python")
    if in_c is None or in_python is None:
        assert in_c is None
        assert in_python is None
        return
    assert in_c.tolist() == in_python.tolist()


def test_ribbon_c_refuses_bad_buffers() -> None:
    from blindmatch.psi import _ribbon_cext

    one = np.zeros(1, dtype=np.uint64)
    out = np.zeros(128, dtype=np.uint64)
    with pytest.raises(ValueError, match="out of range"):
        _ribbon_cext.solve(np.array([1], dtype=np.int64), one | np.uint64(1), one, one, 128, out)
    with pytest.raises(ValueError, match="wrong sizes"):
        _ribbon_cext.solve(np.zeros(1, dtype=np.int64), one, one, one, 127, out[:127])
    with pytest.raises(ValueError, match="wrong sizes"):
        _ribbon_cext.solve(np.zeros(2, dtype=np.int64), one, one, one, 128, out)
    # A coefficient whose first bit is 0 could toggle against a stored row forever.
    stored = np.array([1, 1], dtype=np.uint64)
    with pytest.raises(ValueError, match="does not start with 1"):
        _ribbon_cext.solve(
            np.zeros(2, dtype=np.int64),
            stored ^ np.uint64(1),
            one.repeat(2),
            one.repeat(2),
            128,
            out,
        )
