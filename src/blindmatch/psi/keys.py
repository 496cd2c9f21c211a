"""OPRF key material: generation, key epochs and ids, versioned serialisation, public keys.

The safe layer above ``oprf``: a :class:`SecretKey` holds the server's scalar together with
the suite, the mode and the **key epoch** it belongs to; :class:`PublicKey` is what the
clearinghouse publishes for VOPRF mode.

Key identity
------------
* ``epoch``: an unsigned 32-bit integer the operator increments at every key rotation (the
  index of a key epoch is built with that epoch's key; messages name the epoch they use).
* ``key_id``: the first 8 bytes of ``SHA-512("blindmatch-key-id-v1" || I2OSP(len(suite), 1)
  || suite || I2OSP(mode, 1) || I2OSP(epoch, 4) || pk)``. It commits to the public key, so a
  platform holding the published key can check any message's key id; it names a key
  without revealing anything the public key does not.

Serialised formats (version 1, all integers big-endian; no pickle, no JSON parser needed)
----------------------------------------------------------------------------------------
Secret key, 78 bytes::

    magic    4   b"BMSK"
    version  1   0x01
    suite    1+n I2OSP(n, 1) || "ristretto255-SHA512" (n = 19)
    mode     1   0x00 OPRF | 0x01 VOPRF | 0x02 POPRF
    epoch    4
    sk      32   canonical little-endian scalar, non-zero
    key_id   8   as above (recomputed and compared on load)
    check    8   first 8 bytes of SHA-512(all preceding bytes)

Public key, 78 bytes: the same with magic ``b"BMPK"``, the 32-byte element ``pk`` in place of
``sk`` (canonical, non-identity). The check catches accidental corruption of every byte,
the key id catches a secret key whose bytes do not belong to the named public key. Neither
is a signature: publish the public key over an authenticated channel.

The public key also has a JSON form for publishing (e.g. on a web page), exactly these
members, hex in lowercase::

    {"format": "blindmatch-public-key", "version": 1, "suite": "ristretto255-SHA512",
     "mode": "VOPRF", "epoch": 3, "key_id": "<16 hex>", "public_key": "<64 hex>"}

Loading raises :class:`errors.KeyFormatError` for anything malformed (wrong magic,
version, suite, mode, length, truncated, trailing bytes, bad check, non-canonical or zero
scalar, invalid element, key id mismatch); messages never contain key bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from typing import Final, NoReturn, final

from blindmatch import errors
from blindmatch.psi.group import ELEMENT_BYTES, SCALAR_BYTES, Element, Scalar
from blindmatch.psi.oprf import SUITE_ID, Mode, derive_key_pair

__all__ = [
    "FORMAT_VERSION",
    "KEY_ID_BYTES",
    "MAX_EPOCH",
    "PUBLIC_KEY_BYTES",
    "PublicKey",
    "SECRET_KEY_BYTES",
    "SecretKey",
    "compute_key_id",
]

FORMAT_VERSION: Final = 1
KEY_ID_BYTES: Final = 8
MAX_EPOCH: Final = 2**32 - 1
_SECRET_MAGIC: Final = b"BMSK"
_PUBLIC_MAGIC: Final = b"BMPK"
_SUITE: Final = SUITE_ID.encode("ascii")
_CHECK_BYTES: Final = 8
_KEY_ID_LABEL: Final = b"blindmatch-key-id-v1"
_HEAD: Final = 4 + 1 + 1 + len(_SUITE) + 1 + 4
SECRET_KEY_BYTES: Final = _HEAD + SCALAR_BYTES + KEY_ID_BYTES + _CHECK_BYTES
PUBLIC_KEY_BYTES: Final = _HEAD + ELEMENT_BYTES + KEY_ID_BYTES + _CHECK_BYTES


_JSON_FORMAT: Final = "blindmatch-public-key"
_JSON_MEMBERS: Final = frozenset(
    {"format", "version", "suite", "mode", "epoch", "key_id", "public_key"}
)
_LOWER_HEX: Final = re.compile(r"[0-9a-f]*")
_MAX_JSON: Final = 4096


def _hex_field(value: object, size: int, name: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * size or not _LOWER_HEX.fullmatch(value):
        raise errors.KeyFormatError(f"public key {name} must be {2 * size} lowercase hex digits")
    return bytes.fromhex(value)


def _check_epoch(epoch: int) -> int:
    if type(epoch) is not int:
        raise TypeError("epoch must be an int")
    if not 0 <= epoch <= MAX_EPOCH:
        raise errors.InvalidArgument("epoch must fit in 32 bits")
    return epoch


def _check_mode(mode: Mode) -> Mode:
    try:
        return Mode(mode)
    except ValueError:
        raise errors.InvalidArgument("unknown RFC 9497 mode") from None


def compute_key_id(mode: Mode, epoch: int, pk: Element) -> bytes:
    """The 8-byte key id of a public key (see the module docstring).

    Raises:
        TypeError: ``pk`` is not an Element or ``epoch`` not an int.
        InvalidArgument: bad mode or epoch.
    """
    mode = _check_mode(mode)
    _check_epoch(epoch)
    if not isinstance(pk, Element):
        raise TypeError("pk must be an Element")
    digest = hashlib.sha512(
        _KEY_ID_LABEL
        + bytes((len(_SUITE),))
        + _SUITE
        + bytes((mode,))
        + epoch.to_bytes(4, "big")
        + bytes(pk)
    ).digest()
    return digest[:KEY_ID_BYTES]


def _head(magic: bytes, mode: Mode, epoch: int) -> bytes:
    return (
        magic
        + bytes((FORMAT_VERSION, len(_SUITE)))
        + _SUITE
        + bytes((mode,))
        + epoch.to_bytes(4, "big")
    )


def _check_value(body: bytes) -> bytes:
    return hashlib.sha512(body).digest()[:_CHECK_BYTES]


def _parse(data: bytes, magic: bytes, size: int, what: str) -> tuple[Mode, int, bytes, bytes]:
    """Check framing; return (mode, epoch, key material, key id)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise errors.KeyFormatError(f"a serialised {what} must be bytes")
    raw = bytes(data)
    if raw[:4] != magic:
        raise errors.KeyFormatError(f"not a serialised {what} (bad magic)")
    if len(raw) < 5 or raw[4] != FORMAT_VERSION:
        raise errors.KeyFormatError(f"unsupported {what} format version")
    if len(raw) < 6 or raw[5] != len(_SUITE) or raw[6 : 6 + len(_SUITE)] != _SUITE:
        raise errors.KeyFormatError(f"{what} is for another suite than {SUITE_ID}")
    if len(raw) != size:
        raise errors.KeyFormatError(f"a serialised {what} is {size} bytes")
    if not hmac.compare_digest(_check_value(raw[:-_CHECK_BYTES]), raw[-_CHECK_BYTES:]):
        raise errors.KeyFormatError(f"{what} is corrupt (check value mismatch)")
    offset = 6 + len(_SUITE)
    try:
        mode = Mode(raw[offset])
    except ValueError:
        raise errors.KeyFormatError(f"{what} names an unknown mode") from None
    epoch = int.from_bytes(raw[offset + 1 : offset + 5], "big")
    material = raw[_HEAD : size - KEY_ID_BYTES - _CHECK_BYTES]
    key_id = raw[size - KEY_ID_BYTES - _CHECK_BYTES : size - _CHECK_BYTES]
    return mode, epoch, material, key_id


