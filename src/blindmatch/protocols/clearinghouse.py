"""The clearinghouse's side of the matching protocol: a sans-IO session (bytes in, bytes out).

Theory of operation
-------------------
One :class:`ClearinghouseSession` serves one platform session. It owns no socket and reads
no clock: an adapter (HTTP handler, test harness, :mod:`blindmatch.simulate`) passes every
request's bytes to :meth:`ClearinghouseSession.receive` and sends back the bytes it
returns. Every request gets exactly one reply.

States::

    IDLE --Hello--> ACTIVE --Close--> CLOSED
      \\________________Close_________/

- ``IDLE``: only :class:`~blindmatch.protocols.messages.Hello` (answered with
  :class:`~blindmatch.protocols.messages.ServerInfo`, which names the key, the limits and
  the digests of the current indexes) and ``Close`` are accepted.
- ``ACTIVE``: evaluation requests are validated (suite, mode, key epoch and id, a batch id
  not used before in this session, the batch limit, the element quota, every element) and
  answered with ``sk * B_j`` (RFC 9497 BlindEvaluate, VOPRF mode, no inline proof). The
  session remembers each evaluated batch ``(B, Z)`` until a proof request names it, then
  proves it (one RFC 9497 batched DLEQ proof per request) and forgets it: a batch is proved
  at most once, so proving never costs more than evaluating did.
- ``CLOSED``: the session has freed its memory; calling :meth:`receive` is local misuse.

A peer error (malformed bytes, wrong version, over a limit, wrong state, wrong key) never
raises out of :meth:`~ClearinghouseSession.receive` and never changes the state: the reply
is an :class:`~blindmatch.protocols.messages.ErrorMessage` whose text is our own error
message (which by the project's rule never quotes peer bytes), and the session keeps
serving. Refused elements are not counted against the quota; evaluated pads are (the
clearinghouse cannot tell pads from uploads). A batch over the remaining quota is refused
while decoding, before its elements are read.

What the clearinghouse learns is exactly what it counts here: the number of elements and
of requests, and (through the adapter) their timing. Elements are uniformly random group
elements to it (docs/protocol.md, "What each party learns").
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from blindmatch import errors
from blindmatch.protocols._random import SessionRandom
from blindmatch.protocols.messages import (
    MAX_ELEMENTS,
    MAX_INDEX_DIGESTS,
    Close,
    ErrorCode,
    ErrorMessage,
    EvaluateRequest,
    EvaluateResponse,
    Hello,
    IndexDigest,
    Message,
    ProofRequest,
    ProofResponse,
    ServerInfo,
    Suite,
    decode,
)
from blindmatch.psi import oprf
from blindmatch.psi.group import GENERATOR, Element
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.parallel import SERIAL, Evaluator
from blindmatch.psi.shares import RandomBytes

__all__ = [
    "ClearinghouseSession",
    "ClearinghouseState",
    "ClearinghouseStats",
]

_MAX_TEXT = 255


class ClearinghouseState(enum.Enum):
    """Where a :class:`ClearinghouseSession` is (see the module docstring)."""

    IDLE = "idle"
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass(slots=True)
class ClearinghouseStats:
    """What the clearinghouse saw of one session: counts only, never content."""

    requests: int = 0
    """Requests received (every call of ``receive``)."""
    bytes_received: int = 0
    bytes_sent: int = 0
    elements_evaluated: int = 0
    """Elements evaluated (pads included: they are indistinguishable)."""
    batches_evaluated: int = 0
    proofs: int = 0
    """Proof requests answered."""
    elements_proved: int = 0
    rejected: dict[ErrorCode, int] = field(default_factory=dict)
    """Requests answered with an :class:`ErrorMessage`, by code."""


def _error_code(exc: errors.RemoteProtocolError) -> ErrorCode:
    if isinstance(exc, errors.InvalidPeerElement):
        return ErrorCode.INVALID_ELEMENT
    if isinstance(exc, errors.UnsupportedVersion):
        return ErrorCode.UNSUPPORTED_VERSION
    if isinstance(exc, errors.LimitExceeded):
        return ErrorCode.LIMIT_EXCEEDED
    if isinstance(exc, errors.UnexpectedMessage):
        return ErrorCode.UNEXPECTED_MESSAGE
    if isinstance(exc, errors.KeyMismatch):
        return ErrorCode.KEY_MISMATCH
    return ErrorCode.MALFORMED


def _safe_text(exc: Exception) -> str:
    text = "".join(ch if 0x20 <= ord(ch) <= 0x7E else "?" for ch in str(exc))
    return text[:_MAX_TEXT]


def _request_id(message: Message) -> int | None:
    if isinstance(message, EvaluateRequest):
        return message.batch_id
    if isinstance(message, ProofRequest):
        return message.audit_id
    return None


class ClearinghouseSession:
    """The server side of one platform session.

    Args:
        key: the clearinghouse's VOPRF key of the current epoch.
        element_limit: most elements this session evaluates in total (the platform's quota).
        max_batch: most elements per evaluation request, at most
            :data:`~blindmatch.protocols.messages.MAX_ELEMENTS`.
        index_digests: the digest of the index currently published for each signal type
            (:func:`~blindmatch.protocols.index_digest`), sent in
            ``ServerInfo`` so that a platform holding another index of a signal fails with
            :class:`~blindmatch.errors.StaleIndex` before it sends an element. Omitted or
            empty: ``ServerInfo`` lists none and platforms cannot tell a stale index of the
            current key epoch (their matches then follow the index they hold).
        evaluator: does each request's scalar multiplications: :data:`~blindmatch.psi.
            parallel.SERIAL` on the calling thread by default, or a
            :class:`~blindmatch.psi.parallel.ThreadedEvaluator` (one may serve every
            session of a server) to spread them over threads.
        random_bytes: the source of the proofs' nonces (``secrets.token_bytes``; a test
            injects a seeded source to replay a session byte for byte).

    Raises:
        TypeError: ``key`` or ``evaluator`` of the wrong type.
        errors.LocalProtocolError: a limit is out of range, or ``index_digests`` holds
            something else than :class:`IndexDigest` values of distinct signals (at most
            255).
    """

    def __init__(
        self,
        key: SecretKey,
        *,
        element_limit: int,
        max_batch: int = 4096,
        index_digests: Iterable[IndexDigest] | None = None,
        evaluator: Evaluator = SERIAL,
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> None:
        if not isinstance(key, SecretKey):
            raise TypeError("key must be a SecretKey")
        if key.mode is not oprf.Mode.VOPRF:
            raise errors.LocalProtocolError("the matching protocol runs in VOPRF mode")
        if not isinstance(element_limit, int) or not 0 <= element_limit < 1 << 64:
            raise errors.LocalProtocolError("element_limit must be in [0, 2**64)")
        if not isinstance(max_batch, int) or not 1 <= max_batch <= MAX_ELEMENTS:
            raise errors.LocalProtocolError(f"max_batch must be in [1, {MAX_ELEMENTS}]")
        digests = () if index_digests is None else tuple(index_digests)
        if not all(isinstance(d, IndexDigest) for d in digests):
            raise errors.LocalProtocolError("index_digests must be IndexDigest values")
        if len({d.signal for d in digests}) != len(digests):
            raise errors.LocalProtocolError("one index digest per signal type")
        self._index_digests = tuple(sorted(digests, key=lambda d: d.signal))
        if len(self._index_digests) > MAX_INDEX_DIGESTS:
            raise errors.LocalProtocolError(f"at most {MAX_INDEX_DIGESTS} index digests")
        if not isinstance(evaluator, Evaluator):
            raise TypeError("evaluator must be an Evaluator")
        self._evaluator = evaluator
        self._random = SessionRandom(random_bytes)
        self._key = key
        self._public_key = key.public_key.element
        self._key_id = key.key_id
        self._element_limit = element_limit
        self._max_batch = max_batch
        self._state = ClearinghouseState.IDLE
        self._used_batch_ids: set[int] = set()
        self._unproved: dict[int, tuple[tuple[Element, ...], tuple[Element, ...]]] = {}
        self._evaluated = 0  # the quota's own count: ``stats`` is for metrics and may be reset
        self.stats = ClearinghouseStats()

    @property
    def state(self) -> ClearinghouseState:
        """The current state."""
        return self._state

    @property
    def element_limit(self) -> int:
        """The session's element quota."""
        return self._element_limit

    @property
    def max_batch(self) -> int:
        """Most elements per request."""
        return self._max_batch

    @property
    def elements_evaluated(self) -> int:
        """Elements evaluated so far, pads included: what the quota counts."""
        return self._evaluated

    @property
    def index_digests(self) -> tuple[IndexDigest, ...]:
        """The current index digests announced in ``ServerInfo``, sorted by signal."""
        return self._index_digests

    @property
    def remembered_batches(self) -> int:
        """Evaluated batches not yet proved (kept for proof requests)."""
        return len(self._unproved)

    def receive(self, data: bytes) -> bytes:
        """Handle one request and return the one reply to send back.

        Args:
            data: the request's bytes, exactly one message.

        Returns:
            The reply's bytes: the answer, or an :class:`ErrorMessage` when the request was
            wrong (the session is unchanged and keeps serving).

        Raises:
            TypeError: ``data`` is not bytes-like.
            errors.LocalProtocolError: the session is closed.
        """
        if self._state is ClearinghouseState.CLOSED:
            raise errors.LocalProtocolError("the session is closed")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("a request must be bytes")
        self.stats.requests += 1
        self.stats.bytes_received += len(data)
        message: Message | None = None
        try:
            # The remaining quota caps the count before any element is decoded: a platform
            # whose quota is spent cannot keep us validating elements (docs/protocol.md 6.1).
            remaining = self._element_limit - self._evaluated
            message = decode(data, max_elements=min(self._max_batch, remaining))
            reply: Message = self._handle(message)
        except errors.RemoteProtocolError as exc:
            code = _error_code(exc)
            self.stats.rejected[code] = self.stats.rejected.get(code, 0) + 1
            request_id = None if message is None else _request_id(message)
            reply = ErrorMessage(code, request_id, _safe_text(exc))
        encoded = reply.encode()
        self.stats.bytes_sent += len(encoded)
        return encoded

    def _handle(self, message: Message) -> Message:
        if isinstance(message, Hello):
            return self._hello(message)
        if isinstance(message, EvaluateRequest):
            return self._evaluate(message)
        if isinstance(message, ProofRequest):
            return self._prove(message)
        if isinstance(message, Close):
            self._state = ClearinghouseState.CLOSED
            self._unproved.clear()
            return Close()
        raise errors.UnexpectedMessage("the clearinghouse does not accept this message type")

    def _check_suite_mode(self, suite: Suite, mode: oprf.Mode) -> None:
        if suite is not Suite.RISTRETTO255_SHA512 or mode is not oprf.Mode.VOPRF:
            raise errors.UnsupportedVersion("only ristretto255-SHA512 in VOPRF mode is served")

    def _hello(self, message: Hello) -> ServerInfo:
        if self._state is not ClearinghouseState.IDLE:
            raise errors.UnexpectedMessage("Hello after the session started")
        self._check_suite_mode(message.suite, message.mode)
        self._state = ClearinghouseState.ACTIVE
        return ServerInfo(
            suite=Suite.RISTRETTO255_SHA512,
            mode=oprf.Mode.VOPRF,
            key_epoch=self._key.epoch,
            key_id=self._key_id,
            public_key=self._public_key,
            element_limit=self._element_limit,
            max_batch=self._max_batch,
            index_digests=self._index_digests,
        )

    def _evaluate(self, message: EvaluateRequest) -> EvaluateResponse:
        if self._state is not ClearinghouseState.ACTIVE:
            raise errors.UnexpectedMessage("evaluation request before Hello")
        self._check_suite_mode(message.suite, message.mode)
        if message.key_epoch != self._key.epoch or message.key_id != self._key_id:
            raise errors.KeyMismatch("the request names another key epoch or key id")
        if message.batch_id in self._used_batch_ids:
            raise errors.UnexpectedMessage("batch id already used in this session")
        count = len(message.elements)
        if self._evaluated + count > self._element_limit:
            raise errors.LimitExceeded("the session's element quota is spent")
        try:
            results = self._evaluator.blind_evaluate_batch(
                self._key.scalar, message.elements, oprf.Mode.VOPRF
            )
        except errors.InvalidElement:
            # Decoding validated every element, so this cannot happen with a canonical
            # decoder; if a backend ever disagrees with it, the peer's bytes are still
            # answered with an error, never raised (module docstring).
            raise errors.InvalidPeerElement("an element of the batch is invalid") from None
        evaluated = tuple(results)
        self._used_batch_ids.add(message.batch_id)
        self._unproved[message.batch_id] = (message.elements, evaluated)
        self._evaluated += count
        self.stats.elements_evaluated += count
        self.stats.batches_evaluated += 1
        return EvaluateResponse(message.batch_id, evaluated)

    def _prove(self, message: ProofRequest) -> ProofResponse:
        if self._state is not ClearinghouseState.ACTIVE:
            raise errors.UnexpectedMessage("proof request before Hello")
        missing = [b for b in message.batch_ids if b not in self._unproved]
        if missing:
            raise errors.UnexpectedMessage(
                "a proof request names a batch not evaluated or already proved"
            )
        blinded: list[Element] = []
        evaluated: list[Element] = []
        for batch_id in message.batch_ids:
            b, z = self._unproved[batch_id]
            blinded.extend(b)
            evaluated.extend(z)
        if len(blinded) > oprf.MAX_PROOF_BATCH:
            raise errors.LimitExceeded("a proof covers at most 2**16 elements")
        proof = oprf.generate_proof(
            self._key.scalar,
            GENERATOR,
            self._public_key,
            blinded,
            evaluated,
            oprf.Mode.VOPRF,
            r=self._random.scalar(),
        )
        for batch_id in message.batch_ids:
            del self._unproved[batch_id]
        self.stats.proofs += 1
        self.stats.elements_proved += len(blinded)
        return ProofResponse(message.audit_id, proof)
