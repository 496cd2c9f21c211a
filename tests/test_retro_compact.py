"""Retro-matching of compact exact lookups (protocols.retro, format version 3), in memory.

A session over a compact base that retains keeps each exact query's OPRF output; looked
up in a compact delta, the records give exactly what a session over the base and the
delta adds; moved onto a rebuilt compact base, exactly what a session over that base
gives (canaries dropped). False hits included: a filter with a high false-hit rate answers
a record as it answers the session.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blindmatch import errors
from blindmatch.protocols import (
    ClearinghouseSession,
    CompactRetroRecord,
    Match,
    PlatformSession,
    SessionPair,
    Upload,
)
from blindmatch.protocols.retro import RetroRecord, retro_matches
from blindmatch.psi import oprf
from blindmatch.psi.bands import exact_banding
from blindmatch.psi.compact import (
    CompactIndex,
    CompactIndexSet,
    add_compact_references,
    build_compact_index,
)
from blindmatch.psi.index import Index, Reference, build_index
from blindmatch.psi.keys import SecretKey

KEY = SecretKey.derive(bytes(range(32)), b"test-retro-compact", mode=oprf.Mode.VOPRF, epoch=7)
MD5 = exact_banding("md5", 128)
SHA256 = exact_banding("sha256", 256)


def md5(i: int) -> bytes:
    return hashlib.md5(f"retro-compact-{i}".encode(), usedforsecurity=False).digest()


def compact(
    refs: list[int], *, rate: float = 1e-12, base: CompactIndex | None = None
) -> CompactIndex:
    references = [Reference(f"r{i}", "md5", md5(i)) for i in refs]
    if base is None:
        built = build_compact_index(KEY, MD5, references, false_positive_rate=rate)
    else:
        built = add_compact_references(KEY, base.header, references)
    return CompactIndex.from_bytes(built.to_bytes())


def run(
    indexes: CompactIndex | CompactIndexSet | Index | list[object],
    uploads: list[Upload],
    *,
    retain: bool,
) -> tuple[list[Match], PlatformSession]:
    platform = PlatformSession(indexes, KEY.public_key, batch_size=512, retain=retain)  # type: ignore[arg-type]
    platform.add_uploads(uploads)
    clearinghouse = ClearinghouseSession(KEY, element_limit=1_000_000, max_batch=512)
    return SessionPair(platform, clearinghouse).run(), platform


def key(match: Match) -> tuple[str, str, bytes, str | None]:
    return (match.upload_ref, match.signal, bytes(match.handle), match.variant)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base_refs=st.sets(st.integers(0, 30), min_size=1, max_size=12),
    delta_refs=st.sets(st.integers(0, 30), min_size=1, max_size=6),
    queried=st.lists(st.integers(0, 40), min_size=1, max_size=12, unique=True),
    rate=st.sampled_from([1e-12, 0.125]),
)
def test_a_record_against_a_delta_adds_what_base_plus_delta_adds(
    base_refs: set[int], delta_refs: set[int], queried: list[int], rate: float
) -> None:
    base = compact(sorted(base_refs), rate=rate)
    delta = compact(sorted(delta_refs), base=base)
    uploads = [Upload(f"u{i}", "md5", md5(i)) for i in queried]
    before, platform = run(base, uploads, retain=True)
    records = platform.retained
    assert len(records) == len(uploads)
    assert all(isinstance(r, CompactRetroRecord) for r in records)
    later = retro_matches(records, delta)
    direct, _ = run(CompactIndexSet(base, [delta]), uploads, retain=False)
    # A hash in the base and the delta has one handle (derived from F): the union is the
    # session's answer, exactly.
    assert set(map(key, before)) | set(map(key, later)) == set(map(key, direct))
    # The retro lookup names exactly the delta's hits: a session over the delta alone.
    delta_hits = delta.match_outputs(
        [r.output for r in records if isinstance(r, CompactRetroRecord)]
    )
    assert sorted((m.upload_ref, bytes(m.handle)) for m in later) == sorted(
        (r.upload_ref, bytes(h)) for r, h in zip(records, delta_hits, strict=True) if h is not None
    )
    if rate < 1e-6:
        assert {m.upload_ref for m in later} == {f"u{i}" for i in queried if i in delta_refs}


def test_records_moved_onto_a_rebuilt_base_match_as_a_session_over_it() -> None:
    base = compact([1, 2, 3])
    rebuilt = compact([2, 3, 4, 5])  # a withdrawal of 1, new reports 4 and 5
    canary = rebuilt.canaries[0].hash
    uploads = [Upload(f"u{i}", "md5", md5(i)) for i in range(7)] + [Upload("canary", "md5", canary)]
    _, platform = run(base, uploads, retain=True)
    moved = [dataclasses.replace(r, base_digest=rebuilt.digest) for r in platform.retained]
    again = retro_matches(moved, rebuilt)
    direct, _ = run(rebuilt, uploads, retain=False)
    assert sorted(map(key, again)) == sorted(map(key, direct))
    assert sorted(m.upload_ref for m in again) == ["u2", "u3", "u4", "u5"]  # no canary
    with pytest.raises(errors.RetroMismatch):
        retro_matches(platform.retained, rebuilt)  # not moved: another base


def test_a_compact_record_keeps_the_output_and_its_binding() -> None:
    base = compact([1])
    _, platform = run(base, [Upload("a", "md5", md5(1))], retain=True)
    (record,) = platform.retained
    assert isinstance(record, CompactRetroRecord)
    [expected] = oprf.evaluate_batch(
        KEY.scalar, [MD5.band_inputs_many([md5(1)])[0][0]], oprf.Mode.VOPRF
    )
    assert record.output == expected
    assert record.binding() == ("md5", base.digest, KEY.epoch, KEY.key_id)
    assert (record.variant, record.position) == (None, 0)
    assert expected.hex() not in repr(record)
    assert "redacted" in repr(record)
    assert platform.stats.matches == 1


def test_formats_and_bindings_are_checked() -> None:
    base = compact([1, 2])
    delta = compact([3], base=base)
    banded = Index.from_bytes(
        build_index(KEY, MD5, [Reference("b", "md5", md5(3))], processes=1).to_bytes()
    )
    uploads = [Upload("a", "md5", md5(3))]
    _, compact_session = run(base, uploads, retain=True)
    _, banded_session = run(banded, uploads, retain=True)
    (compact_record,) = compact_session.retained
    (banded_record,) = banded_session.retained
    assert isinstance(banded_record, RetroRecord)
    with pytest.raises(errors.RetroMismatch):
        retro_matches([compact_record], banded)
    with pytest.raises(errors.RetroMismatch):
        retro_matches([banded_record], delta)
    other_key = dataclasses.replace(compact_record, key_id=b"another key")
    with pytest.raises(errors.RetroMismatch):
        retro_matches([other_key], delta)
    # Records of another signal are passed over (a delta serves one).
    sha = dataclasses.replace(compact_record, signal="sha256")
    assert retro_matches([sha], delta) == []
    with pytest.raises(TypeError):
        retro_matches(["not a record"], delta)  # type: ignore[list-item]
    fields = ("a", "md5", None, 0, bytes(32), 7, b"k")
    with pytest.raises(errors.LocalProtocolError):
        CompactRetroRecord(*fields, bytes(63))
    with pytest.raises(errors.LocalProtocolError):
        CompactRetroRecord("a", "md5", None, -1, bytes(32), 7, b"k", bytes(64))
    with pytest.raises(TypeError):
        CompactRetroRecord(*fields, "x" * 64)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        CompactRetroRecord("a", "md5", None, 0, bytes(32), "7", b"k", bytes(64))  # type: ignore[arg-type]


def test_a_session_over_a_compact_set_binds_records_to_its_base() -> None:
    base = compact([1])
    first = compact([2], base=base)
    second = compact([3], base=base)
    uploads = [Upload(f"u{i}", "md5", md5(i)) for i in (1, 2, 3)]
    before, platform = run(CompactIndexSet(base, [first]), uploads, retain=True)
    assert sorted(m.upload_ref for m in before) == ["u1", "u2"]
    assert {r.base_digest for r in platform.retained} == {base.digest}
    later = retro_matches(platform.retained, second)
    assert [m.upload_ref for m in later] == ["u3"]
    # A mixed session: compact md5, banded sha256, each kept in its own kind.
    sha_index = Index.from_bytes(
        build_index(KEY, SHA256, [Reference("s", "sha256", bytes(32))], processes=1).to_bytes()
    )
    _, mixed = run([base, sha_index], [*uploads, Upload("s", "sha256", bytes(32))], retain=True)
    kinds = sorted((r.signal, type(r).__name__) for r in mixed.retained)
    assert kinds == [
        ("md5", "CompactRetroRecord"),
        ("md5", "CompactRetroRecord"),
        ("md5", "CompactRetroRecord"),
        ("sha256", "RetroRecord"),
    ]
