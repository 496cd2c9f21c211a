"""The retro store (client.retro_store): a real SQLite file, owner-only, bounded."""

from __future__ import annotations

import hashlib
import random
import stat
from pathlib import Path

import pytest

from blindmatch import errors
from blindmatch.client.retro_store import RetroStore
from blindmatch.protocols import ClearinghouseSession, Match, PlatformSession, SessionPair, Upload
from blindmatch.protocols.retro import retro_matches
from blindmatch.psi import oprf
from blindmatch.psi.bands import exact_banding, pdq_banding
from blindmatch.psi.index import Index, IndexSet, Reference, add_references, build_index
from blindmatch.psi.keys import SecretKey

KEY = SecretKey.derive(bytes(range(32)), b"test-retro-store", mode=oprf.Mode.VOPRF, epoch=9)
MD5 = exact_banding("md5", 128)
PDQ = pdq_banding(256)


def md5(i: int) -> bytes:
    return hashlib.md5(f"store-{i}".encode(), usedforsecurity=False).digest()


def retained(index: Index, uploads: list[Upload]) -> PlatformSession:
    platform = PlatformSession(index, KEY.public_key, batch_size=512, retain=True)
    platform.add_uploads(uploads)
    SessionPair(platform, ClearinghouseSession(KEY, element_limit=100_000, max_batch=512)).run()
    return platform


@pytest.fixture(scope="module")
def md5_base() -> Index:
    refs = [Reference(f"old-{i}", "md5", md5(i)) for i in range(10)]
    return Index.from_bytes(build_index(KEY, MD5, refs, processes=1).to_bytes())


@pytest.fixture(scope="module")
def pdq_setup() -> tuple[Index, list[Upload]]:
    rng = random.Random(5)
    refs = [Reference(f"old-{i}", "pdq", rng.randbytes(32)) for i in range(4)]
    base = Index.from_bytes(build_index(KEY, PDQ, refs, canaries=[], processes=1).to_bytes())
    hashes = [rng.randbytes(32) for _ in range(8)]
    uploads = [Upload.dihedral("img", "pdq", hashes, 90), Upload("p", "pdq", rng.randbytes(32), 80)]
    return base, uploads


def test_store_round_trip_equals_in_memory(tmp_path: Path, md5_base: Index) -> None:
    uploads = [Upload(f"u{i}", "md5", md5(i)) for i in range(5, 15)]
    platform = retained(md5_base, uploads)
    delta_built = add_references(
        KEY, md5_base.header, [Reference("n12", "md5", md5(12))], processes=1
    )
    delta = Index.from_bytes(delta_built.to_bytes())
    path = tmp_path / "retro.sqlite"
    with RetroStore(path) as store:
        assert store.add(platform.retained) == len(uploads)
    with RetroStore(path) as store:  # reopened: the records persisted
        found = store.matches(delta)
        assert found == retro_matches(platform.retained, delta)
        assert [(m.upload_ref, delta_built.handles[m.handle]) for m in found] == [("u12", "n12")]
        assert store.epochs() == (9,)


