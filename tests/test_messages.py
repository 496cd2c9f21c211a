"""Wire messages: golden bytes, strict decoding, typed errors for every corruption."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch import errors
from blindmatch.protocols import messages as m
from blindmatch.psi.group import Element, Scalar
from blindmatch.psi.oprf import Mode, Proof

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "messages" / "messages.json").read_text("utf-8")
)
VALID: list[dict[str, Any]] = VECTORS["valid"]
INVALID: list[dict[str, Any]] = VECTORS["invalid"]
KEY_ID = bytes(range(8))


def _element(text: str) -> Element:
    return Element.from_bytes(bytes.fromhex(text))


def _build(kind: str, fields: dict[str, Any]) -> m.Message:
    """The message a vector's fields describe (independent of the decoder)."""
    if kind == "Hello":
        return m.Hello(m.Suite(fields["suite"]), Mode(fields["mode"]))
    if kind == "ServerInfo":
        return m.ServerInfo(
            m.Suite(fields["suite"]),
            Mode(fields["mode"]),
            fields["key_epoch"],
            bytes.fromhex(fields["key_id"]),
            _element(fields["public_key"]),
            fields["element_limit"],
            fields["max_batch"],
            tuple(
                m.IndexDigest(d["signal"], bytes.fromhex(d["digest"]))
                for d in fields["index_digests"]
            ),
        )
    if kind == "EvaluateRequest":
        return m.EvaluateRequest(
            m.Suite(fields["suite"]),
            Mode(fields["mode"]),
            fields["key_epoch"],
            bytes.fromhex(fields["key_id"]),
            fields["batch_id"],
            tuple(_element(e) for e in fields["elements"]),
        )
    if kind == "EvaluateResponse":
        return m.EvaluateResponse(
            fields["batch_id"], tuple(_element(e) for e in fields["elements"])
        )
    if kind == "ProofRequest":
        return m.ProofRequest(fields["audit_id"], tuple(fields["batch_ids"]))
    if kind == "ProofResponse":
        return m.ProofResponse(fields["audit_id"], Proof.from_bytes(bytes.fromhex(fields["proof"])))
    if kind == "ErrorMessage":
        return m.ErrorMessage(m.ErrorCode(fields["code"]), fields["request_id"], fields["text"])
    assert kind == "Close"
    return m.Close()


def _ids(vector: dict[str, Any]) -> str:
    return str(vector["name"])


@pytest.mark.parametrize("vector", VALID, ids=_ids)
def test_golden_encode(vector: dict[str, Any]) -> None:
    assert _build(vector["type"], vector["fields"]).encode().hex() == vector["hex"]


@pytest.mark.parametrize("vector", VALID, ids=_ids)
def test_golden_decode(vector: dict[str, Any]) -> None:
    decoded = m.decode(bytes.fromhex(vector["hex"]))
    assert type(decoded).__name__ == vector["type"]
    assert decoded == _build(vector["type"], vector["fields"])


def test_every_type_has_a_golden_vector() -> None:
    assert {v["type"] for v in VALID} == {
        "Hello",
        "ServerInfo",
        "EvaluateRequest",
        "EvaluateResponse",
        "ProofRequest",
        "ProofResponse",
        "ErrorMessage",
        "Close",
    }
    assert len(m.MessageType) == 8


@pytest.mark.parametrize("vector", INVALID, ids=_ids)
def test_invalid_vectors_raise_the_named_error(vector: dict[str, Any]) -> None:
    expected = getattr(errors, vector["error"])
    with pytest.raises(expected):
        m.decode(bytes.fromhex(vector["hex"]))


