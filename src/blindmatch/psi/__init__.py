"""The cryptography of private matching: ristretto255, RFC 9497 (V/P)OPRF, DLEQ proofs,
band encodings and the index. Knows nothing of HTTP, storage or fingerprinting."""

from __future__ import annotations

__all__: list[str] = []
