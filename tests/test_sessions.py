"""Sans-IO sessions: states, limits, typed errors, and that every error leaves the session
usable or cleanly failed, never wrong. The peer is always a real session or real encoded
messages (a malicious peer is a real encoder with the wrong key)."""

from __future__ import annotations

import collections
import functools
import hashlib
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch import errors
from blindmatch.fingerprint.pdq import DIHEDRAL_NAMES, pdq_dihedral_from_rgb, pdq_from_rgb
from blindmatch.fingerprint.types import PdqFingerprint
from blindmatch.protocols import (
    ClearinghouseSession,
    ClearinghouseState,
    ClearinghouseStats,
    IndexDigest,
    Match,
    PlatformSession,
    PlatformState,
    PlatformStats,
    SessionPair,
    Upload,
    index_digest,
)
from blindmatch.protocols import messages as m
from blindmatch.psi import oprf
from blindmatch.psi.bands import exact_banding, pdq_banding
from blindmatch.psi.group import GENERATOR, Element, Scalar
from blindmatch.psi.index import (
    INDEX_SET_DOMAIN,
    BuiltIndex,
    Index,
    IndexSet,
    Reference,
    add_references,
    build_index,
)
from blindmatch.psi.kdf import derive_entries
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.parallel import ThreadedEvaluator
from index_tools import densify

KEY = SecretKey.derive(bytes(range(32)), b"test-sessions", mode=oprf.Mode.VOPRF, epoch=3)
OTHER_KEY = SecretKey.derive(bytes(32), b"test-sessions", mode=oprf.Mode.VOPRF, epoch=3)
MD5 = exact_banding("md5", 128)
SUITE = m.Suite.RISTRETTO255_SHA512


def md5(i: int) -> bytes:
    return hashlib.md5(f"reference-{i}".encode(), usedforsecurity=False).digest()


def _build(key: SecretKey, references: list[Reference]) -> BuiltIndex:
    return build_index(key, MD5, references, processes=1)


@pytest.fixture(scope="module")
def built() -> BuiltIndex:
    return _build(KEY, [Reference(f"report-{i}", "md5", md5(i)) for i in range(40)])


@pytest.fixture(scope="module")
def index(built: BuiltIndex) -> Index:
    return Index.from_bytes(built.to_bytes())


def _request(batch_id: int, elements: tuple[Element, ...], key: SecretKey = KEY) -> bytes:
    return m.EvaluateRequest(
        SUITE, oprf.Mode.VOPRF, key.epoch, key.key_id, batch_id, elements
    ).encode()


def _elements(n: int) -> tuple[Element, ...]:
    return tuple(Scalar.random().multiply_base() for _ in range(n))


def _active(limit: int = 1000, max_batch: int = 64) -> ClearinghouseSession:
    session = ClearinghouseSession(KEY, element_limit=limit, max_batch=max_batch)
    reply = m.decode(session.receive(m.Hello().encode()))
    assert isinstance(reply, m.ServerInfo)
    return session


def _error(reply: bytes) -> m.ErrorMessage:
    message = m.decode(reply)
    assert isinstance(message, m.ErrorMessage)
    return message


# ====================================================================== clearinghouse


def test_hello_answers_server_info() -> None:
    session = ClearinghouseSession(KEY, element_limit=77, max_batch=9)
    states = [session.state]
    info = m.decode(session.receive(m.Hello().encode()))
    states.append(session.state)
    assert states == [ClearinghouseState.IDLE, ClearinghouseState.ACTIVE]
    assert info == m.ServerInfo(
        SUITE, oprf.Mode.VOPRF, 3, KEY.key_id, KEY.public_key.element, 77, 9
    )


def test_evaluation_is_sk_times_b() -> None:
    session = _active()
    elements = _elements(5)
    reply = m.decode(session.receive(_request(11, elements)))
    assert isinstance(reply, m.EvaluateResponse)
    assert reply.batch_id == 11
    assert reply.elements == tuple(KEY.scalar * b for b in elements)
    assert session.stats.elements_evaluated == 5
    assert session.stats.batches_evaluated == 1


@pytest.mark.parametrize(
    ("before", "request_bytes", "code"),
    [
        pytest.param(
            False,
            lambda: _request(1, _elements(1)),
            m.ErrorCode.UNEXPECTED_MESSAGE,
            id="evaluate-before-hello",
        ),
        pytest.param(
            False,
            lambda: m.ProofRequest(1, (1,)).encode(),
            m.ErrorCode.UNEXPECTED_MESSAGE,
            id="proof-before-hello",
        ),
        pytest.param(
            True, lambda: m.Hello().encode(), m.ErrorCode.UNEXPECTED_MESSAGE, id="second-hello"
        ),
        pytest.param(
            False,
            lambda: m.Hello(SUITE, oprf.Mode.OPRF).encode(),
            m.ErrorCode.UNSUPPORTED_VERSION,
            id="hello-oprf-mode",
        ),
        pytest.param(
            True,
            lambda: _request(1, _elements(1), OTHER_KEY),
            m.ErrorCode.KEY_MISMATCH,
            id="other-key-id",
        ),
        pytest.param(
            True,
            lambda: m.EvaluateRequest(
                SUITE, oprf.Mode.VOPRF, 4, KEY.key_id, 1, _elements(1)
            ).encode(),
            m.ErrorCode.KEY_MISMATCH,
            id="other-epoch",
        ),
        pytest.param(
            True,
            lambda: m.EvaluateRequest(
                SUITE, oprf.Mode.POPRF, 3, KEY.key_id, 1, _elements(1)
            ).encode(),
            m.ErrorCode.UNSUPPORTED_VERSION,
            id="request-poprf-mode",
        ),
        pytest.param(
            True,
            lambda: _request(1, _elements(65)),
            m.ErrorCode.LIMIT_EXCEEDED,
            id="over-max-batch",
        ),
        pytest.param(
            True, lambda: _request(1, _elements(1))[:-5], m.ErrorCode.MALFORMED, id="truncated"
        ),
        pytest.param(True, lambda: b"", m.ErrorCode.MALFORMED, id="empty"),
        pytest.param(
            True, lambda: b"\x02\x01\x00\x01\x01", m.ErrorCode.UNSUPPORTED_VERSION, id="version-2"
        ),
        pytest.param(
            True,
            lambda: _request(1, _elements(1))[:-32] + bytes(32),
            m.ErrorCode.INVALID_ELEMENT,
            id="identity-element",
        ),
        pytest.param(
            True,
            lambda: m.EvaluateResponse(1, _elements(1)).encode(),
            m.ErrorCode.UNEXPECTED_MESSAGE,
            id="response-sent-to-server",
        ),
        pytest.param(
            True,
            lambda: m.ErrorMessage(m.ErrorCode.MALFORMED, None, "x").encode(),
            m.ErrorCode.UNEXPECTED_MESSAGE,
            id="error-sent-to-server",
        ),
        pytest.param(
            True,
            lambda: m.ProofRequest(7, (99,)).encode(),
            m.ErrorCode.UNEXPECTED_MESSAGE,
            id="proof-of-unknown-batch",
        ),
    ],
)
def test_peer_errors_are_answered_and_leave_the_session_usable(
    before: bool, request_bytes: Callable[[], bytes], code: m.ErrorCode
) -> None:
    session = (
        _active(max_batch=64)
        if before
        else ClearinghouseSession(KEY, element_limit=1000, max_batch=64)
    )
    state = session.state
    error = _error(session.receive(request_bytes()))
    assert error.code is code
    assert session.state is state
    assert session.stats.elements_evaluated == 0
    assert session.stats.rejected == {code: 1}
    if state is ClearinghouseState.IDLE:
        session.receive(m.Hello().encode())
    elements = _elements(2)
    reply = m.decode(session.receive(_request(1, elements)))
    assert isinstance(reply, m.EvaluateResponse)
    assert reply.elements == tuple(KEY.scalar * b for b in elements)


def test_error_names_the_request_it_refuses() -> None:
    session = _active()
    assert _error(session.receive(_request(42, _elements(1), OTHER_KEY))).request_id == 42
    assert _error(session.receive(b"\x01\x03")).request_id is None


def test_reused_batch_id_is_refused() -> None:
    session = _active()
    session.receive(_request(5, _elements(2)))
    error = _error(session.receive(_request(5, _elements(2))))
    assert error.code is m.ErrorCode.UNEXPECTED_MESSAGE
    assert session.stats.elements_evaluated == 2


def test_quota_counts_elements_and_refuses_whole_batches() -> None:
    session = _active(limit=10, max_batch=8)
    assert isinstance(m.decode(session.receive(_request(1, _elements(8)))), m.EvaluateResponse)
    error = _error(session.receive(_request(2, _elements(3))))
    assert error.code is m.ErrorCode.LIMIT_EXCEEDED
    assert isinstance(m.decode(session.receive(_request(3, _elements(2)))), m.EvaluateResponse)
    assert session.stats.elements_evaluated == 10
    assert _error(session.receive(_request(4, _elements(1)))).code is m.ErrorCode.LIMIT_EXCEEDED


