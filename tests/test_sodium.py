"""The libsodium binding: backend checks, lengths, return codes, batch forms = single forms."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch import errors
from blindmatch.errors import InvalidArgument
from blindmatch.psi import _sodium
from blindmatch.psi.group import ORDER

scalars = st.integers(min_value=0, max_value=ORDER - 1)
nonzero_scalars = st.integers(min_value=1, max_value=ORDER - 1)


def enc(value: int) -> bytes:
    return value.to_bytes(32, "little")


def dec(data: bytes) -> int:
    return int.from_bytes(data, "little")


def point(tag: int) -> bytes:
    return _sodium.from_hash(hashlib.sha512(tag.to_bytes(4, "big")).digest())


def test_library_version_is_supported() -> None:
    assert _sodium.library_version >= _sodium.MINIMUM_VERSION


@pytest.mark.parametrize("text", ["1.0", "x.y.z", "", "1.0.a"])
def test_unparseable_version_says_how_to_install(text: str) -> None:
    with pytest.raises(errors.BackendUnavailable) as excinfo:
        _sodium._parse_version(text)
    assert "apt-get install libsodium23" in str(excinfo.value)
    assert "brew install libsodium" in str(excinfo.value)


@pytest.mark.parametrize("version", [(1, 0, 17), (1, 0, 0), (0, 9, 99)])
def test_old_version_rejected(version: tuple[int, int, int]) -> None:
    with pytest.raises(errors.BackendUnavailable, match="too old") as excinfo:
        _sodium._require_version(version)
    assert "libsodium23" in str(excinfo.value)
    assert isinstance(excinfo.value, ImportError)


@pytest.mark.parametrize("version", [(1, 0, 18), (1, 0, 20), (1, 1, 0), (2, 0, 0)])
def test_new_enough_version_accepted(version: tuple[int, int, int]) -> None:
    _sodium._require_version(version)


def test_missing_ristretto_symbols_rejected() -> None:
    class NoRistretto:
        pass

    with pytest.raises(errors.BackendUnavailable, match="ristretto255"):
        _sodium._require_symbols(NoRistretto())


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (_sodium.from_hash, (bytes(63),)),
        (_sodium.is_valid_point, (bytes(31),)),
        (_sodium.scalarmult, (bytes(31), bytes(32))),
        (_sodium.scalarmult, (enc(1), bytes(33))),
        (_sodium.scalarmult_base, (bytes(33),)),
        (_sodium.add, (bytes(32), bytes(31))),
        (_sodium.sub, (bytes(0), bytes(32))),
        (_sodium.scalar_invert, (bytes(31),)),
        (_sodium.scalar_mul, (bytes(32), bytes(31))),
        (_sodium.scalar_add, (bytes(32), bytes(33))),
        (_sodium.scalar_sub, (bytes(1), bytes(32))),
        (_sodium.scalar_negate, (bytes(31),)),
        (_sodium.scalar_reduce, (bytes(32),)),
        (_sodium.scalarmult_concat, (enc(1), bytes(33))),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_wrong_lengths_rejected(call: object, args: tuple[bytes, ...]) -> None:
    assert callable(call)
    with pytest.raises(errors.InvalidEncoding):
        call(*args)


@pytest.mark.parametrize("bad", [bytearray(32), "00" * 16, None, memoryview(bytes(32))])
def test_non_bytes_rejected(bad: object) -> None:
    with pytest.raises(TypeError):
        _sodium.scalarmult(enc(1), bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _sodium.scalar_invert(bad)  # type: ignore[arg-type]


def test_scalarmult_rejects_identity_and_invalid() -> None:
    with pytest.raises(errors.InvalidElement):
        _sodium.scalarmult(enc(5), _sodium.IDENTITY)
    with pytest.raises(errors.InvalidElement):
        _sodium.scalarmult(enc(0), point(1))  # product is the identity
    with pytest.raises(errors.InvalidElement):
        _sodium.scalarmult(enc(5), b"\xff" * 32)
    with pytest.raises(errors.InvalidScalar):
        _sodium.scalarmult_base(enc(0))
    with pytest.raises(errors.InvalidScalar):
        _sodium.scalarmult_base(enc(ORDER))  # order = 0 mod order


def test_batch_errors_name_the_index_not_the_bytes() -> None:
    points = [point(1), point(2), b"\xfe" * 32, point(3)]
    with pytest.raises(errors.InvalidElement, match="element 2") as excinfo:
        _sodium.scalarmult_many(enc(3), points)
    assert "fe" not in str(excinfo.value)
    with pytest.raises(errors.InvalidElement, match="element 2"):
        _sodium.scalarmult_concat(enc(3), b"".join(points))
    with pytest.raises(errors.InvalidElement, match="element 2"):
        _sodium.scalarmult_pairs([enc(3)] * 4, points)
    with pytest.raises(errors.InvalidEncoding):
        _sodium.scalarmult_pairs([enc(3)] * 3, points)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=6), nonzero_scalars)
def test_batch_forms_equal_single_forms(tags: list[int], k: int) -> None:
    uniforms = [hashlib.sha512(t.to_bytes(4, "big")).digest() for t in tags]
    points = _sodium.from_hash_many(uniforms)
    assert points == [_sodium.from_hash(u) for u in uniforms]
    products = [_sodium.scalarmult(enc(k), p) for p in points]
    assert _sodium.scalarmult_many(enc(k), points) == products
    assert _sodium.scalarmult_concat(enc(k), b"".join(points)) == b"".join(products)
    assert _sodium.scalarmult_pairs([enc(k)] * len(points), points) == products


@settings(max_examples=50, deadline=None)
@given(scalars, scalars)
def test_scalar_arithmetic_matches_integers(a: int, b: int) -> None:
    assert dec(_sodium.scalar_add(enc(a), enc(b))) == (a + b) % ORDER
    assert dec(_sodium.scalar_sub(enc(a), enc(b))) == (a - b) % ORDER
    assert dec(_sodium.scalar_mul(enc(a), enc(b))) == (a * b) % ORDER
    assert dec(_sodium.scalar_negate(enc(a))) == (-a) % ORDER
    wide = (a * 2**256 + b).to_bytes(64, "little")
    assert dec(_sodium.scalar_reduce(wide)) == (a * 2**256 + b) % ORDER


@settings(max_examples=25, deadline=None)
@given(st.lists(nonzero_scalars, min_size=0, max_size=8))
def test_invert_many_matches_invert(values: list[int]) -> None:
    expected = [pow(v, -1, ORDER) for v in values]
    assert [dec(x) for x in _sodium.scalar_invert_many([enc(v) for v in values])] == expected
    assert [dec(_sodium.scalar_invert(enc(v))) for v in values] == expected


def test_invert_zero_rejected() -> None:
    with pytest.raises(errors.InverseError):
        _sodium.scalar_invert(enc(0))
    with pytest.raises(errors.InverseError):
        _sodium.scalar_invert_many([enc(3), enc(0), enc(5)])


def test_random_scalars_are_canonical_nonzero_and_distinct() -> None:
    drawn = _sodium.scalar_random_many(64) + [_sodium.scalar_random() for _ in range(16)]
    assert len(set(drawn)) == len(drawn)
    assert all(0 < dec(s) < ORDER for s in drawn)
    assert _sodium.scalar_random_many(0) == []
    with pytest.raises(InvalidArgument, match="non-negative"):
        _sodium.scalar_random_many(-1)


def test_add_sub_identity_and_invalid() -> None:
    p = point(7)
    neg = _sodium.scalarmult(enc(ORDER - 1), p)
    assert _sodium.add(p, neg) == _sodium.IDENTITY
    assert _sodium.sub(p, p) == _sodium.IDENTITY
    assert _sodium.add(_sodium.IDENTITY, p) == p
    with pytest.raises(errors.InvalidElement):
        _sodium.add(p, b"\xff" * 32)
    with pytest.raises(errors.InvalidElement):
        _sodium.sub(b"\xff" * 32, p)


def test_identity_is_a_valid_encoding_for_libsodium() -> None:
    # libsodium accepts the identity; group.Element must reject it on its own.
    assert _sodium.is_valid_point(_sodium.IDENTITY)
    assert _sodium.is_valid_point(point(1))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(nonzero_scalars, st.integers(0, 2**32 - 1)), max_size=5))
def test_sum_of_products_matches_pairwise(terms: list[tuple[int, int]]) -> None:
    scalars = [enc(k) for k, _ in terms]
    points = [point(t) for _, t in terms]
    expected = _sodium.IDENTITY
    for s, p in zip(scalars, points, strict=True):
        expected = _sodium.add(_sodium.scalarmult(s, p), expected)
    assert _sodium.sum_of_products(scalars, points) == expected


def test_sum_of_products_cancelling_and_invalid() -> None:
    p = point(9)
    assert _sodium.sum_of_products([enc(1), enc(ORDER - 1)], [p, p]) == _sodium.IDENTITY
    with pytest.raises(errors.InvalidElement, match="element 1"):
        _sodium.sum_of_products([enc(1), enc(2)], [p, b"\xff" * 32])
    with pytest.raises(errors.InvalidEncoding):
        _sodium.sum_of_products([enc(1)], [p, p])


@settings(max_examples=20, deadline=None)
@given(st.lists(st.binary(min_size=64, max_size=64), max_size=5))
def test_reduce_many_matches_reduce(wides: list[bytes]) -> None:
    assert _sodium.scalar_reduce_many(wides) == [_sodium.scalar_reduce(w) for w in wides]
    assert all(
        dec(s) == dec_wide % ORDER
        for s, dec_wide in zip(
            _sodium.scalar_reduce_many(wides),
            [int.from_bytes(w, "little") for w in wides],
            strict=True,
        )
    )
