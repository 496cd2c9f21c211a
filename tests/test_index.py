"""The index: KDF, header round trips, corruption, matching with the real OPRF, goldens."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import random
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pysodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch.errors import IndexFormatError, IndexTooDense, InvalidEncoding, InvalidParameter
from blindmatch.psi import oprf
from blindmatch.psi._index_format import (
    DIGEST_OFFSET,
    FIXED_SIZE,
    MAX_BAND_POSITIONS,
    IndexHeader,
    IndexKind,
    decode_header,
)
from blindmatch.psi.bands import Banding, exact_banding, pdq_banding
from blindmatch.psi.index import (
    BuiltIndex,
    Canary,
    Index,
    IndexSet,
    MatchResult,
    Reference,
    add_references,
    build_index,
    default_canaries,
    default_max_hits,
    merge_indexes,
)
from blindmatch.psi.kdf import (
    ENTRY_INFO,
    HANDLE_INFO,
    PAD_MASK,
    ReportHandle,
    derive_entries,
    derive_entry,
    derive_handle,
    derive_handles,
    keyed_blake2b,
)
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.shares import FIELD_MODULUS
from index_tools import densify, reseal

VECTORS = Path(__file__).parent / "vectors" / "index"
KEY = SecretKey.derive(bytes(range(32)), b"test_index", mode=oprf.Mode.VOPRF, epoch=3)
SHA = exact_banding("sha256", 256)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("index_vectors", VECTORS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATE = _generator()
CASES: list[dict[str, object]] = json.loads((VECTORS / "cases.json").read_text())["cases"]


def _outputs(key: SecretKey, banding: Banding, hashes_: list[bytes]) -> list[list[bytes]]:
    """The L finalized outputs of each hash (server-side Evaluate = client's finalize)."""
    flat = oprf.evaluate_batch(
        key.scalar, [i for h in hashes_ for i in banding.band_inputs(h)], oprf.Mode.VOPRF
    )
    n = banding.count
    return [flat[i * n : (i + 1) * n] for i in range(len(hashes_))]


def _sha_refs(count: int, prefix: str = "ref") -> list[Reference]:
    return [
        Reference(f"report-{i // 2}", "sha256", hashlib.sha256(f"{prefix} {i}".encode()).digest())
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def sha_index() -> tuple[BuiltIndex, list[Reference]]:
    refs = _sha_refs(300)
    return build_index(KEY, SHA, refs, processes=1), refs


# --------------------------------------------------------------------------- kdf


def _generichash(key: bytes, info: bytes, length: int) -> bytes:
    """libsodium's keyed BLAKE2b (``crypto_generichash``): the independent oracle."""
    return bytes(pysodium.crypto_generichash(info, key, length))


@settings(max_examples=60)
@given(st.binary(min_size=1, max_size=64), st.binary(max_size=80), st.integers(1, 64))
def test_kdf_equals_libsodium_generichash(key: bytes, info: bytes, length: int) -> None:
    assert keyed_blake2b(key, info, length) == _generichash(key, info, length)


@settings(max_examples=30)
@given(
    st.lists(st.binary(min_size=64, max_size=64), min_size=1, max_size=10), st.sampled_from([4, 8])
)
def test_entry_derivation(outputs: list[bytes], tag_bytes: int) -> None:
    """Tag = E[:w], pad = E[w:w+8] & (2^61-1), E = BLAKE2b(key=F, entry info, w + 8)."""
    tags, pads = derive_entries(outputs, tag_bytes)
    for i, out in enumerate(outputs):
        expanded = _generichash(out, ENTRY_INFO, tag_bytes + 8)
        tag = int.from_bytes(expanded[:tag_bytes], "big")
        pad = int.from_bytes(expanded[tag_bytes:], "big") & PAD_MASK
        assert (int(tags[i]), int(pads[i])) == (tag, pad) == derive_entry(out, tag_bytes)


@given(st.integers(0, FIELD_MODULUS - 1))
def test_handle_derivation(secret: int) -> None:
    expected = _generichash(secret.to_bytes(8, "big"), HANDLE_INFO, 16)
    assert bytes(derive_handle(secret)) == expected
    assert derive_handles(np.array([secret], dtype=np.uint64)) == [expected]


@given(st.binary(min_size=16, max_size=16))
def test_report_handle_round_trips(raw: bytes) -> None:
    handle = ReportHandle.from_bytes(raw)
    assert bytes(handle) == raw
    assert ReportHandle.from_hex(handle.hex()) == handle
    assert ReportHandle.from_hex(handle.hex().upper()) == handle
    assert str(handle) == raw.hex()
    assert raw.hex() in repr(handle)
    assert hash(handle) == hash(ReportHandle(raw))


@pytest.mark.parametrize(
    "call",
    [
        lambda: ReportHandle(b"\x00" * 15),
        lambda: ReportHandle(b"\x00" * 17),
        lambda: ReportHandle("00" * 16),  # type: ignore[arg-type]
        lambda: ReportHandle.from_hex("00" * 15),
        lambda: ReportHandle.from_hex("zz" * 16),
        lambda: ReportHandle.from_bytes(7),  # type: ignore[arg-type]
        lambda: derive_entry(b"\x00" * 63),
        lambda: derive_entries([b"\x00" * 64, b"\x00" * 65]),
        lambda: derive_entries([bytearray(64)]),  # type: ignore[list-item]
    ],
    ids=[
        "handle-15",
        "handle-17",
        "handle-str",
        "hex-short",
        "hex-alphabet",
        "from-bytes-int",
        "output-63",
        "output-65",
        "output-bytearray",
    ],
)
def test_kdf_encoding_errors(call: Callable[[], object]) -> None:
    with pytest.raises(InvalidEncoding):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: keyed_blake2b(b"k", b"", 0),
        lambda: keyed_blake2b(b"k", b"", 65),
        lambda: keyed_blake2b(b"", b"", 16),
        lambda: keyed_blake2b(bytes(65), b"", 16),
        lambda: derive_entry(bytes(64), 5),
        lambda: derive_handle(FIELD_MODULUS),
        lambda: derive_handle(-1),
        lambda: derive_handles(np.array([FIELD_MODULUS], dtype=np.uint64)),
    ],
    ids=[
        "kdf-0",
        "kdf-65",
        "kdf-empty-key",
        "kdf-key-65",
        "tag-width-5",
        "handle-p",
        "handle-negative",
        "handles-p",
    ],
)
def test_kdf_value_errors(call: Callable[[], object]) -> None:
    with pytest.raises(InvalidParameter):
        call()


