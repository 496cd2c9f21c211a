"""The retro store (client.retro_store): a real SQLite file, owner-only, bounded."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from blindmatch import errors
from blindmatch.client.retro_store import SCHEMA_VERSION, RetroStore
from blindmatch.protocols import ClearinghouseSession, Match, PlatformSession, SessionPair, Upload
from blindmatch.protocols.retro import CompactRetroRecord, RetroRecord, retro_matches
from blindmatch.psi import oprf
from blindmatch.psi.bands import exact_banding, pdq_banding
from blindmatch.psi.compact import CompactIndex, add_compact_references, build_compact_index
from blindmatch.psi.index import Index, IndexSet, Reference, add_references, build_index
from blindmatch.psi.keys import SecretKey

KEY = SecretKey.derive(bytes(range(32)), b"test-retro-store", mode=oprf.Mode.VOPRF, epoch=9)
MD5 = exact_banding("md5", 128)
PDQ = pdq_banding(256)


def md5(i: int) -> bytes:
    return hashlib.md5(f"store-{i}".encode(), usedforsecurity=False).digest()


def retained(index: Index | CompactIndex, uploads: list[Upload]) -> PlatformSession:
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
    assert stat.S_IMODE(Path(f"{path}.lock").stat().st_mode) == 0o600  # the write lock


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


def retained_matches(index: Index | CompactIndex, uploads: list[Upload]) -> list[Match]:
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


# ------------------------------------------------------- compact exact records


@pytest.fixture(scope="module")
def compact_base() -> CompactIndex:
    refs = [Reference(f"old-{i}", "md5", md5(i)) for i in range(10)]
    return CompactIndex.from_bytes(build_compact_index(KEY, MD5, refs).to_bytes())


def _compact_delta(base: CompactIndex, refs: list[Reference]) -> CompactIndex:
    return CompactIndex.from_bytes(add_compact_references(KEY, base.header, refs).to_bytes())


def test_compact_records_through_the_store(tmp_path: Path, compact_base: CompactIndex) -> None:
    uploads = [Upload(f"u{i}", "md5", md5(i)) for i in (3, 30, 31, 32)]
    platform = retained(compact_base, uploads)
    session_matches = retained_matches(compact_base, uploads)
    assert [m.upload_ref for m in session_matches] == ["u3"]
    assert all(isinstance(r, CompactRetroRecord) for r in platform.retained)
    delta = _compact_delta(compact_base, [Reference("n30", "md5", md5(30))])
    path = tmp_path / "retro.sqlite"
    with RetroStore(path) as store:
        assert store.add(platform.retained, seen=session_matches) == 4
    raw = path.read_bytes() + (
        Path(f"{path}-wal").read_bytes() if Path(f"{path}-wal").exists() else b""
    )
    assert all(u.hash not in raw for u in uploads)  # the output is kept, never the hash
    with RetroStore(path) as store:  # reopened: the records persisted, as compact ones
        assert store.matches(delta) == retro_matches(platform.retained, delta)
        assert [m.upload_ref for m in store.check(delta, 1)] == ["u30"]
        assert store.check(delta, 1) == []
        # A rebuilt base (old-3 withdrawn, 31 reported): the records move, u31 is named;
        # u3 had a match before, u30 was named by the delta: neither again.
        rebuilt = CompactIndex.from_bytes(
            build_compact_index(
                KEY,
                MD5,
                [Reference(f"old-{i}", "md5", md5(i)) for i in range(10) if i != 3]
                + [Reference("n30", "md5", md5(30)), Reference("n31", "md5", md5(31))],
            ).to_bytes()
        )
        assert store.rebase("md5", compact_base.digest, rebuilt) == 4
        assert [m.upload_ref for m in store.check(rebuilt, 0)] == ["u31"]
        assert store.check(rebuilt, 0) == []
        # Published banded again: compact records are of no use there and are dropped.
        banded = Index.from_bytes(build_index(KEY, MD5, [], processes=1).to_bytes())
        assert store.rebase("md5", rebuilt.digest, banded) == 0
        assert len(store) == 0


_OLD_SCHEMA = """
CREATE TABLE retro_record (
    signal TEXT NOT NULL, base_digest BLOB NOT NULL, key_epoch INTEGER NOT NULL,
    key_id BLOB NOT NULL, tag_bytes INTEGER NOT NULL, upload_ref TEXT NOT NULL,
    position INTEGER NOT NULL, variant TEXT, tags BLOB NOT NULL, pads BLOB NOT NULL,
    covered INTEGER NOT NULL DEFAULT 0, added INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (signal, base_digest, upload_ref, position)
) WITHOUT ROWID;
CREATE INDEX retro_record_epoch ON retro_record (key_epoch);
CREATE INDEX retro_record_added ON retro_record (added);
CREATE TABLE retro_seen (
    signal TEXT NOT NULL, key_epoch INTEGER NOT NULL, upload_ref TEXT NOT NULL,
    handle BLOB NOT NULL, PRIMARY KEY (signal, key_epoch, upload_ref, handle)
) WITHOUT ROWID;
"""


def test_a_store_of_the_previous_schema_is_migrated(tmp_path: Path, md5_base: Index) -> None:
    uploads = [Upload(f"u{i}", "md5", md5(i)) for i in (12, 13)]
    platform = retained(md5_base, uploads)
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(_OLD_SCHEMA)
    old.executemany(
        "INSERT INTO retro_record VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1)",
        [
            (
                r.signal,
                r.base_digest,
                r.key_epoch,
                r.key_id,
                r.tag_bytes,
                r.upload_ref,
                r.position,
                r.variant,
                r.tags,
                r.pads,
            )
            for r in platform.retained
            if isinstance(r, RetroRecord)
        ],
    )
    old.commit()
    old.close()
    delta = _delta(md5_base, [Reference("n12", "md5", md5(12))])
    with RetroStore(path) as store:
        assert store._db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert len(store) == 2
        assert [m.upload_ref for m in store.check(delta, 1)] == ["u12"]
    with RetroStore(path) as store:  # opened again: nothing more to migrate
        assert store.check(delta, 1) == []


def test_a_store_of_a_later_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    later = sqlite3.connect(path)
    later.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    later.close()
    with pytest.raises(errors.InvalidArgument, match="newer than this blindmatch"):
        RetroStore(path)
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    check.close()


_CHECKER = """
import json, sys
from blindmatch.client.retro_store import RetroStore
from blindmatch.psi.compact import CompactIndex
store = RetroStore(sys.argv[1])
deltas = [CompactIndex.open(p) for p in sys.argv[2:]]
print("ready", flush=True)
sys.stdin.readline()
found = []
for sequence, delta in enumerate(deltas, 1):
    found += [[m.upload_ref, bytes(m.handle).hex()] for m in store.check(delta, sequence)]
