"""Manifest deltas (format 2) on the client side: a full index and deltas built with
``psi.index.add_references``, held in the cache, checked against the manifest's digests,
then matched through a real session pair. (The service does not publish deltas yet, so
these files are built here, not served.)"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from blindmatch import errors
from blindmatch.client import ClientOptions, IndexCache, Manifest
from blindmatch.client.flows import Flows
from blindmatch.client.manifest import DeltaEntry, IndexEntry
from blindmatch.client.results import ClientStats
from blindmatch.client.steps import Download
from blindmatch.fingerprint.signals import default_registry
from blindmatch.protocols import (
    ClearinghouseSession,
    PlatformSession,
    SessionPair,
    Upload,
    signal_banding,
)
from blindmatch.psi.index import BuiltIndex, Reference, add_references, build_index, current_digest
from blindmatch.psi.keys import SecretKey

A, B, C = (hashlib.md5(x, usedforsecurity=False).digest() for x in (b"a", b"b", b"c"))


def _entry(cache: IndexCache, built: BuiltIndex, sequence: int | None) -> IndexEntry | DeltaEntry:
    data = built.to_bytes()
    sha = hashlib.sha256(data).digest()
    url = "/v1/index/0/1/md5" + ("" if sequence is None else f"/deltas/{sequence}")
    if sequence is None:
        entry: IndexEntry | DeltaEntry = IndexEntry(
            "md5", url, sha, built.digest, built.digest, len(data), built.header.entry_count, 1
        )
    else:
        entry = DeltaEntry(
            "md5", sequence, url, sha, built.digest, len(data), built.header.entry_count, 1
        )
    cache.path(entry).write_bytes(data)
    return entry


def _result(flow: Generator[Any, Any, Any]) -> Any:
    """Run a flow that needs no I/O (every file is in the cache)."""
    with pytest.raises(StopIteration) as stop:
        next(flow)
    return stop.value.value


@pytest.fixture
def published(tmp_path: Path) -> tuple[SecretKey, Flows, Manifest]:
    key = SecretKey.generate()
    banding = signal_banding(default_registry().get("md5"))
    base = build_index(key, banding, [Reference("r-a", "md5", A)], processes=1)
    first = add_references(key, base.header, [Reference("r-b", "md5", B)], processes=1)
    second = add_references(key, base.header, [Reference("r-c", "md5", C)], processes=1)
    cache = IndexCache(tmp_path)
    entry = _entry(cache, base, None)
    deltas = (_entry(cache, first, 1), _entry(cache, second, 2))
    assert isinstance(entry, IndexEntry)
    _, digest = current_digest(base, [first, second])
    manifest = Manifest(
        format=2,
        epoch=0,
        version=1,
        public_key=key.public_key,
        retires_at=None,
        generated_at=0,
        indexes={"md5": IndexEntry(**{**_fields(entry), "current_digest": digest})},
        deltas=tuple(d for d in deltas if isinstance(d, DeltaEntry)),
        revoked_handles=frozenset(),
    )
    flows = Flows("bm_test", SigningKey.generate().verify_key, cache, ClientOptions())
    return key, flows, manifest


def _fields(entry: IndexEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in IndexEntry.__slots__}


def test_deltas_are_applied_and_match(published: tuple[SecretKey, Flows, Manifest]) -> None:
    key, flows, manifest = published
    source = _result(flows._source(manifest, "md5", ClientStats()))
    session = PlatformSession([source], key.public_key)
    session.add_uploads([Upload("a", "md5", A), Upload("b", "md5", B), Upload("c", "md5", C)])
    pair = SessionPair(session, ClearinghouseSession(key, element_limit=100_000))
    assert sorted(m.upload_ref for m in pair.run()) == ["a", "b", "c"]


def test_a_missing_or_foreign_delta_is_refused(
    published: tuple[SecretKey, Flows, Manifest],
) -> None:
    _, flows, manifest = published
    without_last = Manifest(**{**_manifest_fields(manifest), "deltas": manifest.deltas[:1]})
    with pytest.raises(errors.IndexIntegrityError):
        _result(flows._source(without_last, "md5", ClientStats()))
    entry = manifest.indexes["md5"]
    wrong = IndexEntry(**{**_fields(entry), "current_digest": entry.index_digest})
    with pytest.raises(errors.IndexIntegrityError):
        _result(
            flows._source(
                Manifest(**{**_manifest_fields(manifest), "indexes": {"md5": wrong}}),
                "md5",
                ClientStats(),
            )
        )


def _manifest_fields(manifest: Manifest) -> dict[str, Any]:
    return {name: getattr(manifest, name) for name in Manifest.__slots__}


def test_a_delta_already_cached_is_not_downloaded(
    published: tuple[SecretKey, Flows, Manifest],
) -> None:
    _, flows, manifest = published
    stats = ClientStats()
    _result(flows._source(manifest, "md5", stats))
    assert stats.downloads == 0
    # A manifest adding a third delta: only that one is asked for.
    missing = DeltaEntry(
        "md5", 3, "/v1/index/0/1/md5/deltas/3", bytes([1]) * 32, bytes([2]) * 32, 10, 1, 1
    )
    bigger = Manifest(**{**_manifest_fields(manifest), "deltas": (*manifest.deltas, missing)})
    flow = flows._source(bigger, "md5", ClientStats())
    step = next(flow)
    assert isinstance(step, Download)
    assert step.request.path == "/v1/index/0/1/md5/deltas/3"