# --------------------------------------------------------------------------- header


@st.composite
def headers(draw: st.DrawFn) -> IndexHeader:
    exact = draw(st.booleans())
    if exact:
        banding = exact_banding(
            draw(st.sampled_from(["md5", "sha256", "x"])), 8 * draw(st.integers(1, 64))
        )
    else:
        banding = Banding(
            signal=draw(st.sampled_from(["pdq", "tmk", "a.b-c_d"])),
            hash_bits=256,
            k=draw(st.integers(1, 255)),
            count=draw(st.integers(2, 40)),
            threshold=2,
            seed=draw(st.binary(max_size=64)),
        )
    kind = draw(st.sampled_from(list(IndexKind)))
    canaries = tuple(
        Canary(
            draw(st.binary(min_size=banding.hash_bytes, max_size=banding.hash_bytes)),
            ReportHandle(draw(st.binary(min_size=16, max_size=16))),
        )
        for _ in range(draw(st.integers(0, 3)))
    )
    base = (
        bytes(32)
        if kind is IndexKind.FULL
        else draw(st.binary(min_size=32, max_size=32).filter(lambda b: b != bytes(32)))
    )
    return IndexHeader(
        kind=kind,
        banding=banding,
        key_epoch=draw(st.integers(0, 2**32 - 1)),
        key_id=draw(st.binary(max_size=64)),
        entry_count=draw(st.integers(0, 5)),
        handle_count=draw(st.integers(0, 5)),
        tag_bytes=draw(st.sampled_from([4, 8])),
        handle_bytes=draw(st.integers(8, 16)),
        canaries=canaries,
        base_digest=base,
        digest=draw(st.binary(min_size=32, max_size=32)),
    )


@settings(max_examples=80, deadline=None)
@given(headers())
def test_header_round_trip(header: IndexHeader) -> None:
    layout = header.layout()
    data = header.encode() + bytes(layout.total_length - layout.header_length)
    decoded, decoded_layout = decode_header(data)
    assert decoded == header
    assert decoded_layout == layout
    assert layout.header_length % 64 == 0
    assert layout.shares_offset % 64 == 0
    assert layout.handles_offset % 64 == 0


# --------------------------------------------------------------------------- corruption


def _golden(case_id: str) -> bytes:
    return (VECTORS / f"{case_id}.bmidx").read_bytes()


@pytest.mark.parametrize("case_id", ["sha256-exact", "md5-exact-tag8-handle8"])
def test_flip_any_byte_is_caught(case_id: str) -> None:
    data = _golden(case_id)
    Index.from_bytes(data)
    for position in range(len(data)):
        corrupt = bytearray(data)
        corrupt[position] ^= 0x01
        with pytest.raises(IndexFormatError):
            Index.from_bytes(bytes(corrupt))


def test_flip_in_pdq_body_is_caught() -> None:
    data = _golden("pdq-256")
    rng = random.Random(3)
    for position in rng.sample(range(len(data)), 200):
        corrupt = bytearray(data)
        corrupt[position] ^= 1 << rng.randrange(8)
        with pytest.raises(IndexFormatError):
            Index.from_bytes(bytes(corrupt))


@pytest.mark.parametrize("case_id", ["sha256-exact", "pdq-256"])
def test_truncation_at_every_boundary(case_id: str) -> None:
    data = _golden(case_id)
    layout = Index.from_bytes(data).layout
    cuts = {
        0,
        1,
        8,
        FIXED_SIZE - 1,
        FIXED_SIZE,
        layout.header_length - 1,
        layout.header_length,
        layout.shares_offset - 1,
        layout.shares_offset,
        layout.handles_offset - 1,
        layout.handles_offset,
        layout.total_length - 1,
    }
    for cut in sorted(cuts):
        with pytest.raises(IndexFormatError):
            Index.from_bytes(data[:cut])
        with pytest.raises(IndexFormatError):
            Index.from_bytes(data[:cut], verify=False)
    with pytest.raises(IndexFormatError):
        Index.from_bytes(data + b"\x00")


