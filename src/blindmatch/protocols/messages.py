"""Wire messages of the private matching protocol, version 1 (normative: docs/protocol.md).

Theory of operation
-------------------
A message is ``u8 version || u8 type || body``; every integer is big-endian, every field
fixed-width or counted, so each message has exactly one encoding: :func:`decode` followed
by :meth:`encode` gives back the same bytes, and any other bytes raise. Decoding is strict
and checks, in this order: the total size (:class:`~blindmatch.errors.LimitExceeded`, before
anything is parsed), the version (:class:`~blindmatch.errors.UnsupportedVersion`), the type
and every field (:class:`~blindmatch.errors.MessageDecodeError`), element counts against the
caller's limit (:class:`~blindmatch.errors.LimitExceeded`, before the elements are read),
and every group element (:class:`~blindmatch.errors.InvalidPeerElement`, a decode error
that is also an :class:`~blindmatch.errors.InvalidElement`). Error texts name fields, never
bytes the peer sent.

Messages are typed frozen dataclasses: elements are :class:`~blindmatch.psi.group.Element`,
the proof a :class:`~blindmatch.psi.oprf.Proof`, the codes are enums. Building a
message with out-of-range fields is local misuse and raises
:class:`~blindmatch.errors.LocalProtocolError`.

Platform to clearinghouse: :class:`Hello`, :class:`EvaluateRequest`, :class:`ProofRequest`,
:class:`Close`. Clearinghouse to platform: :class:`ServerInfo`, :class:`EvaluateResponse`,
:class:`ProofResponse`, :class:`ErrorMessage`, :class:`Close` (the acknowledgement).
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Final, TypeAlias, TypeVar

from blindmatch import errors
from blindmatch.protocols._codec import Reader, u8, u16, u32, u64
from blindmatch.psi.group import ELEMENT_BYTES, SCALAR_BYTES, Element
from blindmatch.psi.oprf import Mode, Proof

__all__ = [
    "Close",
    "ErrorCode",
    "ErrorMessage",
    "EvaluateRequest",
    "EvaluateResponse",
    "Hello",
    "INDEX_DIGEST_BYTES",
    "IndexDigest",
    "KEY_ID_BYTES",
    "MAX_ELEMENTS",
    "MAX_ERROR_TEXT",
    "MAX_INDEX_DIGESTS",
    "MAX_MESSAGE_BYTES",
    "MAX_PROOF_BATCHES",
    "Message",
    "MessageType",
    "PROOF_BYTES",
    "PROTOCOL_VERSION",
    "ProofRequest",
    "ProofResponse",
    "ServerInfo",
    "Suite",
    "decode",
]

PROTOCOL_VERSION: Final = 1
"""The wire version this module speaks (first byte of every message)."""
MAX_ELEMENTS: Final = 1 << 16
"""Hard cap on the elements of one message (2 MiB of elements); sessions set lower limits."""
MAX_PROOF_BATCHES: Final = 0xFFFF
"""Most batch ids one :class:`ProofRequest` can name (a ``u16`` count)."""
MAX_ERROR_TEXT: Final = 255
"""Most bytes of the text of an :class:`ErrorMessage` (a ``u8`` length)."""
KEY_ID_BYTES: Final = 8
"""Bytes of a key id on the wire."""
INDEX_DIGEST_BYTES: Final = 32
"""Bytes of an index digest (SHA-256)."""
MAX_INDEX_DIGESTS: Final = 255
"""Most index digests one :class:`ServerInfo` lists (a ``u8`` count)."""
_SIGNAL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
"""Signal-type names, as :class:`~blindmatch.psi.bands.Banding` allows them."""
PROOF_BYTES: Final = 2 * SCALAR_BYTES
"""Bytes of a serialised RFC 9497 proof ``c || s``."""
_EVALUATE_REQUEST_HEAD: Final = 2 + 2 + 1 + 4 + KEY_ID_BYTES + 4 + 4
MAX_MESSAGE_BYTES: Final = _EVALUATE_REQUEST_HEAD + MAX_ELEMENTS * ELEMENT_BYTES
"""No message is longer: larger inputs are refused before they are parsed."""
_U32_MAX: Final = 0xFFFFFFFF
_U64_MAX: Final = 0xFFFFFFFFFFFFFFFF


class MessageType(enum.IntEnum):
    """The type byte (second byte) of every message."""

    HELLO = 0x01
    SERVER_INFO = 0x02
    EVALUATE_REQUEST = 0x03
    EVALUATE_RESPONSE = 0x04
    PROOF_REQUEST = 0x05
    PROOF_RESPONSE = 0x06
    ERROR = 0x07
    CLOSE = 0x08


class Suite(enum.IntEnum):
    """Cipher suites, by a two-byte id of this protocol (RFC 9497 names them by string)."""

    RISTRETTO255_SHA512 = 0x0001


class ErrorCode(enum.IntEnum):
    """Why the clearinghouse refused a request (:class:`ErrorMessage`)."""

    MALFORMED = 0x0001
    """The request did not decode (truncated, trailing bytes, bad field)."""
    UNSUPPORTED_VERSION = 0x0002
    """Wrong wire version, suite or mode."""
    LIMIT_EXCEEDED = 0x0003
    """Batch over the maximum, or the session's element quota is spent."""
    INVALID_ELEMENT = 0x0004
    """An element is not a canonical, non-identity ristretto255 encoding."""
    UNEXPECTED_MESSAGE = 0x0005
    """Not valid in the session's state (no Hello yet, reused or unknown batch id)."""
    KEY_MISMATCH = 0x0006
    """The request names a key epoch or key id the clearinghouse does not hold."""


