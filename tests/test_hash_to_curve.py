"""expand_message_xmd beyond the RFC 9380 K.3 vectors: long DSTs, long outputs, bounds.

The reference below transcribes RFC 9380 5.3.1 and 5.3.3 line by line (no precomputed
state, no shortcuts) and serves as a differential oracle for the optimised implementation.
RFC 9380 publishes no SHA-512 vectors with an oversize DST, so the rule is checked this way.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch.errors import InvalidArgument
from blindmatch.psi import oprf
from blindmatch.psi.group import ORDER, Element
from blindmatch.psi.hash_to_curve import (
    expand_message_xmd,
    hash_to_ristretto255,
    hash_to_ristretto255_many,
    hash_to_scalar,
    hash_to_scalar_many,
)


def reference_expand(msg: bytes, dst: bytes, length: int) -> bytes:
    if len(dst) > 255:
        dst = hashlib.sha512(b"H2C-OVERSIZE-DST-" + dst).digest()
    ell = (length + 63) // 64
    assert ell <= 255
    assert length <= 65535
    dst_prime = dst + len(dst).to_bytes(1, "big")
    z_pad = bytes(128)
    l_i_b_str = length.to_bytes(2, "big")
    msg_prime = z_pad + msg + l_i_b_str + (0).to_bytes(1, "big") + dst_prime
    b = [hashlib.sha512(msg_prime).digest()]
    b.append(hashlib.sha512(b[0] + (1).to_bytes(1, "big") + dst_prime).digest())
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b[0], b[i - 1], strict=True))
        b.append(hashlib.sha512(mixed + i.to_bytes(1, "big") + dst_prime).digest())
    return b"".join(b[1:])[:length]


@settings(max_examples=60, deadline=None)
@given(
    msg=st.binary(max_size=300),
    dst=st.binary(min_size=1, max_size=600),
    length=st.integers(min_value=1, max_value=600),
)
def test_expand_matches_rfc_transcription(msg: bytes, dst: bytes, length: int) -> None:
    assert expand_message_xmd(msg, dst, length) == reference_expand(msg, dst, length)


@pytest.mark.parametrize("dst_length", [255, 256, 1000])
def test_oversize_dst_rule(dst_length: int) -> None:
    dst = b"D" * dst_length
    out = expand_message_xmd(b"abc", dst, 64)
    assert out == reference_expand(b"abc", dst, 64)
    hashed = hashlib.sha512(b"H2C-OVERSIZE-DST-" + dst).digest()
    if dst_length > 255:
        assert out == expand_message_xmd(b"abc", hashed, 64)
    else:
        assert out != expand_message_xmd(b"abc", hashed, 64)


@pytest.mark.parametrize("length", [0, -1, 255 * 64 + 1, 65536])
def test_expand_length_bounds(length: int) -> None:
    with pytest.raises(InvalidArgument, match="length"):
        expand_message_xmd(b"", b"DST", length)


def test_expand_largest_length() -> None:
    assert len(expand_message_xmd(b"", b"DST", 255 * 64)) == 255 * 64


@pytest.mark.parametrize("bad", ["text", None, bytearray(b"x")])
def test_expand_types(bad: object) -> None:
    with pytest.raises(TypeError):
        expand_message_xmd(bad, b"DST", 32)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        expand_message_xmd(b"", bad, 32)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hash_to_ristretto255_many([b"", bad], b"DST")  # type: ignore[list-item]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=5), st.binary(min_size=1, max_size=300))
def test_batch_hashes_equal_single(msgs: list[bytes], dst: bytes) -> None:
    points = hash_to_ristretto255_many(msgs, dst)
    assert points == [hash_to_ristretto255(m, dst) for m in msgs]
    assert all(isinstance(p, Element) for p in points)
    scalars = hash_to_scalar_many(msgs, dst)
    assert scalars == [hash_to_scalar(m, dst) for m in msgs]
    for m, s in zip(msgs, scalars, strict=True):
        wide = int.from_bytes(reference_expand(m, dst, 64), "little")
        assert int.from_bytes(bytes(s), "little") == wide % ORDER


def test_oprf_hash_to_scalar_uses_the_mode_dst() -> None:
    for mode in oprf.Mode:
        dst = b"HashToScalar-" + oprf.context_string(mode)
        assert oprf.hash_to_scalar(b"x", mode) == hash_to_scalar(b"x", dst)
    assert oprf.hash_to_scalar(b"x", dst=b"other") == hash_to_scalar(b"x", b"other")