def test_dense_index_is_refused_before_expanding_hits() -> None:
    refs = _sha_refs(1500, prefix="dense")
    built = build_index(KEY, SHA, refs, processes=1)
    query = hashlib.sha256(b"an upload of the platform").digest()
    outputs = _outputs(KEY, SHA, [query])[0]
    tags, _ = derive_entries(outputs, built.header.tag_bytes)
    forged = densify(built.data, [int(t) for t in tags])
    dense = Index.from_bytes(forged)  # well formed: digest, order and ranges all check out
    assert dense.entry_count == 1504
    with pytest.raises(IndexTooDense, match="1504 index entries"):
        dense.match(outputs)
    # Over a raised limit the lookup runs: 1504 hits, none unmasks to a stored handle.
    result = Index.from_bytes(forged, max_hits=2000).lookup(outputs)
    assert (result.tag_hits, result.handles) == (1504, ())


def test_dense_pdq_index_counts_hits_over_all_bands() -> None:
    data = _golden("pdq-256")
    banding = Index.from_bytes(data).header.banding
    # The planted tags are those of the query's outputs under any key: the index cannot tell.
    flat = _outputs(KEY, banding, [bytes(range(32))])[0]
    tags, _ = derive_entries(flat, Index.from_bytes(data).header.tag_bytes)
    dense = densify(data, [int(t) for t in tags])
    total = Index.from_bytes(dense).entry_count * banding.count
    assert total <= default_max_hits(banding)
    assert Index.from_bytes(dense).lookup(flat).tag_hits == total  # under the default: runs
    with pytest.raises(IndexTooDense):
        Index.from_bytes(dense, max_hits=total - 1).lookup(flat)


@pytest.mark.parametrize("max_hits", [0, 255, -1, 1.5, True])
def test_max_hits_below_one_per_band_is_refused(max_hits: object) -> None:
    with pytest.raises(InvalidParameter):
        Index.from_bytes(_golden("pdq-256"), max_hits=max_hits)  # type: ignore[arg-type]


def test_default_max_hits() -> None:
    assert default_max_hits(SHA) == 1024
    assert default_max_hits(pdq_banding(384)) == 3072


def test_every_truncation_of_a_small_index() -> None:
    data = _golden("sha256-exact")
    for cut in range(len(data)):
        with pytest.raises(IndexFormatError):
            Index.from_bytes(data[:cut], verify=False)


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (0, b"\x88", "magic"),
        (8, struct.pack("<H", 3), "version"),
        (8, struct.pack("<H", 2), "length"),  # version 2 adds the groups sections
        (8, struct.pack("<H", 0), "version"),
        (10, b"\x02", "kind"),
        (11, b"\x00", "VOPRF"),
        (11, b"\x02", "VOPRF"),
        (42, b"\x10", "share width"),
        (41, b"\x05", "tag width"),
        (43, b"\x07", "handle width"),
        (43, b"\x11", "handle width"),
        (50, b"\x01", "reserved"),
        (120, b"\x01", "reserved"),
        (12, struct.pack("<I", 100), "header length"),
        (12, struct.pack("<I", 1 << 30), "header length"),
        (40, b"\x03", "banding"),
        (56, b"\x01", "base digest"),
        (FIXED_SIZE, b"\x12", "suite"),
        (FIXED_SIZE + 1, b"R", "suite"),
        (16, struct.pack("<Q", 7), "length|sorted|padding"),
        (24, struct.pack("<Q", 5), "length|handles"),
    ],
    ids=lambda v: v.hex() if isinstance(v, bytes) else str(v),
)
def test_structural_errors_with_a_valid_digest(offset: int, value: bytes, message: str) -> None:
    data = bytearray(_golden("sha256-exact"))
    data[offset : offset + len(value)] = value
    with pytest.raises(IndexFormatError, match=message):
        Index.from_bytes(reseal(data))


