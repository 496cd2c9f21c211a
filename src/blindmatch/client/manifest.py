"""The signed publication manifest: verified under the pinned key, then parsed into types.

Theory of operation
-------------------
The clearinghouse answers ``GET /v1/index/manifest`` with ``{"manifest": TEXT,
"signature": HEX, "publication_key": HEX}``. TEXT is the exact JSON that was signed with
the deployment's Ed25519 publication key. The platform pins that key out of band (the
operator publishes it; ``GET /v1/keys`` shows it). Verification runs in this order, and
nothing of TEXT is read before the signature holds:

1. the ``publication_key`` the server names equals the pinned key, else
   :class:`~blindmatch.errors.PublicationKeyMismatch` (a misconfigured pin, or another
   server: said apart from tampering so an operator knows what to fix);
2. the signature verifies over the UTF-8 bytes of TEXT under the *pinned* key, else
   :class:`~blindmatch.errors.ManifestError`;
3. TEXT parses into :class:`Manifest` with every field of the right type and range, and
   the key id it names is the one its public key derives, else
   :class:`~blindmatch.errors.ManifestError`.

Formats. Format 1 lists full indexes only (``deltas`` empty). Format 2 (the manifest's
deltas, docs/client.md) adds ``current_digest`` to each index and lists deltas ordered by
``(signal, sequence)``; a format-1 index's current digest is its ``index_digest``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from blindmatch.errors import InvalidEncoding, ManifestError, PublicationKeyMismatch
from blindmatch.psi.group import Element
from blindmatch.psi.keys import PublicKey
from blindmatch.psi.oprf import Mode

__all__ = [
    "DeltaEntry",
    "IndexEntry",
    "MANIFEST_FORMATS",
    "Manifest",
    "parse_publication_key",
    "verify_manifest",
]

MANIFEST_FORMATS = (1, 2, 3)
"""Manifest formats this client reads."""

_MAX_REVOKED = 10_000_000


def parse_publication_key(text: str | bytes) -> VerifyKey:
    """The Ed25519 publication key from its hex (64 digits) or its 32 raw bytes.

    Raises:
        InvalidEncoding: not 32 bytes or 64 hex digits.
    """
    if isinstance(text, bytes) and len(text) == 32:
        return VerifyKey(text)
    value = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    value = value.strip()
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidEncoding("a publication key is 64 hex digits (Ed25519)")
    return VerifyKey(raw)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One full index of the manifest."""

    signal: str
    url: str
    sha256: bytes
    index_digest: bytes
    current_digest: bytes
    """The digest naming the index with its deltas listed in this manifest (ServerInfo's)."""
    size: int
    entries: int
    references: int
    format_version: int | None = None
    """The file's index format version (manifest format 3): 1 banded, 2 grouped, 3 compact
    exact; ``None`` from an older manifest (the file's header says)."""


@dataclass(frozen=True, slots=True)
class DeltaEntry:
    """One delta of a full index (manifest format 2)."""

    signal: str
    sequence: int
    url: str
    sha256: bytes
    index_digest: bytes
    size: int
    entries: int
    references: int
    format_version: int | None = None
    """As :attr:`IndexEntry.format_version`."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """A verified manifest: what the platform may trust about the current publication."""

    format: int
    epoch: int
    version: int
    public_key: PublicKey
    retires_at: int | None
    generated_at: int
    indexes: dict[str, IndexEntry]
    deltas: tuple[DeltaEntry, ...]
    revoked_handles: frozenset[bytes]

    def deltas_of(self, signal: str) -> tuple[DeltaEntry, ...]:
        """The deltas of one signal's full index, by sequence."""
        return tuple(d for d in self.deltas if d.signal == signal)