store.close()
print(json.dumps(found), flush=True)
"""


def test_two_processes_check_one_store_and_report_each_match_once(
    tmp_path: Path, compact_base: CompactIndex
) -> None:
    uploads = [Upload(f"u{i}", "md5", md5(i)) for i in range(100, 1100)]
    path = tmp_path / "shared.sqlite"
    with RetroStore(path) as store:
        store.add(retained(compact_base, uploads).retained)
    files = []
    expected = set()
    for sequence in range(1, 7):
        refs = [Reference(f"n{i}", "md5", md5(i)) for i in range(100 + sequence, 1100, 50)]
        built = add_compact_references(KEY, compact_base.header, refs)
        files.append(tmp_path / f"delta-{sequence}.idx")
        built.write(files[-1])
        expected |= {(f"u{rid[1:]}", bytes(h).hex()) for h, rid in built.handles.items()}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHECKER, str(path), *map(str, files)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.stdout is not None
        assert run.stdout.readline() == "ready\n"
    for run in runs:  # both start their checks at once
        assert run.stdin is not None
        run.stdin.write("go\n")
        run.stdin.flush()
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    reported = [tuple(pair) for out in outputs for pair in json.loads(out)]
    assert len(reported) == len(set(reported))  # no match reported by both
    assert set(reported) == expected
    with RetroStore(path) as store:
        assert store._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert store.pending("md5", compact_base.digest, 6) == 0
