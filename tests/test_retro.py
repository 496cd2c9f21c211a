"""Retro-matching (protocols.retro): base-only session + retro against a delta == base+delta."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blindmatch import errors
from blindmatch.protocols import ClearinghouseSession, Match, PlatformSession, SessionPair, Upload
from blindmatch.protocols.retro import RetroRecord, retro_matches
from blindmatch.psi import oprf
from blindmatch.psi.bands import exact_banding, pdq_banding
from blindmatch.psi.index import Index, IndexSet, Reference, add_references, build_index
from blindmatch.psi.keys import SecretKey

KEY = SecretKey.derive(bytes(range(32)), b"test-retro", mode=oprf.Mode.VOPRF, epoch=5)
MD5 = exact_banding("md5", 128)
PDQ = pdq_banding(256)


def md5(i: int) -> bytes:
    return hashlib.md5(f"retro-{i}".encode(), usedforsecurity=False).digest()


def flip(hash_bytes: bytes, bits: list[int]) -> bytes:
    value = int.from_bytes(hash_bytes, "big")
    for bit in bits:
        value ^= 1 << bit
    return value.to_bytes(32, "big")


def run(
    indexes: Index | IndexSet | list[Index | IndexSet], uploads: list[Upload], *, retain: bool
) -> tuple[list[Match], PlatformSession]:
    platform = PlatformSession(indexes, KEY.public_key, batch_size=512, retain=retain)
    platform.add_uploads(uploads)
    clearinghouse = ClearinghouseSession(KEY, element_limit=1_000_000, max_batch=512)
    return SessionPair(platform, clearinghouse).run(), platform


def key(match: Match) -> tuple[str, str, bytes, str | None]:
    return (match.upload_ref, match.signal, bytes(match.handle), match.variant)


def assert_equivalent(
    base: Index, delta: Index, uploads: list[Upload]
) -> tuple[list[Match], list[Match]]:
    """Base only + retro == base and delta together; returns (retro, direct)."""
    before, platform = run(base, uploads, retain=True)
    later = retro_matches(platform.retained, delta)
    direct, _ = run(IndexSet(base, [delta]), uploads, retain=False)
    assert sorted(map(key, before + later)) == sorted(map(key, direct))
    assert len({(m.upload_ref, m.handle) for m in direct}) == len(direct)  # one per report
    return later, direct


@pytest.fixture(scope="module")
def md5_base() -> Index:
    refs = [Reference(f"old-{i}", "md5", md5(i)) for i in range(20)]
    return Index.from_bytes(build_index(KEY, MD5, refs, processes=1).to_bytes())


def test_md5_retro_finds_what_the_delta_adds(md5_base: Index) -> None:
    delta_built = add_references(
        KEY, md5_base.header, [Reference("new", "md5", md5(100))], processes=1
    )
    delta = Index.from_bytes(delta_built.to_bytes())
    uploads = [Upload("a", "md5", md5(3)), Upload("b", "md5", md5(100)), Upload("c", "md5", md5(7))]
    later, _ = assert_equivalent(md5_base, delta, uploads)
    assert [(m.upload_ref, delta_built.handles[m.handle]) for m in later] == [("b", "new")]


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=6),
    st.lists(st.integers(20, 60), min_size=1, max_size=6, unique=True),
)
def test_md5_equivalence(md5_base: Index, uploaded: list[int], added: list[int]) -> None:
    delta = Index.from_bytes(
        add_references(
            KEY, md5_base.header, [Reference(f"d-{i}", "md5", md5(i)) for i in added], processes=1
        ).to_bytes()
    )
    uploads = [Upload(f"u{n}", "md5", md5(i)) for n, i in enumerate(uploaded)]
    assert_equivalent(md5_base, delta, uploads)


@pytest.fixture(scope="module")
def pdq_base() -> Index:
    rng = random.Random(11)
    refs = [Reference(f"old-{i}", "pdq", rng.randbytes(32)) for i in range(6)]
    return Index.from_bytes(build_index(KEY, PDQ, refs, canaries=[], processes=1).to_bytes())


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.randoms(use_true_random=False), st.integers(0, 40))
def test_pdq_fuzzy_equivalence(pdq_base: Index, rng: random.Random, bits: int) -> None:
    reported = rng.randbytes(32)
    delta_built = add_references(
        KEY, pdq_base.header, [Reference("new", "pdq", reported)], processes=1
    )
    delta = Index.from_bytes(delta_built.to_bytes())
    uploads = [
        Upload("near", "pdq", flip(reported, rng.sample(range(256), bits)), 90),
        Upload("far", "pdq", bytes(b ^ 0xFF for b in reported), 90),  # distance 256
    ]
    later, direct = assert_equivalent(pdq_base, delta, uploads)
    if bits <= 12:  # well inside the fuzzy threshold: the near copy is found
        assert [m.upload_ref for m in later] == ["near"]
    assert all(m.upload_ref == "near" for m in direct)


def test_pdq_dihedral_names_the_first_variant(pdq_base: Index) -> None:
    rng = random.Random(3)
    hashes = [rng.randbytes(32) for _ in range(8)]
    hashes[5] = flip(hashes[2], [1, 2, 3])  # variants 2 and 5 both near the report
    delta_built = add_references(
        KEY, pdq_base.header, [Reference("mirrored", "pdq", hashes[2])], processes=1
    )
    delta = Index.from_bytes(delta_built.to_bytes())
    uploads = [Upload.dihedral("img", "pdq", hashes, 90), Upload("plain", "pdq", hashes[0], 90)]
    later, _ = assert_equivalent(pdq_base, delta, uploads)
    assert len(later) == 1
    assert later[0].upload_ref == "img"
    assert later[0].variant == Upload.dihedral("x", "pdq", hashes, 90).queries[2][0]


def test_records_hold_no_hash_or_outputs(md5_base: Index) -> None:
    _, platform = run(md5_base, [Upload("a", "md5", md5(3))], retain=True)
    (record,) = platform.retained
    assert isinstance(record, RetroRecord)  # a banded index: tags and pads
    assert record.bands == MD5.count
    assert record.variant is None
    blob = record.tags + record.pads
    assert md5(3) not in blob
    assert md5(3)[::-1] not in blob
    assert "redacted" in repr(record)
    assert md5(3).hex() not in repr(record)


def test_retain_is_off_by_default(md5_base: Index) -> None:
    _, platform = run(md5_base, [Upload("a", "md5", md5(3))], retain=False)
    assert platform.retained == ()


def test_delta_of_another_base_is_refused(md5_base: Index) -> None:
    _, platform = run(md5_base, [Upload("a", "md5", md5(3))], retain=True)
    other = build_index(KEY, MD5, [Reference("x", "md5", md5(1))], processes=1)
    other_index = Index.from_bytes(other.to_bytes())
    foreign = Index.from_bytes(
        add_references(KEY, other.header, [Reference("y", "md5", md5(2))], processes=1).to_bytes()
    )
    with pytest.raises(errors.RetroMismatch):
        retro_matches(platform.retained, foreign)
    with pytest.raises(errors.RetroMismatch):
        retro_matches(platform.retained, other_index)  # a full index, not a delta
    with pytest.raises(TypeError):
        retro_matches(platform.retained, IndexSet(md5_base))  # type: ignore[arg-type]


def test_records_of_another_signal_are_passed_over(md5_base: Index, pdq_base: Index) -> None:
    _, platform = run(pdq_base, [Upload("p", "pdq", bytes(range(32)), 90)], retain=True)
    delta = Index.from_bytes(
        add_references(
            KEY, md5_base.header, [Reference("y", "md5", md5(2))], processes=1
        ).to_bytes()
    )
    assert retro_matches(platform.retained, delta) == []


def test_malformed_record_is_refused() -> None:
    with pytest.raises(errors.LocalProtocolError):
        RetroRecord("a", "md5", None, 0, bytes(32), 5, b"k", 4, bytes(8), bytes(16))
    with pytest.raises(TypeError):
        RetroRecord("a", "md5", None, 0, bytes(32), 5, b"k", 4, "x", bytes(8))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "first", ["blindmatch.protocols.retro", "blindmatch.protocols.platform"], ids=str
)
def test_no_import_cycle(first: str) -> None:
    """retro and platform both build on protocols.matches: either imports first, alone."""
    import subprocess
    import sys

    code = f"import {first}; from blindmatch.protocols.platform import Match, ORIGINAL"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    from blindmatch.protocols import matches, platform

    assert platform.Match is matches.Match
    assert platform.DEFAULT_MAX_LOOKUP_TRIALS == matches.DEFAULT_MAX_LOOKUP_TRIALS
