"""RFC 9497 oblivious pseudorandom functions, suite ristretto255-SHA512, all three modes.

Hazmat layer: functions carry the RFC names in Python style and take every random value
(blinds, the proof scalar ``r``) as an optional argument so that the RFC vectors drive them.
They validate types, lengths and group membership but hold no keys and keep no state.

Theory of operation
-------------------
Modes (RFC 9497 3): ``OPRF`` (0x00), ``VOPRF`` (0x01, the server proves with a batched DLEQ
proof that it used the key behind its public key ``pk = sk*G``), ``POPRF`` (0x02, as VOPRF
with a public ``info`` string bound into the key: ``t = sk + HashToScalar("Info" || len ||
info)`` and evaluation by ``t^-1``). The mode enters every hash through the context string
``"OPRFV1-" || I2OSP(mode, 1) || "-ristretto255-SHA512"``.

Single and batch forms:
  * ``blind`` / ``blind_batch``: one blind per input (RFC Blind).
  * ``blind_batch_shared`` / ``finalize_batch_shared``: ONE blind ``r`` for many inputs,
    ``B_j = r * HashToGroup(x_j)``, unblinded with a single ``r^-1``. Each output is still
    exactly the RFC ``Finalize(x_j, r, Z_j)``, so outputs equal ``evaluate(sk, x_j)``. Why
    it is safe: the server sees ``r*H_1, ..., r*H_L`` for hash points it cannot compute
    (it does not know the inputs); telling them apart from independent random points with
    independent blinds is the DDH problem in the group (the DH-PSI argument). What a
    shared blind gives up is unlinkability *within* the batch: the server may learn that
    the elements belong together, which batching tells it anyway.
  * ``blind_evaluate`` / ``blind_evaluate_batch``: server evaluation without proof;
    ``blind_evaluate_encoded`` the same on the raw concatenation of encoded elements, where
    libsodium's multiplication validates every element as it decodes it (no second decode).
  * ``blind_evaluate_verifiable``: RFC BlindEvaluate of VOPRF/POPRF, with a batched proof.
  * ``finalize_batch_shared_encoded``: ``finalize_batch_shared`` on encoded answer
    elements, unblinded and validated in one multiplication each.

Which of them the sessions use. :mod:`blindmatch.protocols` blinds each upload with its
own blind and decodes messages into typed elements, so it calls ``blind_batch`` (with the
blinds given), ``blind_evaluate_batch`` and ``finalize_batch``. The ``_shared`` and
``_encoded`` variants are not used by any session: they stay here, outside the
``blindmatch.psi`` package surface, because benchmarks/bench_oprf.py measures them as the
alternatives (one blind per batch, no decode) against which the sessions' choice was made,
and tests/test_oprf_vectors.py checks them against the RFC vectors.
  * ``finalize`` / ``finalize_batch``: unblind and hash. They do not verify a proof; in
    VOPRF/POPRF use ``finalize_verifiable`` (RFC Finalize: verify, then unblind) or call
    ``verify_proof`` yourself (the matching protocol audits proofs on demand).
  * ``evaluate`` / ``evaluate_batch``: the server's direct PRF, equal to the client's
    blind -> blind_evaluate -> finalize.

Outputs are the 64-byte RFC Finalize/Evaluate hashes. Inputs and ``info`` are bytes shorter
than 2^16 (their lengths are framed in two bytes); longer ones raise ``InvalidInput``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Sequence
from typing import Final, NoReturn, final

from blindmatch import errors
from blindmatch.psi import _sodium
from blindmatch.psi.group import ELEMENT_BYTES, GENERATOR, SCALAR_BYTES, Element, Scalar
from blindmatch.psi.hash_to_curve import (
    hash_to_ristretto255_encodings,
    hash_to_ristretto255_many,
    hash_to_scalar_encodings,
)
from blindmatch.psi.hash_to_curve import hash_to_scalar as _hash_to_scalar_dst

__all__ = [
    "MAX_INPUT_BYTES",
    "Mode",
    "NE",
    "NH",
    "NS",
    "Proof",
    "SUITE_ID",
    "blind",
    "blind_batch",
    "blind_batch_shared",
    "blind_evaluate",
    "blind_evaluate_batch",
    "blind_evaluate_encoded",
    "blind_evaluate_verifiable",
    "compute_composites",
    "compute_composites_fast",
    "context_string",
    "derive_key_pair",
    "evaluate",
    "evaluate_batch",
    "finalize",
    "finalize_batch",
    "finalize_batch_shared",
    "finalize_batch_shared_encoded",
    "finalize_verifiable",
    "generate_proof",
    "hash_to_group",
    "hash_to_scalar",
    "poprf_tweak",
    "tweaked_key",
    "verify_proof",
]

SUITE_ID: Final = "ristretto255-SHA512"
NE: Final = ELEMENT_BYTES
NS: Final = SCALAR_BYTES
NH: Final = 64
#: Inputs, info strings and key-derivation info are framed with a 2-byte length.
MAX_INPUT_BYTES: Final = 2**16 - 1
#: A proof's composite transcript frames the element index in 2 bytes.
MAX_PROOF_BATCH: Final = 2**16


class Mode(enum.IntEnum):
    """RFC 9497 3.1 protocol modes."""

    OPRF = 0x00
    VOPRF = 0x01
    POPRF = 0x02


def context_string(mode: Mode) -> bytes:
    """``"OPRFV1-" || I2OSP(mode, 1) || "-" || identifier`` (RFC 9497 3.1)."""
    return b"OPRFV1-" + bytes((Mode(mode),)) + b"-" + SUITE_ID.encode("ascii")


@final
class _Labels:
    """Per-mode domain separation tags, computed once."""

    __slots__ = ("derive_key_pair", "hash_to_group", "hash_to_scalar", "seed")

    def __init__(self, mode: Mode) -> None:
        ctx = context_string(mode)
        self.hash_to_group = b"HashToGroup-" + ctx
        self.hash_to_scalar = b"HashToScalar-" + ctx
        self.derive_key_pair = b"DeriveKeyPair" + ctx
        self.seed = b"Seed-" + ctx


_LABELS: Final = {mode: _Labels(mode) for mode in Mode}
_FINALIZE: Final = b"Finalize"
_NE_FRAME: Final = NE.to_bytes(2, "big")


def _mode(mode: Mode) -> Mode:
    try:
        return Mode(mode)
    except ValueError:
        raise errors.InvalidArgument("unknown RFC 9497 mode") from None


def _check_input(value: bytes, what: str) -> None:
    if type(value) is not bytes:
        raise TypeError(f"{what} must be bytes")
    if len(value) > MAX_INPUT_BYTES:
        raise errors.InvalidInput(f"{what} must be shorter than 2^16 bytes")


def _check_inputs(inputs: Sequence[bytes]) -> None:
    limit = MAX_INPUT_BYTES
    for x in inputs:
        if type(x) is not bytes:
            raise TypeError("every input must be bytes")
        if len(x) > limit:
            raise errors.InvalidInput("inputs must be shorter than 2^16 bytes")


def _check_info(mode: Mode, info: bytes) -> None:
    _check_input(info, "info")
    if mode is not Mode.POPRF and info:
        raise errors.InvalidInput("info is only used in POPRF mode")


def _check_type(value: object, cls: type, what: str) -> None:
    if not isinstance(value, cls):
        raise TypeError(f"{what} must be a {cls.__name__}")


def _check_same_length(*sequences: Sequence[object]) -> None:
    n = len(sequences[0])
    if any(len(s) != n for s in sequences):
        raise errors.InvalidArgument("batch arguments differ in length")


@final
class Proof:
    """A DLEQ proof ``(c, s)``, serialised as ``c || s`` (two 32-byte scalars, RFC 9497 2.2).

    Proof scalars are public; they may be zero in principle, so zero is accepted.
    """

    __slots__ = ("c", "s")
    c: Scalar
    s: Scalar

    def __init__(self, c: Scalar, s: Scalar) -> None:
        """Wrap the two scalars.

        Raises:
            TypeError: ``c`` or ``s`` is not a Scalar.
        """
        _check_type(c, Scalar, "c")
        _check_type(s, Scalar, "s")
        object.__setattr__(self, "c", c)
        object.__setattr__(self, "s", s)

    @classmethod
    def from_bytes(cls, data: bytes) -> Proof:
        """Decode ``c || s``.

        Raises:
            TypeError: ``data`` is not bytes.
            errors.InvalidScalar: not 64 bytes, or a half is not below the group order.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("proof must be bytes")
        raw = bytes(data)
        if len(raw) != 2 * NS:
            raise errors.InvalidScalar(f"a proof is {2 * NS} bytes")
        return cls(
            Scalar.from_bytes(raw[:NS], allow_zero=True),
            Scalar.from_bytes(raw[NS:], allow_zero=True),
        )

    def __bytes__(self) -> bytes:
        return bytes(self.c) + bytes(self.s)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Proof):
            return NotImplemented
        return hmac.compare_digest(bytes(self), bytes(other))

    def __hash__(self) -> int:
        return hash((Proof, bytes(self)))

    def __repr__(self) -> str:
        return f"Proof({bytes(self).hex()})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Proof is immutable")