def test_body_invariants_with_a_valid_digest() -> None:
    data = _golden("pdq-256")
    index = Index.from_bytes(data)
    layout = index.layout
    # Swap two tags of band 0: unsorted.
    swapped = bytearray(data)
    first = swapped[layout.tags_offset : layout.tags_offset + 4]
    swapped[layout.tags_offset : layout.tags_offset + 4] = swapped[
        layout.tags_offset + 4 : layout.tags_offset + 8
    ]
    swapped[layout.tags_offset + 4 : layout.tags_offset + 8] = first
    with pytest.raises(IndexFormatError, match="sorted"):
        Index.from_bytes(reseal(swapped))
    # A share with a bit above 2^61.
    wide = bytearray(data)
    wide[layout.shares_offset + 7] |= 0x80
    with pytest.raises(IndexFormatError, match="2\\*\\*61"):
        Index.from_bytes(reseal(wide))
    # Two equal handles.
    doubled = bytearray(data)
    doubled[layout.handles_offset + 16 : layout.handles_offset + 32] = doubled[
        layout.handles_offset : layout.handles_offset + 16
    ]
    with pytest.raises(IndexFormatError, match="handles"):
        Index.from_bytes(reseal(doubled))
    # Nonzero section padding (between tags and shares).
    padded = bytearray(data)
    padded[layout.shares_offset - 1] = 1
    if layout.shares_offset > layout.tags_offset + 4 * index.entry_count * 256:
        with pytest.raises(IndexFormatError, match="padding"):
            Index.from_bytes(reseal(padded))
    # Nonzero header padding.
    header_pad = bytearray(data)
    header_pad[layout.header_length - 1] = 1
    with pytest.raises(IndexFormatError, match="padding"):
        Index.from_bytes(reseal(header_pad))


def test_unverified_open_skips_the_digest_only() -> None:
    data = bytearray(_golden("sha256-exact"))
    data[DIGEST_OFFSET] ^= 0xFF
    with pytest.raises(IndexFormatError, match="digest"):
        Index.from_bytes(bytes(data))
    assert Index.from_bytes(bytes(data), verify=False).entry_count == 6