@pytest.mark.parametrize("vector", VALID, ids=_ids)
def test_truncation_at_every_offset_raises_decode_error(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    for end in range(len(data)):
        with pytest.raises(errors.MessageDecodeError):
            m.decode(data[:end])


@pytest.mark.parametrize("vector", VALID, ids=_ids)
def test_trailing_byte_raises_decode_error(vector: dict[str, Any]) -> None:
    with pytest.raises(errors.MessageDecodeError):
        m.decode(bytes.fromhex(vector["hex"]) + b"\x00")


@pytest.mark.parametrize("vector", VALID, ids=_ids)
def test_flip_every_byte(vector: dict[str, Any]) -> None:
    """A flipped byte raises a remote-protocol error, or decodes to another valid message
    that encodes back to exactly the flipped bytes (the encoding is canonical)."""
    data = bytes.fromhex(vector["hex"])
    original = m.decode(data)
    for offset in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            flipped = bytearray(data)
            flipped[offset] ^= mask
            try:
                decoded = m.decode(bytes(flipped))
            except errors.RemoteProtocolError:
                continue
            assert decoded != original
            assert decoded.encode() == bytes(flipped)


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(errors.LimitExceeded):
        m.decode(b"\x01\x03" + bytes(m.MAX_MESSAGE_BYTES))


def test_max_elements_is_enforced_before_elements_are_read() -> None:
    vector = next(v for v in VALID if v["name"] == "evaluate-request-3")
    request = _build(vector["type"], vector["fields"]).encode()
    with pytest.raises(errors.LimitExceeded):
        m.decode(request, max_elements=2)
    assert isinstance(m.decode(request, max_elements=3), m.EvaluateRequest)


@pytest.mark.parametrize("limit", [-1, m.MAX_ELEMENTS + 1])
def test_bad_max_elements_is_local_misuse(limit: int) -> None:
    with pytest.raises(errors.LocalProtocolError):
        m.decode(b"\x01\x08", max_elements=limit)


@pytest.mark.parametrize("data", ["text", 5, None], ids=["str", "int", "none"])
def test_decode_refuses_non_bytes(data: object) -> None:
    with pytest.raises(TypeError):
        m.decode(data)  # type: ignore[arg-type]


def test_invalid_element_is_both_decode_and_element_error() -> None:
    vector = next(v for v in INVALID if v["name"] == "request-identity")
    with pytest.raises(errors.InvalidPeerElement) as caught:
        m.decode(bytes.fromhex(vector["hex"]))
    assert isinstance(caught.value, errors.InvalidElement)
    assert isinstance(caught.value, errors.MessageDecodeError)
    assert "00" * 8 not in str(caught.value)


# ---------------------------------------------------------------------- construction errors

G = Scalar.from_int(1).multiply_base()
SUITE = m.Suite.RISTRETTO255_SHA512
MD5_DIGEST = m.IndexDigest("md5", bytes(32))
SHA_DIGEST = m.IndexDigest("sha256", bytes(range(32)))


def _info(digests: object) -> m.ServerInfo:
    return m.ServerInfo(SUITE, Mode.VOPRF, 1, KEY_ID, G, 10, 1, digests)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: m.Hello(1, Mode.VOPRF), id="hello-suite-int"),  # type: ignore[arg-type]
        pytest.param(lambda: m.Hello(SUITE, 1), id="hello-mode-int"),  # type: ignore[arg-type]
        pytest.param(
            lambda: m.EvaluateRequest(SUITE, Mode.VOPRF, 1, KEY_ID, 1, ()), id="request-empty"
        ),
        pytest.param(
            lambda: m.EvaluateRequest(SUITE, Mode.VOPRF, 1, KEY_ID, 1, [G]),  # type: ignore[arg-type]
            id="request-list",
        ),
        pytest.param(
            lambda: m.EvaluateRequest(SUITE, Mode.VOPRF, 1, b"short", 1, (G,)), id="request-key-id"
        ),
        pytest.param(
            lambda: m.EvaluateRequest(SUITE, Mode.VOPRF, -1, KEY_ID, 1, (G,)), id="request-epoch"
        ),
        pytest.param(
            lambda: m.EvaluateRequest(SUITE, Mode.VOPRF, 1, KEY_ID, 1 << 32, (G,)),
            id="request-batch-id",
        ),
        pytest.param(
            lambda: m.EvaluateRequest(SUITE, Mode.VOPRF, 1, KEY_ID, True, (G,)),
            id="request-batch-id-bool",
        ),
        pytest.param(
            lambda: m.EvaluateRequest(SUITE, Mode.VOPRF, 1, KEY_ID, 1, (G,) * (m.MAX_ELEMENTS + 1)),
            id="request-too-many",
        ),
        pytest.param(
            lambda: m.EvaluateResponse(1, (b"\x00" * 32,)),  # type: ignore[arg-type]
            id="response-bytes",
        ),
        pytest.param(lambda: m.ProofRequest(1, ()), id="proof-request-empty"),
        pytest.param(lambda: m.ProofRequest(1, (2, 2)), id="proof-request-duplicate"),
        pytest.param(lambda: m.ProofRequest(1, (1 << 32,)), id="proof-request-range"),
        pytest.param(lambda: m.ProofRequest(1, [1]), id="proof-request-list"),  # type: ignore[arg-type]
        pytest.param(lambda: m.ProofResponse(1, b"\x00" * 64), id="proof-bytes"),  # type: ignore[arg-type]
        pytest.param(lambda: m.ErrorMessage(m.ErrorCode.MALFORMED, None, "\n"), id="error-ctrl"),
        pytest.param(lambda: m.ErrorMessage(m.ErrorCode.MALFORMED, None, "é"), id="error-utf8"),
        pytest.param(
            lambda: m.ErrorMessage(m.ErrorCode.MALFORMED, None, "x" * 256), id="error-long"
        ),
        pytest.param(lambda: m.ErrorMessage(1, None, ""), id="error-code-int"),  # type: ignore[arg-type]
        pytest.param(
            lambda: m.ServerInfo(SUITE, Mode.VOPRF, 1, KEY_ID, G, 10, 0), id="info-max-batch-0"
        ),
        pytest.param(
            lambda: m.ServerInfo(SUITE, Mode.VOPRF, 1, KEY_ID, b"k" * 32, 10, 1),  # type: ignore[arg-type]
            id="info-key-bytes",
        ),
        pytest.param(
            lambda: m.ServerInfo(SUITE, Mode.VOPRF, 1, KEY_ID, G, 1 << 64, 1), id="info-limit"
        ),
        pytest.param(lambda: _info((SHA_DIGEST, MD5_DIGEST)), id="info-digests-unsorted"),
        pytest.param(lambda: _info((MD5_DIGEST, MD5_DIGEST)), id="info-digests-duplicate"),
        pytest.param(
            lambda: _info((MD5_DIGEST, m.IndexDigest("md5", bytes(range(32))))),
            id="info-digests-same-signal",
        ),
        pytest.param(lambda: _info([MD5_DIGEST]), id="info-digests-list"),
        pytest.param(lambda: _info((("md5", bytes(32)),)), id="info-digests-tuple-pair"),
        pytest.param(
            lambda: _info(tuple(m.IndexDigest(f"s{i:03d}", bytes(32)) for i in range(256))),
            id="info-digests-256",
        ),
        pytest.param(lambda: m.IndexDigest("MD5", bytes(32)), id="digest-uppercase-signal"),
        pytest.param(lambda: m.IndexDigest("", bytes(32)), id="digest-empty-signal"),
        pytest.param(lambda: m.IndexDigest("a" * 33, bytes(32)), id="digest-long-signal"),
        pytest.param(lambda: m.IndexDigest("md5", bytes(31)), id="digest-31-bytes"),
        pytest.param(lambda: m.IndexDigest("md5", "00" * 32), id="digest-hex"),  # type: ignore[arg-type]
        pytest.param(lambda: m.IndexDigest(b"md5", bytes(32)), id="digest-signal-bytes"),  # type: ignore[arg-type]
    ],
)
def test_bad_fields_are_local_misuse(make: Any) -> None:
    with pytest.raises(errors.LocalProtocolError):
        make()


