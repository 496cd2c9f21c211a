"""Writes messages.json: golden bytes of every wire message, built from docs/protocol.md.

The bytes are concatenated here field by field from the written layout, NOT with
``blindmatch.protocols.messages``, so the tests compare the encoder against the spec rather
than against itself. Elements are multiples ``k*G`` of the ristretto255 generator (RFC 9496
A.1 lists them); the proof is two fixed canonical scalars. Run from the repository root:

    .venv/bin/python tests/vectors/messages/make_vectors.py
"""

from __future__ import annotations

import json
from pathlib import Path

from blindmatch.psi.group import Scalar

OUT = Path(__file__).with_name("messages.json")
KEY_ID = bytes.fromhex("0123456789abcdef")


def element(k: int) -> str:
    """Hex of k*G."""
    return bytes(Scalar.from_int(k).multiply_base()).hex()


def be(value: int, size: int) -> str:
    return value.to_bytes(size, "big").hex()


def head(kind: int) -> str:
    return "01" + be(kind, 1)


G1, G2, G3 = element(1), element(2), element(3)
PROOF_C = (5).to_bytes(32, "little").hex()
PROOF_S = (0x1234567890ABCDEF).to_bytes(32, "little").hex()
SUITE = be(1, 2)
VOPRF = "01"
DIGEST_MD5 = bytes(range(32)).hex()
DIGEST_SHA256 = "a5" * 32


def index_digest(signal: str, digest: str) -> str:
    """One index digest entry of ServerInfo: lp8(signal name) || digest[32]."""
    name = signal.encode("ascii")
    return be(len(name), 1) + name.hex() + digest


INFO_HEAD = head(2) + SUITE + VOPRF + be(7, 4) + KEY_ID.hex() + G2 + be(1_000_000, 8) + be(4096, 4)

VALID = [
    {
        "name": "hello",
        "type": "Hello",
        "fields": {"suite": 1, "mode": 1},
        "hex": head(1) + SUITE + VOPRF,
    },
    {
        "name": "server-info",
        "type": "ServerInfo",
        "fields": {
            "suite": 1,
            "mode": 1,
            "key_epoch": 7,
            "key_id": KEY_ID.hex(),
            "public_key": G2,
            "element_limit": 1_000_000,
            "max_batch": 4096,
            "index_digests": [],
        },
        "hex": head(2)
        + SUITE
        + VOPRF
        + be(7, 4)
        + KEY_ID.hex()
        + G2
        + be(1_000_000, 8)
        + be(4096, 4)
        + be(0, 1),
    },
    {
        "name": "server-info-with-index-digests",
        "type": "ServerInfo",
        "fields": {
            "suite": 1,
            "mode": 1,
            "key_epoch": 7,
            "key_id": KEY_ID.hex(),
            "public_key": G2,
            "element_limit": 1_000_000,
            "max_batch": 4096,
            "index_digests": [
                {"signal": "md5", "digest": DIGEST_MD5},
                {"signal": "sha256", "digest": DIGEST_SHA256},
            ],
        },
        "hex": INFO_HEAD
        + be(2, 1)
        + index_digest("md5", DIGEST_MD5)
        + index_digest("sha256", DIGEST_SHA256),
    },
    {
        "name": "evaluate-request-3",
        "type": "EvaluateRequest",
        "fields": {
            "suite": 1,
            "mode": 1,
            "key_epoch": 7,
            "key_id": KEY_ID.hex(),
            "batch_id": 258,
            "elements": [G1, G2, G3],
        },
        "hex": head(3)
        + SUITE
        + VOPRF
        + be(7, 4)
        + KEY_ID.hex()
        + be(258, 4)
        + be(3, 4)
        + G1
        + G2
        + G3,
    },
    {
        "name": "evaluate-response-2",
        "type": "EvaluateResponse",
        "fields": {"batch_id": 258, "elements": [G3, G1]},
        "hex": head(4) + be(258, 4) + be(2, 4) + G3 + G1,
    },
    {
        "name": "proof-request",
        "type": "ProofRequest",
        "fields": {"audit_id": 9, "batch_ids": [4, 1, 70000]},
        "hex": head(5) + be(9, 4) + be(3, 2) + be(4, 4) + be(1, 4) + be(70000, 4),
    },
    {
        "name": "proof-response",
        "type": "ProofResponse",
        "fields": {"audit_id": 9, "proof": PROOF_C + PROOF_S},
        "hex": head(6) + be(9, 4) + PROOF_C + PROOF_S,
    },
    {
        "name": "error-with-request",
        "type": "ErrorMessage",
        "fields": {"code": 3, "request_id": 258, "text": "quota spent"},
        "hex": head(7) + be(3, 2) + "01" + be(258, 4) + be(11, 1) + b"quota spent".hex(),
    },
    {
        "name": "error-without-request",
        "type": "ErrorMessage",
        "fields": {"code": 1, "request_id": None, "text": ""},
        "hex": head(7) + be(1, 2) + "00" + be(0, 4) + "00",
    },
    {"name": "close", "type": "Close", "fields": {}, "hex": head(8)},
]