def test_over_quota_batches_are_refused_before_their_elements_are_read() -> None:
    """A platform whose quota is spent must not keep the clearinghouse validating elements:
    the count is checked against the remaining quota before any element is decoded (an
    identity element at the end would otherwise be reported)."""
    session = _active(limit=10, max_batch=8)
    session.receive(_request(1, _elements(8)))
    over = _request(2, _elements(3))[:-32] + bytes(32)
    assert _error(session.receive(over)).code is m.ErrorCode.LIMIT_EXCEEDED
    within = _request(3, _elements(2))[:-32] + bytes(32)
    assert _error(session.receive(within)).code is m.ErrorCode.INVALID_ELEMENT
    assert isinstance(m.decode(session.receive(_request(4, _elements(2)))), m.EvaluateResponse)
    assert _error(session.receive(_request(5, _elements(1)))).code is m.ErrorCode.LIMIT_EXCEEDED


def test_the_quota_does_not_live_in_the_resettable_stats(index: Index) -> None:
    """Adapters export and reset metrics; that must not hand out a fresh quota."""
    session = _active(limit=8, max_batch=8)
    assert isinstance(m.decode(session.receive(_request(1, _elements(8)))), m.EvaluateResponse)
    session.stats = ClearinghouseStats()
    assert _error(session.receive(_request(2, _elements(1)))).code is m.ErrorCode.LIMIT_EXCEEDED
    assert session.elements_evaluated == 8
    platform = _platform(index, batch_size=8)
    platform.add_uploads(_uploads(range(12)))
    platform.receive(ClearinghouseSession(KEY, element_limit=8).receive(platform.hello()))
    platform.next_request()
    platform.stats = PlatformStats()
    with pytest.raises(errors.LocalProtocolError):
        platform.next_request()


def test_threaded_evaluation_answers_the_same_bytes_and_proves() -> None:
    """A session with a ThreadedEvaluator gives the same answer, byte for byte, as one
    evaluating on its own thread, and its batches prove like any other."""
    elements = _elements(600)
    with ThreadedEvaluator(2, min_chunk=100) as evaluator:
        threaded = ClearinghouseSession(
            KEY, element_limit=10_000, max_batch=4096, evaluator=evaluator
        )
        threaded.receive(m.Hello().encode())
        reply = threaded.receive(_request(1, elements))
        plain = ClearinghouseSession(KEY, element_limit=10_000, max_batch=4096)
        plain.receive(m.Hello().encode())
        assert reply == plain.receive(_request(1, elements))
        proof = m.decode(threaded.receive(m.ProofRequest(2, (1,)).encode()))
        assert isinstance(proof, m.ProofResponse)
        answer = m.decode(reply)
        assert isinstance(answer, m.EvaluateResponse)
        oprf.verify_proof(
            GENERATOR,
            KEY.public_key.element,
            elements,
            answer.elements,
            proof.proof,
            oprf.Mode.VOPRF,
        )
    with pytest.raises(errors.LocalProtocolError):  # closed with its context
        evaluator.blind_evaluate_batch(KEY.scalar, elements)


def test_threaded_evaluator_splits_only_large_batches() -> None:
    with ThreadedEvaluator(3, min_chunk=4) as evaluator:
        assert evaluator.threads == 3
        for count in (0, 1, 7, 8, 13, 64):
            elements = _elements(count)
            assert evaluator.blind_evaluate_batch(KEY.scalar, elements) == [
                KEY.scalar * b for b in elements
            ]
    with pytest.raises(errors.InvalidArgument, match="threads"):
        ThreadedEvaluator(0)
    with pytest.raises(errors.InvalidArgument):
        ThreadedEvaluator(2, min_chunk=0)
    with pytest.raises(TypeError):
        ClearinghouseSession(KEY, element_limit=1, evaluator=object())  # type: ignore[arg-type]


def test_deferred_proof_verifies_and_each_batch_is_proved_once() -> None:
    session = _active()
    first, second = _elements(3), _elements(4)
    z1 = m.decode(session.receive(_request(1, first)))
    z2 = m.decode(session.receive(_request(2, second)))
    assert isinstance(z1, m.EvaluateResponse)
    assert isinstance(z2, m.EvaluateResponse)
    reply = m.decode(session.receive(m.ProofRequest(8, (2, 1)).encode()))
    assert isinstance(reply, m.ProofResponse)
    assert reply.audit_id == 8
    oprf.verify_proof(
        GENERATOR,
        KEY.public_key.element,
        [*second, *first],
        [*z2.elements, *z1.elements],
        reply.proof,
        oprf.Mode.VOPRF,
    )
    with pytest.raises(errors.VerifyError):  # order matters: the proof binds the sequence
        oprf.verify_proof(
            GENERATOR,
            KEY.public_key.element,
            [*first, *second],
            [*z1.elements, *z2.elements],
            reply.proof,
            oprf.Mode.VOPRF,
        )
    assert session.remembered_batches == 0
    again = _error(session.receive(m.ProofRequest(9, (1,)).encode()))
    assert again.code is m.ErrorCode.UNEXPECTED_MESSAGE
    assert session.stats.proofs == 1
    assert session.stats.elements_proved == 7


def test_close_frees_and_further_use_is_local_misuse() -> None:
    session = _active()
    session.receive(_request(1, _elements(1)))
    assert m.decode(session.receive(m.Close().encode())) == m.Close()
    assert session.state is ClearinghouseState.CLOSED
    assert session.remembered_batches == 0
    with pytest.raises(errors.LocalProtocolError):
        session.receive(m.Hello().encode())


def test_close_from_idle() -> None:
    session = ClearinghouseSession(KEY, element_limit=1)
    assert m.decode(session.receive(m.Close().encode())) == m.Close()
    assert session.state is ClearinghouseState.CLOSED


@pytest.mark.parametrize(
    "kwargs",
    [
        {"element_limit": -1},
        {"element_limit": 1 << 64},
        {"element_limit": 10, "max_batch": 0},
        {"element_limit": 10, "max_batch": m.MAX_ELEMENTS + 1},
    ],
    ids=["limit-negative", "limit-huge", "batch-0", "batch-huge"],
)
def test_clearinghouse_bad_arguments(kwargs: dict[str, int]) -> None:
    with pytest.raises(errors.LocalProtocolError):
        ClearinghouseSession(
            KEY, element_limit=kwargs["element_limit"], max_batch=kwargs.get("max_batch", 4096)
        )


def test_clearinghouse_needs_a_voprf_secret_key() -> None:
    oprf_key = SecretKey.derive(bytes(32), b"x", mode=oprf.Mode.OPRF)
    with pytest.raises(errors.LocalProtocolError):
        ClearinghouseSession(oprf_key, element_limit=1)
    with pytest.raises(TypeError):
        ClearinghouseSession(KEY.public_key, element_limit=1)  # type: ignore[arg-type]


def test_clearinghouse_refuses_non_bytes() -> None:
    with pytest.raises(TypeError):
        _active().receive("hello")  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_get_a_well_formed_answer(data: bytes) -> None:
    session = ClearinghouseSession(KEY, element_limit=100, max_batch=4)
    reply = m.decode(session.receive(data))
    assert isinstance(reply, m.ErrorMessage | m.ServerInfo | m.Close)


# ====================================================================== platform


def _platform(index: Index, batch_size: int = 8, canary_interval: int = 64) -> PlatformSession:
    return PlatformSession(
        index, KEY.public_key, batch_size=batch_size, canary_interval=canary_interval
    )


def _uploads(ids: range) -> list[tuple[str, str, bytes]]:
    return [(f"upload-{i}", "md5", md5(i)) for i in ids]


def test_matches_are_exact(built: BuiltIndex, index: Index) -> None:
    platform = _platform(index, batch_size=8, canary_interval=4)
    platform.add_uploads(_uploads(range(30, 50)))
    wire = SessionPair(platform, ClearinghouseSession(KEY, element_limit=10_000))
    found = wire.run()
    assert sorted((f.upload_ref, built.handles[f.handle]) for f in found) == sorted(
        (f"upload-{i}", f"report-{i}") for i in range(30, 40)
    )
    assert all(f.signal == "md5" for f in found)
    stats = platform.stats
    assert stats.canary_queries == 5
    assert stats.canaries_matched == 5
    assert stats.uploads_done == 20
    assert stats.uploads_matched == 10
    assert stats.elements_sent == stats.requests * 8
    assert stats.elements_sent == 25 + stats.pad_elements
    assert wire.clearinghouse.stats.elements_evaluated == stats.elements_sent
    assert platform.unfinished() == ()
    assert platform.canary_checked_signals == ("md5",)


def test_threaded_platform_and_clearinghouse_match_the_same(
    built: BuiltIndex, index: Index
) -> None:
    """Both sides with a ThreadedEvaluator (batches large enough to split): the same
    matches as the single-thread run of test_matches_are_exact, canaries included."""
    with ThreadedEvaluator(2, min_chunk=8) as evaluator:
        platform = PlatformSession(
            index, KEY.public_key, batch_size=64, canary_interval=4, evaluator=evaluator
        )
        platform.add_uploads(_uploads(range(30, 50)))
        clearinghouse = ClearinghouseSession(KEY, element_limit=10_000, evaluator=evaluator)
        found = SessionPair(platform, clearinghouse).run()
    assert sorted((f.upload_ref, built.handles[f.handle]) for f in found) == sorted(
        (f"upload-{i}", f"report-{i}") for i in range(30, 40)
    )
    assert platform.stats.canaries_matched == platform.stats.canary_queries == 5
    with pytest.raises(TypeError):
        PlatformSession(index, KEY.public_key, evaluator=object())  # type: ignore[arg-type]


