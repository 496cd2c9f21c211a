"""End to end in memory: reference and upload FILES, a platform session wired to a
clearinghouse session over real encoded messages, every message recorded.

Checks: the matches are exactly the files whose bytes equal a reference's (right report,
no false match); the transcript and the index bytes hold no hash of any reference or upload
and no 8-byte piece of one (raw or hex); audits verify; a clearinghouse that evaluates with
another key is caught by the canaries and, without canaries, by the DLEQ audit. For PDQ
(L = 256 bands of 32 bits), a seeded session: neither the index nor any message holds a
reference hash, a piece of one, any of its band values (4 bytes, either byte order) or any
of its band inputs.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from blindmatch import errors
from blindmatch.fingerprint.exact import md5_file, sha256_file
from blindmatch.protocols import (
    ClearinghouseSession,
    Match,
    PlatformSession,
    PlatformState,
    SessionPair,
    Upload,
    index_digest,
)
from blindmatch.protocols import messages as m
from blindmatch.psi import oprf
from blindmatch.psi.bands import Banding, exact_banding, pdq_banding
from blindmatch.psi.index import BuiltIndex, Index, Reference, build_index
from blindmatch.psi.keys import SecretKey
from session_scenario import seeded

KEY = SecretKey.derive(bytes(range(1, 33)), b"e2e", mode=oprf.Mode.VOPRF, epoch=1)
WRONG_KEY = SecretKey.derive(bytes(range(2, 34)), b"e2e", mode=oprf.Mode.VOPRF, epoch=1)
BANDINGS = {"md5": exact_banding("md5", 128), "sha256": exact_banding("sha256", 256)}
WINDOW = 8


@dataclass
class Corpus:
    """Reference and upload files, their hashes, and the expected matches."""

    references: list[Path]
    uploads: list[Path]
    hashes: dict[Path, dict[str, bytes]]
    expected: set[tuple[str, str, str]]  # (upload ref, signal, report id)
    root: Path


def _image(path: Path, rng: random.Random) -> None:
    size = rng.choice([(8, 8), (16, 12), (24, 24)])
    pixels = bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))
    Image.frombytes("RGB", size, pixels).save(path, format=rng.choice(["PNG", "BMP"]))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    rng = random.Random(20260402)
    root = tmp_path_factory.mktemp("e2e")
    ref_dir, up_dir = root / "references", root / "uploads"
    ref_dir.mkdir()
    up_dir.mkdir()
    references = []
    for i in range(24):
        path = ref_dir / (f"report-{i:02d}.png" if i % 2 else f"report-{i:02d}.bin")
        if i % 2:
            _image(path, rng)
        else:
            path.write_bytes(rng.randbytes(rng.randrange(1, 300)))
        references.append(path)
    uploads = []
    for i, source in enumerate(references[:10]):  # exact copies under new names
        copy = up_dir / f"copy-{i}{source.suffix}"
        copy.write_bytes(source.read_bytes())
        uploads.append(copy)
    for i, source in enumerate(references[10:14]):  # one byte changed: no exact match
        data = bytearray(source.read_bytes())
        data[-1] ^= 0x01
        near = up_dir / f"near-{i}{source.suffix}"
        near.write_bytes(bytes(data))
        uploads.append(near)
    for i in range(12):  # unrelated
        other = up_dir / f"other-{i}.png"
        _image(other, rng)
        uploads.append(other)
    duplicate = up_dir / "copy-again.bin"  # a second upload of reference 0
    duplicate.write_bytes(references[0].read_bytes())
    uploads.append(duplicate)
    hashes = {
        p: {"md5": bytes(md5_file(p)), "sha256": bytes(sha256_file(p))}
        for p in references + uploads
    }
    expected = {
        (str(u), signal, r.name)
        for u in uploads
        for r in references
        for signal in BANDINGS
        if u.read_bytes() == r.read_bytes()
    }
    assert len(expected) == 2 * 11
    return Corpus(references, uploads, hashes, expected, root)


def _built(corpus: Corpus, banding: Banding, canaries: list[bytes] | None = None) -> BuiltIndex:
    references = [
        Reference(p.name, banding.signal, corpus.hashes[p][banding.signal])
        for p in corpus.references
    ]
    return build_index(KEY, banding, references, canaries=canaries, processes=1)


@pytest.fixture(scope="module")
def built(corpus: Corpus) -> dict[str, BuiltIndex]:
    return {signal: _built(corpus, banding) for signal, banding in BANDINGS.items()}


def _uploads(corpus: Corpus) -> list[Upload]:
    return [
        Upload(str(p), signal, corpus.hashes[p][signal])
        for p in corpus.uploads
        for signal in BANDINGS
    ]


@pytest.fixture(scope="module")
def honest_run(corpus: Corpus, built: dict[str, BuiltIndex]) -> tuple[SessionPair, list[Match]]:
    indexes = [Index.from_bytes(b.to_bytes()) for b in built.values()]
    platform = PlatformSession(indexes, KEY.public_key, batch_size=16, canary_interval=8)
    platform.add_uploads(_uploads(corpus))
    current = [index_digest(b) for b in built.values()]
    clearinghouse = ClearinghouseSession(
        KEY, element_limit=100_000, max_batch=64, index_digests=current
    )
    wire = SessionPair(platform, clearinghouse)
    found = wire.run()
    wire.exchange(platform.audit_request(platform.auditable_batches))
    wire.exchange(platform.close())
    return wire, found


def test_matches_are_exactly_right(
    corpus: Corpus, built: dict[str, BuiltIndex], honest_run: tuple[SessionPair, list[Match]]
) -> None:
    _, found = honest_run
    resolved = [(f.upload_ref, f.signal, built[f.signal].handles[f.handle]) for f in found]
    assert len(resolved) == len(set(resolved))
    assert set(resolved) == corpus.expected


def test_the_run_ends_cleanly_with_a_verified_audit(
    corpus: Corpus, honest_run: tuple[SessionPair, list[Match]]
) -> None:
    wire, _ = honest_run
    stats = wire.platform.stats
    assert wire.platform.state is PlatformState.CLOSED
    assert wire.platform.index_digests_checked
    assert stats.audits_verified == 1
    assert stats.elements_audited == stats.elements_sent
    assert stats.canaries_matched == stats.canary_queries > 0
    assert stats.uploads_done == 2 * len(corpus.uploads)
    assert wire.clearinghouse.stats.elements_evaluated == stats.elements_sent
    sent = sum(len(d) for who, d in wire.transcript if who == "platform")
    received = sum(len(d) for who, d in wire.transcript if who == "clearinghouse")
    assert stats.bytes_sent == sent == wire.clearinghouse.stats.bytes_received
    assert stats.bytes_received == received == wire.clearinghouse.stats.bytes_sent


def test_every_message_decodes_and_requests_are_uniform(
    honest_run: tuple[SessionPair, list[Match]],
) -> None:
    wire, _ = honest_run
    sizes = set()
    for _, data in wire.transcript:
        message = m.decode(data)
        assert not isinstance(message, m.ErrorMessage)
        if isinstance(message, m.EvaluateRequest):
            sizes.add(len(message.elements))
    assert sizes == {16}


def test_the_same_uploads_look_different_every_time(
    corpus: Corpus, built: dict[str, BuiltIndex], honest_run: tuple[SessionPair, list[Match]]
) -> None:
    """Fresh blinds: a second run over the same uploads shares no element with the first."""
    first, _ = honest_run
    indexes = [Index.from_bytes(b.to_bytes()) for b in built.values()]
    platform = PlatformSession(indexes, KEY.public_key, batch_size=16, canary_interval=8)
    platform.add_uploads(_uploads(corpus))
    second = SessionPair(platform, ClearinghouseSession(KEY, element_limit=100_000))
    second.run()

    def elements(wire: SessionPair) -> set[bytes]:
        seen: set[bytes] = set()
        for who, data in wire.transcript:
            message = m.decode(data)
            if who == "platform" and isinstance(message, m.EvaluateRequest):
                seen.update(bytes(e) for e in message.elements)
        return seen

    one, two = elements(first), elements(second)
    assert len(one) == first.platform.stats.elements_sent
    assert one.isdisjoint(two)


def _windows(corpus: Corpus) -> tuple[set[bytes], set[bytes]]:
    raw: set[bytes] = set()
    text: set[bytes] = set()
    for per_signal in corpus.hashes.values():
        for digest in per_signal.values():
            raw.update(digest[i : i + WINDOW] for i in range(len(digest) - WINDOW + 1))
            hexed = digest.hex().encode("ascii")
            text.update(hexed[i : i + 2 * WINDOW] for i in range(len(hexed) - 2 * WINDOW + 1))
    return raw, text


def _leaks(blob: bytes, raw: set[bytes], text: set[bytes]) -> int:
    found = sum(blob[i : i + WINDOW] in raw for i in range(len(blob) - WINDOW + 1))
    lowered = blob.lower()
    found += sum(lowered[i : i + 2 * WINDOW] in text for i in range(len(lowered) - 2 * WINDOW + 1))
    return found


def test_no_hash_or_hash_piece_in_transcript_or_index(
    corpus: Corpus, built: dict[str, BuiltIndex], honest_run: tuple[SessionPair, list[Match]]
) -> None:
    raw, text = _windows(corpus)
    wire, _ = honest_run
    blobs = [d for _, d in wire.transcript] + [b.to_bytes() for b in built.values()]
    assert sum(len(b) for b in blobs) > 5_000
    assert [_leaks(blob, raw, text) for blob in blobs] == [0] * len(blobs)


def test_the_scan_would_see_a_leak(corpus: Corpus) -> None:
    """The scanner is not vacuous: a blob with one 8-byte piece of one hash is flagged."""
    raw, text = _windows(corpus)
    digest = corpus.hashes[corpus.uploads[-2]]["sha256"]
    assert _leaks(b"\x00" * 50 + digest[9:17] + b"\x00" * 50, raw, text) == 1
    assert _leaks(b"x" + digest.hex()[4:20].upper().encode() + b"x", raw, text) == 1


def _wrong_key_reply(request: bytes) -> bytes:
    """A clearinghouse that answers under another key than the one it published."""
    message = m.decode(request)
    assert isinstance(message, m.EvaluateRequest)
    evaluated = oprf.blind_evaluate_batch(WRONG_KEY.scalar, message.elements, oprf.Mode.VOPRF)
    return m.EvaluateResponse(message.batch_id, tuple(evaluated)).encode()


def test_wrong_key_is_caught_by_the_canaries(corpus: Corpus, built: dict[str, BuiltIndex]) -> None:
    indexes = [Index.from_bytes(b.to_bytes()) for b in built.values()]
    platform = PlatformSession(indexes, KEY.public_key, batch_size=128)
    platform.add_uploads(_uploads(corpus))
    honest = ClearinghouseSession(KEY, element_limit=10_000)
    platform.receive(honest.receive(platform.hello()))
    request = platform.next_request()
    assert not platform.wants_to_send  # one batch holds every upload and canary
    with pytest.raises(errors.CanaryMismatch):
        platform.receive(_wrong_key_reply(request))
    assert platform.state is PlatformState.FAILED
    assert platform.stats.matches == 0


def test_wrong_key_is_caught_by_the_audit_without_canaries(corpus: Corpus) -> None:
    index = Index.from_bytes(_built(corpus, BANDINGS["md5"], canaries=[]).to_bytes())
    platform = PlatformSession(index, KEY.public_key, batch_size=8)
    platform.add_uploads(u for u in _uploads(corpus) if u.signal == "md5")
    honest = ClearinghouseSession(KEY, element_limit=10_000)
    platform.receive(honest.receive(platform.hello()))
    evil = ClearinghouseSession(WRONG_KEY, element_limit=10_000)
    evil.receive(m.Hello().encode())
    found: list[Match] = []
    while platform.wants_to_send:
        request = m.decode(platform.next_request())
        assert isinstance(request, m.EvaluateRequest)
        rekeyed = m.EvaluateRequest(
            request.suite,
            request.mode,
            request.key_epoch,
            WRONG_KEY.key_id,
            request.batch_id,
            request.elements,
        )
        found += platform.receive(evil.receive(rekeyed.encode()))
    assert found == []  # true matches silently lost ...
    proof = evil.receive(platform.audit_request(platform.sample_for_audit(1)))
    with pytest.raises(errors.VerifyError):  # ... until the audit
        platform.receive(proof)
    assert platform.state is PlatformState.FAILED


# ---- PDQ: no reference hash and no band value of one in the index or on the wire


def _pdq_hash(label: str) -> bytes:
    return hashlib.sha256(f"pdq reference {label}".encode()).digest()


def _flip(hash_bytes: bytes, bits: int) -> bytes:
    value = int.from_bytes(hash_bytes, "big") ^ ((1 << bits) - 1)
    return value.to_bytes(len(hash_bytes), "big")


PDQ_BANDING = pdq_banding(256)
PDQ_REFERENCES = [_pdq_hash(str(i)) for i in range(6)]


@pytest.fixture(scope="module")
def pdq_run() -> tuple[BuiltIndex, SessionPair, list[Match]]:
    """A seeded PDQ session: near copies of two references, and unrelated uploads."""
    built = build_index(
        KEY,
        PDQ_BANDING,
        [Reference(f"pdq-report-{i}", "pdq", h) for i, h in enumerate(PDQ_REFERENCES)],
        processes=1,
        random_bytes=seeded(b"e2e pdq index"),
    )
    platform = PlatformSession(
        Index.from_bytes(built.to_bytes()),
        KEY.public_key,
        batch_size=256,
        random_bytes=seeded(b"e2e pdq platform"),
    )
    uploads = [Upload("near-0", "pdq", _flip(PDQ_REFERENCES[0], 12), 90)]
    uploads += [Upload("near-3", "pdq", _flip(PDQ_REFERENCES[3], 20), 90)]
    uploads += [Upload(f"other-{i}", "pdq", _pdq_hash(f"upload {i}"), 90) for i in range(4)]
    platform.add_uploads(uploads)
    clearinghouse = ClearinghouseSession(
        KEY, element_limit=100_000, random_bytes=seeded(b"e2e pdq clearinghouse")
    )
    wire = SessionPair(platform, clearinghouse)
    found = wire.run()
    wire.audit(1)
    wire.close()
    return built, wire, found


def _band_needles(hashes: list[bytes]) -> set[bytes]:
    """Every band value of every hash as 4 bytes in both byte orders, and every band input
    (prefix + value), so a value stored or sent in the clear in any layout is found."""
    needles: set[bytes] = set()
    for hash_bytes in hashes:
        for value in PDQ_BANDING.band_values(hash_bytes):
            needles.add(value.to_bytes(4, "big"))
            needles.add(value.to_bytes(4, "little"))
        needles.update(PDQ_BANDING.band_inputs(hash_bytes))
    return needles


def _band_leaks(blob: bytes, needles: set[bytes]) -> int:
    found = sum(blob[i : i + 4] in needles for i in range(len(blob) - 3))
    inputs = [n for n in needles if len(n) > 4]
    return found + sum(blob.count(n) for n in inputs)


def test_pdq_matches_are_the_near_copies(
    pdq_run: tuple[BuiltIndex, SessionPair, list[Match]],
) -> None:
    built, _, found = pdq_run
    assert sorted((f.upload_ref, built.handles[f.handle]) for f in found) == [
        ("near-0", "pdq-report-0"),
        ("near-3", "pdq-report-3"),
    ]


def test_no_pdq_hash_or_band_value_in_transcript_or_index(
    pdq_run: tuple[BuiltIndex, SessionPair, list[Match]],
) -> None:
    built, wire, _ = pdq_run
    blobs = [d for _, d in wire.transcript] + [built.to_bytes()]
    assert sum(len(b) for b in blobs) > 50_000
    raw: set[bytes] = set()
    text: set[bytes] = set()
    for digest in PDQ_REFERENCES:
        raw.update(digest[i : i + WINDOW] for i in range(len(digest) - WINDOW + 1))
        hexed = digest.hex().encode("ascii")
        text.update(hexed[i : i + 2 * WINDOW] for i in range(len(hexed) - 2 * WINDOW + 1))
    needles = _band_needles(PDQ_REFERENCES)
    assert len(needles) > 2 * 6 * 256  # 4-byte values in two orders, plus the inputs
    assert [_leaks(blob, raw, text) for blob in blobs] == [0] * len(blobs)
    assert [_band_leaks(blob, needles) for blob in blobs] == [0] * len(blobs)


def test_the_band_scan_would_see_a_leak() -> None:
    """The band scanner is not vacuous: one band value, or one band input, is flagged."""
    needles = _band_needles(PDQ_REFERENCES[:1])
    value = PDQ_BANDING.band_values(PDQ_REFERENCES[0])[17]
    assert _band_leaks(b"\x00" * 33 + value.to_bytes(4, "little") + b"\x00" * 9, needles) >= 1
    band_input = PDQ_BANDING.band_inputs(PDQ_REFERENCES[0])[200]
    assert _band_leaks(b"\xff" * 5 + band_input + b"\xff" * 5, needles) >= 2