# --------------------------------------------------------------------------- hashing


def hash_to_group(input: bytes, mode: Mode = Mode.OPRF) -> Element:
    """RFC 9497 HashToGroup: ``hash_to_ristretto255(input, "HashToGroup-" || contextString)``.

    Raises:
        TypeError: ``input`` is not bytes.
        errors.InvalidInput: the input is too long or hashes to the identity.
    """
    _check_input(input, "input")
    return hash_to_ristretto255_many([input], _LABELS[_mode(mode)].hash_to_group)[0]


def hash_to_scalar(data: bytes, mode: Mode = Mode.OPRF, *, dst: bytes | None = None) -> Scalar:
    """RFC 9497 HashToScalar, with the default DST ``"HashToScalar-" || contextString``.

    Returns:
        The scalar (zero with negligible probability).

    Raises:
        TypeError: ``data`` or ``dst`` is not bytes.
    """
    return _hash_to_scalar_dst(data, _LABELS[_mode(mode)].hash_to_scalar if dst is None else dst)


def derive_key_pair(seed: bytes, info: bytes, mode: Mode) -> tuple[Scalar, Element]:
    """RFC 9497 3.2.1 DeriveKeyPair.

    Args:
        seed: 32 bytes of secret, uniform randomness.
        info: public key-derivation info, shorter than 2^16 bytes.
        mode: the protocol mode (it enters the DST).

    Returns:
        ``(sk, pk)``.

    Raises:
        TypeError: ``seed`` or ``info`` is not bytes.
        errors.InvalidEncoding: ``seed`` is not 32 bytes.
        errors.InvalidInput: ``info`` is too long.
        errors.DeriveKeyPairError: 256 counters all gave zero (probability ~2^-2000).
    """
    if type(seed) is not bytes:
        raise TypeError("seed must be bytes")
    if len(seed) != NS:
        raise errors.InvalidEncoding(f"seed must be {NS} bytes")
    _check_input(info, "info")
    dst = _LABELS[_mode(mode)].derive_key_pair
    derive_input = seed + len(info).to_bytes(2, "big") + info
    for counter in range(256):
        sk = _hash_to_scalar_dst(derive_input + bytes((counter,)), dst)
        if not sk.is_zero():
            return sk, sk.multiply_base()
    raise errors.DeriveKeyPairError("no non-zero scalar in 256 attempts")


