"""A whole matching session replayed from seeded randomness (golden transcripts).

Every random choice of a session is injectable (``random_bytes=``): the key is derived from
a fixed seed, the indexes are built with a seeded byte source, and both sessions draw their
blinds, pads, shuffles, canary positions, audit sample and proof nonce from seeded sources.
So the same scenario yields the same messages byte for byte, which tests/transcripts/
pins. ``seeded(label)`` is a SHAKE-256 stream: call ``i`` returns
``SHAKE-256(label || u64(i))`` truncated to the length asked for.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable

from blindmatch.protocols import (
    ClearinghouseSession,
    Match,
    PlatformSession,
    SessionPair,
    Upload,
    index_digest,
)
from blindmatch.psi.bands import exact_banding, pdq_banding
from blindmatch.psi.index import BuiltIndex, Index, Reference, build_index
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.oprf import Mode
from blindmatch.psi.parallel import SERIAL, Evaluator

RandomBytes = Callable[[int], bytes]


def seeded(label: bytes) -> RandomBytes:
    """A deterministic byte source (NOT for deployment: tests and vectors only)."""
    counter = itertools.count()

    def random_bytes(count: int) -> bytes:
        return hashlib.shake_256(label + next(counter).to_bytes(8, "big")).digest(count)

    return random_bytes


def _md5(i: int) -> bytes:
    return hashlib.md5(f"file {i}".encode(), usedforsecurity=False).digest()


def _pdq(i: int) -> bytes:
    return hashlib.sha256(f"image {i}".encode()).digest()


def _near(hash_bytes: bytes, flips: int) -> bytes:
    """``hash_bytes`` with its first ``flips`` bits flipped (a near-duplicate PDQ hash)."""
    value = int.from_bytes(hash_bytes, "big") ^ ((1 << flips) - 1)
    return value.to_bytes(len(hash_bytes), "big")


def build() -> tuple[SecretKey, dict[str, BuiltIndex]]:
    """The clearinghouse's key and indexes: 12 md5 reports, 3 pdq reports."""
    key = SecretKey.derive(bytes(range(32)), b"golden transcript", mode=Mode.VOPRF)
    md5_refs = [Reference(f"report-{i}", "md5", _md5(i)) for i in range(12)]
    pdq_refs = [Reference(f"photo-{i}", "pdq", _pdq(i)) for i in range(3)]
    return key, {
        "md5": build_index(
            key, exact_banding("md5", 128), md5_refs, processes=1, random_bytes=seeded(b"md5")
        ),
        "pdq": build_index(
            key, pdq_banding(256), pdq_refs, processes=1, random_bytes=seeded(b"pdq")
        ),
    }


def run(
    evaluator: Evaluator = SERIAL,
) -> tuple[SessionPair, dict[str, BuiltIndex], list[Match]]:
    """Build, then run one whole session (hello, uploads, an audit, close)."""
    key, built = build()
    indexes = [Index.from_bytes(b.to_bytes()) for b in built.values()]
    platform = PlatformSession(
        indexes,
        key.public_key,
        batch_size=64,
        canary_interval=8,
        evaluator=evaluator,
        random_bytes=seeded(b"platform"),
    )
    uploads = [Upload(f"upload-{i}", "md5", _md5(i)) for i in range(8, 20)]
    uploads += [
        Upload("near-photo-1", "pdq", _near(_pdq(1), 10), 90),
        Upload("other-photo", "pdq", _pdq(7), 90),
    ]
    platform.add_uploads(uploads)
    clearinghouse = ClearinghouseSession(
        key,
        element_limit=100_000,
        max_batch=64,
        index_digests=[index_digest(b) for b in built.values()],
        evaluator=evaluator,
        random_bytes=seeded(b"clearinghouse"),
    )
    pair = SessionPair(platform, clearinghouse)
    found = pair.run()
    pair.audit(3)
    pair.close()
    return pair, built, found