def test_open_memory_maps_files(tmp_path: Path) -> None:
    path = tmp_path / "sha.bmidx"
    path.write_bytes(_golden("sha256-exact"))
    index = Index.open(path)
    assert isinstance(index._tags.base, np.memmap)
    assert isinstance(index._shares.base, np.memmap)
    assert index.digest == Index.from_bytes(path.read_bytes()).digest
    assert index.match([bytes(64)]) == []
    empty = tmp_path / "empty.bmidx"
    empty.write_bytes(b"")
    with pytest.raises(IndexFormatError):
        Index.open(empty)
    short = tmp_path / "short.bmidx"
    short.write_bytes(_golden("sha256-exact")[:100])
    with pytest.raises(IndexFormatError):
        Index.open(short)
    with pytest.raises(TypeError):
        Index.from_bytes("not bytes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- goldens


@pytest.mark.parametrize("case", CASES, ids=lambda c: str(c["id"]))
def test_golden_rebuilds_byte_for_byte(case: dict[str, object]) -> None:
    data, handles = GENERATE.build_case(case)
    golden = (VECTORS / str(case["file"])).read_bytes()
    assert hashlib.sha256(golden).hexdigest() == case["file_sha256"]
    assert data == golden
    assert handles == case["handles"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: str(c["id"]))
def test_golden_lookups(case: dict[str, object]) -> None:
    """Each golden reference, evaluated with the real OPRF, matches its recorded handle."""
    index = Index.from_bytes((VECTORS / str(case["file"])).read_bytes())
    banding = GENERATE.banding_of(case)
    key = SecretKey.derive(
        bytes.fromhex(str(case["key_seed"])),
        str(case["key_info"]).encode(),
        mode=oprf.Mode.VOPRF,
        epoch=int(str(case["epoch"])),
    )
    assert index.header.key_id == key.key_id
    assert index.header.key_epoch == key.epoch
    references = case["references"]
    handles = case["handles"]
    assert isinstance(references, list)
    assert isinstance(handles, dict)
    hashes_ = [bytes.fromhex(str(r["hash"])) for r in references]
    results = index.match_many(_outputs(key, banding, hashes_))
    for reference, matched in zip(references, results, strict=True):
        assert len(matched) == 1
        stored = handles[matched[0].hex()] if index.header.handle_bytes == 16 else None
        assert stored in (reference["report_id"], None)
        assert matched[0].hex() in handles
    canary_results = index.match_many(_outputs(key, banding, [c.hash for c in index.canaries]))
    assert canary_results == [[c.handle] for c in index.canaries]


# --------------------------------------------------------------------------- matching


def test_exact_matches_exactly_its_own_handle(
    sha_index: tuple[BuiltIndex, list[Reference]],
) -> None:
    built, refs = sha_index
    index = Index.from_bytes(built.to_bytes())
    by_position = list(built.handles.items())
    assert len(by_position) == len(refs)
    results = index.lookup_many(_outputs(KEY, SHA, [r.hash for r in refs]))
    matched_ids = [[built.handles[h] for h in r.handles] for r in results]
    assert matched_ids == [[r.report_id] for r in refs]
    assert len({r.handles for r in results}) == len(refs)
    assert all(r.tag_hits >= 1 and r.bands_hit == 1 for r in results)
    rng = random.Random(11)
    strangers = [rng.randbytes(32) for _ in range(200)]
    misses = index.lookup_many(_outputs(KEY, SHA, strangers))
    assert all(not r.matched for r in misses)
    assert all(r.tag_hits == 0 for r in misses)


def test_blinded_client_path_matches(sha_index: tuple[BuiltIndex, list[Reference]]) -> None:
    """Differential: blind -> blind_evaluate -> finalize gives the outputs the index expects."""
    built, refs = sha_index
    index = Index.from_bytes(built.to_bytes())
    chosen = refs[:5]
    inputs = [SHA.band_inputs(r.hash)[0] for r in chosen]
    blind, blinded = oprf.blind_batch_shared(inputs, oprf.Mode.VOPRF)
    evaluated = oprf.blind_evaluate_batch(KEY.scalar, blinded, oprf.Mode.VOPRF)
    outputs = oprf.finalize_batch_shared(inputs, blind, evaluated, oprf.Mode.VOPRF)
    matched = index.match_many([[o] for o in outputs])
    assert [[built.handles[h] for h in m] for m in matched] == [[r.report_id] for r in chosen]


def test_wrong_key_matches_nothing(sha_index: tuple[BuiltIndex, list[Reference]]) -> None:
    built, refs = sha_index
    other = SecretKey.derive(bytes(32), b"other", mode=oprf.Mode.VOPRF, epoch=3)
    index = Index.from_bytes(built.to_bytes())
    results = index.lookup_many(_outputs(other, SHA, [r.hash for r in refs[:50]]))
    assert not any(r.matched for r in results)


def test_canaries_match(sha_index: tuple[BuiltIndex, list[Reference]]) -> None:
    built, _ = sha_index
    index = Index.from_bytes(built.to_bytes())
    assert [c.hash for c in index.canaries] == default_canaries(SHA)
    assert index.canaries == built.canaries
    for canary in index.canaries:
        assert index.match(_outputs(KEY, SHA, [canary.hash])[0]) == [canary.handle]
        assert canary.handle not in built.handles


def _substrings(data: bytes, width: int = 4) -> set[bytes]:
    return {data[i : i + width] for i in range(len(data) - width + 1)}


def test_no_hash_bytes_in_the_index(sha_index: tuple[BuiltIndex, list[Reference]]) -> None:
    """No reference hash, and no 4-byte piece of one, appears anywhere in the file."""
    built, refs = sha_index
    data = built.to_bytes()
    pieces = set().union(*(_substrings(r.hash) for r in refs))
    found = [p for p in pieces if p in data]
    # A random 4-byte string occurs in a file of n bytes with probability about n / 2^32.
    assert len(found) <= 1, f"{len(found)} hash substrings found in the index"
    assert not any(r.hash[:8] in data for r in refs)


def _flip(rng: random.Random, digest: bytes, distance: int) -> bytes:
    number = int.from_bytes(digest, "big")
    for bit in rng.sample(range(256), distance):
        number ^= 1 << bit
    return number.to_bytes(32, "big")


@pytest.fixture(scope="module")
def pdq_index() -> tuple[BuiltIndex, list[Reference]]:
    rng = random.Random(21)
    refs = [Reference(f"pdq-report-{i}", "pdq", rng.randbytes(32)) for i in range(8)]
    return build_index(KEY, pdq_banding(384), refs, processes=1), refs


def test_pdq_near_hashes_match(pdq_index: tuple[BuiltIndex, list[Reference]]) -> None:
    """Distance <= 10 from a reference matches it with t = 2, L = 384; far hashes do not."""
    built, refs = pdq_index
    banding = pdq_banding(384)
    index = Index.from_bytes(built.to_bytes())
    rng = random.Random(22)
    near = [_flip(rng, r.hash, d) for r, d in zip(refs, [0, 1, 4, 7, 10, 10, 3, 9], strict=True)]
    far = [_flip(rng, refs[0].hash, 100), rng.randbytes(32)]
    results = index.lookup_many(_outputs(KEY, banding, near + far))
    for reference, result in zip(refs, results[:8], strict=True):
        assert [built.handles[h] for h in result.handles] == [reference.report_id]
        assert result.bands_hit >= 2
    assert not results[8].matched
    assert not results[9].matched
    assert results[9].tag_hits == 0
    data = built.to_bytes()
    pieces = set().union(*(_substrings(r.hash) for r in refs))
    assert sum(p in data for p in pieces) <= 2


def test_pdq_single_band_is_not_a_match(pdq_index: tuple[BuiltIndex, list[Reference]]) -> None:
    """A hash that agrees with a reference on one band only has a tag hit and no match."""
    built, refs = pdq_index
    banding = pdq_banding(384)
    index = Index.from_bytes(built.to_bytes())
    target = refs[0].hash
    band = banding.positions()[0]
    rng = random.Random(23)
    other = bytearray(rng.randbytes(32))
    number = int.from_bytes(other, "big")
    source = int.from_bytes(target, "big")
    for p in band:
        number = (number & ~(1 << p)) | (source & (1 << p))
    probe = number.to_bytes(32, "big")
    result = index.lookup(_outputs(KEY, banding, [probe])[0])
    assert result.tag_hits >= 1
    assert not result.matched


def test_parallel_build_equals_inline_build() -> None:
    rng = random.Random(31)
    refs = [Reference(f"p{i}", "pdq", rng.randbytes(32)) for i in range(18)]
    banding = pdq_banding(256)
    inline = build_index(
        KEY, banding, refs, processes=1, random_bytes=GENERATE.ShakeStream("parallel")
    )
    spread = build_index(
        KEY, banding, refs, processes=2, random_bytes=GENERATE.ShakeStream("parallel")
    )
    assert inline.to_bytes() == spread.to_bytes()
    assert inline.handles == spread.handles


def test_pdq_build_memory_is_a_small_multiple_of_the_file() -> None:
    """Band inputs are made per chunk and bands sorted one at a time: the build's peak of
    Python-allocated memory stays near a few times the file (it was 27x, holding every
    ``N * L`` input as a bytes object)."""
    rng = random.Random(5)
    refs = [Reference(f"m{i}", "pdq", rng.randbytes(32)) for i in range(160)]
    tracemalloc.start()
    try:
        built = build_index(KEY, pdq_banding(384), refs, processes=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * len(built.data)


# --------------------------------------------------------------------------- deltas


def test_delta_and_merge(sha_index: tuple[BuiltIndex, list[Reference]]) -> None:
    built, refs = sha_index
    base = Index.from_bytes(built.to_bytes())
    new_refs = _sha_refs(20, prefix="new")
    delta_built = add_references(KEY, base.header, new_refs, processes=1)
    delta = Index.from_bytes(delta_built.to_bytes())
    assert delta.header.kind is IndexKind.DELTA
    assert delta.header.base_digest == base.digest
    assert not delta.canaries
    queries = [r.hash for r in refs[:10]] + [r.hash for r in new_refs]
    outputs = _outputs(KEY, SHA, queries)
    handles = {**built.handles, **delta_built.handles}
    expected = [[r.report_id] for r in refs[:10] + new_refs]
    both = IndexSet(base, [delta])
    side_by_side = both.lookup_many(outputs)
    assert [[handles[h] for h in r.handles] for r in side_by_side] == expected
    assert both.match_many(outputs) == [list(r.handles) for r in side_by_side]
    assert both.match(outputs[-1]) == list(both.lookup(outputs[-1]).handles)
    assert both.header == base.header
    assert both.canaries == base.canaries
    assert both.entry_count == base.entry_count + 20
    merged = Index.from_bytes(merge_indexes(base, [delta]))
    assert merged.header.kind is IndexKind.FULL
    assert merged.entry_count == base.entry_count + delta.entry_count
    assert merged.canaries == base.canaries
    assert [[handles[h] for h in m] for m in merged.match_many(outputs)] == expected
    assert base.match_many(outputs)[10:] == [[]] * 20


def test_an_index_set_derives_once_and_equals_each_index_looked_up_alone(
    sha_index: tuple[BuiltIndex, list[Reference]],
) -> None:
    built, refs = sha_index
    base = Index.from_bytes(built.to_bytes())
    deltas = [
        Index.from_bytes(add_references(KEY, base.header, _sha_refs(3, f"d{n}"), processes=1).data)
        for n in range(3)
    ]
    queries = [r.hash for r in refs[:4]] + [b"\x01" * 32]
    outputs = _outputs(KEY, SHA, queries)
    together = IndexSet(base, deltas).lookup_many(outputs)
    alone = [index.lookup_many(outputs) for index in (base, *deltas)]
    for n, result in enumerate(together):
        parts = [a[n] for a in alone]
        assert result.handles == tuple(sorted({h for p in parts for h in p.handles}))
        assert result.tag_hits == sum(p.tag_hits for p in parts)
        assert result.bands_hit == max(p.bands_hit for p in parts)
    assert IndexSet(base, deltas).lookup_many([]) == []
    with pytest.raises(InvalidParameter, match="outputs"):
        IndexSet(base, deltas).lookup_many([outputs[0] * 2])


def test_delta_misuse(sha_index: tuple[BuiltIndex, list[Reference]]) -> None:
    built, _ = sha_index
    base = Index.from_bytes(built.to_bytes())
    delta = Index.from_bytes(add_references(KEY, base.header, _sha_refs(2, "d"), processes=1).data)
    other_base = Index.from_bytes(build_index(KEY, SHA, _sha_refs(3, "o"), processes=1).data)
    with pytest.raises(IndexFormatError, match="base"):
        IndexSet(other_base, [delta])
    with pytest.raises(IndexFormatError, match="base"):
        merge_indexes(other_base, [delta])
    with pytest.raises(IndexFormatError, match="full"):
        IndexSet(delta)
    with pytest.raises(InvalidParameter, match="full index"):
        add_references(KEY, delta.header, _sha_refs(1))
    other_key = SecretKey.derive(bytes(32), b"x", mode=oprf.Mode.VOPRF, epoch=3)
    with pytest.raises(InvalidParameter, match="key"):
        add_references(other_key, base.header, _sha_refs(1))


# --------------------------------------------------------------------------- misuse


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: build_index(KEY, SHA, [Reference("r", "md5", bytes(32))]), InvalidParameter),
        (lambda: build_index(KEY, SHA, [Reference("r", "sha256", bytes(16))]), InvalidEncoding),
        (lambda: build_index(KEY, SHA, [("r", "sha256", bytes(32))]), TypeError),  # type: ignore[list-item]
        (lambda: build_index(KEY.scalar, SHA, []), TypeError),  # type: ignore[arg-type]
        (
            lambda: build_index(SecretKey.derive(bytes(32), b"", mode=oprf.Mode.OPRF), SHA, []),
            InvalidParameter,
        ),
        (lambda: build_index(KEY, SHA, [], canaries=[bytes(31)]), InvalidEncoding),
        (lambda: build_index(KEY, SHA, [], tag_bytes=2), InvalidParameter),
        (lambda: build_index(KEY, SHA, [], handle_bytes=7), InvalidParameter),
        (lambda: build_index(KEY, SHA, [], handle_bytes=17), InvalidParameter),
        (lambda: build_index(KEY, SHA, [], processes=0), InvalidParameter),
        (lambda: Reference("", "sha256", bytes(32)), InvalidParameter),
        (lambda: Reference("r", "sha256", "00" * 32), TypeError),  # type: ignore[arg-type]
        (lambda: default_canaries(SHA, 2000), InvalidParameter),
    ],
    ids=[
        "wrong-signal",
        "wrong-length",
        "not-a-reference",
        "scalar-not-key",
        "oprf-mode-key",
        "bad-canary",
        "tag-width",
        "handle-width-7",
        "handle-width-17",
        "no-processes",
        "empty-report-id",
        "hex-hash",
        "too-many-canaries",
    ],
)
def test_build_misuse(call: Callable[[], object], error: type[Exception]) -> None:
    with pytest.raises(error):
        call()


