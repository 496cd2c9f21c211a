"""Shamir lines over GF(2**61 - 1): scalar and vectorised arithmetic agree with Python ints."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from blindmatch.errors import InvalidParameter
from blindmatch.psi.shares import (
    FIELD_MODULUS,
    add_mod,
    evaluate_shares,
    evaluate_shares_at,
    field_inverse,
    interpolate_at_zero,
    interpolate_at_zero_many,
    line_through,
    mul_mod,
    mul_mod_many,
    random_field_elements,
    random_lines,
)

P = FIELD_MODULUS
elements = st.integers(min_value=0, max_value=P - 1)
points = st.integers(min_value=1, max_value=4096)


class _Stream:
    """A deterministic byte source (SHAKE-256), standing in for os.urandom."""

    def __init__(self, label: bytes) -> None:
        self.data = hashlib.shake_256(label).digest(1 << 16)
        self.offset = 0

    def __call__(self, count: int) -> bytes:
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk


def test_modulus_is_the_mersenne_prime() -> None:
    assert P == 2**61 - 1
    assert pow(3, P - 1, P) == 1


@given(elements, elements)
def test_scalar_arithmetic(a: int, b: int) -> None:
    assert add_mod(a, b) == (a + b) % P
    assert mul_mod(a, b) == (a * b) % P
    if a:
        assert mul_mod(a, field_inverse(a)) == 1


@given(st.lists(st.tuples(elements, elements), min_size=1, max_size=50))
def test_mul_mod_many_matches_python(pairs: list[tuple[int, int]]) -> None:
    a = np.array([x for x, _ in pairs], dtype=np.uint64)
    b = np.array([y for _, y in pairs], dtype=np.uint64)
    got = mul_mod_many(a, b)
    assert [int(v) for v in got] == [(x * y) % P for x, y in pairs]


def test_mul_mod_many_extremes() -> None:
    edge = np.array([0, 1, 2, P - 1, P - 2, 2**32, 2**32 - 1, 2**60, 2**61 - 2], dtype=np.uint64)
    a, b = np.meshgrid(edge, edge)
    got = mul_mod_many(a.ravel(), b.ravel())
    assert [int(v) for v in got] == [
        (int(x) * int(y)) % P for x, y in zip(a.ravel(), b.ravel(), strict=True)
    ]


@given(elements, elements, points, points)
def test_line_round_trip(s: int, a: int, z1: int, z2: int) -> None:
    """Two points of a line give back its secret and slope (Lagrange at zero)."""
    if z1 == z2:
        z2 = z1 + 1
    y1 = (s + a * z1) % P
    y2 = (s + a * z2) % P
    assert line_through(z1, y1, z2, y2) == (s, a)
    assert interpolate_at_zero(z1, y1, z2, y2) == s
    many = interpolate_at_zero_many(
        np.array([z1, z2], dtype=np.uint64),
        np.array([y1, y2], dtype=np.uint64),
        np.array([z2, z1], dtype=np.uint64),
        np.array([y2, y1], dtype=np.uint64),
    )
    assert [int(v) for v in many] == [s, s]


def test_evaluate_shares_never_uses_zero() -> None:
    """Band j holds f(j + 1): no band stores f(0) = s."""
    secrets, slopes = random_lines(50, 2)
    shares = evaluate_shares(secrets, slopes, 7)
    assert shares.shape == (50, 7)
    for i in range(50):
        for j in range(7):
            assert int(shares[i, j]) == (int(secrets[i]) + int(slopes[i]) * (j + 1)) % P
        if int(slopes[i]):
            assert int(secrets[i]) not in {int(v) for v in shares[i]}


@given(st.lists(st.tuples(elements, elements), min_size=1, max_size=20), st.integers(1, 512))
def test_shares_at_one_point_equal_the_band_column(lines: list[tuple[int, int]], z: int) -> None:
    secrets = np.array([s for s, _ in lines], dtype=np.uint64)
    slopes = np.array([a for _, a in lines], dtype=np.uint64)
    column = evaluate_shares(secrets, slopes, z)[:, z - 1]
    assert (evaluate_shares_at(secrets, slopes, z) == column).all()
    assert evaluate_shares_at(secrets, slopes, z).tolist() == [(s + a * z) % P for s, a in lines]


def test_constant_lines_for_threshold_one() -> None:
    secrets, slopes = random_lines(20, 1)
    assert not slopes.any()
    assert (evaluate_shares(secrets, slopes, 1)[:, 0] == secrets).all()


def test_injected_randomness_reproduces_lines() -> None:
    first = random_lines(100, 2, _Stream(b"lines"))
    second = random_lines(100, 2, _Stream(b"lines"))
    assert (first[0] == second[0]).all()
    assert (first[1] == second[1]).all()
    assert int(first[0].max()) < P
    assert int(first[1].max()) < P


def test_rejection_sampling_redraws_the_modulus() -> None:
    """A lane equal to p is rejected and redrawn from the next 8 bytes."""
    raw = (P).to_bytes(8, "big") + (5).to_bytes(8, "big") + (P | 7 << 61).to_bytes(8, "big")
    stream = iter([raw[:16], raw[16:24], (9).to_bytes(8, "big")])
    got = random_field_elements(2, lambda n: next(stream))
    assert [int(v) for v in got] == [9, 5]


def test_trial_recovery_over_many_pairs() -> None:
    secrets, slopes = random_lines(1000, 2)
    shares = evaluate_shares(secrets, slopes, 384)
    rng = np.random.default_rng(1)
    j1 = rng.integers(0, 384, 1000)
    j2 = (j1 + rng.integers(1, 384, 1000)) % 384
    rows = np.arange(1000)
    got = interpolate_at_zero_many(
        (j1 + 1).astype(np.uint64), shares[rows, j1], (j2 + 1).astype(np.uint64), shares[rows, j2]
    )
    assert (got == secrets).all()


@pytest.mark.parametrize(
    "call",
    [
        lambda: add_mod(P, 1),
        lambda: mul_mod(-1, 1),
        lambda: field_inverse(0),
        lambda: line_through(3, 1, 3, 2),
        lambda: interpolate_at_zero(1, P, 2, 0),
        lambda: random_lines(3, 3),
        lambda: random_field_elements(-1),
        lambda: evaluate_shares(np.zeros(2, np.uint64), np.zeros(3, np.uint64), 2),
        lambda: evaluate_shares(np.zeros(2, np.uint64), np.zeros(2, np.uint64), 0),
        lambda: evaluate_shares_at(np.zeros(2, np.uint64), np.zeros(3, np.uint64), 1),
        lambda: evaluate_shares_at(np.zeros(2, np.uint64), np.zeros(2, np.uint64), 0),
        lambda: evaluate_shares_at(np.zeros(2, np.uint64), np.zeros(2, np.uint64), P),
        lambda: interpolate_at_zero_many(
            np.ones(1, np.uint64),
            np.ones(1, np.uint64),
            np.ones(1, np.uint64),
            np.ones(1, np.uint64),
        ),
    ],
    ids=[
        "add-out-of-field",
        "mul-negative",
        "inverse-of-zero",
        "same-point-line",
        "share-out-of-field",
        "threshold-3",
        "negative-count",
        "shape-mismatch",
        "zero-bands",
        "at-shape-mismatch",
        "at-zero",
        "at-modulus",
        "many-same-point",
    ],
)
def test_misuse_raises(call: object) -> None:
    with pytest.raises(InvalidParameter):
        call()  # type: ignore[operator]