def verify_manifest(answer: object, pinned: VerifyKey) -> Manifest:
    """Verify and parse the JSON answer of ``GET /v1/index/manifest`` (module docstring).

    Args:
        answer: the decoded JSON body.
        pinned: the publication key the platform trusts.

    Raises:
        PublicationKeyMismatch: the server names another publication key.
        ManifestError: a malformed answer, a signature that fails, or a malformed manifest.
    """
    if not isinstance(answer, dict):
        raise ManifestError("the manifest answer is not a JSON object")
    text, signature, named = (answer.get(k) for k in ("manifest", "signature", "publication_key"))
    if not (isinstance(text, str) and isinstance(signature, str) and isinstance(named, str)):
        raise ManifestError("the manifest answer lacks manifest, signature or publication_key")
    if named.strip().lower() != bytes(pinned).hex():
        raise PublicationKeyMismatch(
            "the clearinghouse signs with another publication key than the pinned one"
        )
    try:
        pinned.verify(text.encode("utf-8"), bytes.fromhex(signature))
    except (BadSignatureError, ValueError):
        raise ManifestError("the manifest's signature does not verify") from None
    try:
        body = json.loads(text)
        return _parse(body)
    except (ValueError, KeyError, TypeError, InvalidEncoding, AttributeError):
        raise ManifestError("the signed manifest is malformed") from None


def _int(value: Any, low: int = 0, high: int = 1 << 63) -> int:
    if type(value) is not int or not low <= value < high:
        raise ValueError("integer out of range")
    return value


def _hex(value: Any, size: int) -> bytes:
    if not isinstance(value, str):
        raise TypeError("hex expected")
    raw = bytes.fromhex(value)
    if len(raw) != size:
        raise ValueError("wrong length")
    return raw


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 32 or not value.isascii():
        raise ValueError("bad signal name")
    return value


def _path(value: Any) -> str:
    # A path on the same server: never a full URL that would send the API key elsewhere.
    if not isinstance(value, str) or not value.startswith("/v1/") or "//" in value:
        raise ValueError("bad url")
    return value


def _parse(body: Any) -> Manifest:
    format_ = _int(body["format"])
    if format_ not in MANIFEST_FORMATS:
        raise ValueError("unknown manifest format")
    if body["suite"] != "ristretto255-SHA512" or body["mode"] != "voprf":
        raise ValueError("another suite or mode")
    epoch = _int(body["epoch"], 0, 1 << 32)
    public_key = PublicKey(Element(_hex(body["public_key"], 32)), mode=Mode.VOPRF, epoch=epoch)
    if _hex(body["key_id"], len(public_key.key_id)) != public_key.key_id:
        raise ValueError("the key id is not the public key's")
    indexes: dict[str, IndexEntry] = {}
    for signal, entry in dict(body["indexes"]).items():
        digest = _hex(entry["index_digest"], 32)
        current = _hex(entry["current_digest"], 32) if format_ >= 2 else digest
        indexes[_name(signal)] = IndexEntry(
            signal,
            _path(entry["url"]),
            _hex(entry["sha256"], 32),
            digest,
            current,
            _int(entry["size"], 1),
            _int(entry["entries"]),
            _int(entry["references"]),
            _int(entry["format_version"], 1, 4) if format_ >= 3 else None,
        )
    deltas: list[DeltaEntry] = []
    for item in list(body["deltas"]):
        delta = DeltaEntry(
            _name(item["signal"]),
            _int(item["sequence"], 1, 1 << 31),
            _path(item["url"]),
            _hex(item["sha256"], 32),
            _hex(item["index_digest"], 32),
            _int(item["size"], 1),
            _int(item["entries"]),
            _int(item["references"]),
            _int(item["format_version"], 1, 4) if format_ >= 3 else None,
        )
        if delta.signal not in indexes:
            raise ValueError("a delta of no listed index")
        deltas.append(delta)
    order = [(d.signal, d.sequence) for d in deltas]
    if order != sorted(set(order)):
        raise ValueError("deltas not ordered by (signal, sequence), or repeated")
    revoked = list(body["revoked_handles"])
    if len(revoked) > _MAX_REVOKED:
        raise ValueError("too many revoked handles")
    retires = body.get("retires_at")
    return Manifest(
        format=format_,
        epoch=epoch,
        version=_int(body["version"], 1, 1 << 31),
        public_key=public_key,
        retires_at=None if retires is None else _int(retires),
        generated_at=_int(body["generated_at"]),
        indexes=indexes,
        deltas=tuple(deltas),
        revoked_handles=frozenset(_hex(h, 16) for h in revoked),
    )