def poprf_tweak(info: bytes) -> Scalar:
    """``m = HashToScalar("Info" || I2OSP(len(info), 2) || info)`` of POPRF (RFC 9497 3.3.3).

    Raises:
        TypeError: ``info`` is not bytes.
        errors.InvalidInput: ``info`` is too long.
    """
    _check_input(info, "info")
    framed = b"Info" + len(info).to_bytes(2, "big") + info
    return _hash_to_scalar_dst(framed, _LABELS[Mode.POPRF].hash_to_scalar)


def tweaked_key(pk: Element, info: bytes) -> Element:
    """The POPRF client's ``tweakedKey = m*G + pk`` (RFC 9497 3.3.3 Blind).

    Raises:
        TypeError: ``pk`` is not an Element or ``info`` is not bytes.
        errors.InvalidInput: ``info`` is too long, or the tweaked key is the identity.
    """
    _check_type(pk, Element, "pk")
    m = poprf_tweak(info)
    if m.is_zero():
        return pk
    try:
        return m.multiply_base() + pk
    except errors.InvalidElement:
        raise errors.InvalidInput("the tweaked key is the identity") from None


def _evaluation_scalar(sk: Scalar, mode: Mode, info: bytes) -> Scalar:
    """The scalar the server multiplies by: ``sk``, or ``(sk + m)^-1`` in POPRF."""
    _check_type(sk, Scalar, "sk")
    if sk.is_zero():
        raise errors.InvalidScalar("the secret key must not be zero")
    _check_info(mode, info)
    if mode is Mode.POPRF:
        t = sk + poprf_tweak(info)
        return t.invert()  # InverseError if sk + m == 0
    return sk


