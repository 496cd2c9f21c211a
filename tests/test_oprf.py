"""RFC 9497 functions beyond the vectors: differential checks, batch = single, negatives."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch import errors
from blindmatch.errors import InvalidArgument
from blindmatch.psi import oprf
from blindmatch.psi.group import GENERATOR, Element, Scalar
from blindmatch.psi.oprf import Mode, Proof
from blindmatch.psi.parallel import (
    SERIAL,
    OprfPool,
    ThreadedEvaluator,
    available_cores,
)

MODES = [pytest.param(m, id=m.name) for m in Mode]
inputs_strategy = st.lists(st.binary(max_size=80), min_size=1, max_size=5)
info_strategy = st.binary(max_size=40)


def key(mode: Mode) -> tuple[Scalar, Element]:
    return oprf.derive_key_pair(bytes(range(32)), b"tests", mode)


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=15, deadline=None)
@given(inputs=inputs_strategy, info=info_strategy)
def test_evaluate_equals_blind_evaluate_finalize(
    mode: Mode, inputs: list[bytes], info: bytes
) -> None:
    info = info if mode is Mode.POPRF else b""
    sk, pk = key(mode)
    direct = oprf.evaluate_batch(sk, inputs, mode, info=info)
    assert direct == [oprf.evaluate(sk, x, mode, info=info) for x in inputs]

    blinds, blinded = oprf.blind_batch(inputs, mode)
    evaluated = oprf.blind_evaluate_batch(sk, blinded, mode, info=info)
    assert oprf.finalize_batch(inputs, blinds, evaluated, mode, info=info) == direct
    single = [
        oprf.finalize(x, b, oprf.blind_evaluate(sk, e, mode, info=info), mode, info=info)
        for x, b, e in zip(inputs, blinds, blinded, strict=True)
    ]
    assert single == direct

    r, shared = oprf.blind_batch_shared(inputs, mode)
    wire = oprf.blind_evaluate_encoded(sk, b"".join(map(bytes, shared)), mode, info=info)
    answered = [Element.from_bytes(wire[i : i + 32]) for i in range(0, len(wire), 32)]
    assert oprf.finalize_batch_shared(inputs, r, answered, mode, info=info) == direct
    assert oprf.finalize_batch_shared_encoded(inputs, r, wire, mode, info=info) == direct
    # a shared blind is an ordinary RFC blind for every element
    each = [oprf.finalize(x, r, z, mode, info=info) for x, z in zip(inputs, answered, strict=True)]
    assert each == direct

    if mode is not Mode.OPRF:
        evaluated, proof = oprf.blind_evaluate_verifiable(sk, blinded, mode, info=info)
        outputs = oprf.finalize_verifiable(
            inputs, blinds, blinded, evaluated, proof, pk, mode, info=info
        )
        assert outputs == direct


@pytest.mark.parametrize("mode", MODES)
def test_modes_and_info_separate_outputs(mode: Mode) -> None:
    sk = Scalar.from_int(123456789)
    outputs = {oprf.evaluate(sk, b"x", m) for m in Mode}
    assert len(outputs) == 3
    if mode is Mode.POPRF:
        assert oprf.evaluate(sk, b"x", mode, info=b"a") != oprf.evaluate(sk, b"x", mode, info=b"b")


def test_blind_is_random_and_hides_input() -> None:
    b1, e1 = oprf.blind(b"same")
    b2, e2 = oprf.blind(b"same")
    assert b1 != b2
    assert e1 != e2
    assert e1 != oprf.hash_to_group(b"same")


def test_input_length_limits() -> None:
    sk = Scalar.from_int(7)
    longest = b"a" * oprf.MAX_INPUT_BYTES
    oprf.evaluate(sk, longest)
    too_long = longest + b"a"
    with pytest.raises(errors.InvalidInput):
        oprf.evaluate(sk, too_long)
    with pytest.raises(errors.InvalidInput):
        oprf.blind(too_long)
    with pytest.raises(errors.InvalidInput):
        oprf.hash_to_group(too_long)
    with pytest.raises(errors.InvalidInput):
        oprf.evaluate(sk, b"x", Mode.POPRF, info=too_long)
    with pytest.raises(errors.InvalidInput):
        oprf.derive_key_pair(bytes(32), too_long, Mode.OPRF)


@pytest.mark.parametrize("mode", [Mode.OPRF, Mode.VOPRF])
def test_info_only_in_poprf(mode: Mode) -> None:
    sk = Scalar.from_int(7)
    with pytest.raises(errors.InvalidInput, match="POPRF"):
        oprf.evaluate(sk, b"x", mode, info=b"i")
    with pytest.raises(errors.InvalidInput, match="POPRF"):
        oprf.blind_evaluate(sk, GENERATOR, mode, info=b"i")


@pytest.mark.parametrize("bad", ["text", None, 5, bytearray(b"x")])
def test_inputs_must_be_bytes(bad: object) -> None:
    sk = Scalar.from_int(7)
    with pytest.raises(TypeError):
        oprf.evaluate(sk, bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        oprf.blind_batch([b"ok", bad])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        oprf.blind_evaluate(sk, bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        oprf.blind_evaluate(bad, GENERATOR)  # type: ignore[arg-type]


def test_zero_key_and_zero_blind_rejected() -> None:
    zero = Scalar.from_bytes(bytes(32), allow_zero=True)
    with pytest.raises(errors.InvalidScalar):
        oprf.evaluate(zero, b"x")
    with pytest.raises(errors.InvalidScalar):
        oprf.blind(b"x", blind=zero)
    with pytest.raises(errors.InvalidScalar):
        oprf.blind_batch_shared([b"x"], blind=zero)
    with pytest.raises(errors.InverseError):
        oprf.finalize(b"x", zero, GENERATOR)
    with pytest.raises(errors.InverseError):
        oprf.finalize_batch_shared([b"x"], zero, [GENERATOR])


def test_poprf_key_cancelling_tweak_raises_inverse_error() -> None:
    m = oprf.poprf_tweak(b"info")
    sk = -m
    with pytest.raises(errors.InverseError):
        oprf.evaluate(sk, b"x", Mode.POPRF, info=b"info")
    with pytest.raises(errors.InvalidInput, match="identity"):
        oprf.tweaked_key(sk.multiply_base(), b"info")


def test_mismatched_batch_lengths() -> None:
    sk, pk = key(Mode.VOPRF)
    blinds, blinded = oprf.blind_batch([b"a", b"b"], Mode.VOPRF)
    evaluated, proof = oprf.blind_evaluate_verifiable(sk, blinded, Mode.VOPRF)
    with pytest.raises(InvalidArgument, match="differ in length"):
        oprf.finalize_batch([b"a"], blinds, evaluated, Mode.VOPRF)
    with pytest.raises(InvalidArgument, match="differ in length"):
        oprf.finalize_batch_shared([b"a"], blinds[0], evaluated, Mode.VOPRF)
    with pytest.raises(InvalidArgument, match="differ in length"):
        oprf.blind_batch([b"a", b"b"], blinds=blinds[:1])
    with pytest.raises(InvalidArgument, match="differ in length"):
        oprf.finalize_verifiable([b"a", b"b"], blinds, blinded[:1], evaluated, proof, pk)
    with pytest.raises(InvalidArgument, match="differ in length"):
        oprf.verify_proof(GENERATOR, pk, blinded, evaluated[:1], proof, Mode.VOPRF)
    with pytest.raises(InvalidArgument, match="at least one"):
        oprf.generate_proof(sk, GENERATOR, pk, [], [], Mode.VOPRF)


def test_wrong_public_key_fails_verification() -> None:
    sk, pk = key(Mode.VOPRF)
    other = Scalar.from_int(99).multiply_base()
    inputs = [b"a", b"b", b"c"]
    blinds, blinded = oprf.blind_batch(inputs, Mode.VOPRF)
    evaluated, proof = oprf.blind_evaluate_verifiable(sk, blinded, Mode.VOPRF)
    with pytest.raises(errors.VerifyError):
        oprf.finalize_verifiable(inputs, blinds, blinded, evaluated, proof, other)
    # evaluated with another key: the proof by the real key cannot cover it
    forged = oprf.blind_evaluate_batch(Scalar.from_int(99), blinded, Mode.VOPRF)
    with pytest.raises(errors.VerifyError):
        oprf.finalize_verifiable(inputs, blinds, blinded, forged, proof, pk)
    # one swapped evaluation
    swapped = [evaluated[1], evaluated[0], evaluated[2]]
    with pytest.raises(errors.VerifyError):
        oprf.finalize_verifiable(inputs, blinds, blinded, swapped, proof, pk)
    # the POPRF proof under another info
    psk, ppk = key(Mode.POPRF)
    pblinds, pblinded = oprf.blind_batch(inputs, Mode.POPRF)
    pevaluated, pproof = oprf.blind_evaluate_verifiable(psk, pblinded, Mode.POPRF, info=b"one")
    with pytest.raises(errors.VerifyError):
        oprf.finalize_verifiable(
            inputs, pblinds, pblinded, pevaluated, pproof, ppk, Mode.POPRF, info=b"two"
        )


def test_zero_proof_scalars_fail_cleanly() -> None:
    sk, pk = key(Mode.VOPRF)
    _, blinded = oprf.blind_batch([b"a"], Mode.VOPRF)
    evaluated = oprf.blind_evaluate_batch(sk, blinded, Mode.VOPRF)
    for raw in (bytes(64), bytes(32) + bytes(Scalar.from_int(1)), bytes(Scalar.from_int(1)) * 2):
        with pytest.raises(errors.VerifyError):
            oprf.verify_proof(GENERATOR, pk, blinded, evaluated, Proof.from_bytes(raw), Mode.VOPRF)


def test_proofs_only_in_verifiable_modes() -> None:
    sk, pk = key(Mode.OPRF)
    with pytest.raises(InvalidArgument, match="no proofs"):
        oprf.blind_evaluate_verifiable(sk, [GENERATOR], Mode.OPRF)
    with pytest.raises(InvalidArgument, match="no proofs"):
        oprf.finalize_verifiable(
            [b"a"], [sk], [GENERATOR], [GENERATOR], Proof(sk, sk), pk, Mode.OPRF
        )


@settings(max_examples=10, deadline=None)
@given(st.integers(min_value=1, max_value=6), st.sampled_from([Mode.VOPRF, Mode.POPRF]))
def test_proof_round_trip_and_composites(n: int, mode: Mode) -> None:
    k = Scalar.random()
    c = [Scalar.random().multiply_base() for _ in range(n)]
    d = [k * ci for ci in c]
    b = k.multiply_base()
    proof = oprf.generate_proof(k, GENERATOR, b, c, d, mode)
    oprf.verify_proof(GENERATOR, b, c, d, proof, mode)
    assert Proof.from_bytes(bytes(proof)) == proof
    m, z = oprf.compute_composites(b, c, d, mode)
    assert oprf.compute_composites_fast(k, b, c, d, mode) == (m, z)
    assert k * m == z
    other_mode = Mode.POPRF if mode is Mode.VOPRF else Mode.VOPRF
    with pytest.raises(errors.VerifyError):
        oprf.verify_proof(GENERATOR, b, c, d, proof, other_mode)


@pytest.mark.parametrize("length", [0, 32, 63, 65, 128])
def test_proof_wrong_length(length: int) -> None:
    with pytest.raises(errors.InvalidScalar):
        Proof.from_bytes(bytes(length))
    with pytest.raises(TypeError):
        Proof.from_bytes("00" * 64)  # type: ignore[arg-type]


def test_proof_non_canonical_halves_rejected() -> None:
    with pytest.raises(errors.InvalidScalar):
        Proof.from_bytes(b"\xff" * 32 + bytes(32))
    with pytest.raises(errors.InvalidScalar):
        Proof.from_bytes(bytes(32) + b"\xff" * 32)


def test_proof_is_immutable_and_printable() -> None:
    proof = Proof(Scalar.from_int(1), Scalar.from_int(2))
    assert repr(proof) == f"Proof({bytes(proof).hex()})"
    assert hash(proof) == hash(Proof.from_bytes(bytes(proof)))
    with pytest.raises(AttributeError):
        proof.c = Scalar.from_int(3)


def test_encoded_batch_validation() -> None:
    sk = Scalar.from_int(7)
    good = bytes(GENERATOR)
    assert oprf.blind_evaluate_encoded(sk, b"") == b""
    with pytest.raises(errors.InvalidEncoding):
        oprf.blind_evaluate_encoded(sk, good + b"\x00")
    with pytest.raises(errors.InvalidElement, match="element 1"):
        oprf.blind_evaluate_encoded(sk, good + bytes(32))
    with pytest.raises(TypeError):
        oprf.blind_evaluate_encoded(sk, bytearray(good))  # type: ignore[arg-type]


def test_encoded_answer_validation() -> None:
    r, blinded = oprf.blind_batch_shared([b"a", b"b"])
    answer = oprf.blind_evaluate_encoded(Scalar.from_int(7), b"".join(map(bytes, blinded)))
    with pytest.raises(InvalidArgument, match="differ in length"):
        oprf.finalize_batch_shared_encoded([b"a"], r, answer)
    with pytest.raises(InvalidArgument, match="differ in length"):
        oprf.finalize_batch_shared_encoded([b"a", b"b"], r, answer + bytes(32))
    with pytest.raises(errors.InvalidElement, match="element 1"):
        oprf.finalize_batch_shared_encoded([b"a", b"b"], r, answer[:32] + bytes(32))
    with pytest.raises(errors.InvalidElement, match="element 0"):
        oprf.finalize_batch_shared_encoded([b"a", b"b"], r, b"\xff" * 32 + answer[32:])
    with pytest.raises(TypeError):
        oprf.finalize_batch_shared_encoded([b"a", b"b"], r, bytearray(answer))  # type: ignore[arg-type]


def test_derive_key_pair_checks_seed() -> None:
    with pytest.raises(errors.InvalidEncoding):
        oprf.derive_key_pair(bytes(31), b"", Mode.OPRF)
    with pytest.raises(TypeError):
        oprf.derive_key_pair("a" * 32, b"", Mode.OPRF)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="mode"):
        oprf.derive_key_pair(bytes(32), b"", 7)  # type: ignore[arg-type]


def test_empty_batches() -> None:
    sk = Scalar.from_int(7)
    assert oprf.evaluate_batch(sk, []) == []
    assert oprf.blind_batch([]) == ([], [])
    assert oprf.finalize_batch([], [], []) == []
    assert oprf.blind_evaluate_batch(sk, []) == []


def test_parallel_results_equal_serial() -> None:
    sk, _ = key(Mode.POPRF)
    inputs = [i.to_bytes(4, "big") for i in range(90)]
    serial = oprf.evaluate_batch(sk, inputs, Mode.POPRF, info=b"epoch")
    with OprfPool(2, chunk=16) as pool:
        assert pool.processes == 2
        pool.warm_up()
        assert pool.evaluate_batch(sk, inputs, Mode.POPRF, info=b"epoch") == serial
    with pytest.raises(errors.LocalProtocolError):
        pool.evaluate_batch(sk, inputs)
    with pytest.raises(InvalidArgument, match="processes"):
        OprfPool(0)
    with pytest.raises(InvalidArgument, match="chunk"):
        OprfPool(1, chunk=0)
    assert 1 <= available_cores() <= (os.cpu_count() or 1)


def test_threaded_and_serial_evaluators_return_the_same_values() -> None:
    sk, _ = key(Mode.VOPRF)
    inputs = [i.to_bytes(4, "big") for i in range(600)]
    blinds = [Scalar.from_int(i + 2) for i in range(600)]
    with ThreadedEvaluator(2, min_chunk=64) as threaded:
        for evaluator in (SERIAL, threaded):
            blinded = evaluator.blind_batch(inputs, Mode.VOPRF, blinds=blinds)
            evaluated = evaluator.blind_evaluate_batch(sk, blinded, Mode.VOPRF)
            outputs = evaluator.finalize_batch(inputs, blinds, evaluated, Mode.VOPRF)
            assert all(isinstance(e, Element) for e in blinded + evaluated)
            assert outputs == oprf.evaluate_batch(sk, inputs, Mode.VOPRF)
        with pytest.raises(InvalidArgument):
            SERIAL.blind_batch(inputs, Mode.VOPRF, blinds=blinds[:-1])
