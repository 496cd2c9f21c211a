"""Key material: round trips, the documented layout, and every way a key file can be wrong."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch import errors
from blindmatch.psi import oprf
from blindmatch.psi.group import ORDER, Scalar
from blindmatch.psi.keys import (
    FORMAT_VERSION,
    KEY_ID_BYTES,
    MAX_EPOCH,
    PUBLIC_KEY_BYTES,
    SECRET_KEY_BYTES,
    PublicKey,
    SecretKey,
    compute_key_id,
)
from blindmatch.psi.oprf import Mode

modes = st.sampled_from(list(Mode))
epochs = st.integers(min_value=0, max_value=MAX_EPOCH)
scalars = st.integers(min_value=1, max_value=ORDER - 1)

SUITE_LEN = len(b"ristretto255-SHA512")
MODE_OFFSET = 6 + SUITE_LEN
MATERIAL_OFFSET = MODE_OFFSET + 5

KEY = SecretKey.derive(bytes(range(32)), b"flip", mode=Mode.VOPRF, epoch=42)
SECRET = KEY.to_bytes()
PUBLIC = KEY.public_key.to_bytes()


def reseal(body_without_check: bytes) -> bytes:
    """Recompute the check value, so that only the field under test is wrong."""
    return body_without_check + hashlib.sha512(body_without_check).digest()[:8]


@settings(max_examples=40, deadline=None)
@given(scalars, modes, epochs)
def test_secret_key_round_trip(k: int, mode: Mode, epoch: int) -> None:
    key = SecretKey(Scalar.from_int(k), mode=mode, epoch=epoch)
    data = key.to_bytes()
    assert len(data) == SECRET_KEY_BYTES == 78
    loaded = SecretKey.from_bytes(data)
    assert loaded == key
    assert loaded.scalar == key.scalar
    assert (loaded.mode, loaded.epoch, loaded.key_id) == (mode, epoch, key.key_id)


@settings(max_examples=40, deadline=None)
@given(scalars, modes, epochs)
def test_public_key_round_trip(k: int, mode: Mode, epoch: int) -> None:
    public = SecretKey(Scalar.from_int(k), mode=mode, epoch=epoch).public_key
    data = bytes(public)
    assert len(data) == PUBLIC_KEY_BYTES == 78
    loaded = PublicKey.from_bytes(data)
    assert loaded == public
    assert hash(loaded) == hash(public)
    assert loaded.element == Scalar.from_int(k).multiply_base()
    assert loaded.suite == "ristretto255-SHA512"


@settings(max_examples=30, deadline=None)
@given(scalars, modes, epochs)
def test_public_key_json_round_trip(k: int, mode: Mode, epoch: int) -> None:
    public = SecretKey(Scalar.from_int(k), mode=mode, epoch=epoch).public_key
    text = public.to_json()
    assert PublicKey.from_json(text) == public
    doc = json.loads(text)
    assert doc["public_key"] == public.element.hex()
    assert doc["key_id"] == public.key_id.hex()
    assert doc["mode"] == mode.name
    assert doc["suite"] == "ristretto255-SHA512"


def _json_with(**changes: object) -> str:
    doc = json.loads(KEY.public_key.to_json())
    doc.update(changes)
    return json.dumps(doc)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "{",
        '"key"',
        _json_with(format="other"),
        _json_with(version=2),
        _json_with(version="1"),
        _json_with(version=True),
        _json_with(suite="P256-SHA256"),
        _json_with(mode="voprf"),
        _json_with(mode=1),
        _json_with(epoch=-1),
        _json_with(epoch=2**32),
        _json_with(epoch=1.0),
        _json_with(epoch=43),
        _json_with(key_id="00" * 8),
        _json_with(key_id="AB" * 8),
        _json_with(key_id="0" * 15),
        _json_with(public_key="00" * 32),
        _json_with(public_key="ff" * 32),
        _json_with(public_key=bytes(Scalar.from_int(5).multiply_base()).hex()),
        _json_with(public_key="zz" * 32),
        _json_with(extra=1),
    ],
    ids=lambda t: t[:40] if len(t) < 40 else t[-60:],
)
def test_public_key_json_rejects(text: str) -> None:
    with pytest.raises(errors.KeyFormatError):
        PublicKey.from_json(text)


def test_public_key_json_missing_member_and_type() -> None:
    doc = json.loads(KEY.public_key.to_json())
    del doc["epoch"]
    with pytest.raises(errors.KeyFormatError, match="members"):
        PublicKey.from_json(json.dumps(doc))
    with pytest.raises(errors.KeyFormatError):
        PublicKey.from_json(KEY.public_key.to_json().encode())  # type: ignore[arg-type]


def test_layout_is_as_documented() -> None:
    key = SecretKey.derive(bytes(range(32)), b"layout", mode=Mode.VOPRF, epoch=0x01020304)
    data = key.to_bytes()
    assert data[:4] == b"BMSK"
    assert data[4] == FORMAT_VERSION == 1
    assert data[5] == SUITE_LEN
    assert data[6:MODE_OFFSET] == b"ristretto255-SHA512"
    assert data[MODE_OFFSET] == Mode.VOPRF
    assert data[MODE_OFFSET + 1 : MATERIAL_OFFSET] == bytes([1, 2, 3, 4])
    assert data[MATERIAL_OFFSET : MATERIAL_OFFSET + 32] == bytes(key.scalar)
    assert data[MATERIAL_OFFSET + 32 : MATERIAL_OFFSET + 40] == key.key_id
    assert data[-8:] == hashlib.sha512(data[:-8]).digest()[:8]
    public = key.public_key.to_bytes()
    assert public[:4] == b"BMPK"
    assert public[MATERIAL_OFFSET : MATERIAL_OFFSET + 32] == bytes(key.public_key.element)


def test_key_id_formula() -> None:
    key = SecretKey.derive(bytes(32), b"", mode=Mode.POPRF, epoch=7)
    pk = bytes(key.public_key.element)
    expected = hashlib.sha512(
        b"blindmatch-key-id-v1"
        + bytes([SUITE_LEN])
        + b"ristretto255-SHA512"
        + bytes([Mode.POPRF])
        + (7).to_bytes(4, "big")
        + pk
    ).digest()[:KEY_ID_BYTES]
    assert key.key_id == expected == key.public_key.key_id
    assert compute_key_id(Mode.POPRF, 7, key.public_key.element) == expected
    assert compute_key_id(Mode.POPRF, 8, key.public_key.element) != expected


def test_derive_matches_rfc_derive_key_pair() -> None:
    sk, pk = oprf.derive_key_pair(bytes(range(32)), b"info", Mode.VOPRF)
    key = SecretKey.derive(bytes(range(32)), b"info", mode=Mode.VOPRF, epoch=3)
    assert key.scalar == sk
    assert key.public_key.element == pk


def test_generated_keys_differ() -> None:
    a, b = SecretKey.generate(), SecretKey.generate(mode=Mode.OPRF, epoch=1)
    assert a != b
    assert a.mode is Mode.VOPRF
    assert b.epoch == 1


@pytest.mark.parametrize("position", range(SECRET_KEY_BYTES))
@pytest.mark.parametrize("bit", [0x01, 0x80])
def test_flip_one_byte_of_secret_key(position: int, bit: int) -> None:
    data = bytearray(SECRET)
    data[position] ^= bit
    with pytest.raises(errors.KeyFormatError):
        SecretKey.from_bytes(bytes(data))


@pytest.mark.parametrize("position", range(PUBLIC_KEY_BYTES))
@pytest.mark.parametrize("bit", [0x01, 0x80])
def test_flip_one_byte_of_public_key(position: int, bit: int) -> None:
    data = bytearray(PUBLIC)
    data[position] ^= bit
    with pytest.raises(errors.KeyFormatError):
        PublicKey.from_bytes(bytes(data))


@pytest.mark.parametrize("length", range(SECRET_KEY_BYTES))
def test_truncated_keys(length: int) -> None:
    with pytest.raises(errors.KeyFormatError):
        SecretKey.from_bytes(SECRET[:length])
    with pytest.raises(errors.KeyFormatError):
        PublicKey.from_bytes(PUBLIC[:length])


def test_trailing_bytes_rejected() -> None:
    with pytest.raises(errors.KeyFormatError, match="78 bytes"):
        SecretKey.from_bytes(SECRET + b"\x00")
    with pytest.raises(errors.KeyFormatError, match="78 bytes"):
        PublicKey.from_bytes(PUBLIC + b"\x00")


def test_secret_and_public_not_interchangeable() -> None:
    with pytest.raises(errors.KeyFormatError, match="magic"):
        SecretKey.from_bytes(PUBLIC)
    with pytest.raises(errors.KeyFormatError, match="magic"):
        PublicKey.from_bytes(SECRET)


def _with(data: bytes, offset: int, replacement: bytes) -> bytes:
    body = data[:-8]
    return reseal(body[:offset] + replacement + body[offset + len(replacement) :])


@pytest.mark.parametrize("version", [0, 2, 255])
def test_wrong_version(version: int) -> None:
    with pytest.raises(errors.KeyFormatError, match="version"):
        SecretKey.from_bytes(_with(SECRET, 4, bytes([version])))


def test_wrong_suite() -> None:
    with pytest.raises(errors.KeyFormatError, match="suite"):
        SecretKey.from_bytes(_with(SECRET, 6, b"ristretto255-SHA256"))
    with pytest.raises(errors.KeyFormatError, match="suite"):
        PublicKey.from_bytes(_with(PUBLIC, 6, b"P256-SHA256________"))


def test_unknown_mode() -> None:
    with pytest.raises(errors.KeyFormatError, match="mode"):
        SecretKey.from_bytes(_with(SECRET, MODE_OFFSET, b"\x03"))


def test_other_epoch_breaks_key_id() -> None:
    with pytest.raises(errors.KeyFormatError, match="key id"):
        SecretKey.from_bytes(_with(SECRET, MODE_OFFSET + 1, (43).to_bytes(4, "big")))


def test_non_canonical_or_zero_scalar() -> None:
    for bad in (ORDER.to_bytes(32, "little"), b"\xff" * 32, bytes(32)):
        with pytest.raises(errors.KeyFormatError, match="scalar"):
            SecretKey.from_bytes(_with(SECRET, MATERIAL_OFFSET, bad))


def test_invalid_public_element() -> None:
    for bad in (bytes(32), b"\xff" * 32):
        with pytest.raises(errors.KeyFormatError, match="element"):
            PublicKey.from_bytes(_with(PUBLIC, MATERIAL_OFFSET, bad))


def test_key_of_another_scalar_rejected() -> None:
    other = bytes(Scalar.from_int(5))
    with pytest.raises(errors.KeyFormatError, match="key id"):
        SecretKey.from_bytes(_with(SECRET, MATERIAL_OFFSET, other))


def test_non_bytes_rejected() -> None:
    with pytest.raises(errors.KeyFormatError):
        SecretKey.from_bytes(SECRET.hex())  # type: ignore[arg-type]
    with pytest.raises(errors.KeyFormatError):
        PublicKey.from_bytes(None)  # type: ignore[arg-type]


def test_secret_key_is_redacted_and_unpicklable() -> None:
    text = repr(KEY)
    assert "redacted" in text
    assert bytes(KEY.scalar).hex() not in text
    assert KEY.key_id.hex() in text
    with pytest.raises(TypeError):
        pickle.dumps(KEY)
    with pytest.raises(TypeError):
        hash(KEY)
    with pytest.raises(AttributeError):
        KEY.epoch = 1
    assert bytes(KEY.public_key.element).hex() in repr(KEY.public_key)


@pytest.mark.parametrize("epoch", [-1, MAX_EPOCH + 1])
def test_epoch_bounds(epoch: int) -> None:
    with pytest.raises(errors.InvalidArgument, match="32 bits"):
        SecretKey(Scalar.from_int(3), mode=Mode.OPRF, epoch=epoch)


def test_constructor_checks() -> None:
    with pytest.raises(TypeError):
        SecretKey(b"\x01" * 32, mode=Mode.OPRF, epoch=0)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidScalar):
        SecretKey(Scalar.from_bytes(bytes(32), allow_zero=True), mode=Mode.OPRF, epoch=0)
    with pytest.raises(errors.InvalidArgument, match="mode"):
        SecretKey(Scalar.from_int(3), mode=9, epoch=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SecretKey(Scalar.from_int(3), mode=Mode.OPRF, epoch="0")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PublicKey(b"", mode=Mode.OPRF, epoch=0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["[" * 1000, "[" * 4000, '{"a":' * 2000, "[" * 100_000, " " * 5000 + "{}"],
    ids=["1000-brackets", "4000-brackets", "2000-objects", "100k-brackets", "long-padding"],
)
def test_public_key_json_nesting_and_length_are_typed_errors(text: str) -> None:
    """Issue 7.6: deep nesting made json.loads raise RecursionError; now KeyFormatError."""
    with pytest.raises(errors.KeyFormatError):
        PublicKey.from_json(text)


def test_high_bit_public_key_is_refused() -> None:
    """A public key element with bit 255 set is the same point re-encoded (RFC 9496 says
    non-canonical): refused in both forms, never a second encoding of one key."""
    doc = json.loads(KEY.public_key.to_json())
    encoding = bytearray.fromhex(doc["public_key"])
    encoding[31] |= 0x80
    doc["public_key"] = encoding.hex()
    with pytest.raises(errors.KeyFormatError, match="element"):
        PublicKey.from_json(json.dumps(doc))
    data = bytearray(PUBLIC)
    data[MATERIAL_OFFSET + 31] |= 0x80
    body = bytes(data[:-8])  # the check value is the first 8 bytes of SHA-512 of the rest
    resealed = body + hashlib.sha512(body).digest()[:8]
    with pytest.raises(errors.KeyFormatError, match="element"):
        PublicKey.from_bytes(resealed)