# --------------------------------------------------------------------------- client: blind


def blind(
    input: bytes,
    mode: Mode = Mode.OPRF,
    *,
    blind: Scalar | None = None,
) -> tuple[Scalar, Element]:
    """RFC 9497 Blind: ``(blind, blind * HashToGroup(input))``.

    For POPRF the client also needs :func:`tweaked_key` (RFC Blind returns it too).

    Args:
        input: the private input, shorter than 2^16 bytes.
        mode: the protocol mode.
        blind: the blind; a fresh random scalar when omitted (tests pass the vectors').

    Returns:
        ``(blind, blinded_element)``.

    Raises:
        TypeError: wrong argument types.
        errors.InvalidScalar: ``blind`` is zero.
        errors.InvalidInput: the input is too long or hashes to the identity.
    """
    blinds, blinded = blind_batch([input], mode, blinds=None if blind is None else [blind])
    return blinds[0], blinded[0]


def _random_scalars(n: int) -> list[Scalar]:
    trusted = Scalar._trusted
    return [trusted(s) for s in _sodium.scalar_random_many(n)]


def blind_batch(
    inputs: Sequence[bytes],
    mode: Mode = Mode.OPRF,
    *,
    blinds: Sequence[Scalar] | None = None,
) -> tuple[list[Scalar], list[Element]]:
    """RFC 9497 Blind of every input, each with its own blind.

    Raises:
        TypeError: wrong argument types.
        InvalidArgument: ``blinds`` and ``inputs`` differ in length.
        errors.InvalidScalar: a blind is zero.
        errors.InvalidInput: an input is too long or hashes to the identity.
    """
    mode = _mode(mode)
    _check_inputs(inputs)
    if blinds is None:
        chosen = _random_scalars(len(inputs))
    else:
        _check_same_length(inputs, blinds)
        for b in blinds:
            _check_type(b, Scalar, "blind")
            if b.is_zero():
                raise errors.InvalidScalar("a blind must not be zero")
        chosen = list(blinds)
    points = hash_to_ristretto255_encodings(inputs, _LABELS[mode].hash_to_group)
    blinded = _sodium.scalarmult_pairs([s._encoding for s in chosen], points)
    trusted = Element._trusted
    return chosen, [trusted(b) for b in blinded]


def blind_batch_shared(
    inputs: Sequence[bytes],
    mode: Mode = Mode.OPRF,
    *,
    blind: Scalar | None = None,
) -> tuple[Scalar, list[Element]]:
    """Blind every input with ONE blind ``r``: ``B_j = r * HashToGroup(x_j)``.

    Each ``(r, B_j)`` is exactly an RFC 9497 Blind output, so the outputs of
    :func:`finalize_batch_shared` equal ``evaluate(sk, x_j)``. See the module docstring for
    why a shared blind is safe (DDH) and what it gives up (linkability within the batch).

    Raises:
        TypeError: wrong argument types.
        errors.InvalidScalar: ``blind`` is zero.
        errors.InvalidInput: an input is too long or hashes to the identity.
    """
    mode = _mode(mode)
    _check_inputs(inputs)
    if blind is None:
        r = Scalar.random()
    else:
        _check_type(blind, Scalar, "blind")
        if blind.is_zero():
            raise errors.InvalidScalar("the blind must not be zero")
        r = blind
    points = hash_to_ristretto255_encodings(inputs, _LABELS[mode].hash_to_group)
    blinded = _sodium.scalarmult_many(r._encoding, points)
    trusted = Element._trusted
    return r, [trusted(b) for b in blinded]


# --------------------------------------------------------------------------- server


def blind_evaluate(
    sk: Scalar, blinded: Element, mode: Mode = Mode.OPRF, *, info: bytes = b""
) -> Element:
    """RFC 9497 BlindEvaluate without a proof: ``sk * B`` (POPRF: ``(sk + m)^-1 * B``).

    Raises:
        TypeError: wrong argument types.
        errors.InvalidScalar: ``sk`` is zero.
        errors.InvalidInput: ``info`` is given outside POPRF, or too long.
        errors.InverseError: POPRF with ``sk + m == 0``.
    """
    return blind_evaluate_batch(sk, [blinded], mode, info=info)[0]