def test_threaded_client_steps_equal_the_serial_ones() -> None:
    inputs = [md5(i) for i in range(40)]
    blinds = [Scalar.random() for _ in range(20) for _ in range(2)]
    _, serial = oprf.blind_batch(inputs, oprf.Mode.VOPRF, blinds=blinds)
    evaluated = oprf.blind_evaluate_batch(KEY.scalar, serial, oprf.Mode.VOPRF)
    expected = oprf.finalize_batch(inputs, blinds, evaluated, oprf.Mode.VOPRF)
    assert expected == oprf.evaluate_batch(KEY.scalar, inputs, oprf.Mode.VOPRF)
    with ThreadedEvaluator(3, min_chunk=5) as evaluator:
        assert evaluator.blind_batch(inputs, oprf.Mode.VOPRF, blinds=blinds) == serial
        assert evaluator.blind_evaluate_batch(KEY.scalar, serial, oprf.Mode.VOPRF) == evaluated
        assert evaluator.finalize_batch(inputs, blinds, evaluated, oprf.Mode.VOPRF) == expected
        with pytest.raises(errors.InvalidArgument):
            evaluator.blind_batch(inputs, oprf.Mode.VOPRF, blinds=blinds[:-1])
        with pytest.raises(errors.InvalidArgument):
            evaluator.finalize_batch(inputs, blinds, evaluated[:-1], oprf.Mode.VOPRF)
        with pytest.raises(errors.InvalidScalar):  # a part's error reaches the caller
            evaluator.blind_batch(
                inputs, oprf.Mode.VOPRF, blinds=[*blinds[:-1], Scalar.from_int(0, allow_zero=True)]
            )


def test_pipelined_requests_answered_out_of_order(built: BuiltIndex, index: Index) -> None:
    platform, clearinghouse = _ready(index, batch_size=4)
    platform.add_uploads(_uploads(range(36, 44)))
    requests = []
    while platform.wants_to_send:
        requests.append(platform.next_request())
    assert len(requests) == 3
    assert platform.outstanding == 3
    replies = [clearinghouse.receive(r) for r in requests]
    found: list[Match] = []
    for reply in reversed(replies):
        found += platform.receive(reply)
    assert platform.outstanding == 0
    assert sorted(built.handles[f.handle] for f in found) == [f"report-{i}" for i in range(36, 40)]
    with pytest.raises(errors.UnexpectedMessage):  # a replayed reply
        platform.receive(replies[0])


def test_every_request_has_batch_size_elements(index: Index) -> None:
    platform = _platform(index, batch_size=16)
    platform.add_uploads(_uploads(range(3)))
    clearinghouse = ClearinghouseSession(KEY, element_limit=1000)
    platform.receive(clearinghouse.receive(platform.hello()))
    request = m.decode(platform.next_request())
    assert isinstance(request, m.EvaluateRequest)
    assert len(request.elements) == 16
    assert len(set(request.elements)) == 16
    assert not platform.wants_to_send


def test_batch_size_shrinks_to_the_servers_max_batch(index: Index) -> None:
    platform = _platform(index, batch_size=64)
    platform.receive(
        ClearinghouseSession(KEY, element_limit=10, max_batch=5).receive(platform.hello())
    )
    assert platform.batch_size == 5


def test_platform_checks_the_quota_before_sending(index: Index) -> None:
    platform = _platform(index, batch_size=8)
    platform.add_uploads(_uploads(range(12)))
    wire = SessionPair(platform, ClearinghouseSession(KEY, element_limit=10))
    with pytest.raises(errors.LocalProtocolError):
        wire.run()
    assert platform.state is PlatformState.READY
    assert len(platform.unfinished()) > 0


def test_wrong_server_key_fails_cleanly(index: Index) -> None:
    platform = _platform(index)
    platform.add_uploads(_uploads(range(3)))
    with pytest.raises(errors.KeyMismatch):
        platform.receive(
            ClearinghouseSession(OTHER_KEY, element_limit=100).receive(platform.hello())
        )
    assert platform.state is PlatformState.FAILED
    with pytest.raises(errors.LocalProtocolError):
        platform.next_request()
    assert platform.unfinished() == ("upload-0", "upload-1", "upload-2")


def _ready(index: Index, batch_size: int = 8) -> tuple[PlatformSession, ClearinghouseSession]:
    platform = _platform(index, batch_size=batch_size)
    clearinghouse = ClearinghouseSession(KEY, element_limit=10_000)
    platform.receive(clearinghouse.receive(platform.hello()))
    return platform, clearinghouse


@pytest.mark.parametrize(
    ("corrupt", "error"),
    [
        pytest.param(lambda r: r[:-1], errors.MessageDecodeError, id="truncated"),
        pytest.param(lambda r: r + b"\x00", errors.MessageDecodeError, id="trailing"),
        pytest.param(lambda r: b"\x02" + r[1:], errors.UnsupportedVersion, id="version"),
        pytest.param(lambda r: r[:-32] + bytes(32), errors.InvalidPeerElement, id="identity"),
        pytest.param(
            lambda r: r[:2] + (99).to_bytes(4, "big") + r[6:],
            errors.UnexpectedMessage,
            id="unknown-batch-id",
        ),
        pytest.param(
            lambda r: r[:6] + (7).to_bytes(4, "big") + r[10:-32],
            errors.MessageDecodeError,
            id="fewer-elements",
        ),
        pytest.param(lambda r: m.Close().encode(), errors.UnexpectedMessage, id="close-unasked"),
        pytest.param(
            lambda r: m.ServerInfo(
                SUITE, oprf.Mode.VOPRF, 3, KEY.key_id, KEY.public_key.element, 1, 1
            ).encode(),
            errors.UnexpectedMessage,
            id="server-info-again",
        ),
        pytest.param(
            lambda r: m.ProofResponse(
                0, oprf.Proof(Scalar.from_int(1), Scalar.from_int(1))
            ).encode(),
            errors.UnexpectedMessage,
            id="proof-unasked",
        ),
    ],
)
def test_bad_replies_leave_the_platform_usable(
    built: BuiltIndex,
    index: Index,
    corrupt: Callable[[bytes], bytes],
    error: type[Exception],
) -> None:
    platform, clearinghouse = _ready(index)
    platform.add_uploads(_uploads(range(35, 41)))
    reply = clearinghouse.receive(platform.next_request())
    before = platform.stats.bytes_received
    with pytest.raises(error):
        platform.receive(corrupt(reply))
    assert platform.state is PlatformState.READY
    assert platform.stats.bytes_received == before
    found = platform.receive(reply)
    while platform.wants_to_send:
        found += platform.receive(clearinghouse.receive(platform.next_request()))
    assert sorted(built.handles[f.handle] for f in found) == [f"report-{i}" for i in range(35, 40)]


@functools.cache
def _shared_index() -> tuple[BuiltIndex, Index]:
    built = _build(KEY, [Reference(f"report-{i}", "md5", md5(i)) for i in range(40)])
    return built, Index.from_bytes(built.to_bytes())


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_corrupted_replies_never_give_a_wrong_match(data: st.DataObject) -> None:
    """Any corruption of a reply raises a typed error and changes nothing, or fails the
    session, or is accepted as a different valid reply: then no match it yields is false."""
    built, index = _shared_index()
    platform, clearinghouse = _ready(index, batch_size=8)
    platform.add_uploads(_uploads(range(36, 42)))
    reply = clearinghouse.receive(platform.next_request())
    corrupted = bytearray(reply)
    for _ in range(data.draw(st.integers(1, 3))):
        offset = data.draw(st.integers(0, len(corrupted) - 1))
        corrupted[offset] = data.draw(st.integers(0, 255))
    corrupted = corrupted[: data.draw(st.integers(0, len(corrupted)))]
    truth = {f"upload-{i}": f"report-{i}" for i in range(36, 40)}
    try:
        found = platform.receive(bytes(corrupted))
    except (errors.CanaryMismatch, errors.RequestRejected):
        assert platform.state is PlatformState.FAILED
        return
    except errors.RemoteProtocolError:
        assert platform.state is PlatformState.READY
        found = platform.receive(reply)
        assert sorted(built.handles[f.handle] for f in found) == sorted(truth.values())
        return
    assert all(truth.get(f.upload_ref) == built.handles[f.handle] for f in found)