def _check_uint(value: object, limit: int, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise errors.LocalProtocolError(f"{field} must be an integer in [0, {limit}]")
    return value


_E = TypeVar("_E", bound=enum.IntEnum)


def _check_enum(value: object, kind: type[_E], field: str) -> _E:
    if not isinstance(value, kind):
        raise errors.LocalProtocolError(f"{field} must be a {kind.__name__}")
    return value


def _check_elements(elements: object, field: str, limit: int) -> tuple[Element, ...]:
    if not isinstance(elements, tuple) or not all(isinstance(e, Element) for e in elements):
        raise errors.LocalProtocolError(f"{field} must be a tuple of Element")
    if not 1 <= len(elements) <= limit:
        raise errors.LocalProtocolError(f"{field} must hold 1 to {limit} elements")
    return elements


def _header(kind: MessageType) -> bytes:
    return u8(PROTOCOL_VERSION) + u8(kind)


def _read_suite_mode(reader: Reader) -> tuple[Suite, Mode]:
    suite_id = reader.u16("suite")
    if suite_id not in Suite._value2member_map_:
        raise errors.UnsupportedVersion("unsupported cipher suite")
    mode_id = reader.u8("mode")
    if mode_id not in Mode._value2member_map_:
        raise errors.MessageDecodeError("unknown mode")
    return Suite(suite_id), Mode(mode_id)


def _read_elements(reader: Reader, count: int) -> tuple[Element, ...]:
    raw = reader.take(count * ELEMENT_BYTES, "elements")
    elements = []
    for index in range(count):
        try:
            elements.append(Element(raw[index * ELEMENT_BYTES : (index + 1) * ELEMENT_BYTES]))
        except errors.InvalidElement:
            raise errors.InvalidPeerElement(f"element {index} is invalid") from None
    return tuple(elements)


def _read_count(reader: Reader, max_elements: int) -> int:
    count = reader.u32("count")
    if count == 0:
        raise errors.MessageDecodeError("a batch holds at least one element")
    if count > max_elements:
        raise errors.LimitExceeded("batch over the element limit")
    return count


@dataclass(frozen=True, slots=True)
class Hello:
    """Platform opens a session: the suite and mode it wants (answered by :class:`ServerInfo`).

    Layout: ``u16 suite || u8 mode``.
    """

    suite: Suite = Suite.RISTRETTO255_SHA512
    mode: Mode = Mode.VOPRF

    TYPE: ClassVar[MessageType] = MessageType.HELLO

    def __post_init__(self) -> None:
        _check_enum(self.suite, Suite, "suite")
        _check_enum(self.mode, Mode, "mode")

    def encode(self) -> bytes:
        """The wire bytes."""
        return _header(self.TYPE) + u16(self.suite) + u8(self.mode)

    @classmethod
    def _read(cls, reader: Reader, max_elements: int) -> Hello:
        suite, mode = _read_suite_mode(reader)
        return cls(suite, mode)


@dataclass(frozen=True, slots=True)
class IndexDigest:
    """The digest of the index a clearinghouse currently serves for one signal type.

    ``digest`` identifies the published index files of ``signal`` (docs/protocol.md
    section 5.2), as :func:`blindmatch.psi.index.current_digest` computes it on the index
    side (:func:`blindmatch.protocols.index_digest` makes this value of an index). An index
    that a platform merged itself (:func:`~blindmatch.psi.index.merge_indexes`) has its own
    digest and compares equal only to a merge the clearinghouse serves.

    Layout: ``u8 name_length || signal name || digest[32]``.

    Raises:
        errors.LocalProtocolError: a signal name outside ``[a-z0-9][a-z0-9_.-]{0,31}`` or a
            digest that is not 32 bytes.
    """

    signal: str
    digest: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.signal, str) or not _SIGNAL.fullmatch(self.signal):
            raise errors.LocalProtocolError("signal must match [a-z0-9][a-z0-9_.-]{0,31}")
        if not isinstance(self.digest, bytes) or len(self.digest) != INDEX_DIGEST_BYTES:
            raise errors.LocalProtocolError(f"digest must be {INDEX_DIGEST_BYTES} bytes")

    def encode(self) -> bytes:
        """The entry's wire bytes (inside :class:`ServerInfo`)."""
        name = self.signal.encode("ascii")
        return u8(len(name)) + name + self.digest

    @classmethod
    def _read(cls, reader: Reader) -> IndexDigest:
        raw = reader.take(reader.u8("signal_length"), "signal")
        if not _SIGNAL.fullmatch(raw.decode("latin-1")):
            raise errors.MessageDecodeError("malformed signal name of an index digest")
        return cls(raw.decode("ascii"), reader.take(INDEX_DIGEST_BYTES, "index_digest"))