def test_file_is_owner_only(tmp_path: Path, md5_base: Index) -> None:
    path = tmp_path / "retro.sqlite"
    with RetroStore(path) as store:
        store.add(retained(md5_base, [Upload("a", "md5", md5(1))]).retained)
        for name in (path, Path(f"{path}-wal")):
            if name.exists():
                assert stat.S_IMODE(name.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_file_holds_no_hash_or_band_value(
    tmp_path: Path, pdq_setup: tuple[Index, list[Upload]], md5_base: Index
) -> None:
    base, uploads = pdq_setup
    path = tmp_path / "retro.sqlite"
    md5_uploads = [Upload(f"m{i}", "md5", md5(i)) for i in range(3)]
    with RetroStore(path) as store:
        store.add(retained(base, uploads).retained)
        store.add(retained(md5_base, md5_uploads).retained)
    raw = path.read_bytes()
    assert b"img" in raw  # the file is read as stored (refs are kept in the clear)
    secrets: list[bytes] = [u.hash for u in md5_uploads]
    for upload in uploads:
        for _, value in upload.queries:
            secrets.append(value)
            secrets.extend(PDQ.band_inputs(value))  # what the OPRF was fed, band by band
            for band_value in PDQ.band_values(value):  # every band value, both byte orders
                packed = band_value.to_bytes(4, "big")
                secrets.extend([packed, packed[::-1]])
    long_secrets = [s for s in secrets if len(s) > 4]
    assert all(s not in raw for s in long_secrets)
    # A 4-byte band value turns up by chance in a file of random tags with probability
    # about size / 2**32 each: allow what chance explains, not a stored band array.
    present = sum(1 for s in secrets if len(s) == 4 and s in raw)
    assert present <= 4


def test_pdq_dihedral_through_the_store(
    tmp_path: Path, pdq_setup: tuple[Index, list[Upload]]
) -> None:
    base, uploads = pdq_setup
    reported = uploads[0].queries[3][1]
    delta = Index.from_bytes(
        add_references(
            KEY, base.header, [Reference("new", "pdq", reported)], processes=1
        ).to_bytes()
    )
    platform = retained(base, uploads)
    with RetroStore(tmp_path / "r.sqlite") as store:
        store.add(platform.retained)
        found = store.matches(delta)
    direct = PlatformSession(IndexSet(base, [delta]), KEY.public_key, batch_size=512)
    direct.add_uploads(uploads)
    expected = SessionPair(direct, ClearinghouseSession(KEY, element_limit=100_000, max_batch=512))
    assert found == expected.run()
    assert [m.variant for m in found] == [uploads[0].queries[3][0]]


def test_bound_and_forget(tmp_path: Path, md5_base: Index) -> None:
    platform = retained(md5_base, [Upload(f"u{i}", "md5", md5(i)) for i in range(4)])
    records = platform.retained
    with RetroStore(tmp_path / "r.sqlite", max_records=3) as store:
        assert store.add(records[:3]) == 3
        assert store.add(records[:3]) == 3  # the same queries again replace themselves
        with pytest.raises(errors.RetroStoreFull):
            store.add(records)
        assert len(store) == 3  # nothing of the refused batch was written
        assert store.forget_epoch(8) == 0
        assert store.forget_epoch(9) == 3
        assert len(store) == 0
        assert store.epochs() == ()


def test_wrong_delta_is_refused(tmp_path: Path, md5_base: Index) -> None:
    other = build_index(KEY, MD5, [Reference("x", "md5", md5(50))], processes=1)
    foreign = Index.from_bytes(
        add_references(KEY, other.header, [Reference("y", "md5", md5(51))], processes=1).to_bytes()
    )
    with RetroStore(tmp_path / "r.sqlite") as store:
        store.add(retained(md5_base, [Upload("a", "md5", md5(1))]).retained)
        with pytest.raises(errors.RetroMismatch):
            store.matches(foreign)
        with pytest.raises(errors.RetroMismatch):
            store.matches(md5_base)
        with pytest.raises(TypeError):
            store.add(["not a record"])  # type: ignore[list-item]
    with pytest.raises(errors.InvalidArgument):
        RetroStore(tmp_path / "s.sqlite", max_records=0)


def _delta(base: Index, refs: list[Reference]) -> Index:
    return Index.from_bytes(add_references(KEY, base.header, refs, processes=1).to_bytes())


def test_check_matches_each_delta_once(tmp_path: Path, md5_base: Index) -> None:
    uploads = [Upload(f"u{i}", "md5", md5(i)) for i in range(20, 24)]
    first = _delta(md5_base, [Reference("n20", "md5", md5(20))])
    second = _delta(md5_base, [Reference("n21", "md5", md5(21))])
    with RetroStore(tmp_path / "r.sqlite") as store:
        store.add(retained(md5_base, uploads[:2]).retained, covered=0)
        # Stored later by a session that already held delta 1: its own match is not
        # looked up in delta 1 again.
        store.add(retained(md5_base, uploads[2:]).retained, covered=1)
        assert store.pending("md5", md5_base.digest, 1) == 2
        assert [m.upload_ref for m in store.check(first, 1)] == ["u20"]
        assert store.check(first, 1) == []  # the same delta again: nothing
        assert store.pending("md5", md5_base.digest, 1) == 0
        assert [m.upload_ref for m in store.check(second, 2)] == ["u21"]
        assert store.pending("md5", md5_base.digest, 2) == 0
        with pytest.raises(errors.InvalidArgument):
            store.check(second, 0)  # a delta is never sequence 0
        with pytest.raises(errors.InvalidArgument):
            store.check(md5_base, 1)  # the full index is


def test_rebase_names_only_uploads_without_an_earlier_match(
    tmp_path: Path, md5_base: Index
) -> None:
    # u3 matched old-3 in the session; u30 matched nothing; u31 nothing either.
    uploads = [
        Upload("u3", "md5", md5(3)),
        Upload("u30", "md5", md5(30)),
        Upload("u31", "md5", md5(31)),
    ]
    platform = retained(md5_base, uploads)
    rebuilt = Index.from_bytes(
        build_index(
            KEY,
            MD5,
            [Reference(f"old-{i}", "md5", md5(i)) for i in range(10)]
            + [Reference("new-30", "md5", md5(30))],
            processes=1,
        ).to_bytes()
    )
    with RetroStore(tmp_path / "r.sqlite") as store:
        seen = retained_matches(md5_base, uploads)
        store.add(platform.retained, covered=0, seen=seen)
        assert store.rebase("md5", md5_base.digest, rebuilt) == 3
        assert store.bases(KEY.public_key.epoch) == (("md5", rebuilt.digest),)
        assert store.pending("md5", rebuilt.digest, 0) == 3
        found = store.check(rebuilt, 0)
        # u3 matches old-3 under a new handle: not named again; u30 is new.
        assert [m.upload_ref for m in found] == ["u30"]
        assert store.check(rebuilt, 0) == []
        with pytest.raises(errors.RetroMismatch):
            store.rebase("md5", rebuilt.digest, _delta(rebuilt, [Reference("d", "md5", md5(40))]))


def retained_matches(index: Index, uploads: list[Upload]) -> list[Match]:
    platform = PlatformSession(index, KEY.public_key, batch_size=512)
    platform.add_uploads(uploads)
    return SessionPair(
        platform, ClearinghouseSession(KEY, element_limit=100_000, max_batch=512)
    ).run()


def test_evict_forgets_the_oldest_uploads(tmp_path: Path, md5_base: Index) -> None:
    platform = retained(md5_base, [Upload(f"u{i}", "md5", md5(i)) for i in range(5)])
    records = sorted(platform.retained, key=lambda r: r.upload_ref)  # answered in any order
    with RetroStore(tmp_path / "r.sqlite", max_records=3) as store:
        for record in records:
            store.add([record], evict=True)
        assert len(store) == 3
        kept = {row[0] for row in store._db.execute("SELECT upload_ref FROM retro_record")}
        assert kept == {"u2", "u3", "u4"}
        with pytest.raises(errors.RetroStoreFull):
            store.add(records, evict=True)  # a batch over the bound by itself
        assert len(store) == 3
        assert store.forget_base("md5", md5_base.digest) == 3
        assert len(store) == 0