def test_refusal_fails_the_session(index: Index) -> None:
    platform, _ = _ready(index)
    platform.add_uploads(_uploads(range(2)))
    platform.next_request()
    refusal = m.ErrorMessage(m.ErrorCode.LIMIT_EXCEEDED, 0, "quota")
    with pytest.raises(errors.RequestRejected) as caught:
        platform.receive(refusal.encode())
    assert caught.value.code == m.ErrorCode.LIMIT_EXCEEDED
    assert "quota" not in str(caught.value)
    assert platform.state is PlatformState.FAILED
    assert set(platform.unfinished()) == {"upload-0", "upload-1"}
    with pytest.raises(errors.LocalProtocolError):
        platform.receive(refusal.encode())


def _evil_reply(request: bytes, key: SecretKey) -> bytes:
    """A clearinghouse that evaluates with another key than the one it published."""
    message = m.decode(request)
    assert isinstance(message, m.EvaluateRequest)
    evaluated = oprf.blind_evaluate_batch(key.scalar, message.elements, oprf.Mode.VOPRF)
    return m.EvaluateResponse(message.batch_id, tuple(evaluated)).encode()


def test_canary_catches_a_wrong_key(index: Index) -> None:
    platform, _ = _ready(index, batch_size=64)
    platform.add_uploads(_uploads(range(30, 50)))
    with pytest.raises(errors.CanaryMismatch):
        platform.receive(_evil_reply(platform.next_request(), OTHER_KEY))
    assert platform.state is PlatformState.FAILED
    assert platform.stats.matches == 0
    # The reply's uploads got no answer: they are unfinished, not "looked up, no match".
    assert set(platform.unfinished()) == {f"upload-{i}" for i in range(30, 50)}
    assert platform.stats.uploads_done == 0


def test_a_dense_index_fails_the_session_and_keeps_uploads_unfinished(built: BuiltIndex) -> None:
    """A well-formed index whose entries all carry one upload's tag: the platform refuses
    the lookup (IndexTooDense), fails cleanly, and reports the reply's uploads unanswered."""
    banding = built.header.banding
    target = md5(45)
    outputs = oprf.evaluate_batch(KEY.scalar, banding.band_inputs(target), oprf.Mode.VOPRF)
    tags, _ = derive_entries(outputs, built.header.tag_bytes)
    dense = Index.from_bytes(densify(built.data, [int(t) for t in tags]), max_hits=8)
    platform, clearinghouse = _ready(dense, batch_size=64)
    platform.add_uploads(_uploads(range(40, 50)))
    with pytest.raises(errors.IndexTooDense):
        SessionPair(platform, clearinghouse).run()
    assert platform.state is PlatformState.FAILED
    assert platform.stats.matches == 0
    assert set(platform.unfinished()) == {f"upload-{i}" for i in range(40, 50)}
    with pytest.raises(errors.LocalProtocolError):
        platform.next_request()


def test_an_upload_of_a_canary_hash_is_not_a_match(built: BuiltIndex, index: Index) -> None:
    """Canary hashes are public (and a PDQ near one is easy to craft): their handles stand
    for no report, so an ordinary upload that hits one is no match."""
    platform, clearinghouse = _ready(index)
    canary = index.canaries[0]
    platform.add_uploads([("looks-like-a-canary", "md5", canary.hash), *_uploads(range(39, 41))])
    found = SessionPair(platform, clearinghouse).run()
    assert [(f.upload_ref, built.handles[f.handle]) for f in found] == [("upload-39", "report-39")]
    assert platform.stats.uploads_matched == platform.stats.matches == 1


def test_canary_failure_keeps_earlier_answers_and_lists_the_rest(
    built: BuiltIndex, index: Index
) -> None:
    platform, _ = _ready(index, batch_size=1)
    platform.add_uploads(_uploads(range(36, 40)))  # 4 uploads + 1 canary, one per batch
    answered: set[str] = set()
    failed = False
    while platform.wants_to_send:
        before = set(platform.unfinished())
        request = platform.next_request()
        try:
            platform.receive(_evil_reply(request, OTHER_KEY))
        except errors.CanaryMismatch:
            failed = True
        answered |= before - set(platform.unfinished())
    assert failed
    assert platform.state is PlatformState.FAILED
    assert answered.isdisjoint(platform.unfinished())
    assert answered | set(platform.unfinished()) == {f"upload-{i}" for i in range(36, 40)}
    assert platform.stats.uploads_done == len(answered)


def test_audit_verifies_and_catches_a_wrong_proof(index: Index) -> None:
    platform, clearinghouse = _ready(index, batch_size=4)
    platform.add_uploads(_uploads(range(10)))
    SessionPair(platform, clearinghouse).run()
    batches = platform.auditable_batches
    assert len(batches) >= 3
    sample = platform.sample_for_audit(2)
    assert set(sample) <= set(batches)
    platform.receive(clearinghouse.receive(platform.audit_request(sample)))
    assert platform.stats.audits_verified == 1
    assert platform.stats.elements_audited == 8
    assert set(platform.auditable_batches) == set(batches) - set(sample)
    with pytest.raises(errors.LocalProtocolError):
        platform.audit_request(sample)
    rest = platform.auditable_batches
    request = m.decode(platform.audit_request(rest))
    assert isinstance(request, m.ProofRequest)
    forged = oprf.Proof(Scalar.from_int(3), Scalar.from_int(4))
    with pytest.raises(errors.VerifyError):
        platform.receive(m.ProofResponse(request.audit_id, forged).encode())
    assert platform.state is PlatformState.FAILED


def test_audit_catches_evaluations_under_another_key() -> None:
    """Without canaries a wrong key only loses matches; the DLEQ audit still catches it."""
    no_canary = Index.from_bytes(
        build_index(KEY, MD5, [Reference("r", "md5", md5(1))], canaries=[], processes=1).to_bytes()
    )
    platform = PlatformSession(no_canary, KEY.public_key, batch_size=4)
    platform.receive(ClearinghouseSession(KEY, element_limit=100).receive(platform.hello()))
    platform.add_uploads(_uploads(range(1, 3)))
    evil = ClearinghouseSession(OTHER_KEY, element_limit=100)
    evil.receive(m.Hello().encode())
    request = m.decode(platform.next_request())
    assert isinstance(request, m.EvaluateRequest)
    rekeyed = m.EvaluateRequest(
        SUITE, oprf.Mode.VOPRF, 3, OTHER_KEY.key_id, request.batch_id, request.elements
    )
    assert platform.receive(evil.receive(rekeyed.encode())) == []  # upload-1 lost silently
    assert platform.canary_checked_signals == ()  # and no canary says otherwise
    proof_reply = evil.receive(platform.audit_request(platform.auditable_batches))
    with pytest.raises(errors.VerifyError):
        platform.receive(proof_reply)
    assert platform.state is PlatformState.FAILED


def test_audit_samples_are_drawn_fresh(index: Index) -> None:
    """The clearinghouse must not predict the audit: samples come from the CSPRNG."""
    platform, clearinghouse = _ready(index, batch_size=1)
    platform.add_uploads(_uploads(range(11)))
    SessionPair(platform, clearinghouse).run()
    pool = set(platform.auditable_batches)
    samples = {platform.sample_for_audit(2) for _ in range(40)}
    assert len(samples) > 10  # 66 possible pairs; a fixed or seeded draw would repeat
    assert all(len(set(s)) == 2 and set(s) <= pool for s in samples)


def test_one_hash_uploaded_many_times_never_repeats_an_element(index: Index) -> None:
    """A fresh blind per upload: the same hash queried six times (across batches) gives six
    unrelated elements, and no element of any request repeats."""
    platform, clearinghouse = _ready(index, batch_size=4)
    platform.add_uploads([(f"same-{i}", "md5", md5(7)) for i in range(6)])
    sent: list[bytes] = []
    found: list[Match] = []
    while platform.wants_to_send:
        request = platform.next_request()
        message = m.decode(request)
        assert isinstance(message, m.EvaluateRequest)
        sent.extend(bytes(e) for e in message.elements)
        found += platform.receive(clearinghouse.receive(request))
    assert len(sent) == platform.stats.elements_sent == len(set(sent))
    assert sorted(f.upload_ref for f in found) == [f"same-{i}" for i in range(6)]


@pytest.mark.parametrize("ids", [(), (0, 0), (5,)], ids=["empty", "duplicate", "unanswered"])
def test_audit_misuse(index: Index, ids: tuple[int, ...]) -> None:
    platform, clearinghouse = _ready(index, batch_size=4)
    platform.add_uploads(_uploads(range(3)))
    SessionPair(platform, clearinghouse).run()
    with pytest.raises(errors.LocalProtocolError):
        platform.audit_request(ids)
    with pytest.raises(errors.LocalProtocolError):
        platform.sample_for_audit(5)


def test_closing_before_the_canaries_were_sent_leaves_the_signal_unchecked(
    index: Index,
) -> None:
    platform, clearinghouse = _ready(index, batch_size=1)
    platform.add_uploads(_uploads(range(38, 40)))  # 2 uploads + 1 canary
    platform.receive(clearinghouse.receive(platform.next_request()))
    checked = platform.canary_checked_signals
    assert checked == (("md5",) if platform.stats.canary_queries else ())
    platform.receive(clearinghouse.receive(platform.close()))
    assert platform.state is PlatformState.CLOSED
    assert len(platform.unfinished()) == 2 - platform.stats.uploads_done