def test_lookup_misuse(sha_index: tuple[BuiltIndex, list[Reference]]) -> None:
    index = Index.from_bytes(sha_index[0].to_bytes())
    with pytest.raises(InvalidParameter, match="exactly 1 outputs"):
        index.match([bytes(64), bytes(64)])
    with pytest.raises(InvalidParameter, match="exactly 1 outputs"):
        index.match([])
    with pytest.raises(InvalidEncoding):
        index.match([bytes(63)])
    assert index.lookup_many([]) == []
    assert index.lookup([bytes(64)]) == MatchResult(handles=(), tag_hits=0, bands_hit=0)


def test_reference_repr_hides_the_hash() -> None:
    digest = hashlib.sha256(b"secret").digest()
    text = repr(Reference("r1", "sha256", digest))
    assert digest.hex() not in text
    assert "redacted" in text


def test_empty_index_is_valid() -> None:
    built = build_index(KEY, SHA, [], canaries=[], processes=1)
    index = Index.from_bytes(built.to_bytes())
    assert index.entry_count == 0
    assert index.header.handle_count == 0
    assert index.match([bytes(64)]) == []


def test_write_round_trip(tmp_path: Path, sha_index: tuple[BuiltIndex, list[Reference]]) -> None:
    built, refs = sha_index
    path = tmp_path / "index.bmidx"
    built.write(path)
    index = Index.open(path)
    assert index.digest == built.digest
    result = index.match(_outputs(KEY, SHA, [refs[7].hash])[0])
    assert [built.handles[h] for h in result] == [refs[7].report_id]


