"""The random-tag path of benchmarks/bench_scale.py stands in for a real build only where
the benchmark says it does: same file size and layout, a valid index (digest, sorted
bands, handles), real canaries, and the real build back once the block ends."""

from __future__ import annotations

import secrets

from benchmarks.bench_scale import random_tags

from blindmatch.protocols import ClearinghouseSession, PlatformSession, SessionPair, Upload
from blindmatch.psi.bands import pdq_banding
from blindmatch.psi.index import Index, Reference, build_index
from blindmatch.psi.keys import SecretKey


def _references(count: int) -> list[Reference]:
    # Random hashes: about 128 bits apart, far beyond the match threshold of each other.
    return [Reference(f"r{i}", "pdq", secrets.token_bytes(32)) for i in range(count)]


def test_random_tag_index_is_a_valid_index_of_the_real_size() -> None:
    key = SecretKey.generate()
    banding = pdq_banding(count=256)
    references = _references(6)
    real = build_index(key, banding, references, processes=1)
    with random_tags():
        stand_in = build_index(key, banding, references, processes=1)
    assert len(stand_in.data) == len(real.data)
    assert stand_in.header.layout() == real.header.layout()
    assert stand_in.data != real.data
    opened = Index.from_bytes(stand_in.data)  # verifies digest, band order, handles
    assert opened.entry_count == real.header.entry_count
    # The real builder is back after the block.
    again = build_index(key, banding, references, processes=1)
    assert Index.from_bytes(again.data).entry_count == real.header.entry_count
    assert again.header.layout() == real.header.layout()


def test_random_tag_index_passes_the_platform_canary_check_and_matches_nothing() -> None:
    key = SecretKey.generate()
    references = _references(4)

    def matches(index: Index) -> int:
        session = PlatformSession([index], key.public_key, batch_size=1024)
        session.add_uploads([Upload("u", "pdq", references[0].hash, 90)])
        clearinghouse = ClearinghouseSession(key, element_limit=10**6, max_batch=1024)
        found = SessionPair(session, clearinghouse).run()
        assert session.stats.uploads_done == 1
        return len(found)

    real = Index.from_bytes(build_index(key, pdq_banding(), references, processes=1).data)
    with random_tags():
        stand_in = Index.from_bytes(build_index(key, pdq_banding(), references, processes=1).data)
    assert matches(real) == 1
    # The canaries pass (else the session raises CanaryMismatch); the tags hold no reference.
    assert matches(stand_in) == 0