# ---------------------------------------------------------------------- hypothesis round trips

_U32 = st.integers(0, 2**32 - 1)
_ELEMENTS = st.lists(st.integers(1, 2**64), min_size=1, max_size=6).map(
    lambda ks: tuple(Scalar.from_int(k).multiply_base() for k in ks)
)
_SCALARS = st.integers(0, 2**252).map(lambda v: Scalar.from_int(v, allow_zero=True))
_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=255)
_SIGNALS = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,31}", fullmatch=True)
_INDEX_DIGESTS = st.lists(
    st.builds(m.IndexDigest, _SIGNALS, st.binary(min_size=32, max_size=32)),
    max_size=5,
    unique_by=lambda d: d.signal,
).map(lambda ds: tuple(sorted(ds, key=lambda d: d.signal)))
_MESSAGES: st.SearchStrategy[m.Message] = st.one_of(
    st.builds(m.Hello, st.just(SUITE), st.sampled_from(Mode)),
    st.builds(
        m.ServerInfo,
        st.just(SUITE),
        st.sampled_from(Mode),
        _U32,
        st.binary(min_size=8, max_size=8),
        _ELEMENTS.map(lambda es: es[0]),
        st.integers(0, 2**64 - 1),
        st.integers(1, m.MAX_ELEMENTS),
        _INDEX_DIGESTS,
    ),
    st.builds(
        m.EvaluateRequest,
        st.just(SUITE),
        st.sampled_from(Mode),
        _U32,
        st.binary(min_size=8, max_size=8),
        _U32,
        _ELEMENTS,
    ),
    st.builds(m.EvaluateResponse, _U32, _ELEMENTS),
    st.builds(
        m.ProofRequest, _U32, st.lists(_U32, min_size=1, max_size=20, unique=True).map(tuple)
    ),
    st.builds(m.ProofResponse, _U32, st.builds(Proof, _SCALARS, _SCALARS)),
    st.builds(m.ErrorMessage, st.sampled_from(m.ErrorCode), st.none() | _U32, _TEXT),
    st.just(m.Close()),
)