def test_pair_secrets_peels_strong_lines() -> None:
    """Two long lines, one line with exactly two hits, and noise: all three secrets, and few
    garbage candidates (cross pairs of the long lines are set aside)."""
    from blindmatch.psi._index_lookup import _pair_secrets

    rng = random.Random(41)
    p = FIELD_MODULUS
    lines = [(rng.randrange(p), rng.randrange(p)) for _ in range(3)]
    bands: list[int] = []
    values: list[int] = []
    for (s, a), chosen in zip(lines, [range(0, 300), range(0, 300, 2), [301, 340]], strict=True):
        for j in chosen:
            bands.append(j)
            values.append((s + a * (j + 1)) % p)
    for j in (350, 360, 370):
        bands.append(j)
        values.append(rng.randrange(p))
    order = np.argsort(bands, kind="stable")
    got = _pair_secrets(
        np.array(bands, dtype=np.int64)[order], np.array(values, dtype=np.uint64)[order]
    )
    secrets = {int(v) for v in got}
    assert {s for s, _ in lines} <= secrets
    assert len(secrets) <= 3 + 10  # the 5 off-line hits give at most C(5, 2) = 10 pairs


def test_pdq_duplicate_and_near_references() -> None:
    """One hash reported twice and a near copy: an upload matches all three handles."""
    rng = random.Random(43)
    base = rng.randbytes(32)
    near = _flip(rng, base, 6)
    refs = [
        Reference("first", "pdq", base),
        Reference("second", "pdq", base),
        Reference("near", "pdq", near),
        Reference("other", "pdq", rng.randbytes(32)),
    ]
    banding = pdq_banding(256)
    built = build_index(KEY, banding, refs, canaries=[], processes=1)
    index = Index.from_bytes(built.to_bytes())
    result = index.lookup(_outputs(KEY, banding, [_flip(rng, base, 2)])[0])
    assert sorted(built.handles[h] for h in result.handles) == ["first", "near", "second"]
    assert result.tag_hits >= 2 * result.bands_hit


# ================================================================ hostile headers and bodies

_FIXED_FORMAT = struct.Struct("<8sHBBIQQIHHBBBBIH6s32s32s8s")


