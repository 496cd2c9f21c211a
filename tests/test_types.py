"""Typed fingerprint values: round trips, one-character changes, and every malformed input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch.errors import InvalidEncoding
from blindmatch.fingerprint.types import (
    ImageHash64,
    Md5Digest,
    PdqFingerprint,
    PdqHash,
    Sha256Digest,
    VideoFingerprint,
    VideoFrame,
)

FixedType = type[PdqHash] | type[Md5Digest] | type[Sha256Digest] | type[ImageHash64]
TYPES: list[tuple[FixedType, int]] = [
    (PdqHash, 32),
    (Md5Digest, 16),
    (Sha256Digest, 32),
    (ImageHash64, 8),
]
TYPE_IDS = [cls.__name__ for cls, _ in TYPES]
HEX = "0123456789abcdef"


def _reference_vectors() -> list[dict[str, Any]]:
    path = Path(__file__).parent / "vectors" / "pdq" / "reference.json"
    vectors: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["vectors"]
    return vectors


@pytest.mark.parametrize(("cls", "size"), TYPES, ids=TYPE_IDS)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_bytes_and_hex_round_trip(cls: FixedType, size: int, data: st.DataObject) -> None:
    raw = data.draw(st.binary(min_size=size, max_size=size))
    value = cls.from_bytes(raw)
    assert bytes(value) == raw
    assert value.hex() == raw.hex()
    assert str(value) == raw.hex()
    assert cls.from_hex(value.hex()) == value
    assert cls.from_hex(value.hex().upper()) == value
    assert cls.from_bytes(bytes(value)) == value
    assert hash(cls.from_hex(value.hex())) == hash(value)
    assert repr(value) == f"{cls.__name__}({raw.hex()!r})"


@pytest.mark.parametrize(("cls", "size"), TYPES, ids=TYPE_IDS)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_flipping_one_hex_digit_changes_the_value(
    cls: FixedType, size: int, data: st.DataObject
) -> None:
    text = data.draw(st.text(HEX, min_size=2 * size, max_size=2 * size))
    position = data.draw(st.integers(0, 2 * size - 1))
    replacement = data.draw(st.sampled_from(HEX).filter(lambda c: c != text[position]))
    changed = text[:position] + replacement + text[position + 1 :]
    assert cls.from_hex(changed) != cls.from_hex(text)


@pytest.mark.parametrize(("cls", "size"), TYPES, ids=TYPE_IDS)
@pytest.mark.parametrize("delta", [-1, 1, -100], ids=["short", "long", "much-short"])
def test_wrong_lengths_are_rejected(cls: FixedType, size: int, delta: int) -> None:
    length = max(0, size + delta)
    with pytest.raises(InvalidEncoding):
        cls.from_bytes(b"\x00" * length)
    with pytest.raises(InvalidEncoding):
        cls.from_hex("0" * (2 * length))
    with pytest.raises(InvalidEncoding):
        cls.from_hex("0" * (2 * size - 1))  # odd number of digits


@pytest.mark.parametrize(("cls", "size"), TYPES, ids=TYPE_IDS)
@pytest.mark.parametrize("bad", ["g", " ", "-", "\u00e9", "x", "\u0660"], ids=repr)
def test_non_hex_characters_are_rejected(cls: FixedType, size: int, bad: str) -> None:
    with pytest.raises(InvalidEncoding):
        cls.from_hex(bad + "0" * (2 * size - 1))


@pytest.mark.parametrize(("cls", "size"), TYPES, ids=TYPE_IDS)
def test_wrong_types_are_rejected(cls: FixedType, size: int) -> None:
    for bad in ("00" * size, bytearray(size), memoryview(bytes(size)), size, None):
        with pytest.raises(InvalidEncoding):
            cls(bad)  # type: ignore[arg-type]
    for bad_text in (b"00" * size, 0, None):
        with pytest.raises(InvalidEncoding):
            cls.from_hex(bad_text)  # type: ignore[arg-type]


def test_from_bytes_accepts_bytes_like() -> None:
    assert Md5Digest.from_bytes(bytearray(16)) == Md5Digest(bytes(16))  # type: ignore[arg-type]
    assert Md5Digest.from_bytes(memoryview(bytes(16))) == Md5Digest(bytes(16))  # type: ignore[arg-type]


@pytest.mark.parametrize(("cls", "size"), TYPES, ids=TYPE_IDS)
def test_from_bytes_rejects_what_is_not_bytes(cls: FixedType, size: int) -> None:
    # bytes(n) of an int is n zero bytes: from_bytes(32) must not make an all-zero hash.
    for bad in (size, list(range(size)), "0" * size, None):
        with pytest.raises(TypeError):
            cls.from_bytes(bad)  # type: ignore[arg-type]


def test_types_never_compare_equal_across_classes() -> None:
    raw = bytes(range(32))
    assert PdqHash(raw) != Sha256Digest(raw)
    assert PdqHash(raw) != raw
    assert ImageHash64(raw[:8]) != raw[:8]


def test_values_are_frozen() -> None:
    value = PdqHash(bytes(32))
    with pytest.raises(AttributeError):
        value.value = bytes(32)  # type: ignore[misc]


# --- PdqHash numbering --------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.integers(0, (1 << 256) - 1))
def test_pdq_int_round_trip(number: int) -> None:
    h = PdqHash.from_int(number)
    assert h.to_int() == number
    assert h.hex() == format(number, "064x")
    assert [h.bit(k) for k in range(256)] == [(number >> k) & 1 for k in range(256)]


@pytest.mark.parametrize("number", [-1, 1 << 256, -(1 << 300)], ids=str)
def test_pdq_int_out_of_range(number: int) -> None:
    with pytest.raises(InvalidEncoding):
        PdqHash.from_int(number)


@pytest.mark.parametrize("k", [-1, 256, 1000], ids=str)
def test_pdq_bit_index_out_of_range(k: int) -> None:
    with pytest.raises(IndexError):
        PdqHash(bytes(32)).bit(k)


def test_pdq_first_hex_digit_holds_bits_255_to_252() -> None:
    h = PdqHash.from_hex("8" + "0" * 63)
    assert [k for k in range(256) if h.bit(k)] == [255]
    h = PdqHash.from_hex("0" * 63 + "1")
    assert [k for k in range(256) if h.bit(k)] == [0]


@pytest.mark.parametrize("vector", _reference_vectors()[:8], ids=lambda v: v["file"])
def test_pdq_bits_follow_reference_hex(vector: dict[str, Any]) -> None:
    text = vector["pdq"]
    h = PdqHash.from_hex(text)
    number = int(text, 16)
    assert [h.bit(k) for k in range(256)] == [(number >> k) & 1 for k in range(256)]
    # Bit k = 16 * row + column; row 15 lives in the first four hex digits.
    row15 = int(text[:4], 16)
    assert [h.bit(16 * 15 + c) for c in range(16)] == [(row15 >> c) & 1 for c in range(16)]


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_pdq_distance(a: bytes, b: bytes) -> None:
    ha, hb = PdqHash(a), PdqHash(b)
    expected = sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))
    assert ha.distance(hb) == expected == hb.distance(ha)
    assert ha.distance(ha) == 0


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=8, max_size=8), st.binary(min_size=8, max_size=8))
def test_imagehash_distance(a: bytes, b: bytes) -> None:
    expected = sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))
    assert ImageHash64(a).distance(ImageHash64(b)) == expected


# --- composite values -------------------------------------------------------------------


@pytest.mark.parametrize("quality", [0, 50, 100])
def test_pdq_fingerprint_accepts_quality_range(quality: int) -> None:
    fingerprint = PdqFingerprint(PdqHash(bytes(32)), quality)
    assert fingerprint.quality == quality


@pytest.mark.parametrize("quality", [-1, 101, 50.0, "50", None], ids=repr)
def test_pdq_fingerprint_rejects_bad_quality(quality: object) -> None:
    with pytest.raises(InvalidEncoding):
        PdqFingerprint(PdqHash(bytes(32)), quality)  # type: ignore[arg-type]


def test_video_frame_bounds() -> None:
    h = PdqHash(bytes(32))
    frame = VideoFrame(frame_number=3, timestamp=0.1, pdq=h, quality=80)
    assert VideoFingerprint(frames=(frame,), fps=30.0, seconds_per_hash=1.0).frames == (frame,)
    with pytest.raises(InvalidEncoding):
        VideoFrame(frame_number=-1, timestamp=0.0, pdq=h, quality=80)
    for quality in (-1, 101):
        with pytest.raises(InvalidEncoding):
            VideoFrame(frame_number=0, timestamp=0.0, pdq=h, quality=quality)


_HASH = PdqHash(bytes(range(32)))
_FRAME = {"frame_number": 3, "timestamp": 0.1, "pdq": _HASH, "quality": 90}
_VIDEO = {"frames": (VideoFrame(**_FRAME),), "fps": 30.0, "seconds_per_hash": 1.0}  # type: ignore[arg-type]


def test_pdq_fingerprint_rejects_bool_quality_and_loose_hash() -> None:
    with pytest.raises(InvalidEncoding):
        PdqFingerprint(_HASH, True)
    with pytest.raises(InvalidEncoding):
        PdqFingerprint(_HASH.hex(), 50)  # type: ignore[arg-type]
    with pytest.raises(InvalidEncoding):
        PdqFingerprint(bytes(_HASH), 50)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("frame_number", -1),
        ("frame_number", 1.0),
        ("frame_number", True),
        ("frame_number", "3"),
        ("timestamp", -0.5),
        ("timestamp", float("nan")),
        ("timestamp", float("inf")),
        ("timestamp", "0.1"),
        ("timestamp", None),
        ("pdq", "ab" * 32),
        ("pdq", bytes(32)),
        ("quality", 50.0),
        ("quality", 101),
        ("quality", False),
    ],
    ids=repr,
)
def test_video_frame_rejects(field: str, value: object) -> None:
    with pytest.raises(InvalidEncoding):
        VideoFrame(**{**_FRAME, field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("frames", [VideoFrame(**_FRAME)]),  # type: ignore[arg-type]
        ("frames", (_FRAME,)),
        ("frames", None),
        ("fps", 0.0),
        ("fps", -30.0),
        ("fps", float("nan")),
        ("fps", float("inf")),
        ("fps", "30"),
        ("fps", True),
        ("seconds_per_hash", -1.0),
        ("seconds_per_hash", float("nan")),
        ("seconds_per_hash", float("inf")),
        ("seconds_per_hash", None),
    ],
    ids=repr,
)
def test_video_fingerprint_rejects(field: str, value: object) -> None:
    with pytest.raises(InvalidEncoding):
        VideoFingerprint(**{**_VIDEO, field: value})  # type: ignore[arg-type]


def test_video_values_accept_integral_numbers() -> None:
    frame = VideoFrame(frame_number=0, timestamp=0, pdq=_HASH, quality=0)
    video = VideoFingerprint(frames=(frame,), fps=30, seconds_per_hash=0)
    assert video.frames == (frame,)
    assert VideoFingerprint(frames=(), fps=0.5, seconds_per_hash=2.5).frames == ()