def test_close_handshake(index: Index) -> None:
    platform, clearinghouse = _ready(index)
    platform.receive(clearinghouse.receive(platform.close()))
    assert platform.state is PlatformState.CLOSED
    assert clearinghouse.state is ClearinghouseState.CLOSED
    with pytest.raises(errors.LocalProtocolError):
        platform.add_uploads(_uploads(range(1)))


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda p: p.next_request(), id="next-request-before-hello"),
        pytest.param(lambda p: p.receive(m.Close().encode()), id="receive-before-hello"),
        pytest.param(lambda p: p.audit_request((0,)), id="audit-before-hello"),
        pytest.param(lambda p: p.close(), id="close-before-hello"),
    ],
)
def test_platform_wrong_state(index: Index, call: Callable[[PlatformSession], object]) -> None:
    platform = _platform(index)
    with pytest.raises(errors.LocalProtocolError):
        call(platform)
    assert platform.state is PlatformState.START


def test_hello_twice_and_nothing_to_send(index: Index) -> None:
    platform, _ = _ready(index)
    with pytest.raises(errors.LocalProtocolError):
        platform.hello()
    with pytest.raises(errors.LocalProtocolError):
        platform.next_request()


@pytest.mark.parametrize(
    ("upload", "error"),
    [
        pytest.param(("u", "sha256", bytes(32)), errors.LocalProtocolError, id="unknown-signal"),
        pytest.param(("u", "md5", bytes(15)), errors.LocalProtocolError, id="short-hash"),
        pytest.param(("u", "md5"), TypeError, id="short-tuple"),
        pytest.param(("", "md5", bytes(16)), errors.LocalProtocolError, id="empty-ref"),
        pytest.param(("u", "md5", "00" * 16), TypeError, id="hex-hash"),
    ],
)
def test_add_uploads_rejects_bad_uploads(
    index: Index, upload: tuple[object, ...], error: type[Exception]
) -> None:
    """A wrong type is a TypeError (as in psi and everywhere), a wrong value typed."""
    platform = _platform(index)
    with pytest.raises(error):
        platform.add_uploads([upload])  # type: ignore[list-item]
    assert platform.unfinished() == ()


def test_upload_repr_hides_the_hash() -> None:
    upload = Upload("photo.jpg", "md5", bytes.fromhex("aa" * 16))
    assert "aa" * 4 not in repr(upload)
    with pytest.raises(errors.LocalProtocolError):
        Upload("photo.jpg", "pdq", bytes(32), quality=101)


def _session_reprs(root: object) -> list[str]:
    """The repr of every blindmatch object reachable from a session's state (containers
    followed, arrays and index files not: they are public)."""
    seen: set[int] = set()
    found: list[str] = []
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
            continue
        if isinstance(obj, list | tuple | set | frozenset | collections.deque):
            stack.extend(obj)
            continue
        module = type(obj).__module__
        if not module.startswith("blindmatch."):
            continue
        if obj is not root:
            found.append(repr(obj))
        if module.startswith("blindmatch.protocols"):
            names = list(getattr(obj, "__dict__", {}))
            for cls in type(obj).__mro__:
                names.extend(getattr(cls, "__slots__", ()))
            stack.extend(getattr(obj, name) for name in names if hasattr(obj, name))
    return found


def test_no_upload_hash_in_the_reprs_of_session_state(index: Index) -> None:
    """Slots of uploads in flight hold band inputs (the raw hash, for exact signals) and
    blinds: their reprs must not print them (logs, debuggers, tracebacks)."""
    platform, clearinghouse = _ready(index, batch_size=4)
    hashes = [
        hashlib.md5(f"private-{i}".encode(), usedforsecurity=False).digest() for i in range(6)
    ]
    platform.add_uploads([(f"u{i}", "md5", h) for i, h in enumerate(hashes)])
    request = platform.next_request()  # some uploads in flight, some carried or queued
    platform.next_request()
    platform.receive(clearinghouse.receive(request))  # some answered
    text = "\n".join(_session_reprs(platform))
    assert "_Slot" in text  # the walk reached the slots
    for digest in hashes:
        assert digest.hex() not in text
        assert repr(MD5.band_inputs(digest)[0])[2:-1] not in text


def test_answered_uploads_leave_no_blind_or_input_behind(index: Index) -> None:
    """Once a batch is answered its uploads' blinds and band inputs are dropped; only the
    elements an audit needs stay (an unaudited batch is kept until the session ends)."""
    platform, clearinghouse = _ready(index, batch_size=4)
    platform.add_uploads(_uploads(range(10)))
    SessionPair(platform, clearinghouse).run()
    assert len(platform.auditable_batches) >= 3
    reachable = "\n".join(_session_reprs(platform))
    assert "_Slot" not in reachable
    assert "Scalar" not in reachable
    platform.receive(clearinghouse.receive(platform.audit_request(platform.auditable_batches)))
    assert platform.stats.audits_verified == 1


def test_platform_constructor_checks(built: BuiltIndex, index: Index) -> None:
    other = Index.from_bytes(_build(OTHER_KEY, [Reference("r", "md5", md5(1))]).to_bytes())
    with pytest.raises(errors.KeyMismatch):
        PlatformSession(other, KEY.public_key)
    with pytest.raises(errors.LocalProtocolError):
        PlatformSession([index, index], KEY.public_key)
    with pytest.raises(errors.LocalProtocolError):
        PlatformSession([], KEY.public_key)
    with pytest.raises(errors.LocalProtocolError):
        PlatformSession(index, KEY.public_key, batch_size=0)
    with pytest.raises(errors.LocalProtocolError):
        PlatformSession(index, KEY.public_key, canary_interval=0)
    with pytest.raises(TypeError):
        PlatformSession(index, KEY)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PlatformSession([built.to_bytes()], KEY.public_key)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        Upload("u", "md5", bytes(16), quality="90")  # type: ignore[arg-type]


def test_index_set_with_a_delta(built: BuiltIndex, index: Index) -> None:
    delta_built = add_references(
        KEY, index.header, [Reference("late-report", "md5", md5(1000))], processes=1
    )
    delta = Index.from_bytes(delta_built.to_bytes())
    platform = PlatformSession(IndexSet(index, [delta]), KEY.public_key, batch_size=8)
    platform.add_uploads(
        [("old", "md5", md5(3)), ("new", "md5", md5(1000)), ("none", "md5", md5(2000))]
    )
    found = SessionPair(platform, ClearinghouseSession(KEY, element_limit=1000)).run()
    handles = {**built.handles, **delta_built.handles}
    assert sorted((f.upload_ref, handles[f.handle]) for f in found) == [
        ("new", "late-report"),
        ("old", "report-3"),
    ]
    assert platform.stats.canaries_matched == platform.stats.canary_queries == 1


# ====================================================================== current index digests


@pytest.fixture(scope="module")
def newer(built: BuiltIndex) -> BuiltIndex:
    """A rebuild of the same key epoch with one more reference: ``index`` is now stale."""
    return _build(KEY, [Reference(f"report-{i}", "md5", md5(i)) for i in range(41)])


@pytest.fixture(scope="module")
def delta_built(index: Index) -> BuiltIndex:
    return add_references(
        KEY, index.header, [Reference("late-report", "md5", md5(1000))], processes=1
    )


def test_index_digest_of_a_full_index_is_its_header_digest(built: BuiltIndex, index: Index) -> None:
    assert index_digest(built) == IndexDigest("md5", built.header.digest)
    assert index_digest(index) == index_digest(built) == index_digest(IndexSet(index))


def test_index_digest_of_a_base_with_deltas(
    built: BuiltIndex, index: Index, delta_built: BuiltIndex
) -> None:
    second = add_references(KEY, index.header, [Reference("later", "md5", md5(1001))], processes=1)
    deltas = [Index.from_bytes(d.to_bytes()) for d in (delta_built, second)]
    ordered = sorted([delta_built.header.digest, second.header.digest])
    expected = hashlib.sha256(
        bytes([len(INDEX_SET_DOMAIN)])
        + INDEX_SET_DOMAIN
        + built.header.digest
        + (2).to_bytes(4, "big")
        + b"".join(ordered)
    ).digest()
    digest = index_digest(IndexSet(index, deltas))
    assert digest == IndexDigest("md5", expected)
    assert index_digest(IndexSet(index, deltas[::-1])) == digest  # order carries no meaning
    assert index_digest(built, [second, delta_built]) == digest  # clearinghouse side
    assert index_digest(index, deltas[:1]) not in (digest, index_digest(index))


def test_index_digest_misuse(
    built: BuiltIndex, index: Index, newer: BuiltIndex, delta_built: BuiltIndex
) -> None:
    with pytest.raises(errors.InvalidParameter):
        index_digest(delta_built)  # a delta alone
    with pytest.raises(errors.InvalidParameter):
        index_digest(newer, [delta_built])  # a delta of another base
    with pytest.raises(errors.InvalidParameter):
        index_digest(IndexSet(index), [delta_built])
    with pytest.raises(TypeError):
        index_digest(built.to_bytes())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        index_digest(built, [delta_built.to_bytes()])  # type: ignore[list-item]
    with pytest.raises(errors.LocalProtocolError):
        PlatformSession(Index.from_bytes(delta_built.to_bytes()), KEY.public_key)


