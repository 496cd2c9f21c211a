"""Whole sessions are reproducible from injected randomness: golden transcripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blindmatch import errors
from blindmatch.protocols import ClearinghouseSession, PlatformSession, SessionPair
from blindmatch.psi.index import Index
from blindmatch.psi.parallel import SERIAL, ThreadedEvaluator
from session_scenario import build, run, seeded

GOLDEN = json.loads((Path(__file__).parent / "transcripts" / "session.json").read_text())


@pytest.mark.parametrize("threads", [0, 2], ids=["serial", "threaded"])
def test_a_seeded_session_replays_its_golden_transcript(threads: int) -> None:
    if threads:
        with ThreadedEvaluator(threads, min_chunk=16) as evaluator:
            pair, built, _ = run(evaluator)
    else:
        pair, built, _ = run(SERIAL)
    assert {s: b.header.digest.hex() for s, b in built.items()} == GOLDEN["index_digests"]
    assert [(e.sender, e.data.hex()) for e in pair.transcript] == [
        (m["sender"], m["hex"]) for m in GOLDEN["messages"]
    ]
    stats = pair.platform.stats
    assert (stats.uploads_matched, stats.matches, stats.audits_verified) == (
        GOLDEN["uploads_matched"],
        GOLDEN["matches"],
        GOLDEN["audits_verified"],
    )


def test_the_golden_session_found_the_right_reports() -> None:
    pair, built, found = run()
    reports = sorted((m.upload_ref, built[m.signal].handles[m.handle]) for m in found)
    expected = [(f"upload-{i}", f"report-{i}") for i in range(8, 12)]
    expected.append(("near-photo-1", "photo-1"))
    assert reports == sorted(expected)
    assert GOLDEN["matches"] == len(found) == pair.platform.stats.matches
    assert pair.platform.state.value == "closed"


def test_another_platform_seed_changes_every_request_but_not_the_matches() -> None:
    key, built = build()
    indexes = [Index.from_bytes(b.to_bytes()) for b in built.values()]
    runs = []
    for seed in (b"one", b"two"):
        platform = PlatformSession(
            indexes, key.public_key, batch_size=64, random_bytes=seeded(seed)
        )
        platform.add_uploads([("u", "md5", built["md5"].header.canaries[0].hash)])
        pair = SessionPair(platform, ClearinghouseSession(key, element_limit=1000))
        pair.run()
        runs.append(pair.transcript)
    first, second = runs
    assert first[0] == second[0]  # Hello has no random field
    assert first[2].data != second[2].data  # blinds, pads and order differ


def test_a_random_source_must_give_the_bytes_asked_for() -> None:
    key, built = build()
    index = Index.from_bytes(built["md5"].to_bytes())
    with pytest.raises(errors.LocalProtocolError):
        PlatformSession(index, key.public_key, random_bytes=b"seed")  # type: ignore[arg-type]
    short = PlatformSession(index, key.public_key, random_bytes=lambda n: bytes(n - 1))
    with pytest.raises(errors.LocalProtocolError, match="n bytes"):
        short.add_uploads([("u", "md5", bytes(16))])  # a canary's position is drawn here