def blind_evaluate_batch(
    sk: Scalar, blinded: Sequence[Element], mode: Mode = Mode.OPRF, *, info: bytes = b""
) -> list[Element]:
    """:func:`blind_evaluate` of every element, one scalar (and POPRF inversion) per batch.

    Raises:
        as :func:`blind_evaluate`.
    """
    mode = _mode(mode)
    k = _evaluation_scalar(sk, mode, info)
    for b in blinded:
        _check_type(b, Element, "blinded element")
    evaluated = _sodium.scalarmult_many(k._encoding, [b._encoding for b in blinded])
    trusted = Element._trusted
    return [trusted(e) for e in evaluated]


def blind_evaluate_encoded(
    sk: Scalar, blinded: bytes, mode: Mode = Mode.OPRF, *, info: bytes = b""
) -> bytes:
    """Evaluate a concatenation of blinded-element encodings (benchmarked; no session uses it).

    Every element is decoded and validated (canonical, in the group, not the identity) by
    the multiplication itself, so a peer's batch costs one libsodium call per element and
    no separate decode. The answer is the concatenation of the evaluated elements.

    Args:
        sk: the secret key.
        blinded: ``32 * n`` bytes as received.
        mode: the protocol mode.
        info: POPRF info.

    Returns:
        ``32 * n`` bytes.

    Raises:
        TypeError: ``blinded`` is not bytes.
        errors.InvalidEncoding: ``blinded`` is not a whole number of elements.
        errors.InvalidElement: an element is invalid (its index is named, its bytes never).
        errors.InvalidScalar, errors.InvalidInput, errors.InverseError: as
            :func:`blind_evaluate`.
    """
    mode = _mode(mode)
    k = _evaluation_scalar(sk, mode, info)
    return _sodium.scalarmult_concat(k._encoding, blinded)


def blind_evaluate_verifiable(
    sk: Scalar,
    blinded: Sequence[Element],
    mode: Mode = Mode.VOPRF,
    *,
    info: bytes = b"",
    r: Scalar | None = None,
) -> tuple[list[Element], Proof]:
    """RFC 9497 BlindEvaluate of VOPRF (3.3.2) and POPRF (3.3.3), batched, with one proof.

    VOPRF proves ``DLEQ(G, pk; B_i, Z_i)``; POPRF proves ``DLEQ(G, t*G; Z_i, B_i)`` with
    ``t = sk + m`` (the argument order of the RFC).

    Args:
        sk: the secret key.
        blinded: the blinded elements (at most 2^16 for one proof).
        mode: ``Mode.VOPRF`` or ``Mode.POPRF``.
        info: POPRF info.
        r: the proof's random scalar; fresh when omitted.

    Returns:
        ``(evaluated_elements, proof)``.

    Raises:
        InvalidArgument: ``mode`` is OPRF, or the batch is empty.
        errors.InvalidInput: the batch is too large for one proof, or ``info`` is bad.
        errors.InverseError: POPRF with ``sk + m == 0``.
    """
    mode = _mode(mode)
    if mode is Mode.OPRF:
        raise errors.InvalidArgument("OPRF mode has no proofs; use blind_evaluate_batch")
    evaluated = blind_evaluate_batch(sk, blinded, mode, info=info)
    if mode is Mode.VOPRF:
        proof = generate_proof(sk, GENERATOR, sk.multiply_base(), blinded, evaluated, mode, r=r)
    else:
        t = sk + poprf_tweak(info)
        proof = generate_proof(t, GENERATOR, t.multiply_base(), evaluated, blinded, mode, r=r)
    return evaluated, proof


# --------------------------------------------------------------------------- client: finalize


def _finalize_hashes(
    inputs: Sequence[bytes], unblinded: Sequence[bytes], mode: Mode, info: bytes
) -> list[bytes]:
    """The RFC Finalize/Evaluate hash of every (input, unblinded element) pair."""
    middle = _NE_FRAME
    if mode is Mode.POPRF:
        middle = len(info).to_bytes(2, "big") + info + _NE_FRAME
    sha512 = hashlib.sha512
    tail = _FINALIZE
    return [
        sha512(len(x).to_bytes(2, "big") + x + middle + z + tail).digest()
        for x, z in zip(inputs, unblinded, strict=True)
    ]


