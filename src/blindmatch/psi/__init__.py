"""The cryptography of private matching: ristretto255, RFC 9497 (V/P)OPRF, DLEQ proofs,
band encodings and the index. Knows nothing of HTTP, storage or fingerprinting.

The submodules hold the details: ``group`` (``Element``, ``Scalar``), ``hash_to_curve``
(RFC 9380), ``oprf`` (RFC 9497, hazmat: every random value is an argument), ``keys`` (key
material, epochs, serialisation). ``_sodium`` is the only binding of libsodium.
"""

from __future__ import annotations

from blindmatch.psi.group import GENERATOR, ORDER, Element, Scalar
from blindmatch.psi.oprf import (
    SUITE_ID,
    Mode,
    Proof,
    blind,
    blind_batch,
    blind_batch_shared,
    blind_evaluate,
    blind_evaluate_batch,
    blind_evaluate_encoded,
    blind_evaluate_verifiable,
    derive_key_pair,
    evaluate,
    evaluate_batch,
    finalize,
    finalize_batch,
    finalize_batch_shared,
    finalize_verifiable,
    generate_proof,
    verify_proof,
)

__all__ = [  # noqa: RUF022 - plain sorted() order, which tests/test_layout.py checks
    "Element",
    "GENERATOR",
    "Mode",
    "ORDER",
    "Proof",
    "SUITE_ID",
    "Scalar",
    "blind",
    "blind_batch",
    "blind_batch_shared",
    "blind_evaluate",
    "blind_evaluate_batch",
    "blind_evaluate_encoded",
    "blind_evaluate_verifiable",
    "derive_key_pair",
    "evaluate",
    "evaluate_batch",
    "finalize",
    "finalize_batch",
    "finalize_batch_shared",
    "finalize_verifiable",
    "generate_proof",
    "verify_proof",
]
