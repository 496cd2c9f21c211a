"""The cryptography of private matching: ristretto255, RFC 9497 (V/P)OPRF, DLEQ proofs,
band encodings and the index. Knows nothing of HTTP, storage or fingerprinting.

The submodules hold the details: ``group`` (``Element``, ``Scalar``), ``hash_to_curve``
(RFC 9380), ``oprf`` (RFC 9497, hazmat: every random value is an argument), ``keys`` (key
material, epochs, serialisation), ``bands`` (bandings, band inputs), ``shares``
(GF(2**61-1) Shamir lines), ``kdf`` (tags, pads, report handles), ``index`` (the index
file: build, lookup; docs/index-format.md), ``parallel`` (the process pool, evaluators
over threads). ``_sodium`` is the only binding of libsodium.
"""

from __future__ import annotations

from blindmatch.psi.bands import Banding, exact_banding, pdq_banding
from blindmatch.psi.group import GENERATOR, ORDER, Element, Scalar
from blindmatch.psi.index import (
    BuiltIndex,
    Canary,
    Index,
    IndexSet,
    MatchResult,
    Reference,
    add_references,
    build_index,
    default_canaries,
    default_max_hits,
    merge_indexes,
)
from blindmatch.psi.kdf import ReportHandle
from blindmatch.psi.keys import PublicKey, SecretKey
from blindmatch.psi.oprf import (
    SUITE_ID,
    Mode,
    Proof,
    blind,
    blind_batch,
    blind_evaluate,
    blind_evaluate_batch,
    blind_evaluate_verifiable,
    derive_key_pair,
    evaluate,
    evaluate_batch,
    finalize,
    finalize_batch,
    finalize_verifiable,
    generate_proof,
    verify_proof,
)
from blindmatch.psi.parallel import SERIAL, Evaluator, ThreadedEvaluator

__all__ = [
    "Banding",
    "BuiltIndex",
    "Canary",
    "Element",
    "Evaluator",
    "GENERATOR",
    "Index",
    "IndexSet",
    "MatchResult",
    "Mode",
    "ORDER",
    "Proof",
    "PublicKey",
    "Reference",
    "ReportHandle",
    "SERIAL",
    "SUITE_ID",
    "Scalar",
    "SecretKey",
    "ThreadedEvaluator",
    "add_references",
    "blind",
    "blind_batch",
    "blind_evaluate",
    "blind_evaluate_batch",
    "blind_evaluate_verifiable",
    "build_index",
    "default_canaries",
    "default_max_hits",
    "derive_key_pair",
    "evaluate",
    "evaluate_batch",
    "exact_banding",
    "finalize",
    "finalize_batch",
    "finalize_verifiable",
    "generate_proof",
    "merge_indexes",
    "pdq_banding",
    "verify_proof",
]