def finalize(
    input: bytes,
    blind: Scalar,
    evaluated: Element,
    mode: Mode = Mode.OPRF,
    *,
    info: bytes = b"",
) -> bytes:
    """RFC 9497 Finalize, without proof verification: ``Hash(... input ... blind^-1 * Z ...)``.

    In VOPRF/POPRF verify the proof first (:func:`finalize_verifiable` does both).

    Args:
        input: the private input.
        blind: the blind used for it.
        evaluated: the server's evaluated element.
        mode: the protocol mode.
        info: POPRF info.

    Returns:
        The 64-byte PRF output.

    Raises:
        TypeError: wrong argument types.
        errors.InverseError: ``blind`` is zero.
        errors.InvalidInput: ``input`` or ``info`` is bad.
    """
    return finalize_batch([input], [blind], [evaluated], mode, info=info)[0]


def finalize_batch(
    inputs: Sequence[bytes],
    blinds: Sequence[Scalar],
    evaluated: Sequence[Element],
    mode: Mode = Mode.OPRF,
    *,
    info: bytes = b"",
) -> list[bytes]:
    """:func:`finalize` of every input; all blinds inverted with one inversion.

    Raises:
        InvalidArgument: the sequences differ in length.
        otherwise as :func:`finalize`.
    """
    mode = _mode(mode)
    _check_inputs(inputs)
    _check_info(mode, info)
    _check_same_length(inputs, blinds, evaluated)
    for b in blinds:
        _check_type(b, Scalar, "blind")
    for e in evaluated:
        _check_type(e, Element, "evaluated element")
    inverses = _sodium.scalar_invert_many([b._encoding for b in blinds])
    unblinded = _sodium.scalarmult_pairs(inverses, [e._encoding for e in evaluated])
    return _finalize_hashes(inputs, unblinded, mode, info)


def finalize_batch_shared(
    inputs: Sequence[bytes],
    blind: Scalar,
    evaluated: Sequence[Element],
    mode: Mode = Mode.OPRF,
    *,
    info: bytes = b"",
) -> list[bytes]:
    """Finalize a batch blinded with one ``blind`` (:func:`blind_batch_shared`): one ``r^-1``.

    Raises:
        InvalidArgument: ``inputs`` and ``evaluated`` differ in length.
        otherwise as :func:`finalize`.
    """
    mode = _mode(mode)
    _check_inputs(inputs)
    _check_info(mode, info)
    _check_same_length(inputs, evaluated)
    _check_type(blind, Scalar, "blind")
    for e in evaluated:
        _check_type(e, Element, "evaluated element")
    inverse = blind.invert()
    unblinded = _sodium.scalarmult_many(inverse._encoding, [e._encoding for e in evaluated])
    return _finalize_hashes(inputs, unblinded, mode, info)


def finalize_batch_shared_encoded(
    inputs: Sequence[bytes],
    blind: Scalar,
    evaluated: bytes,
    mode: Mode = Mode.OPRF,
    *,
    info: bytes = b"",
) -> list[bytes]:
    """:func:`finalize_batch_shared` on the server's answer as received (wire bytes).

    The client's counterpart of :func:`blind_evaluate_encoded`: each evaluated element is
    decoded and validated by the unblinding multiplication itself, so a peer's answer is
    not decoded twice.

    Args:
        inputs: the private inputs, in the order they were blinded.
        blind: the shared blind.
        evaluated: ``32 * len(inputs)`` bytes as received.
        mode: the protocol mode.
        info: POPRF info.

    Returns:
        The 64-byte outputs.

    Raises:
        TypeError: ``evaluated`` is not bytes.
        InvalidArgument: ``evaluated`` does not hold ``len(inputs)`` elements.
        errors.InvalidElement: an evaluated element is invalid (index named, bytes never).
        otherwise as :func:`finalize`.
    """
    mode = _mode(mode)
    _check_inputs(inputs)
    _check_info(mode, info)
    _check_type(blind, Scalar, "blind")
    if type(evaluated) is not bytes:
        raise TypeError("evaluated must be bytes")
    if len(evaluated) != NE * len(inputs):
        raise errors.InvalidArgument("batch arguments differ in length")
    unblinded = _sodium.scalarmult_concat(blind.invert()._encoding, evaluated)
    pieces = [unblinded[i : i + NE] for i in range(0, len(unblinded), NE)]
    return _finalize_hashes(inputs, pieces, mode, info)


