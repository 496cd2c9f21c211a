"""Receipts and API keys: high-entropy secrets shown once, stored as SHA-256 digests.

A plain digest (no salt, no slow hash) is enough because every token holds 256 bits from
:mod:`secrets`: nothing can be guessed from its digest. Tokens are compared digest to
digest with :func:`hmac.compare_digest`, and looked up by a public id, never by the
secret, so the comparison is the only place the secret meets stored data.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["digest", "matches", "new_public_id", "new_secret"]

_SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh URL-safe secret of 256 bits (43 characters)."""
    return secrets.token_urlsafe(_SECRET_BYTES)


def new_public_id(size: int = 12) -> str:
    """A fresh public identifier (report ids, platform key ids): hex, unguessable."""
    return secrets.token_hex(size)


def digest(token: str) -> bytes:
    """The SHA-256 digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def matches(token: str, stored: bytes) -> bool:
    """Whether ``token`` is the secret behind ``stored`` (constant time in the secret)."""
    return hmac.compare_digest(digest(token), stored)
