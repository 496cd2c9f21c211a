"""The matching endpoints: the protocol's wire messages over HTTP, one request at a time.

Theory of operation
-------------------
A :class:`~blindmatch.protocols.ClearinghouseSession` keeps per-session state in memory
(used batch ids, evaluated batches awaiting a proof). Over HTTP that state lives in the
database instead, so that any worker can serve any request:

- ``POST /v1/match/sessions`` (a ``Hello``) creates a session row bound to the platform
  and to the current key epoch, and answers ``ServerInfo`` with the platform's remaining
  daily quota and the digests of the epoch's newest publication.
- ``POST /v1/match/sessions/{id}`` takes any later message. For an ``EvaluateRequest``
  the worker reads only its fixed-size header (key epoch, key id, batch id, count; the
  body's length must be exactly the header plus ``count`` elements), reserves the
  elements in the platform's daily quota (an atomic conditional ``UPDATE``; 429 and
  nothing evaluated when it is spent), claims the batch id (the primary key ``(session,
  batch_id)`` refuses a reused id across workers) together with the blinded elements' raw
  bytes, then evaluates through a fresh ``ClearinghouseSession`` built for this request
  (``Hello`` fed to it first), which decodes and validates the whole message. A message
  the session refuses (an invalid element, an unsupported suite) gives its quota and its
  batch id back. Validating the elements once, in the session, rather than also in the
  worker before reserving saves about a tenth of a batch's cost (decoding 4096 elements
  takes about 30 ms against about 280 ms for evaluating them; benchmarks/results/
  service.md). Any other body, or one whose header does not fit, is decoded in full.
  For a ``ProofRequest`` it loads the named batches, marks them proved (a conditional
  update: a batch is proved at most once), and replays them through a fresh session,
  which evaluates them again and proves them: a proof costs one more evaluation of the
  audited batches, which platforms sample.
  ``Close`` closes the session and forgets its batches.

Refusals are the protocol's ``ErrorMessage`` bytes with a 4xx status and the code in the
``Blindmatch-Error`` header; the session row is unchanged by a refused request.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from blindmatch import errors
from blindmatch.protocols import ClearinghouseSession
from blindmatch.protocols.messages import (
    PROTOCOL_VERSION,
    Close,
    ErrorCode,
    ErrorMessage,
    EvaluateRequest,
    Hello,
    MessageType,
    ProofRequest,
    Suite,
    decode,
)
from blindmatch.psi import oprf
from blindmatch.psi.group import ELEMENT_BYTES, Element
from blindmatch.service import quotas, tokens
from blindmatch.service.epochs import KeyStore
from blindmatch.service.errors import NotFound, ServiceError
from blindmatch.service.platforms import Platform
from blindmatch.service.publication import current_digests
from blindmatch.service.schema import match_batches, match_sessions
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database, now

__all__ = ["Reply", "handle_message", "open_session"]

_STATUS = {
    ErrorCode.MALFORMED: 400,
    ErrorCode.UNSUPPORTED_VERSION: 400,
    ErrorCode.LIMIT_EXCEEDED: 413,
    ErrorCode.INVALID_ELEMENT: 422,
    ErrorCode.UNEXPECTED_MESSAGE: 409,
    ErrorCode.KEY_MISMATCH: 409,
}


@dataclass(frozen=True, slots=True)
class Reply:
    """The bytes to answer, the HTTP status, and the error code if it is a refusal."""

    body: bytes
    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    session_id: str | None = None


def _refusal(data: bytes) -> Reply:
    message = decode(data)
    assert isinstance(message, ErrorMessage)
    return Reply(data, _STATUS.get(message.code, 400), message.code.name.lower())


def _fresh(keys: KeyStore, epoch: int, limit: int, settings: Settings) -> ClearinghouseSession:
    session = ClearinghouseSession(
        keys.secret(epoch), element_limit=limit, max_batch=settings.limits.max_batch
    )
    session.receive(Hello().encode())
    return session


def _answer(session: ClearinghouseSession, data: bytes) -> Reply:
    reply = session.receive(data)
    if reply[1:2] == bytes([ErrorMessage.TYPE]):
        return _refusal(reply)
    return Reply(reply)


def open_session(
    settings: Settings, database: Database, keys: KeyStore, platform: Platform, data: bytes
) -> Reply:
    """Answer a ``Hello``: create a session of the current epoch and send ``ServerInfo``."""
    with database.begin() as connection:
        epoch = keys.current(connection).epoch
        remaining = quotas.remaining(connection, platform)
        digests = current_digests(connection, epoch)
    session = ClearinghouseSession(
        keys.secret(epoch),
        element_limit=remaining,
        max_batch=settings.limits.max_batch,
        index_digests=digests,
    )
    reply = _answer(session, data)
    if reply.error is not None:
        return reply
    session_id = tokens.new_public_id(16)
    with database.begin() as connection:
        connection.execute(
            sa.insert(match_sessions).values(
                id=session_id, platform=platform.id, epoch=epoch, created_at=now(), closed=False
            )
        )
    return Reply(reply.body, 201, session_id=session_id)


def _load_session(
    connection: Connection, settings: Settings, keys: KeyStore, platform: Platform, session_id: str
) -> int:
    row = connection.execute(
        sa.select(match_sessions).where(match_sessions.c.id == session_id[:48])
    ).first()
    if row is None or row.platform != platform.id or row.closed:
        raise NotFound("no such matching session", code="unknown_session")
    if row.created_at + settings.limits.session_seconds < now():
        raise NotFound("the matching session expired", code="unknown_session")
    return int(row.epoch)


_EVALUATE_HEADER = struct.Struct(">BBHBI8sII")
"""An ``EvaluateRequest``'s fixed part (docs/protocol.md): protocol version, message type,
suite, mode, key epoch, key id, batch id, element count; the elements follow."""


@dataclass(frozen=True, slots=True)
class _Batch:
    """What the worker needs of an ``EvaluateRequest`` before evaluating it."""

    key_epoch: int
    key_id: bytes
    batch_id: int
    count: int
    elements: bytes


def _evaluate_header(data: bytes, max_batch: int) -> _Batch | None:
    """The header of an ``EvaluateRequest`` of a fitting length, else ``None``."""
    if len(data) < _EVALUATE_HEADER.size:
        return None
    version, kind, _suite, _mode, epoch, key_id, batch_id, count = _EVALUATE_HEADER.unpack_from(
        data
    )
    if (
        version != PROTOCOL_VERSION
        or kind != MessageType.EVALUATE_REQUEST
        or not 1 <= count <= max_batch
        or len(data) != _EVALUATE_HEADER.size + count * ELEMENT_BYTES
    ):
        return None
    return _Batch(epoch, key_id, batch_id, count, bytes(data[_EVALUATE_HEADER.size :]))


def handle_message(
    settings: Settings,
    database: Database,
    keys: KeyStore,
    platform: Platform,
    session_id: str,
    data: bytes,
) -> Reply:
    """Answer one message of an open session (module docstring)."""
    with database.begin() as connection:
        epoch = _load_session(connection, settings, keys, platform, session_id)
    batch = _evaluate_header(data, settings.limits.max_batch)
    if batch is not None:
        return _evaluate(settings, database, keys, platform, session_id, epoch, batch, data)
    probe = _fresh(keys, epoch, settings.limits.max_batch, settings)
    try:
        message = decode(data, max_elements=settings.limits.max_batch)
    except errors.RemoteProtocolError:
        return _answer(probe, data)
    if isinstance(message, ProofRequest):
        return _prove(settings, database, keys, session_id, epoch, message, data)
    if isinstance(message, Close):
        with database.begin() as connection:
            connection.execute(
                sa.update(match_sessions)
                .where(match_sessions.c.id == session_id)
                .values(closed=True)
            )
            connection.execute(
                sa.delete(match_batches).where(match_batches.c.session == session_id)
            )
        return _answer(probe, data)
    # Hello again, an EvaluateRequest whose header and length disagree (decode refused
    # it above), or a server-to-platform message: the session refuses it.
    return _answer(probe, data)


def _evaluate(
    settings: Settings,
    database: Database,
    keys: KeyStore,
    platform: Platform,
    session_id: str,
    epoch: int,
    batch: _Batch,
    data: bytes,
) -> Reply:
    count = batch.count
    key = keys.secret(epoch)
    if batch.key_epoch != epoch or batch.key_id != key.key_id:
        return _answer(_fresh(keys, epoch, count, settings), data)
    try:
        with database.begin() as connection:
            quotas.reserve(connection, platform, count)
            try:
                with connection.begin_nested():
                    connection.execute(
                        sa.insert(match_batches).values(
                            session=session_id,
                            batch_id=batch.batch_id,
                            elements=batch.elements,
                            proved=False,
                        )
                    )
            except sa.exc.IntegrityError:
                raise _Reused() from None
    except _Reused:
        error = ErrorMessage(
            ErrorCode.UNEXPECTED_MESSAGE, batch.batch_id, "batch id already used in this session"
        )
        return _refusal(error.encode())
    except ServiceError as exc:
        if exc.status == 429:
            error = ErrorMessage(
                ErrorCode.LIMIT_EXCEEDED, batch.batch_id, "the daily element quota is spent"
            )
            retry = getattr(exc, "retry_after", None)
            return Reply(error.encode(), 429, "quota_exhausted", retry_after=retry)
        raise
    try:
        reply = _answer(_fresh(keys, epoch, count, settings), data)
    except BaseException:
        _give_back(database, platform, session_id, batch.batch_id, count)
        raise
    if reply.error is not None:
        _give_back(database, platform, session_id, batch.batch_id, count)
    return reply


class _Reused(Exception):
    """A batch id already used in this session (internal control flow)."""


def _give_back(
    database: Database, platform: Platform, session_id: str, batch_id: int, count: int
) -> None:
    with database.begin() as connection:
        quotas.refund(connection, platform, count)
        connection.execute(
            sa.delete(match_batches).where(
                match_batches.c.session == session_id, match_batches.c.batch_id == batch_id
            )
        )


def _prove(
    settings: Settings,
    database: Database,
    keys: KeyStore,
    session_id: str,
    epoch: int,
    message: ProofRequest,
    data: bytes,
) -> Reply:
    ids = list(message.batch_ids)
    with database.begin() as connection:
        rows = connection.execute(
            sa.select(match_batches.c.batch_id, match_batches.c.elements).where(
                match_batches.c.session == session_id,
                match_batches.c.batch_id.in_(ids),
                match_batches.c.proved.is_(False),
            )
        ).all()
        total = sum(len(row.elements) // ELEMENT_BYTES for row in rows)
        if total > oprf.MAX_PROOF_BATCH:
            error = ErrorMessage(
                ErrorCode.LIMIT_EXCEEDED, message.audit_id, "a proof covers at most 2**16 elements"
            )
            return _refusal(error.encode())
        if len(rows) == len(set(ids)) == len(ids):
            claimed = connection.execute(
                sa.update(match_batches)
                .where(
                    match_batches.c.session == session_id,
                    match_batches.c.batch_id.in_(ids),
                    match_batches.c.proved.is_(False),
                )
                .values(proved=True, elements=None)
            )
            if claimed.rowcount != len(ids):
                rows = []
    if len(rows) != len(ids) or len(set(ids)) != len(ids):
        # The fresh session knows no batch: it refuses the request with the protocol's text.
        return _answer(_fresh(keys, epoch, 1, settings), data)
    key = keys.secret(epoch)
    batches = {int(row.batch_id): bytes(row.elements) for row in rows}
    session = _fresh(keys, epoch, total, settings)
    for batch_id in ids:
        raw = batches[batch_id]
        elements = tuple(
            Element(raw[i : i + ELEMENT_BYTES]) for i in range(0, len(raw), ELEMENT_BYTES)
        )
        replay = EvaluateRequest(
            Suite.RISTRETTO255_SHA512,
            key.mode,
            epoch,
            key.key_id,
            batch_id,
            elements,
        )
        session.receive(replay.encode())
    return _answer(session, data)