def finalize_verifiable(
    inputs: Sequence[bytes],
    blinds: Sequence[Scalar],
    blinded: Sequence[Element],
    evaluated: Sequence[Element],
    proof: Proof,
    pk: Element,
    mode: Mode = Mode.VOPRF,
    *,
    info: bytes = b"",
) -> list[bytes]:
    """RFC 9497 Finalize of VOPRF/POPRF for a batch: verify the proof, then unblind and hash.

    Args:
        inputs: the private inputs.
        blinds: their blinds.
        blinded: the blinded elements sent.
        evaluated: the evaluated elements received.
        proof: the server's proof.
        pk: the server's public key (POPRF: the key itself; the tweak is applied here).
        mode: ``Mode.VOPRF`` or ``Mode.POPRF``.
        info: POPRF info.

    Returns:
        The 64-byte outputs.

    Raises:
        errors.VerifyError: the proof does not verify.
        InvalidArgument: OPRF mode, or lengths differ.
        errors.InvalidInput: POPRF tweaked key is the identity, or bad input/info.
    """
    mode = _mode(mode)
    if mode is Mode.OPRF:
        raise errors.InvalidArgument("OPRF mode has no proofs; use finalize_batch")
    _check_same_length(inputs, blinds, blinded, evaluated)
    if mode is Mode.VOPRF:
        verify_proof(GENERATOR, pk, blinded, evaluated, proof, mode)
    else:
        verify_proof(GENERATOR, tweaked_key(pk, info), evaluated, blinded, proof, mode)
    return finalize_batch(inputs, blinds, evaluated, mode, info=info)


# --------------------------------------------------------------------------- server: evaluate


def evaluate(sk: Scalar, input: bytes, mode: Mode = Mode.OPRF, *, info: bytes = b"") -> bytes:
    """RFC 9497 Evaluate: the server's direct PRF on an input it knows.

    Raises:
        TypeError: wrong argument types.
        errors.InvalidScalar: ``sk`` is zero.
        errors.InvalidInput: bad input or info, or the input hashes to the identity.
        errors.InverseError: POPRF with ``sk + m == 0``.
    """
    return evaluate_batch(sk, [input], mode, info=info)[0]


def evaluate_batch(
    sk: Scalar, inputs: Sequence[bytes], mode: Mode = Mode.OPRF, *, info: bytes = b""
) -> list[bytes]:
    """:func:`evaluate` of every input, with per-batch work (POPRF inversion) done once.

    Raises:
        as :func:`evaluate`.
    """
    mode = _mode(mode)
    k = _evaluation_scalar(sk, mode, info)
    _check_inputs(inputs)
    points = hash_to_ristretto255_encodings(inputs, _LABELS[mode].hash_to_group)
    issued = _sodium.scalarmult_many(k._encoding, points)
    return _finalize_hashes(inputs, issued, mode, info)


# --------------------------------------------------------------------------- proofs


def _check_proof_batch(b: Element, c: Sequence[Element], d: Sequence[Element]) -> None:
    _check_type(b, Element, "B")
    _check_same_length(c, d)
    if not c:
        raise errors.InvalidArgument("a proof covers at least one element")
    if len(c) > MAX_PROOF_BATCH:
        raise errors.InvalidInput("a proof covers at most 2^16 elements")
    for e in c:
        _check_type(e, Element, "element")
    for e in d:
        _check_type(e, Element, "element")


def _composite_scalars(
    b: Element, c: Sequence[Element], d: Sequence[Element], mode: Mode
) -> list[bytes]:
    """The ``d_i`` of RFC 9497 2.2.1 ComputeComposites, as scalar encodings."""
    labels = _LABELS[mode]
    bm = bytes(b)
    seed_transcript = NE.to_bytes(2, "big") + bm + len(labels.seed).to_bytes(2, "big") + labels.seed
    seed = hashlib.sha512(seed_transcript).digest()
    prefix = NH.to_bytes(2, "big") + seed
    transcripts = [
        prefix
        + i.to_bytes(2, "big")
        + _NE_FRAME
        + ci._encoding
        + _NE_FRAME
        + di._encoding
        + b"Composite"
        for i, (ci, di) in enumerate(zip(c, d, strict=True))
    ]
    return hash_to_scalar_encodings(transcripts, labels.hash_to_scalar)


def _weighted_sum(weights: Sequence[bytes], points: Sequence[Element]) -> bytes:
    """``sum w_i * P_i`` as an encoding (the identity allowed)."""
    return _sodium.sum_of_products(weights, [p._encoding for p in points])