def test_server_info_lists_the_current_digests_sorted(newer: BuiltIndex) -> None:
    sha = IndexDigest("sha256", bytes(range(32)))
    session = ClearinghouseSession(
        KEY, element_limit=5, max_batch=5, index_digests=[sha, index_digest(newer)]
    )
    info = m.decode(session.receive(m.Hello().encode()))
    assert isinstance(info, m.ServerInfo)
    assert info.index_digests == (index_digest(newer), sha)
    assert session.index_digests == info.index_digests


@pytest.mark.parametrize(
    "digests",
    [
        pytest.param(
            [IndexDigest("md5", bytes(32)), IndexDigest("md5", bytes(range(32)))],
            id="two-of-one-signal",
        ),
        pytest.param([("md5", bytes(32))], id="not-index-digest"),
        pytest.param([IndexDigest(f"s{i}", bytes(32)) for i in range(256)], id="256"),
    ],
)
def test_clearinghouse_refuses_bad_index_digests(digests: list[object]) -> None:
    with pytest.raises(errors.LocalProtocolError):
        ClearinghouseSession(KEY, element_limit=1, index_digests=digests)  # type: ignore[arg-type]


def _announcing(*digests: IndexDigest) -> ClearinghouseSession:
    return ClearinghouseSession(KEY, element_limit=10_000, index_digests=digests)


def test_stale_index_fails_before_any_element_is_sent(index: Index, newer: BuiltIndex) -> None:
    platform = _platform(index)
    platform.add_uploads(_uploads(range(3)))
    clearinghouse = _announcing(index_digest(newer))
    with pytest.raises(errors.StaleIndex) as caught:
        platform.receive(clearinghouse.receive(platform.hello()))
    assert isinstance(caught.value, errors.KeyMismatch)
    assert caught.value.signals == ("md5",)
    assert platform.state is PlatformState.FAILED
    assert not platform.index_digests_checked
    assert not platform.wants_to_send
    with pytest.raises(errors.LocalProtocolError):
        platform.next_request()
    assert platform.unfinished() == ("upload-0", "upload-1", "upload-2")
    assert platform.stats.elements_sent == 0


def test_current_digests_pass_and_the_session_matches(built: BuiltIndex, index: Index) -> None:
    platform = _platform(index)
    sha = IndexDigest("sha256", bytes(32))  # a signal the platform does not match
    platform.add_uploads(_uploads(range(38, 42)))
    found = SessionPair(platform, _announcing(index_digest(built), sha)).run()
    assert platform.index_digests_checked
    assert platform.index_digests == (index_digest(index),)
    assert sorted(built.handles[f.handle] for f in found) == ["report-38", "report-39"]


def test_without_digests_the_platform_cannot_check(index: Index) -> None:
    platform = _platform(index)
    platform.receive(_announcing().receive(platform.hello()))
    assert platform.state is PlatformState.READY
    assert not platform.index_digests_checked


def test_a_held_signal_missing_from_the_list_is_stale(index: Index) -> None:
    platform = _platform(index)
    with pytest.raises(errors.StaleIndex):
        platform.receive(_announcing(IndexDigest("sha256", bytes(32))).receive(platform.hello()))
    assert platform.state is PlatformState.FAILED


def test_a_missing_delta_is_stale(built: BuiltIndex, index: Index, delta_built: BuiltIndex) -> None:
    delta = Index.from_bytes(delta_built.to_bytes())
    with_delta = index_digest(built, [delta_built])
    stale = _platform(index)
    with pytest.raises(errors.StaleIndex):
        stale.receive(_announcing(with_delta).receive(stale.hello()))
    current = PlatformSession(IndexSet(index, [delta]), KEY.public_key)
    current.receive(_announcing(with_delta).receive(current.hello()))
    assert current.index_digests_checked
    ahead = PlatformSession(IndexSet(index, [delta]), KEY.public_key)
    with pytest.raises(errors.StaleIndex):  # holds a delta the clearinghouse does not serve
        ahead.receive(_announcing(index_digest(built)).receive(ahead.hello()))


def test_only_the_stale_signal_is_named() -> None:
    sha_banding = exact_banding("sha256", 256)
    sha_built = build_index(KEY, sha_banding, [Reference("r", "sha256", bytes(32))], processes=1)
    md5_built, md5_index = _shared_index()
    indexes = [md5_index, Index.from_bytes(sha_built.to_bytes())]
    platform = PlatformSession(indexes, KEY.public_key)
    announced = _announcing(index_digest(md5_built), IndexDigest("sha256", bytes(32)))
    with pytest.raises(errors.StaleIndex) as caught:
        platform.receive(announced.receive(platform.hello()))
    assert caught.value.signals == ("sha256",)
    assert "sha256" in str(caught.value)
    assert "md5" not in str(caught.value)


# ====================================================================== pdq bands, t = 2


def _flip(hash_bytes: bytes, bits: list[int]) -> bytes:
    value = int.from_bytes(hash_bytes, "big")
    for bit in bits:
        value ^= 1 << bit
    return value.to_bytes(32, "big")


def test_pdq_bands_match_near_duplicates_only() -> None:
    rng = random.Random(7)
    banding = pdq_banding(256)
    references = [Reference(f"pdq-{i}", "pdq", rng.randbytes(32)) for i in range(4)]
    built_pdq = build_index(KEY, banding, references, canaries=[], processes=1)
    pdq_index = Index.from_bytes(built_pdq.to_bytes())
    platform = PlatformSession(pdq_index, KEY.public_key, batch_size=512)
    near = _flip(references[0].hash, rng.sample(range(256), 12))
    far = rng.randbytes(32)
    platform.add_uploads(
        [
            Upload("near", "pdq", near, 90),
            Upload("far", "pdq", far, 90),
            Upload("same", "pdq", references[2].hash, 60),
        ]
    )
    with pytest.raises(errors.LocalProtocolError):
        platform.add_uploads([Upload("blurry", "pdq", far, 49)])
    with pytest.raises(errors.LocalProtocolError):
        platform.add_uploads([("no-quality", "pdq", far)])
    clearinghouse = ClearinghouseSession(KEY, element_limit=10_000, max_batch=512)
    found = SessionPair(platform, clearinghouse).run()
    assert sorted((f.upload_ref, built_pdq.handles[f.handle]) for f in found) == [
        ("near", "pdq-0"),
        ("same", "pdq-2"),
    ]
    assert platform.stats.elements_sent == 3 * 256 + platform.stats.pad_elements


# ====================================================== hostile replies: no upload vanishes


def _set_element(reply: bytes, position: int, encoding: bytes) -> bytes:
    """The reply with its element at ``position`` (from the end, 1-based) replaced."""
    start = len(reply) - 32 * position
    return reply[:start] + encoding + reply[start + 32 :]


def _high_bit(reply: bytes) -> bytes:
    data = bytearray(reply)
    data[-1] |= 0x80  # the last element's bit 255: the same point, a second encoding
    return bytes(data)


_FAULTS: dict[str, Callable[[bytes, bytes], bytes]] = {
    "identity-bit255": lambda req, r: _set_element(r, 1, bytes(31) + b"\x80"),
    "answer-bit255": lambda req, r: _high_bit(r),
    "identity": lambda req, r: _set_element(r, 2, bytes(32)),
    "truncated": lambda req, r: r[:-7],
    "fewer-elements": lambda req, r: r[:6] + (7).to_bytes(4, "big") + r[10:-32],
    "other-key": lambda req, r: _evil_reply(req, OTHER_KEY),
    "refusal": lambda req, r: m.ErrorMessage(m.ErrorCode.MALFORMED, 1, "no").encode(),
}


def _exchange_with_fault(
    platform: PlatformSession,
    clearinghouse: ClearinghouseSession,
    fault: Callable[[bytes, bytes], bytes],
    at: int,
    *,
    persistent: bool = False,
) -> tuple[set[str], list[Match], list[Exception]]:
    """Run the session, replacing reply number ``at`` (every reply from ``at`` on, if
    ``persistent``) with ``fault(request, reply)``, then delivering the honest reply if the
    fault was refused. Returns the uploads answered (they left ``unfinished()`` in a
    receive that returned), the matches and the errors."""
    answered: set[str] = set()
    found: list[Match] = []
    raised: list[Exception] = []

    def deliver(reply: bytes) -> None:
        before = set(platform.unfinished())
        try:
            found.extend(platform.receive(reply))
        except errors.BlindmatchError as exc:
            raised.append(exc)
            assert set(platform.unfinished()) == before  # an error never drops an upload
            return
        answered.update(before - set(platform.unfinished()))

    number = 0
    while platform.wants_to_send:
        request = platform.next_request()
        reply = clearinghouse.receive(request)
        if number == at or (persistent and number > at):
            errors_before = len(raised)
            deliver(fault(request, reply))
            if platform.state is PlatformState.READY and len(raised) > errors_before:
                deliver(reply)
        else:
            deliver(reply)
        number += 1
    return answered, found, raised


