"""Vectorised Hamming distances equal the pure-python PdqHash.distance, in every shape."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch.errors import InvalidEncoding
from blindmatch.fingerprint import distance
from blindmatch.fingerprint.distance import (
    WORDS,
    hamming_many_to_many,
    hamming_one_to_many,
    pack_hashes,
    unpack_hashes,
)
from blindmatch.fingerprint.types import PdqHash

hashes = st.binary(min_size=32, max_size=32).map(PdqHash)
hash_lists = st.lists(hashes, max_size=12)


@settings(max_examples=100, deadline=None)
@given(hash_lists)
def test_pack_unpack_round_trip(items: list[PdqHash]) -> None:
    packed = pack_hashes(items)
    assert packed.shape == (len(items), WORDS)
    assert packed.dtype == np.uint64
    assert unpack_hashes(packed) == items


def test_pack_layout_word0_holds_high_bits() -> None:
    packed = pack_hashes([PdqHash.from_int(1 << 255), PdqHash.from_int(1)])
    assert packed[0].tolist() == [1 << 63, 0, 0, 0]
    assert packed[1].tolist() == [0, 0, 0, 1]


@settings(max_examples=100, deadline=None)
@given(hashes, hash_lists)
def test_one_to_many_equals_python(h: PdqHash, items: list[PdqHash]) -> None:
    got = hamming_one_to_many(h, pack_hashes(items))
    assert got.dtype == np.int32
    assert got.tolist() == [h.distance(x) for x in items]


@settings(max_examples=60, deadline=None)
@given(hash_lists, hash_lists)
def test_many_to_many_equals_python(a: list[PdqHash], b: list[PdqHash]) -> None:
    got = hamming_many_to_many(pack_hashes(a), pack_hashes(b))
    assert got.shape == (len(a), len(b))
    assert got.tolist() == [[x.distance(y) for y in b] for x in a]


def test_many_to_many_blocks_match_unblocked(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    a = [PdqHash(rng.bytes(32)) for _ in range(37)]
    b = [PdqHash(rng.bytes(32)) for _ in range(11)]
    whole = hamming_many_to_many(pack_hashes(a), pack_hashes(b))
    # Force blocks of 2 rows (2 * 11 * 4 words) and a ragged last block.
    monkeypatch.setattr(distance, "MAX_BLOCK_WORDS", 2 * 11 * WORDS)
    blocked = hamming_many_to_many(pack_hashes(a), pack_hashes(b))
    assert np.array_equal(whole, blocked)
    assert blocked.tolist() == [[x.distance(y) for y in b] for x in a]


def test_extreme_distances() -> None:
    zero, ones = PdqHash.from_int(0), PdqHash.from_int((1 << 256) - 1)
    assert hamming_one_to_many(zero, pack_hashes([zero, ones])).tolist() == [0, 256]


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((3, 4), dtype=np.int64),
        np.zeros((3, 32), dtype=np.uint8),
        np.zeros((3, 5), dtype=np.uint64),
        np.zeros(4, dtype=np.uint64),
        [[0, 0, 0, 0]],
    ],
    ids=["int64", "bytes-layout", "five-words", "one-dim", "list"],
)
def test_malformed_packed_arrays_are_rejected(bad: object) -> None:
    h = PdqHash.from_int(5)
    with pytest.raises(InvalidEncoding):
        hamming_one_to_many(h, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidEncoding):
        hamming_many_to_many(bad, pack_hashes([h]))  # type: ignore[arg-type]
    with pytest.raises(InvalidEncoding):
        hamming_many_to_many(pack_hashes([h]), bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidEncoding):
        unpack_hashes(bad)  # type: ignore[arg-type]


def test_wrong_value_types_are_rejected() -> None:
    with pytest.raises(InvalidEncoding):
        pack_hashes([b"\x00" * 32])  # type: ignore[list-item]
    with pytest.raises(InvalidEncoding):
        hamming_one_to_many("00" * 32, pack_hashes([]))  # type: ignore[arg-type]