@settings(max_examples=300, deadline=None)
@given(_MESSAGES)
def test_round_trip(message: m.Message) -> None:
    data = message.encode()
    decoded = m.decode(data)
    assert decoded == message
    assert decoded.encode() == data
    assert data[0] == m.PROTOCOL_VERSION
    assert data[1] == message.TYPE


@settings(max_examples=200, deadline=None)
@given(_MESSAGES, st.data())
def test_random_corruption_raises_only_typed_errors(
    message: m.Message, data: st.DataObject
) -> None:
    raw = bytearray(message.encode())
    offset = data.draw(st.integers(0, len(raw) - 1))
    raw[offset] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        decoded = m.decode(bytes(raw[:cut]))
    except errors.RemoteProtocolError:
        return
    assert decoded.encode() == bytes(raw[:cut])


@settings(max_examples=200, deadline=None)
@given(_INDEX_DIGESTS.filter(bool))
def test_server_info_digests_round_trip_and_are_laid_out_as_documented(
    digests: tuple[m.IndexDigest, ...],
) -> None:
    info = _info(digests)
    data = info.encode()
    assert m.decode(data) == info
    body = data[61:]
    assert body[0] == len(digests)
    assert body[1:] == b"".join(
        bytes([len(d.signal)]) + d.signal.encode() + d.digest for d in digests
    )


def test_max_size_server_info_fits_the_message_limit() -> None:
    digests = tuple(m.IndexDigest(f"{i:03d}" + "x" * 29, bytes(32)) for i in range(255))
    data = _info(digests).encode()
    assert len(data) == 62 + 255 * (1 + 32 + 32)
    assert m.decode(data) == _info(digests)


def _element_offsets(message: m.Message, size: int) -> list[int]:
    """Offsets of the elements in a message's encoding (they are its last fields)."""
    if isinstance(message, m.EvaluateRequest | m.EvaluateResponse):
        count = len(message.elements)
        return [size - 32 * (count - i) for i in range(count)]
    return []


@pytest.mark.parametrize(
    "case",
    [c for c in VALID if c["type"] in ("EvaluateRequest", "EvaluateResponse", "ServerInfo")],
    ids=lambda c: c["name"],
)
def test_an_element_with_bit_255_set_is_refused(case: dict[str, Any]) -> None:
    """Issue 7.2: every element of a message is decoded as RFC 9496 says; bit 255 set (the
    same point's low bits, or the identity's: 00...0080) is an InvalidPeerElement."""
    data = bytes.fromhex(case["hex"])
    message = m.decode(data)
    offsets = _element_offsets(message, len(data))
    if isinstance(message, m.ServerInfo):
        offsets = [data.index(bytes(message.public_key))]
    assert offsets
    for offset in offsets:
        for replacement in (None, bytes(31) + b"\x80"):
            bad = bytearray(data)
            if replacement is None:
                bad[offset + 31] |= 0x80
            else:
                bad[offset : offset + 32] = replacement
            with pytest.raises(errors.InvalidPeerElement):
                m.decode(bytes(bad))