@pytest.mark.parametrize("fault", list(_FAULTS), ids=list(_FAULTS))
def test_no_upload_vanishes_whatever_a_reply_holds(
    built: BuiltIndex, index: Index, fault: str
) -> None:
    """Issue 7.1: every upload ends matched, not matched, or in unfinished(), whatever the
    clearinghouse answers; a reply is refused or recorded whole, and an identity encoded
    with bit 255 set is refused while decoding (before any state changes)."""
    platform, clearinghouse = _ready(index, batch_size=4)
    uploads = {f"upload-{i}" for i in range(34, 46)}
    platform.add_uploads(_uploads(range(34, 46)))
    # A clearinghouse with another key answers every reply with it (its first canary then
    # fails the session); the other faults hit one reply.
    wrong_key = fault == "other-key"
    answered, found, raised = _exchange_with_fault(
        platform, clearinghouse, _FAULTS[fault], 0 if wrong_key else 1, persistent=wrong_key
    )
    assert raised, "the fault must be noticed"
    unfinished = set(platform.unfinished())
    assert answered.isdisjoint(unfinished)
    assert answered | unfinished == uploads
    assert platform.stats.uploads_done == len(answered)
    assert all(built.handles[f.handle] == f.upload_ref.replace("upload", "report") for f in found)
    assert {f.upload_ref for f in found} <= answered
    if platform.state is PlatformState.READY:  # refused whole, then answered honestly
        assert isinstance(raised[0], errors.RemoteProtocolError)
        assert not unfinished
        assert answered == uploads
        assert platform.stats.canaries_matched == platform.stats.canary_queries
        assert sorted(f.upload_ref for f in found) == [f"upload-{i}" for i in range(34, 40)]
    else:
        assert platform.state is PlatformState.FAILED


@pytest.mark.parametrize("fault", ["identity-bit255", "answer-bit255"])
def test_a_high_bit_answer_is_refused_while_decoding(index: Index, fault: str) -> None:
    platform, clearinghouse = _ready(index, batch_size=4)
    platform.add_uploads(_uploads(range(36, 40)))
    request = platform.next_request()
    reply = clearinghouse.receive(request)
    with pytest.raises(errors.InvalidPeerElement):
        platform.receive(_FAULTS[fault](request, reply))
    assert platform.outstanding == 1
    assert not platform.auditable_batches
    platform.receive(reply)
    assert platform.auditable_batches == (0,)


def test_a_reply_over_the_lookup_budget_fails_cleanly(built: BuiltIndex, index: Index) -> None:
    """Issue 7.5: the lookup work of one reply is bounded (max_lookup_trials); over it, the
    session fails with IndexTooDense and the reply's uploads stay unfinished."""
    platform = PlatformSession(index, KEY.public_key, batch_size=8, max_lookup_trials=1)
    clearinghouse = ClearinghouseSession(KEY, element_limit=10_000)
    platform.receive(clearinghouse.receive(platform.hello()))
    uploads = {f"upload-{i}" for i in range(30, 40)}  # every one matches: one trial each
    platform.add_uploads(_uploads(range(30, 40)))
    answered, found, raised = _exchange_with_fault(platform, clearinghouse, lambda req, r: r, -1)
    assert [type(e) for e in raised] == [errors.IndexTooDense]
    assert "candidate trials" in str(raised[0])
    assert platform.state is PlatformState.FAILED
    assert answered | set(platform.unfinished()) == uploads
    assert answered.isdisjoint(platform.unfinished())
    assert len(found) == len(answered)  # before the failure, every answered one matched


def test_max_lookup_trials_is_checked(index: Index) -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(errors.LocalProtocolError):
            PlatformSession(index, KEY.public_key, max_lookup_trials=bad)  # type: ignore[arg-type]


def test_a_fault_in_the_middle_of_a_spanning_upload_loses_nothing() -> None:
    """PDQ uploads span several batches: a refused middle batch leaves their earlier
    answers staged in place, and the honest reply then completes them."""
    rng = random.Random(11)
    banding = pdq_banding(256)
    references = [Reference(f"pdq-{i}", "pdq", rng.randbytes(32)) for i in range(2)]
    built_pdq = build_index(KEY, banding, references, processes=1)
    pdq_index = Index.from_bytes(built_pdq.to_bytes())
    for fault in ("identity-bit255", "other-key"):
        platform = PlatformSession(pdq_index, KEY.public_key, batch_size=100)
        clearinghouse = ClearinghouseSession(KEY, element_limit=100_000, max_batch=100)
        platform.receive(clearinghouse.receive(platform.hello()))
        platform.add_uploads(
            [
                Upload("same", "pdq", references[1].hash, 90),
                Upload("other", "pdq", rng.randbytes(32), 90),
            ]
        )
        answered, found, raised = _exchange_with_fault(
            platform,
            clearinghouse,
            _FAULTS[fault],
            0 if fault == "other-key" else 3,
            persistent=fault == "other-key",
        )
        assert raised
        assert answered | set(platform.unfinished()) == {"same", "other"}
        assert answered.isdisjoint(platform.unfinished())
        if fault == "identity-bit255":
            assert platform.state is PlatformState.READY
            assert answered == {"same", "other"}
            assert [(f.upload_ref, built_pdq.handles[f.handle]) for f in found] == [
                ("same", "pdq-1")
            ]
        else:
            assert platform.state is PlatformState.FAILED


@pytest.mark.parametrize(
    "bad",
    [bytes(31) + b"\x80", bytes(GENERATOR)[:31] + bytes([bytes(GENERATOR)[31] | 0x80])],
    ids=["identity-bit255", "generator-bit255"],
)
def test_clearinghouse_answers_a_high_bit_element_with_an_error(bad: bytes) -> None:
    """Issue 7.3: receive never raises on peer bytes; a non-canonical element is refused
    with INVALID_ELEMENT, nothing is counted, and the session keeps serving."""
    session = _active()
    good = _request(5, _elements(3))
    request = good[:-32] + bad
    error = _error(session.receive(request))
    assert error.code == m.ErrorCode.INVALID_ELEMENT
    assert bad.hex() not in error.text
    assert session.elements_evaluated == 0
    reply = m.decode(session.receive(good))
    assert isinstance(reply, m.EvaluateResponse)
    assert reply.batch_id == 5


def test_a_dense_pdq_canary_is_refused_within_the_lookup_bound() -> None:
    """Issue 7.5: a well-formed PDQ index whose every entry carries the canary's tags
    makes a query of the canary's hash hit N * L entries (within max_hits): the reply's
    pair trials are over max_lookup_trials, so the session fails before the quadratic work,
    uploads kept unfinished. (The session's own canary queries only t = 2 bands, so it hits
    a few entries; an upload of the canary's hash queries all of them.)"""
    banding = pdq_banding(256)
    rng = random.Random(5)
    references = [Reference(f"pdq-{i}", "pdq", rng.randbytes(32)) for i in range(3)]
    canary = rng.randbytes(32)
    built_pdq = build_index(KEY, banding, references, canaries=[canary], processes=1)
    outputs = oprf.evaluate_batch(KEY.scalar, banding.band_inputs(canary), oprf.Mode.VOPRF)
    tags, _ = derive_entries(outputs, built_pdq.header.tag_bytes)
    dense = Index.from_bytes(densify(built_pdq.data, [int(t) for t in tags]))
    assert dense.lookup(outputs).tag_hits == 4 * 256  # under max_hits: not refused by it
    platform = PlatformSession(dense, KEY.public_key, batch_size=512, max_lookup_trials=50_000)
    clearinghouse = ClearinghouseSession(KEY, element_limit=100_000, max_batch=512)
    platform.receive(clearinghouse.receive(platform.hello()))
    platform.add_uploads([Upload("u", "pdq", canary, 90)])
    with pytest.raises(errors.IndexTooDense, match="candidate trials"):
        SessionPair(platform, clearinghouse).run()
    assert platform.state is PlatformState.FAILED
    assert platform.unfinished() == ("u",)


def test_an_answer_that_does_not_finalize_changes_nothing(built: BuiltIndex, index: Index) -> None:
    """Defence in depth for issue 7.1: should an element pass decoding and still fail to
    finalize (a backend that disagrees with the decoder; here the identity encoded with
    bit 255 set, wrapped without validation as libsodium 1.0.18 would have let it pass),
    the reply is refused as malformed and the session is exactly as before."""
    platform, clearinghouse = _ready(index, batch_size=4)
    platform.add_uploads(_uploads(range(36, 40)))
    reply = clearinghouse.receive(platform.next_request())
    honest = m.decode(reply)
    assert isinstance(honest, m.EvaluateResponse)
    bad = Element._trusted(bytes(31) + b"\x80")
    forged = m.EvaluateResponse(honest.batch_id, (*honest.elements[:-1], bad))
    unfinished = platform.unfinished()
    with pytest.raises(errors.InvalidPeerElement):
        platform._dispatch(forged)
    assert platform.state is PlatformState.READY
    assert platform.unfinished() == unfinished
    assert platform.outstanding == 1
    assert platform.stats.uploads_done == 0
    found = platform.receive(reply)
    while platform.wants_to_send:
        found += platform.receive(clearinghouse.receive(platform.next_request()))
    assert sorted(built.handles[f.handle] for f in found) == [f"report-{i}" for i in range(36, 40)]
    assert not platform.unfinished()