@final
class PublicKey:
    """The published key of a VOPRF/POPRF server: suite, mode, epoch, key id, ``pk = sk*G``."""

    __slots__ = ("element", "epoch", "mode")
    element: Element
    epoch: int
    mode: Mode

    def __init__(self, element: Element, *, mode: Mode, epoch: int) -> None:
        """Wrap a public key.

        Raises:
            TypeError: ``element`` is not an Element.
            InvalidArgument: bad mode or epoch.
        """
        if not isinstance(element, Element):
            raise TypeError("element must be an Element")
        object.__setattr__(self, "element", element)
        object.__setattr__(self, "mode", _check_mode(mode))
        object.__setattr__(self, "epoch", _check_epoch(epoch))

    @property
    def suite(self) -> str:
        """The RFC 9497 suite identifier."""
        return SUITE_ID

    @property
    def key_id(self) -> bytes:
        """The 8-byte key id (see the module docstring)."""
        return compute_key_id(self.mode, self.epoch, self.element)

    def to_bytes(self) -> bytes:
        """The version-1 serialisation (78 bytes, see the module docstring)."""
        body = _head(_PUBLIC_MAGIC, self.mode, self.epoch) + bytes(self.element) + self.key_id
        return body + _check_value(body)

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        """Load a serialised public key, validating every field.

        Raises:
            errors.KeyFormatError: anything malformed (see the module docstring).
        """
        mode, epoch, material, key_id = _parse(data, _PUBLIC_MAGIC, PUBLIC_KEY_BYTES, "public key")
        try:
            element = Element.from_bytes(material)
        except errors.InvalidElement:
            raise errors.KeyFormatError("public key element is invalid") from None
        key = cls(element, mode=mode, epoch=epoch)
        if not hmac.compare_digest(key.key_id, key_id):
            raise errors.KeyFormatError("public key id does not match the key")
        return key

    def to_json(self) -> str:
        """The JSON form for publishing (see the module docstring)."""
        return json.dumps(
            {
                "format": _JSON_FORMAT,
                "version": FORMAT_VERSION,
                "suite": SUITE_ID,
                "mode": self.mode.name,
                "epoch": self.epoch,
                "key_id": self.key_id.hex(),
                "public_key": self.element.hex(),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> PublicKey:
        """Load the JSON form, validating every member (and nothing more is allowed).

        Raises:
            errors.KeyFormatError: not JSON, missing or extra members, wrong types, wrong
                format/version/suite, unknown mode, bad hex, invalid element, key id mismatch.
        """
        if not isinstance(text, str):
            raise errors.KeyFormatError("a JSON public key must be str")
        if len(text) > _MAX_JSON:  # the documented form is about 250 characters
            raise errors.KeyFormatError(f"a JSON public key is at most {_MAX_JSON} characters")
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: deep nesting ("[[[[...")
            raise errors.KeyFormatError("public key is not valid JSON") from None
        if not isinstance(doc, dict) or set(doc) != _JSON_MEMBERS:
            raise errors.KeyFormatError("public key JSON must have exactly the documented members")
        if doc["format"] != _JSON_FORMAT:
            raise errors.KeyFormatError("not a blindmatch public key")
        if type(doc["version"]) is not int or doc["version"] != FORMAT_VERSION:
            raise errors.KeyFormatError("unsupported public key format version")
        if doc["suite"] != SUITE_ID:
            raise errors.KeyFormatError(f"public key is for another suite than {SUITE_ID}")
        if not isinstance(doc["mode"], str) or doc["mode"] not in Mode.__members__:
            raise errors.KeyFormatError("public key names an unknown mode")
        epoch = doc["epoch"]
        if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
            raise errors.KeyFormatError("public key epoch must be an integer in [0, 2^32)")
        key_id = _hex_field(doc["key_id"], KEY_ID_BYTES, "key_id")
        raw = _hex_field(doc["public_key"], ELEMENT_BYTES, "public_key")
        try:
            element = Element.from_bytes(raw)
        except errors.InvalidElement:
            raise errors.KeyFormatError("public key element is invalid") from None
        key = cls(element, mode=Mode[doc["mode"]], epoch=epoch)
        if not hmac.compare_digest(key.key_id, key_id):
            raise errors.KeyFormatError("public key id does not match the key")
        return key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash((PublicKey, self.to_bytes()))

    def __repr__(self) -> str:
        return (
            f"PublicKey(suite={SUITE_ID!r}, mode={self.mode.name}, epoch={self.epoch}, "
            f"key_id={self.key_id.hex()}, element={self.element.hex()})"
        )

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("PublicKey is immutable")


@final
class SecretKey:
    """A server's OPRF secret key with its mode and epoch. ``repr`` never shows the scalar."""

    __slots__ = ("_public", "epoch", "mode", "scalar")
    scalar: Scalar
    mode: Mode
    epoch: int
    _public: Element

    def __init__(self, scalar: Scalar, *, mode: Mode, epoch: int) -> None:
        """Wrap a secret scalar.

        Raises:
            TypeError: ``scalar`` is not a Scalar.
            errors.InvalidScalar: ``scalar`` is zero.
            InvalidArgument: bad mode or epoch.
        """
        if not isinstance(scalar, Scalar):
            raise TypeError("scalar must be a Scalar")
        if scalar.is_zero():
            raise errors.InvalidScalar("a secret key must not be zero")
        object.__setattr__(self, "scalar", scalar)
        object.__setattr__(self, "mode", _check_mode(mode))
        object.__setattr__(self, "epoch", _check_epoch(epoch))
        object.__setattr__(self, "_public", scalar.multiply_base())

    @classmethod
    def generate(cls, *, mode: Mode = Mode.VOPRF, epoch: int = 0) -> SecretKey:
        """A fresh key: RFC 9497 DeriveKeyPair from a 32-byte seed of ``secrets`` randomness.

        Deriving (rather than drawing a scalar directly) keeps one code path for generated
        and seeded keys; the seed is discarded.
        """
        mode = _check_mode(mode)
        sk, _ = derive_key_pair(secrets.token_bytes(SCALAR_BYTES), b"blindmatch", mode)
        return cls(sk, mode=mode, epoch=epoch)

    @classmethod
    def derive(cls, seed: bytes, info: bytes, *, mode: Mode, epoch: int = 0) -> SecretKey:
        """RFC 9497 DeriveKeyPair from a secret 32-byte seed (reproducible keys, tests).

        Raises:
            errors.InvalidEncoding: ``seed`` is not 32 bytes.
            errors.InvalidInput: ``info`` is too long.
        """
        mode = _check_mode(mode)
        sk, _ = derive_key_pair(seed, info, mode)
        return cls(sk, mode=mode, epoch=epoch)

    @property
    def suite(self) -> str:
        """The RFC 9497 suite identifier."""
        return SUITE_ID

    @property
    def public_key(self) -> PublicKey:
        """The key to publish (meaningful for VOPRF/POPRF; harmless to compute for OPRF)."""
        return PublicKey(self._public, mode=self.mode, epoch=self.epoch)

    @property
    def key_id(self) -> bytes:
        """The 8-byte key id of the public key."""
        return compute_key_id(self.mode, self.epoch, self._public)

    def to_bytes(self) -> bytes:
        """The version-1 serialisation (78 bytes, see the module docstring). Secret!"""
        body = _head(_SECRET_MAGIC, self.mode, self.epoch) + bytes(self.scalar) + self.key_id
        return body + _check_value(body)

    @classmethod
    def from_bytes(cls, data: bytes) -> SecretKey:
        """Load a serialised secret key, validating every field.

        Raises:
            errors.KeyFormatError: anything malformed (see the module docstring).
        """
        mode, epoch, material, key_id = _parse(data, _SECRET_MAGIC, SECRET_KEY_BYTES, "secret key")
        try:
            scalar = Scalar.from_bytes(material)
        except errors.InvalidScalar:
            raise errors.KeyFormatError("secret key scalar is not canonical or is zero") from None
        key = cls(scalar, mode=mode, epoch=epoch)
        if not hmac.compare_digest(key.key_id, key_id):
            raise errors.KeyFormatError("secret key does not match its key id")
        return key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretKey):
            return NotImplemented
        return hmac.compare_digest(self.to_bytes(), other.to_bytes())

    __hash__ = None  # type: ignore[assignment]  # secrets are not dictionary keys

    def __repr__(self) -> str:
        return (
            f"SecretKey(suite={SUITE_ID!r}, mode={self.mode.name}, epoch={self.epoch}, "
            f"key_id={self.key_id.hex()}, scalar=<redacted>)"
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError("secret keys are not pickled; use SecretKey.to_bytes")

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("SecretKey is immutable")
