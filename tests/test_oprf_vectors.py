"""Every vector of tests/vectors/rfc9497-ristretto255-sha512.json (see tests/vectors/README.md).

RFC 9497 Appendix A.1 (all modes, single and batch, proofs byte-exact), RFC 9380 K.3
expand_message_xmd(SHA-512), RFC 9496 Appendix A (generator multiples, invalid encodings,
element derivation).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from blindmatch import errors
from blindmatch.psi import _sodium
from blindmatch.psi.group import GENERATOR, ORDER, Element, Scalar
from blindmatch.psi.hash_to_curve import expand_message_xmd, hash_to_ristretto255
from blindmatch.psi.oprf import (
    Mode,
    Proof,
    blind,
    blind_batch,
    blind_evaluate,
    blind_evaluate_batch,
    blind_evaluate_encoded,
    blind_evaluate_verifiable,
    context_string,
    derive_key_pair,
    evaluate,
    evaluate_batch,
    finalize,
    finalize_batch,
    finalize_verifiable,
    tweaked_key,
    verify_proof,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "rfc9497-ristretto255-sha512.json").read_text("utf-8")
)
H = bytes.fromhex


def _oprf_cases() -> list[Any]:
    cases = []
    for name, mode in VECTORS["modes"].items():
        for vector in mode["vectors"]:
            cases.append(
                pytest.param(
                    mode, vector, id=f"{name}-{vector['rfc9497_section']}-batch{vector['Batch']}"
                )
            )
    return cases


MODE_CASES = [pytest.param(m, id=name) for name, m in VECTORS["modes"].items()]
OPRF_CASES = _oprf_cases()


def test_suite_constants() -> None:
    assert VECTORS["suite"] == "ristretto255-SHA512"
    assert int(VECTORS["group_order"]) == ORDER
    assert GENERATOR.hex() == VECTORS["generator"]


@pytest.mark.parametrize("mode", MODE_CASES)
def test_context_string(mode: dict[str, Any]) -> None:
    assert context_string(Mode(mode["mode"])).hex() == mode["contextString"]


@pytest.mark.parametrize("mode", MODE_CASES)
def test_derive_key_pair(mode: dict[str, Any]) -> None:
    sk, pk = derive_key_pair(H(mode["Seed"]), H(mode["KeyInfo"]), Mode(mode["mode"]))
    assert bytes(sk).hex() == mode["skSm"]
    if "pkSm" in mode:
        assert pk.hex() == mode["pkSm"]


def _unpack(
    mode: dict[str, Any], vector: dict[str, Any]
) -> tuple[Mode, Scalar, Element, list[bytes], list[Scalar], bytes]:
    m = Mode(mode["mode"])
    sk, pk = derive_key_pair(H(mode["Seed"]), H(mode["KeyInfo"]), m)
    inputs = [H(x) for x in vector["Input"]]
    blinds = [Scalar.from_bytes(H(b)) for b in vector["Blind"]]
    info = H(vector.get("Info", ""))
    return m, sk, pk, inputs, blinds, info


@pytest.mark.parametrize(("mode", "vector"), OPRF_CASES)
def test_blind(mode: dict[str, Any], vector: dict[str, Any]) -> None:
    m, _, _, inputs, blinds, _ = _unpack(mode, vector)
    _, blinded = blind_batch(inputs, m, blinds=blinds)
    assert [e.hex() for e in blinded] == vector["BlindedElement"]
    for x, b, expected in zip(inputs, blinds, vector["BlindedElement"], strict=True):
        assert blind(x, m, blind=b)[1].hex() == expected


@pytest.mark.parametrize(("mode", "vector"), OPRF_CASES)
def test_blind_evaluate(mode: dict[str, Any], vector: dict[str, Any]) -> None:
    m, sk, _, _, _, info = _unpack(mode, vector)
    blinded = [Element.from_bytes(H(e)) for e in vector["BlindedElement"]]
    evaluated = blind_evaluate_batch(sk, blinded, m, info=info)
    assert [e.hex() for e in evaluated] == vector["EvaluationElement"]
    single = [blind_evaluate(sk, b, m, info=info).hex() for b in blinded]
    assert single == vector["EvaluationElement"]
    wire = blind_evaluate_encoded(sk, b"".join(map(bytes, blinded)), m, info=info)
    assert wire.hex() == "".join(vector["EvaluationElement"])


@pytest.mark.parametrize(("mode", "vector"), [c for c in OPRF_CASES if "Proof" in c.values[1]])
def test_blind_evaluate_proof(mode: dict[str, Any], vector: dict[str, Any]) -> None:
    m, sk, pk, inputs, blinds, info = _unpack(mode, vector)
    blinded = [Element.from_bytes(H(e)) for e in vector["BlindedElement"]]
    r = Scalar.from_bytes(H(vector["ProofRandomScalar"]))
    evaluated, proof = blind_evaluate_verifiable(sk, blinded, m, info=info, r=r)
    assert [e.hex() for e in evaluated] == vector["EvaluationElement"]
    assert bytes(proof).hex() == vector["Proof"]
    parsed = Proof.from_bytes(H(vector["Proof"]))
    assert parsed == proof
    if m is Mode.VOPRF:
        verify_proof(GENERATOR, pk, blinded, evaluated, parsed, m)
    else:
        verify_proof(GENERATOR, tweaked_key(pk, info), evaluated, blinded, parsed, m)
    outputs = finalize_verifiable(inputs, blinds, blinded, evaluated, parsed, pk, m, info=info)
    assert [o.hex() for o in outputs] == vector["Output"]


@pytest.mark.parametrize(("mode", "vector"), OPRF_CASES)
def test_finalize(mode: dict[str, Any], vector: dict[str, Any]) -> None:
    m, _, _, inputs, blinds, info = _unpack(mode, vector)
    evaluated = [Element.from_bytes(H(e)) for e in vector["EvaluationElement"]]
    outputs = finalize_batch(inputs, blinds, evaluated, m, info=info)
    assert [o.hex() for o in outputs] == vector["Output"]
    single = [
        finalize(x, b, e, m, info=info).hex()
        for x, b, e in zip(inputs, blinds, evaluated, strict=True)
    ]
    assert single == vector["Output"]


@pytest.mark.parametrize(("mode", "vector"), OPRF_CASES)
def test_evaluate(mode: dict[str, Any], vector: dict[str, Any]) -> None:
    m, sk, _, inputs, _, info = _unpack(mode, vector)
    assert [o.hex() for o in evaluate_batch(sk, inputs, m, info=info)] == vector["Output"]
    assert [evaluate(sk, x, m, info=info).hex() for x in inputs] == vector["Output"]


@pytest.mark.parametrize(("mode", "vector"), [c for c in OPRF_CASES if "Proof" in c.values[1]])
@pytest.mark.parametrize("half", ["c", "s"])
@pytest.mark.parametrize("position", [0, 17, 31])
def test_tampered_proof_rejected(
    mode: dict[str, Any], vector: dict[str, Any], half: str, position: int
) -> None:
    m, _, pk, inputs, blinds, info = _unpack(mode, vector)
    blinded = [Element.from_bytes(H(e)) for e in vector["BlindedElement"]]
    evaluated = [Element.from_bytes(H(e)) for e in vector["EvaluationElement"]]
    raw = bytearray(H(vector["Proof"]))
    raw[position + (32 if half == "s" else 0)] ^= 0x01
    tampered = Proof.from_bytes(bytes(raw))  # low bit flips keep these scalars canonical
    with pytest.raises(errors.VerifyError) as excinfo:
        finalize_verifiable(inputs, blinds, blinded, evaluated, tampered, pk, m, info=info)
    assert str(excinfo.value) == "proof verification failed"


EXPAND = VECTORS["rfc9380_expand_message_xmd_sha512"]


@pytest.mark.parametrize(
    "case",
    EXPAND["tests"],
    ids=[f"len{int(t['len_in_bytes'], 16)}-msg{len(t['msg'])}" for t in EXPAND["tests"]],
)
def test_expand_message_xmd(case: dict[str, str]) -> None:
    dst = EXPAND["DST"].encode()
    assert H(case["DST_prime"]) == dst + bytes((len(dst),))
    out = expand_message_xmd(case["msg"].encode(), dst, int(case["len_in_bytes"], 16))
    assert out.hex() == case["uniform_bytes"]


RISTRETTO = VECTORS["rfc9496_ristretto255"]


@pytest.mark.parametrize(
    ("multiple", "encoding"),
    list(enumerate(RISTRETTO["multiples_of_generator"])),
    ids=[f"{i}G" for i in range(len(RISTRETTO["multiples_of_generator"]))],
)
def test_generator_multiples(multiple: int, encoding: str) -> None:
    if multiple == 0:
        assert H(encoding) == _sodium.IDENTITY
        with pytest.raises(errors.InvalidElement):
            Element.from_bytes(H(encoding))
        with pytest.raises(errors.InvalidScalar):
            Scalar.from_int(0).multiply_base()
        return
    element = Scalar.from_int(multiple) * GENERATOR
    assert element.hex() == encoding
    assert Element.from_bytes(H(encoding)) == element
    assert Scalar.from_int(multiple).multiply_base() == element


@pytest.mark.parametrize(
    "encoding",
    RISTRETTO["invalid_encodings"],
    ids=[f"invalid{i:02d}" for i in range(len(RISTRETTO["invalid_encodings"]))],
)
def test_invalid_encodings_rejected(encoding: str) -> None:
    data = H(encoding)
    with pytest.raises(errors.InvalidElement):
        Element.from_bytes(data)
    assert not _sodium.is_valid_point(data)
    key = Scalar.from_int(7)
    with pytest.raises(errors.InvalidElement):
        blind_evaluate_encoded(key, bytes(GENERATOR) + data, Mode.OPRF)


@pytest.mark.parametrize(
    "case",
    RISTRETTO["element_derivation"],
    ids=[f"derive{i}" for i in range(len(RISTRETTO["element_derivation"]))],
)
def test_element_derivation(case: dict[str, str]) -> None:
    assert _sodium.from_hash(H(case["I"])).hex() == case["O"]


@pytest.mark.parametrize(
    "uniform",
    RISTRETTO["element_derivation_same_output"]["I"],
    ids=[f"same{i}" for i in range(len(RISTRETTO["element_derivation_same_output"]["I"]))],
)
def test_element_derivation_same_output(uniform: str) -> None:
    expected = RISTRETTO["element_derivation_same_output"]["O"]
    assert _sodium.from_hash(H(uniform)).hex() == expected


@pytest.mark.parametrize(("mode", "vector"), OPRF_CASES)
def test_hash_to_group_consistent_with_blind(mode: dict[str, Any], vector: dict[str, Any]) -> None:
    """HashToGroup(x) = blind^-1 * BlindedElement: the vectors pin hash_to_ristretto255."""
    m, _, _, inputs, blinds, _ = _unpack(mode, vector)
    dst = b"HashToGroup-" + context_string(m)
    assert H(mode["groupDST"]) == dst
    for x, b, expected in zip(inputs, blinds, vector["BlindedElement"], strict=True):
        point = hash_to_ristretto255(x, dst)
        assert (b.invert() * Element.from_bytes(H(expected))) == point