# ---------------------------------------------------------------- dihedral queries


@functools.cache
def _dihedral_scene() -> tuple[BuiltIndex, dict[str, tuple[PdqFingerprint, ...]], bytes]:
    """A PDQ index of one reported picture, and the 8 dihedral hashes of a mirrored, a
    rotated and an unrelated copy (real pictures, hashed by the PDQ core)."""
    import numpy as np

    from blindmatch.samples import photo_like

    rng = np.random.default_rng(10)
    reported = photo_like(rng, 320, 240)
    unrelated = photo_like(rng, 320, 240)
    copies = {
        "mirrored": np.ascontiguousarray(reported[:, ::-1]),
        "rotated": np.ascontiguousarray(np.rot90(reported)),
        "unrelated": unrelated,
    }
    reference = pdq_from_rgb(reported)
    built_pdq = build_index(
        KEY, pdq_banding(384), [Reference("report", "pdq", bytes(reference.hash))], processes=1
    )
    variants = {name: pdq_dihedral_from_rgb(rgb) for name, rgb in copies.items()}
    return built_pdq, variants, bytes(reference.hash)


def _dihedral_run(
    uploads: list[Upload], batch_size: int = 256
) -> tuple[list[Match], PlatformSession, BuiltIndex]:
    built_pdq = _dihedral_scene()[0]
    platform = PlatformSession(
        Index.from_bytes(built_pdq.to_bytes()), KEY.public_key, batch_size=batch_size
    )
    platform.add_uploads(uploads)
    pair = SessionPair(platform, ClearinghouseSession(KEY, element_limit=1 << 20))
    found = pair.run()
    assert pair.audit(2) == 2
    return found, platform, built_pdq


def _dihedral_upload(name: str) -> Upload:
    variants = _dihedral_scene()[1][name]
    return Upload.dihedral(name, "pdq", [bytes(v.hash) for v in variants], variants[0].quality)


def test_mirrored_and_rotated_copies_match_with_dihedral_queries_only() -> None:
    copies = _dihedral_scene()[1]
    plain = [Upload(name, "pdq", bytes(v[0].hash), v[0].quality) for name, v in copies.items()]
    found, platform, _ = _dihedral_run(plain)
    assert found == []  # as they are, the copies are far from the reported picture
    assert platform.stats.uploads_done == 3
    assert platform.stats.variant_queries == 0

    dihedral = [_dihedral_upload(name) for name in copies]
    found, platform, built_pdq = _dihedral_run(dihedral)
    assert sorted((f.upload_ref, built_pdq.handles[f.handle], f.variant) for f in found) == [
        ("mirrored", "report", "flipY"),
        ("rotated", "report", "rot270"),
    ]
    assert platform.stats.uploads_done == 3
    assert platform.stats.uploads_matched == platform.stats.matches == 2
    assert platform.stats.variant_queries == 3 * 7
    assert platform.unfinished() == ()


def test_one_match_per_upload_and_report_however_many_variants_match() -> None:
    """A symmetric upload whose 8 variants are all the reported hash: one match, naming the
    first variant, and still 8 x 384 elements (identical variants are not skipped: the
    element count must not depend on the picture)."""
    built_pdq, copies, reference = _dihedral_scene()
    (handle,) = built_pdq.handles
    quality = copies["mirrored"][0].quality
    same = [reference] * 8
    upload = Upload.dihedral("symmetric", "pdq", same, quality)
    found, platform, _ = _dihedral_run([upload], batch_size=512)
    assert found == [Match("symmetric", "pdq", handle, "original")]
    canary_elements = 2  # one canary, t = 2 bands
    assert platform.stats.elements_sent == 8 * 384 + canary_elements + platform.stats.pad_elements
    assert platform.stats.pad_elements < 128


def test_dihedral_variants_spanning_replies_give_one_answer_per_upload() -> None:
    """Variants of one upload spread over many small batches: the upload is answered (and
    counted) once, when its last variant is looked up, and listed unfinished till then."""
    built_pdq = _dihedral_scene()[0]
    platform = PlatformSession(
        Index.from_bytes(built_pdq.to_bytes()), KEY.public_key, batch_size=500
    )
    clearinghouse = ClearinghouseSession(KEY, element_limit=1 << 20)
    platform.receive(clearinghouse.receive(platform.hello()))
    platform.add_uploads([_dihedral_upload("mirrored")])
    found: list[Match] = []
    while platform.wants_to_send:
        assert platform.unfinished() == ("mirrored",)
        assert platform.stats.uploads_done == 0
        found += platform.receive(clearinghouse.receive(platform.next_request()))
    assert [(f.upload_ref, f.variant) for f in found] == [("mirrored", "flipY")]
    assert platform.stats.uploads_done == 1
    assert platform.unfinished() == ()


def test_dihedral_upload_checks() -> None:
    with pytest.raises(errors.LocalProtocolError, match="8 dihedral"):
        Upload.dihedral("u", "pdq", [bytes(32)] * 7, 90)
    with pytest.raises(TypeError):
        Upload("u", "pdq", bytes(32), 90, (("rot90", "not bytes"),))  # type: ignore[arg-type]
    with pytest.raises(errors.LocalProtocolError):
        Upload("u", "pdq", bytes(32), 90, (("original", bytes(32)),))
    with pytest.raises(errors.LocalProtocolError):
        Upload("u", "pdq", bytes(32), 90, (("a", bytes(32)), ("a", bytes(32))))
    upload = Upload.dihedral("u", "pdq", [bytes([i]) * 32 for i in range(8)], 90)
    assert [name for name, _ in upload.queries] == list(DIHEDRAL_NAMES)
    assert "variants=7" in repr(upload)
    assert "01" * 32 not in repr(upload)
    built_pdq = _dihedral_scene()[0]
    platform = PlatformSession(Index.from_bytes(built_pdq.to_bytes()), KEY.public_key)
    with pytest.raises(errors.LocalProtocolError, match="hash length"):
        platform.add_uploads([Upload("u", "pdq", bytes(32), 90, (("rot90", bytes(16)),))])


# ---------------------------------------------------------------- padding


@pytest.mark.parametrize(
    ("uploads", "batch_size", "quantum", "sizes"),
    [
        (8, 1024, 128, [1024, 1024, 1024, 128]),  # 3072 + 2 canary elements
        (8, 256, 128, [256] * 12 + [128]),
        (8, 1024, 1024, [1024] * 4),  # a quantum of a whole batch: every request full
        (1, 256, 128, [256, 256]),  # 384 + 2: the last request is rounded to 256 anyway
        (1, 1024, 64, [448]),
    ],
)
def test_the_last_request_of_a_flush_is_padded_to_the_quantum(
    uploads: int, batch_size: int, quantum: int, sizes: list[int]
) -> None:
    rng = random.Random(uploads)
    built_pdq = _shared_pdq_index()
    platform = PlatformSession(
        Index.from_bytes(built_pdq.to_bytes()),
        KEY.public_key,
        batch_size=batch_size,
        pad_quantum=quantum,
    )
    platform.add_uploads([Upload(f"u{i}", "pdq", rng.randbytes(32), 90) for i in range(uploads)])
    clearinghouse = ClearinghouseSession(KEY, element_limit=1 << 20, max_batch=batch_size)
    platform.receive(clearinghouse.receive(platform.hello()))
    seen = []
    while platform.wants_to_send:
        request = m.decode(platform.next_request(), max_elements=batch_size)
        assert isinstance(request, m.EvaluateRequest)
        seen.append(len(request.elements))
        platform.receive(clearinghouse.receive(request.encode()))
    assert seen == sizes
    stats = platform.stats
    assert stats.canary_queries == 1
    assert stats.elements_sent == sum(sizes) == uploads * 384 + 2 + stats.pad_elements
    assert stats.uploads_done == uploads
    assert clearinghouse.stats.elements_evaluated == sum(sizes)


@functools.cache
def _shared_pdq_index() -> BuiltIndex:
    rng = random.Random(99)
    refs = [Reference(f"p{i}", "pdq", rng.randbytes(32)) for i in range(4)]
    return build_index(KEY, pdq_banding(384), refs, processes=1)


def test_a_canary_queries_t_bands_and_still_catches_a_wrong_key() -> None:
    built_pdq = _shared_pdq_index()
    platform = PlatformSession(
        Index.from_bytes(built_pdq.to_bytes()), KEY.public_key, batch_size=512
    )
    platform.add_uploads([Upload("u", "pdq", bytes(range(32)), 90)])
    clearinghouse = ClearinghouseSession(KEY, element_limit=10_000)
    platform.receive(clearinghouse.receive(platform.hello()))
    evil = _evil_reply(platform.next_request(), OTHER_KEY)
    assert not platform.wants_to_send  # 384 + 2 elements: one request of 512
    with pytest.raises(errors.CanaryMismatch):
        platform.receive(evil)
    assert platform.stats.canary_queries == 1
    assert platform.unfinished() == ("u",)
