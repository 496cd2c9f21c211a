"""Element and Scalar: validation, round trips, arithmetic, redaction, immutability."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch import errors
from blindmatch.psi import _sodium
from blindmatch.psi.group import (
    GENERATOR,
    ORDER,
    Element,
    Scalar,
    decode_elements,
    encode_elements,
)

nonzero = st.integers(min_value=1, max_value=ORDER - 1)
any_scalar = st.integers(min_value=0, max_value=ORDER - 1)


def element(k: int) -> Element:
    return Scalar.from_int(k) * GENERATOR


@settings(max_examples=30, deadline=None)
@given(nonzero)
def test_element_round_trip(k: int) -> None:
    e = element(k)
    assert Element.from_bytes(bytes(e)) == e
    assert Element(bytes(e)) == e
    assert len(bytes(e)) == 32
    assert e.hex() == bytes(e).hex()
    assert hash(Element.from_bytes(bytes(e))) == hash(e)


@settings(max_examples=50, deadline=None)
@given(any_scalar)
def test_scalar_round_trip(k: int) -> None:
    s = Scalar.from_int(k, allow_zero=True)
    assert int.from_bytes(bytes(s), "little") == k
    assert Scalar.from_bytes(bytes(s), allow_zero=True) == s


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_element_wrong_length(length: int) -> None:
    with pytest.raises(errors.InvalidElement):
        Element.from_bytes(bytes(bytes(GENERATOR)[:1] * length))


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_scalar_wrong_length(length: int) -> None:
    with pytest.raises(errors.InvalidScalar):
        Scalar.from_bytes(b"\x01" * length)


def test_identity_rejected() -> None:
    with pytest.raises(errors.InvalidElement, match="identity"):
        Element.from_bytes(bytes(32))
    with pytest.raises(errors.InvalidElement):
        _ = element(5) - element(5)
    with pytest.raises(errors.InvalidElement):
        _ = element(5) + element(ORDER - 5)


@pytest.mark.parametrize(
    "value",
    [ORDER, ORDER + 1, 2**253, 2**255 - 1, 2**256 - 1],
    ids=["order", "order+1", "2^253", "2^255-1", "2^256-1"],
)
def test_non_canonical_scalars_rejected(value: int) -> None:
    with pytest.raises(errors.InvalidScalar, match="below the group order"):
        Scalar.from_bytes(value.to_bytes(32, "little"), allow_zero=True)


def test_zero_scalar_rejected_unless_allowed() -> None:
    with pytest.raises(errors.InvalidScalar, match="zero"):
        Scalar.from_bytes(bytes(32))
    with pytest.raises(errors.InvalidScalar):
        Scalar.from_int(ORDER)
    zero = Scalar.from_bytes(bytes(32), allow_zero=True)
    assert zero.is_zero()
    with pytest.raises(errors.InverseError):
        zero.invert()
    with pytest.raises(errors.InvalidScalar):
        _ = zero * GENERATOR
    with pytest.raises(errors.InvalidScalar):
        zero.multiply_base()


@pytest.mark.parametrize("bad", ["00" * 32, None, 7, [0] * 32])
def test_wrong_types_rejected(bad: object) -> None:
    with pytest.raises(TypeError):
        Element.from_bytes(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Scalar.from_bytes(bad)  # type: ignore[arg-type]


def test_bytes_like_accepted() -> None:
    raw = bytes(GENERATOR)
    assert Element.from_bytes(bytearray(raw)) == GENERATOR  # type: ignore[arg-type]
    assert Element.from_bytes(memoryview(raw)) == GENERATOR  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(nonzero, nonzero)
def test_arithmetic_matches_integers(a: int, b: int) -> None:
    sa, sb = Scalar.from_int(a), Scalar.from_int(b)
    assert int.from_bytes(bytes(sa + sb), "little") == (a + b) % ORDER
    assert int.from_bytes(bytes(sa - sb), "little") == (a - b) % ORDER
    assert int.from_bytes(bytes(sa * sb), "little") == (a * b) % ORDER
    assert int.from_bytes(bytes(-sa), "little") == (-a) % ORDER
    assert sa * sa.invert() == Scalar.from_int(1)
    assert sa * GENERATOR == GENERATOR * sa == sa.multiply_base()
    assert sb * (sa * GENERATOR) == (sa * sb).multiply_base()
    if (a + b) % ORDER:
        assert element(a) + element(b) == element(a + b)
    if a != b:
        assert element(a) - element(b) == element(a - b)


def test_scalar_is_secret() -> None:
    s = Scalar.random()
    assert repr(s) == "Scalar(<redacted>)"
    assert bytes(s).hex() not in repr(s)
    assert str(s) == "Scalar(<redacted>)"
    with pytest.raises(TypeError):
        hash(s)
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(s)


def test_element_repr_shows_public_encoding() -> None:
    assert repr(GENERATOR) == f"Element({GENERATOR.hex()})"
    assert Element.generator() is GENERATOR


def test_immutability() -> None:
    s = Scalar.random()
    with pytest.raises(AttributeError):
        s._encoding = bytes(32)
    with pytest.raises(AttributeError):
        del s._encoding
    with pytest.raises(AttributeError):
        GENERATOR._encoding = bytes(32)
    with pytest.raises(AttributeError):
        del GENERATOR._encoding


def test_equality_is_by_value_and_type() -> None:
    a = Scalar.from_int(9)
    assert a == Scalar.from_int(9)
    assert a != Scalar.from_int(10)
    assert a != bytes(a)
    assert element(9) != element(10)
    assert element(9) != bytes(element(9))
    assert (GENERATOR == 1) is False


def test_operators_reject_wrong_types() -> None:
    with pytest.raises(TypeError):
        _ = GENERATOR + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = GENERATOR * 2  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = Scalar.from_int(2) * 2  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = Scalar.from_int(2) + 2  # type: ignore[operator]


def test_random_scalars_differ() -> None:
    drawn = {bytes(Scalar.random()) for _ in range(32)}
    assert len(drawn) == 32


def test_reduce_wide() -> None:
    wide = (ORDER + 5).to_bytes(64, "little")
    assert Scalar.reduce(wide) == Scalar.from_int(5)
    with pytest.raises(errors.InvalidEncoding):
        Scalar.reduce(bytes(32))


@settings(max_examples=20, deadline=None)
@given(st.lists(nonzero, max_size=6))
def test_encode_decode_elements_round_trip(ks: list[int]) -> None:
    elements = [element(k) for k in ks]
    data = encode_elements(elements)
    assert len(data) == 32 * len(ks)
    assert decode_elements(data) == elements


def test_decode_elements_rejects_bad_batches() -> None:
    good = bytes(element(3))
    with pytest.raises(errors.InvalidElement, match="multiple of 32"):
        decode_elements(good + b"\x00")
    with pytest.raises(errors.InvalidElement, match="element 1 ") as excinfo:
        decode_elements(good + bytes(32) + good)
    assert good.hex() not in str(excinfo.value)
    with pytest.raises(TypeError):
        decode_elements("00")  # type: ignore[arg-type]


NONCANONICAL: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "vectors" / "ristretto255-noncanonical.json").read_text()
)["noncanonical_high_bit"]


@pytest.mark.parametrize("case", NONCANONICAL, ids=[c["name"] for c in NONCANONICAL])
def test_high_bit_encodings_rejected_by_every_decode_path(case: dict[str, Any]) -> None:
    """RFC 9496 4.3.1: bit 255 set is non-canonical, even where the low 255 bits encode a
    valid point (libsodium 1.0.18 accepts it): every path that decodes a point refuses it."""
    data = bytes.fromhex(case["encoding"])
    low = bytes.fromhex(case["clear_bit255"])
    assert data[:31] == low[:31]
    assert data[31] == low[31] | 0x80
    assert not _sodium.is_valid_point(data)
    with pytest.raises(errors.InvalidElement, match="canonical"):
        Element.from_bytes(data)
    with pytest.raises(errors.InvalidElement, match="element 1 "):
        decode_elements(bytes(GENERATOR) + data)
    seven = (7).to_bytes(32, "little")
    g = bytes(GENERATOR)
    with pytest.raises(errors.InvalidElement):
        _sodium.scalarmult(seven, data)
    with pytest.raises(errors.InvalidElement, match="element 1 "):
        _sodium.scalarmult_many(seven, [g, data])
    with pytest.raises(errors.InvalidElement, match="element 2 "):
        _sodium.scalarmult_concat(seven, g + g + data)
    with pytest.raises(errors.InvalidElement, match="element 1 "):
        _sodium.scalarmult_pairs([seven, seven], [g, data])
    with pytest.raises(errors.InvalidElement, match="element 0 "):
        _sodium.sum_of_products([seven], [data])
    for add in (_sodium.add, _sodium.sub):
        with pytest.raises(errors.InvalidElement):
            add(g, data)
        with pytest.raises(errors.InvalidElement):
            add(data, g)
    # The same bits with 255 clear are the RFC's point: only the canonical form decodes.
    if low != bytes(32):
        assert Element.from_bytes(low).hex() == case["clear_bit255"]
    else:
        with pytest.raises(errors.InvalidElement, match="identity"):
            Element.from_bytes(low)


def test_one_point_has_one_encoding() -> None:
    """No element decodes from two encodings: a set bit 255 never names a point."""
    for k in range(1, 40):
        encoding = bytearray(bytes(element(k)))
        assert encoding[31] < 0x80  # libsodium's own output is canonical
        encoding[31] |= 0x80
        with pytest.raises(errors.InvalidElement):
            Element.from_bytes(bytes(encoding))