def _bare_header(*, bands: int, hash_bits: int, k: int, threshold: int = 2) -> bytearray:
    """A header-only index file (no entries, no handles) asking for the given banding,
    its variable part ``lp8(suite) lp8(signal) lp8(seed) lp8(key id)`` padded to 64."""
    suite = b"ristretto255-SHA512"
    variable = bytes([len(suite)]) + suite + b"\x01x" + b"\x00" + b"\x00"
    length = -(-(FIXED_SIZE + len(variable)) // 64) * 64
    fixed = _FIXED_FORMAT.pack(
        b"\x89BMIDX\r\n",
        1,
        0,
        1,
        length,
        0,
        0,
        bands,
        hash_bits,
        k,
        threshold,
        4,
        8,
        16,
        0,
        0,
        bytes(6),
        bytes(32),
        bytes(32),
        bytes(8),
    )
    return bytearray((fixed + variable).ljust(length, b"\x00"))


def test_a_192_byte_header_cannot_ask_for_millions_of_band_positions() -> None:
    """Issue 7.4: L = 4096 bands of k = 4095 bits (each within Banding's own bounds) took
    40 s and 900 MB to draw for a 192-byte file. The header is refused by the position
    bound, checked before the banding is built, with or without the digest check."""
    data = _bare_header(bands=4096, hash_bits=4096, k=4095)
    assert len(data) == 192
    sealed = reseal(data)
    for verify in (True, False):
        with pytest.raises(IndexFormatError, match="at most 65536 positions"):
            Index.from_bytes(sealed, verify=verify)
    with pytest.raises(IndexFormatError, match="at most 65536 positions"):
        decode_header(sealed)
    assert MAX_BAND_POSITIONS >= 512 * 32  # the largest PDQ banding fits


def test_cheap_checks_come_before_the_banding_is_built() -> None:
    """Length, then digest, then bounds, then the banding: a header whose banding is
    invalid fails on the digest first when verified, and on the length first always."""
    data = _bare_header(bands=4, hash_bits=256, k=32, threshold=3)  # t = 3: no such banding
    with pytest.raises(IndexFormatError, match="digest"):
        Index.from_bytes(bytes(data), verify=True)  # digest field is zero: does not match
    with pytest.raises(IndexFormatError, match="banding"):
        Index.from_bytes(bytes(data), verify=False)
    with pytest.raises(IndexFormatError, match="length"):
        Index.from_bytes(bytes(data) + bytes(64), verify=True)
    data[16:24] = struct.pack("<Q", 1 << 40)  # entries the file does not hold
    with pytest.raises(IndexFormatError, match="length"):
        Index.from_bytes(reseal(data), verify=True)


def test_a_writer_cannot_make_a_header_over_the_position_bound() -> None:
    banding = Banding(signal="x", hash_bits=256, k=129, count=512, threshold=2, seed=b"")
    with pytest.raises(IndexFormatError, match="positions"):
        IndexHeader(
            kind=IndexKind.FULL,
            banding=banding,
            key_epoch=0,
            key_id=b"",
            entry_count=0,
            handle_count=0,
            tag_bytes=4,
            handle_bytes=16,
            canaries=(),
            base_digest=bytes(32),
            digest=bytes(32),
        )


def test_unsorted_tags_of_an_unverified_index_raise_a_typed_error() -> None:
    """Issue 7.6: with verify=False, tags out of order made numpy's searchsorted return
    ranges that end before they start, and np.repeat raised a bare ValueError."""
    case = CASES[0]
    assert case["id"] == "sha256-exact"
    data = _golden("sha256-exact")
    index = Index.from_bytes(data)
    key = SecretKey.derive(
        bytes.fromhex(str(case["key_seed"])),
        str(case["key_info"]).encode(),
        mode=oprf.Mode.VOPRF,
        epoch=int(str(case["epoch"])),
    )
    references = case["references"]
    canaries = case["canaries"]
    assert isinstance(references, list)
    assert isinstance(canaries, list)
    hashes_ = [bytes.fromhex(str(r["hash"])) for r in references]
    hashes_ += [bytes.fromhex(str(c)) for c in canaries]
    outputs = _outputs(key, index.header.banding, hashes_)
    offset, count = index.layout.tags_offset, index.entry_count
    tags = np.frombuffer(data, dtype="<u4", count=count, offset=offset)
    backwards = [0, 4, 1, 5, 2, 3]  # an order where numpy's ranges run backwards
    for order in (backwards, [5, 4, 3, 2, 1, 0], [1, 0, 2, 3, 4, 5]):
        body = bytearray(data)
        body[offset : offset + tags.nbytes] = tags[order].tobytes()
        with pytest.raises(IndexFormatError, match="not sorted"):
            Index.from_bytes(reseal(body))  # verified: refused on opening
        unverified = Index.from_bytes(bytes(body), verify=False)
        if order == backwards:
            with pytest.raises(IndexFormatError, match="not sorted"):
                unverified.lookup_many(outputs)
        else:  # a lookup may succeed (with wrong answers) or refuse; nothing else
            with contextlib.suppress(IndexFormatError):
                unverified.lookup_many(outputs)