IDENTITY = "00" * 32
NON_CANONICAL = "ff" * 32  # RFC 9496 A.2: not a canonical field element
REQ_HEAD = head(3) + SUITE + VOPRF + be(7, 4) + KEY_ID.hex() + be(1, 4)

INVALID = [
    {"name": "empty", "hex": "", "error": "MessageDecodeError"},
    {"name": "version-only", "hex": "01", "error": "MessageDecodeError"},
    {"name": "version-0", "hex": "0008", "error": "UnsupportedVersion"},
    {"name": "version-2", "hex": "0208", "error": "UnsupportedVersion"},
    {"name": "unknown-type", "hex": "0109", "error": "MessageDecodeError"},
    {"name": "type-0", "hex": "0100", "error": "MessageDecodeError"},
    {"name": "close-trailing", "hex": head(8) + "00", "error": "MessageDecodeError"},
    {
        "name": "hello-unknown-suite",
        "hex": head(1) + be(2, 2) + VOPRF,
        "error": "UnsupportedVersion",
    },
    {"name": "hello-unknown-mode", "hex": head(1) + SUITE + "03", "error": "MessageDecodeError"},
    {"name": "hello-truncated", "hex": head(1) + SUITE, "error": "MessageDecodeError"},
    {"name": "request-count-0", "hex": REQ_HEAD + be(0, 4), "error": "MessageDecodeError"},
    {"name": "request-count-over-limit", "hex": REQ_HEAD + be(65537, 4), "error": "LimitExceeded"},
    {
        "name": "request-count-too-high",
        "hex": REQ_HEAD + be(2, 4) + G1,
        "error": "MessageDecodeError",
    },
    {
        "name": "request-count-too-low",
        "hex": REQ_HEAD + be(1, 4) + G1 + G2,
        "error": "MessageDecodeError",
    },
    {
        "name": "request-identity",
        "hex": REQ_HEAD + be(1, 4) + IDENTITY,
        "error": "InvalidPeerElement",
    },
    {
        "name": "request-non-canonical",
        "hex": REQ_HEAD + be(1, 4) + NON_CANONICAL,
        "error": "InvalidPeerElement",
    },
    {
        "name": "response-identity",
        "hex": head(4) + be(1, 4) + be(2, 4) + G1 + IDENTITY,
        "error": "InvalidPeerElement",
    },
    {
        "name": "server-info-identity-key",
        "hex": head(2)
        + SUITE
        + VOPRF
        + be(7, 4)
        + KEY_ID.hex()
        + IDENTITY
        + be(1, 8)
        + be(1, 4)
        + be(0, 1),
        "error": "InvalidPeerElement",
    },
    {
        "name": "server-info-max-batch-0",
        "hex": head(2)
        + SUITE
        + VOPRF
        + be(7, 4)
        + KEY_ID.hex()
        + G1
        + be(1, 8)
        + be(0, 4)
        + be(0, 1),
        "error": "MessageDecodeError",
    },
    {"name": "server-info-without-digest-count", "hex": INFO_HEAD, "error": "MessageDecodeError"},
    {
        "name": "server-info-digests-unsorted",
        "hex": INFO_HEAD
        + be(2, 1)
        + index_digest("sha256", DIGEST_SHA256)
        + index_digest("md5", DIGEST_MD5),
        "error": "MessageDecodeError",
    },
    {
        "name": "server-info-digests-duplicate-signal",
        "hex": INFO_HEAD
        + be(2, 1)
        + index_digest("md5", DIGEST_MD5)
        + index_digest("md5", DIGEST_SHA256),
        "error": "MessageDecodeError",
    },
    {
        "name": "server-info-digest-empty-name",
        "hex": INFO_HEAD + be(1, 1) + be(0, 1) + DIGEST_MD5,
        "error": "MessageDecodeError",
    },
    {
        "name": "server-info-digest-uppercase-name",
        "hex": INFO_HEAD + be(1, 1) + index_digest("MD5", DIGEST_MD5),
        "error": "MessageDecodeError",
    },
    {
        "name": "server-info-digest-name-33-bytes",
        "hex": INFO_HEAD + be(1, 1) + index_digest("a" * 33, DIGEST_MD5),
        "error": "MessageDecodeError",
    },
    {
        "name": "server-info-digest-truncated",
        "hex": INFO_HEAD + be(1, 1) + index_digest("md5", DIGEST_MD5)[:-2],
        "error": "MessageDecodeError",
    },
    {
        "name": "server-info-digest-count-too-high",
        "hex": INFO_HEAD + be(2, 1) + index_digest("md5", DIGEST_MD5),
        "error": "MessageDecodeError",
    },
    {
        "name": "proof-request-empty",
        "hex": head(5) + be(1, 4) + be(0, 2),
        "error": "MessageDecodeError",
    },
    {
        "name": "proof-request-duplicate",
        "hex": head(5) + be(1, 4) + be(2, 2) + be(3, 4) + be(3, 4),
        "error": "MessageDecodeError",
    },
    {
        "name": "proof-non-canonical-scalar",
        "hex": head(6) + be(1, 4) + "ff" * 32 + PROOF_S,
        "error": "MessageDecodeError",
    },
    {"name": "proof-truncated", "hex": head(6) + be(1, 4) + PROOF_C, "error": "MessageDecodeError"},
    {
        "name": "error-unknown-code",
        "hex": head(7) + be(99, 2) + "00" + be(0, 4) + "00",
        "error": "MessageDecodeError",
    },
    {
        "name": "error-bad-flag",
        "hex": head(7) + be(1, 2) + "02" + be(0, 4) + "00",
        "error": "MessageDecodeError",
    },
    {
        "name": "error-absent-id-not-zero",
        "hex": head(7) + be(1, 2) + "00" + be(5, 4) + "00",
        "error": "MessageDecodeError",
    },
    {
        "name": "error-text-not-ascii",
        "hex": head(7) + be(1, 2) + "00" + be(0, 4) + "01ff",
        "error": "MessageDecodeError",
    },
    {
        "name": "error-text-control",
        "hex": head(7) + be(1, 2) + "00" + be(0, 4) + "010a",
        "error": "MessageDecodeError",
    },
    {
        "name": "error-text-truncated",
        "hex": head(7) + be(1, 2) + "00" + be(0, 4) + "0541",
        "error": "MessageDecodeError",
    },
]


def main() -> None:
    """Write the file."""
    OUT.write_text(json.dumps({"valid": VALID, "invalid": INVALID}, indent=1) + "\n")


if __name__ == "__main__":
    main()
