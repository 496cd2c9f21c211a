"""Bandings: deterministic positions, unambiguous band inputs, the vectorised path agrees."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch.errors import InvalidEncoding, InvalidParameter
from blindmatch.fingerprint.types import PdqHash
from blindmatch.psi.bands import (
    BAND_DOMAIN,
    DEFAULT_PDQ_SEED,
    POSITIONS_DOMAIN,
    Banding,
    exact_banding,
    pdq_banding,
)

VECTORS = Path(__file__).parent / "vectors" / "index" / "bands.json"


def _reference_positions(banding: Banding) -> list[list[int]]:
    """The position draw written out from the spec, independently of bands.py."""
    seed = (
        bytes([len(POSITIONS_DOMAIN)])
        + POSITIONS_DOMAIN
        + bytes([len(banding.signal)])
        + banding.signal.encode()
        + banding.hash_bits.to_bytes(2, "big")
        + banding.k.to_bytes(2, "big")
        + banding.count.to_bytes(4, "big")
        + bytes([len(banding.seed)])
        + banding.seed
    )
    stream = hashlib.shake_256(seed).digest(1 << 20)
    mask = (1 << (banding.hash_bits - 1).bit_length()) - 1
    offset = 0
    bands = []
    for _ in range(banding.count):
        chosen: list[int] = []
        while len(chosen) < banding.k:
            value = int.from_bytes(stream[offset : offset + 2], "big") & mask
            offset += 2
            if value < banding.hash_bits and value not in chosen:
                chosen.append(value)
        bands.append(sorted(chosen))
    return bands


def _reference_input(banding: Banding, hash_bytes: bytes, j: int) -> bytes:
    number = int.from_bytes(hash_bytes, "big")
    value = 0
    for i, p in enumerate(banding.positions()[j]):
        value |= ((number >> p) & 1) << i
    signal = banding.signal.encode()
    return (
        bytes([len(BAND_DOMAIN)])
        + BAND_DOMAIN
        + bytes([len(signal)])
        + signal
        + j.to_bytes(4, "big")
        + banding.k.to_bytes(2, "big")
        + value.to_bytes((banding.k + 7) // 8, "big")
    )


@pytest.mark.parametrize("count", [256, 384, 512])
def test_pdq_positions_follow_the_spec(count: int) -> None:
    banding = pdq_banding(count)
    positions = banding.positions()
    assert [list(band) for band in positions] == _reference_positions(banding)
    assert len(positions) == count
    assert all(len(band) == 32 == len(set(band)) for band in positions)
    assert all(0 <= p < 256 for band in positions for p in band)


def test_positions_depend_on_the_seed() -> None:
    assert pdq_banding(seed=b"a").positions() != pdq_banding(seed=b"b").positions()
    assert pdq_banding().positions() == pdq_banding(seed=DEFAULT_PDQ_SEED).positions()


def test_odd_hash_bits_use_rejection() -> None:
    banding = Banding(signal="odd", hash_bits=200, k=13, count=5, threshold=2, seed=b"s")
    assert [list(band) for band in banding.positions()] == _reference_positions(banding)


def test_exact_banding_is_the_hash_itself() -> None:
    banding = exact_banding("sha256", 256)
    digest = hashlib.sha256(b"x").digest()
    (single,) = banding.band_inputs(digest)
    assert single == _reference_input(banding, digest, 0)
    assert single.endswith(digest)
    assert banding.positions() == (tuple(range(256)),)
    assert banding.threshold == 1
    assert banding.count == 1


def test_pdq_bit_numbering_is_the_reference_numbering() -> None:
    """Band values read bit p as PdqHash.bit(p)."""
    banding = pdq_banding(256)
    rng = random.Random(5)
    pdq = PdqHash(rng.randbytes(32))
    values = banding.band_values(bytes(pdq))
    for j in (0, 17, 255):
        expected = sum(pdq.bit(p) << i for i, p in enumerate(banding.positions()[j]))
        assert values[j] == expected


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=4))
def test_vectorised_inputs_match_the_spec(hashes: list[bytes]) -> None:
    banding = pdq_banding(256)
    many = banding.band_inputs_many(hashes)
    for item, inputs in zip(hashes, many, strict=True):
        assert inputs == banding.band_inputs(item)
        assert len(inputs) == 256
        for j in (0, 1, 100, 255):
            assert inputs[j] == _reference_input(banding, item, j)


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from(["md5", "sha256", "pdq", "x.y-z_1"]),
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=1, max_value=40),
    st.binary(max_size=64),
)
def test_banding_fields_round_trip(signal: str, hash_bytes: int, k: int, seed: bytes) -> None:
    """A banding rebuilt from its fields is equal and draws the same positions."""
    hash_bits = 8 * hash_bytes
    k = min(k, hash_bits - 1) if hash_bits > 1 else 1
    banding = Banding(signal=signal, hash_bits=hash_bits, k=k, count=3, threshold=2, seed=seed)
    again = Banding(
        signal=banding.signal,
        hash_bits=banding.hash_bits,
        k=banding.k,
        count=banding.count,
        threshold=banding.threshold,
        seed=banding.seed,
    )
    assert again == banding
    assert again.positions() == banding.positions()
    assert [list(b) for b in banding.positions()] == _reference_positions(banding)


def test_inputs_are_unambiguous_across_fields() -> None:
    """Different signal, band or bits never give one input."""
    rng = random.Random(9)
    seen: dict[bytes, tuple[str, int, int]] = {}
    for banding in (pdq_banding(256), exact_banding("sha256", 256), exact_banding("pdq", 256)):
        for _ in range(20):
            digest = rng.randbytes(32)
            values = banding.band_values(digest)
            for j, item in enumerate(banding.band_inputs(digest)):
                key = (banding.signal + str(banding.k), j, values[j])
                previous = seen.setdefault(item, key)
                assert previous == key


def _vector_cases() -> list[dict[str, object]]:
    cases: list[dict[str, object]] = json.loads(VECTORS.read_text())["cases"]
    return cases


@pytest.mark.parametrize("case", _vector_cases(), ids=lambda c: str(c["id"]))
def test_band_vectors(case: dict[str, object]) -> None:
    """Golden band positions and inputs (tests/vectors/index/bands.json)."""
    banding = Banding(
        signal=str(case["signal"]),
        hash_bits=int(str(case["hash_bits"])),
        k=int(str(case["k"])),
        count=int(str(case["count"])),
        threshold=int(str(case["threshold"])),
        seed=bytes.fromhex(str(case["seed"])),
    )
    positions = case["first_positions"]
    assert isinstance(positions, list)
    assert [list(b) for b in banding.positions()[: len(positions)]] == positions
    inputs = banding.band_inputs(bytes.fromhex(str(case["hash"])))
    expected = case["first_inputs"]
    assert isinstance(expected, list)
    assert [i.hex() for i in inputs[: len(expected)]] == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"signal": "PDQ"},
        {"signal": ""},
        {"signal": "a" * 33},
        {"hash_bits": 255},
        {"hash_bits": 0},
        {"hash_bits": 8192},
        {"k": 0},
        {"k": 257},
        {"count": 0},
        {"count": 5000},
        {"threshold": 3},
        {"threshold": 0},
        {"threshold": 1},
        {"seed": b"x" * 65},
        {"seed": "text"},
        {"k": 256},
        {"hash_bits": True},
    ],
    ids=lambda f: "-".join(f"{k}={v!r}"[:24] for k, v in f.items()),
)
def test_invalid_bandings(fields: dict[str, object]) -> None:
    base: dict[str, object] = {
        "signal": "pdq",
        "hash_bits": 256,
        "k": 32,
        "count": 4,
        "threshold": 2,
        "seed": b"",
    }
    base.update(fields)
    with pytest.raises(InvalidParameter):
        Banding(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [1, 100, 383, 1024])
def test_pdq_band_counts(count: int) -> None:
    with pytest.raises(InvalidParameter, match="256, 384 or 512"):
        pdq_banding(count)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33, "00" * 32, bytearray(32)])
def test_wrong_hash_lengths(bad: object) -> None:
    banding = pdq_banding(256)
    with pytest.raises(InvalidEncoding, match="32 bytes"):
        banding.band_inputs(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidEncoding, match="32 bytes"):
        banding.band_inputs_many([bytes(32), bad])  # type: ignore[list-item]