def _ascending_signals(digests: tuple[IndexDigest, ...]) -> bool:
    """Whether the signal names strictly ascend (sorted and distinct: one encoding)."""
    return all(a.signal < b.signal for a, b in itertools.pairwise(digests))


def _check_index_digests(value: object) -> tuple[IndexDigest, ...]:
    if not isinstance(value, tuple) or not all(isinstance(d, IndexDigest) for d in value):
        raise errors.LocalProtocolError("index_digests must be a tuple of IndexDigest")
    if len(value) > MAX_INDEX_DIGESTS:
        raise errors.LocalProtocolError(f"at most {MAX_INDEX_DIGESTS} index digests")
    if not _ascending_signals(value):
        raise errors.LocalProtocolError("index digests must be sorted by distinct signal")
    return value


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Clearinghouse answers :class:`Hello`: its key, its limits and its current indexes.

    The platform compares ``public_key``, ``key_epoch`` and ``key_id`` with the key published
    beside the index, and the digest of each index it holds with ``index_digests``, before
    it sends a single element. An empty ``index_digests`` means the clearinghouse does not
    say which indexes are current (the platform cannot check them).

    Layout: ``u16 suite || u8 mode || u32 key_epoch || key_id[8] || public_key[32] ||
    u64 element_limit || u32 max_batch || u8 n || n * IndexDigest``; the digests sorted by
    signal name, names distinct (so the encoding is unique).
    """

    suite: Suite
    mode: Mode
    key_epoch: int
    key_id: bytes
    public_key: Element
    element_limit: int
    max_batch: int
    index_digests: tuple[IndexDigest, ...] = ()

    TYPE: ClassVar[MessageType] = MessageType.SERVER_INFO

    def __post_init__(self) -> None:
        _check_enum(self.suite, Suite, "suite")
        _check_enum(self.mode, Mode, "mode")
        _check_uint(self.key_epoch, _U32_MAX, "key_epoch")
        if not isinstance(self.key_id, bytes) or len(self.key_id) != KEY_ID_BYTES:
            raise errors.LocalProtocolError(f"key_id must be {KEY_ID_BYTES} bytes")
        if not isinstance(self.public_key, Element):
            raise errors.LocalProtocolError("public_key must be an Element")
        _check_uint(self.element_limit, _U64_MAX, "element_limit")
        _check_uint(self.max_batch, MAX_ELEMENTS, "max_batch")
        if self.max_batch == 0:
            raise errors.LocalProtocolError("max_batch must be at least 1")
        _check_index_digests(self.index_digests)

    def encode(self) -> bytes:
        """The wire bytes."""
        return b"".join(
            (
                _header(self.TYPE),
                u16(self.suite),
                u8(self.mode),
                u32(self.key_epoch),
                self.key_id,
                bytes(self.public_key),
                u64(self.element_limit),
                u32(self.max_batch),
                u8(len(self.index_digests)),
                *(d.encode() for d in self.index_digests),
            )
        )

    @classmethod
    def _read(cls, reader: Reader, max_elements: int) -> ServerInfo:
        suite, mode = _read_suite_mode(reader)
        key_epoch = reader.u32("key_epoch")
        key_id = reader.take(KEY_ID_BYTES, "key_id")
        public_key = _read_elements(reader, 1)[0]
        element_limit = reader.u64("element_limit")
        max_batch = reader.u32("max_batch")
        if not 1 <= max_batch <= MAX_ELEMENTS:
            raise errors.MessageDecodeError(f"max_batch must be in [1, {MAX_ELEMENTS}]")
        digests = tuple(IndexDigest._read(reader) for _ in range(reader.u8("digest_count")))
        if not _ascending_signals(digests):
            raise errors.MessageDecodeError("index digests are not sorted by distinct signal")
        return cls(suite, mode, key_epoch, key_id, public_key, element_limit, max_batch, digests)


@dataclass(frozen=True, slots=True)
class EvaluateRequest:
    """A padded batch of blinded elements to evaluate (RFC 9497 BlindEvaluate, batched).

    Layout: ``u16 suite || u8 mode || u32 key_epoch || key_id[8] || u32 batch_id ||
    u32 count || count * element[32]``; ``1 <= count``. ``batch_id`` is chosen by the
    platform, unique within the session, and names the batch in later proof requests.
    """

    suite: Suite
    mode: Mode
    key_epoch: int
    key_id: bytes
    batch_id: int
    elements: tuple[Element, ...]

    TYPE: ClassVar[MessageType] = MessageType.EVALUATE_REQUEST

    def __post_init__(self) -> None:
        _check_enum(self.suite, Suite, "suite")
        _check_enum(self.mode, Mode, "mode")
        _check_uint(self.key_epoch, _U32_MAX, "key_epoch")
        if not isinstance(self.key_id, bytes) or len(self.key_id) != KEY_ID_BYTES:
            raise errors.LocalProtocolError(f"key_id must be {KEY_ID_BYTES} bytes")
        _check_uint(self.batch_id, _U32_MAX, "batch_id")
        _check_elements(self.elements, "elements", MAX_ELEMENTS)

    def encode(self) -> bytes:
        """The wire bytes."""
        return b"".join(
            (
                _header(self.TYPE),
                u16(self.suite),
                u8(self.mode),
                u32(self.key_epoch),
                self.key_id,
                u32(self.batch_id),
                u32(len(self.elements)),
                *(bytes(e) for e in self.elements),
            )
        )

    @classmethod
    def _read(cls, reader: Reader, max_elements: int) -> EvaluateRequest:
        suite, mode = _read_suite_mode(reader)
        key_epoch = reader.u32("key_epoch")
        key_id = reader.take(KEY_ID_BYTES, "key_id")
        batch_id = reader.u32("batch_id")
        count = _read_count(reader, max_elements)
        if reader.remaining != count * ELEMENT_BYTES:
            raise errors.MessageDecodeError("element count disagrees with the message length")
        elements = _read_elements(reader, count)
        return cls(suite, mode, key_epoch, key_id, batch_id, elements)


@dataclass(frozen=True, slots=True)
class EvaluateResponse:
    """The evaluated elements ``Z_j = sk * B_j`` of one batch, in request order.

    Layout: ``u32 batch_id || u32 count || count * element[32]``. No proof here: proofs are
    deferred to :class:`ProofRequest` on a sample of batches.
    """

    batch_id: int
    elements: tuple[Element, ...]

    TYPE: ClassVar[MessageType] = MessageType.EVALUATE_RESPONSE

    def __post_init__(self) -> None:
        _check_uint(self.batch_id, _U32_MAX, "batch_id")
        _check_elements(self.elements, "elements", MAX_ELEMENTS)

    def encode(self) -> bytes:
        """The wire bytes."""
        return b"".join(
            (
                _header(self.TYPE),
                u32(self.batch_id),
                u32(len(self.elements)),
                *(bytes(e) for e in self.elements),
            )
        )

    @classmethod
    def _read(cls, reader: Reader, max_elements: int) -> EvaluateResponse:
        batch_id = reader.u32("batch_id")
        count = _read_count(reader, max_elements)
        if reader.remaining != count * ELEMENT_BYTES:
            raise errors.MessageDecodeError("element count disagrees with the message length")
        return cls(batch_id, _read_elements(reader, count))


@dataclass(frozen=True, slots=True)
class ProofRequest:
    """Asks for one RFC 9497 batched DLEQ proof over earlier batches (docs/design.md "Audit").

    The proof covers the concatenation, in the order given, of every ``(B_j, Z_j)`` pair of
    the named batches, pads included. The clearinghouse proves only batches it evaluated in
    this session, each at most once.

    Layout: ``u32 audit_id || u16 n || n * u32 batch_id``; ``1 <= n``, ids distinct.
    """

    audit_id: int
    batch_ids: tuple[int, ...]

    TYPE: ClassVar[MessageType] = MessageType.PROOF_REQUEST

    def __post_init__(self) -> None:
        _check_uint(self.audit_id, _U32_MAX, "audit_id")
        if not isinstance(self.batch_ids, tuple) or not 1 <= len(self.batch_ids) <= (
            MAX_PROOF_BATCHES
        ):
            raise errors.LocalProtocolError(
                f"batch_ids must be a tuple of 1 to {MAX_PROOF_BATCHES} ids"
            )
        for batch_id in self.batch_ids:
            _check_uint(batch_id, _U32_MAX, "batch_id")
        if len(set(self.batch_ids)) != len(self.batch_ids):
            raise errors.LocalProtocolError("batch_ids must be distinct")

    def encode(self) -> bytes:
        """The wire bytes."""
        return b"".join(
            (
                _header(self.TYPE),
                u32(self.audit_id),
                u16(len(self.batch_ids)),
                *(u32(b) for b in self.batch_ids),
            )
        )

    @classmethod
    def _read(cls, reader: Reader, max_elements: int) -> ProofRequest:
        audit_id = reader.u32("audit_id")
        count = reader.u16("count")
        if count == 0:
            raise errors.MessageDecodeError("a proof request names at least one batch")
        batch_ids = tuple(reader.u32("batch_id") for _ in range(count))
        if len(set(batch_ids)) != count:
            raise errors.MessageDecodeError("batch ids of a proof request must be distinct")
        return cls(audit_id, batch_ids)


@dataclass(frozen=True, slots=True)
class ProofResponse:
    """The RFC 9497 batched DLEQ proof answering :class:`ProofRequest`.

    Layout: ``u32 audit_id || c[32] || s[32]`` (RFC 9497 SerializeScalar: little-endian,
    below the group order). Zero is a legal proof scalar: such a proof simply fails to verify.
    """

    audit_id: int
    proof: Proof

    TYPE: ClassVar[MessageType] = MessageType.PROOF_RESPONSE

    def __post_init__(self) -> None:
        _check_uint(self.audit_id, _U32_MAX, "audit_id")
        if not isinstance(self.proof, Proof):
            raise errors.LocalProtocolError("proof must be a Proof")

    def encode(self) -> bytes:
        """The wire bytes."""
        return _header(self.TYPE) + u32(self.audit_id) + bytes(self.proof)

    @classmethod
    def _read(cls, reader: Reader, max_elements: int) -> ProofResponse:
        audit_id = reader.u32("audit_id")
        try:
            proof = Proof.from_bytes(reader.take(PROOF_BYTES, "proof"))
        except errors.InvalidScalar:
            raise errors.MessageDecodeError("proof scalar is not canonical") from None
        return cls(audit_id, proof)


def _check_text(text: object) -> str:
    if (
        not isinstance(text, str)
        or len(text) > MAX_ERROR_TEXT
        or not all(0x20 <= ord(ch) <= 0x7E for ch in text)
    ):
        raise errors.LocalProtocolError(
            f"error text must be at most {MAX_ERROR_TEXT} printable ASCII characters"
        )
    return text


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """The clearinghouse refuses a request; the session on its side stays usable.

    ``request_id`` is the ``batch_id`` or ``audit_id`` of the refused request when it could
    be read, else absent. ``text`` is printable ASCII chosen by the clearinghouse, for logs
    only: it never contains request bytes, and a platform must not act on it.

    Layout: ``u16 code || u8 has_request (0 or 1) || u32 request_id (0 when absent) ||
    u8 text_length || text``.
    """

    code: ErrorCode
    request_id: int | None
    text: str

    TYPE: ClassVar[MessageType] = MessageType.ERROR

    def __post_init__(self) -> None:
        _check_enum(self.code, ErrorCode, "code")
        if self.request_id is not None:
            _check_uint(self.request_id, _U32_MAX, "request_id")
        _check_text(self.text)

    def encode(self) -> bytes:
        """The wire bytes."""
        text = self.text.encode("ascii")
        return b"".join(
            (
                _header(self.TYPE),
                u16(self.code),
                u8(0 if self.request_id is None else 1),
                u32(0 if self.request_id is None else self.request_id),
                u8(len(text)),
                text,
            )
        )

    @classmethod
    def _read(cls, reader: Reader, max_elements: int) -> ErrorMessage:
        code_id = reader.u16("code")
        if code_id not in ErrorCode._value2member_map_:
            raise errors.MessageDecodeError("unknown error code")
        has_request = reader.u8("has_request")
        request_id = reader.u32("request_id")
        if has_request not in (0, 1) or (has_request == 0 and request_id != 0):
            raise errors.MessageDecodeError("malformed request id of an error message")
        raw = reader.take(reader.u8("text_length"), "text")
        if not all(0x20 <= b <= 0x7E for b in raw):
            raise errors.MessageDecodeError("error text is not printable ASCII")
        return cls(ErrorCode(code_id), request_id if has_request else None, raw.decode("ascii"))


@dataclass(frozen=True, slots=True)
class Close:
    """Ends a session (platform), or acknowledges the end (clearinghouse). Empty body."""

    TYPE: ClassVar[MessageType] = MessageType.CLOSE

    def encode(self) -> bytes:
        """The wire bytes."""
        return _header(self.TYPE)

    @classmethod
    def _read(cls, reader: Reader, max_elements: int) -> Close:
        return cls()


Message: TypeAlias = (
    Hello
    | ServerInfo
    | EvaluateRequest
    | EvaluateResponse
    | ProofRequest
    | ProofResponse
    | ErrorMessage
    | Close
)
"""Any message of this protocol version."""

_READERS: Final[dict[MessageType, Callable[[Reader, int], Message]]] = {
    MessageType.HELLO: Hello._read,
    MessageType.SERVER_INFO: ServerInfo._read,
    MessageType.EVALUATE_REQUEST: EvaluateRequest._read,
    MessageType.EVALUATE_RESPONSE: EvaluateResponse._read,
    MessageType.PROOF_REQUEST: ProofRequest._read,
    MessageType.PROOF_RESPONSE: ProofResponse._read,
    MessageType.ERROR: ErrorMessage._read,
    MessageType.CLOSE: Close._read,
}


def decode(data: bytes, *, max_elements: int = MAX_ELEMENTS) -> Message:
    """Decode one message, strictly.

    Args:
        data: exactly one message's bytes.
        max_elements: refuse batches over this many elements before reading them (a
            clearinghouse passes its ``max_batch``); at most :data:`MAX_ELEMENTS`.

    Returns:
        The typed message.

    Raises:
        TypeError: ``data`` is not bytes-like.
        errors.LocalProtocolError: ``max_elements`` is out of range.
        errors.LimitExceeded: the message or its batch is over the limits.
        errors.UnsupportedVersion: another wire version or an unknown suite.
        errors.MessageDecodeError: truncated, trailing bytes, unknown type, bad field;
            :class:`~blindmatch.errors.InvalidPeerElement` for an invalid element.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("a message must be bytes")
    _check_uint(max_elements, MAX_ELEMENTS, "max_elements")
    if len(data) > MAX_MESSAGE_BYTES:
        raise errors.LimitExceeded("message over the size limit")
    reader = Reader(bytes(data))
    version = reader.u8("version")
    if version != PROTOCOL_VERSION:
        raise errors.UnsupportedVersion("unsupported wire version")
    type_id = reader.u8("type")
    if type_id not in MessageType._value2member_map_:
        raise errors.MessageDecodeError("unknown message type")
    message = _READERS[MessageType(type_id)](reader, max_elements)
    reader.finish()
    return message