def _as_element(encoding: bytes) -> Element:
    if encoding == _sodium.IDENTITY:
        raise errors.InvalidElement("a composite element is the identity")
    return Element._trusted(encoding)


def compute_composites(
    b: Element, c: Sequence[Element], d: Sequence[Element], mode: Mode
) -> tuple[Element, Element]:
    """RFC 9497 2.2.1 ComputeComposites: ``(M, Z) = (sum d_i C_i, sum d_i D_i)``.

    Raises:
        InvalidArgument: ``c`` and ``d`` differ in length or are empty.
        errors.InvalidElement: a composite is the identity (negligible for honest input).
    """
    mode = _mode(mode)
    _check_proof_batch(b, c, d)
    weights = _composite_scalars(b, c, d, mode)
    return _as_element(_weighted_sum(weights, c)), _as_element(_weighted_sum(weights, d))


def compute_composites_fast(
    k: Scalar, b: Element, c: Sequence[Element], d: Sequence[Element], mode: Mode
) -> tuple[Element, Element]:
    """RFC 9497 2.2.1 ComputeCompositesFast: ``M`` as above, ``Z = k * M`` (prover only).

    Raises:
        as :func:`compute_composites`.
    """
    mode = _mode(mode)
    _check_type(k, Scalar, "k")
    _check_proof_batch(b, c, d)
    weights = _composite_scalars(b, c, d, mode)
    m = _as_element(_weighted_sum(weights, c))
    return m, k * m


def _challenge(b: Element, m: Element, z: Element, t2: Element, t3: Element, mode: Mode) -> Scalar:
    frame = _NE_FRAME
    transcript = b"".join(frame + e._encoding for e in (b, m, z, t2, t3)) + b"Challenge"
    return _hash_to_scalar_dst(transcript, _LABELS[mode].hash_to_scalar)


def generate_proof(
    k: Scalar,
    a: Element,
    b: Element,
    c: Sequence[Element],
    d: Sequence[Element],
    mode: Mode,
    *,
    r: Scalar | None = None,
) -> Proof:
    """RFC 9497 2.2.1 GenerateProof: prove ``b = k*a`` and ``d_i = k*c_i`` for all i.

    Args:
        k: the secret exponent.
        a, b: ``b = k * a``.
        c, d: ``d_i = k * c_i``.
        mode: the protocol mode (it enters the transcript's DSTs).
        r: the random scalar; fresh when omitted.

    Returns:
        The proof ``(c, s)``.

    Raises:
        TypeError: wrong argument types.
        InvalidArgument: ``c`` and ``d`` differ in length or are empty.
        errors.InvalidScalar: ``r`` or ``k`` is zero.
    """
    mode = _mode(mode)
    _check_type(k, Scalar, "k")
    _check_type(a, Element, "A")
    if r is None:
        r = Scalar.random()
    _check_type(r, Scalar, "r")
    m, z = compute_composites_fast(k, b, c, d, mode)
    t2 = r * a
    t3 = r * m
    challenge = _challenge(b, m, z, t2, t3, mode)
    return Proof(challenge, r - challenge * k)


def verify_proof(
    a: Element,
    b: Element,
    c: Sequence[Element],
    d: Sequence[Element],
    proof: Proof,
    mode: Mode,
) -> None:
    """RFC 9497 2.2.2 VerifyProof.

    Raises:
        TypeError: wrong argument types.
        InvalidArgument: ``c`` and ``d`` differ in length or are empty.
        errors.VerifyError: the proof does not verify (no detail, by design).
    """
    mode = _mode(mode)
    _check_type(a, Element, "A")
    _check_type(proof, Proof, "proof")
    try:
        m, z = compute_composites(b, c, d, mode)
        t2 = _as_element(_sodium.add(_mul_or_identity(proof.s, a), _mul_or_identity(proof.c, b)))
        t3 = _as_element(_sodium.add(_mul_or_identity(proof.s, m), _mul_or_identity(proof.c, z)))
        expected = _challenge(b, m, z, t2, t3, mode)
    except (errors.InvalidElement, errors.InvalidScalar):
        raise errors.VerifyError("proof verification failed") from None
    if not hmac.compare_digest(bytes(expected), bytes(proof.c)):
        raise errors.VerifyError("proof verification failed")


def _mul_or_identity(s: Scalar, p: Element) -> bytes:
    if s.is_zero():
        return _sodium.IDENTITY
    return _sodium.scalarmult(s._encoding, p._encoding)
