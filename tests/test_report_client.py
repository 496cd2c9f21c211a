"""blindmatch.client.reporting without a server: receipts, addresses, report bodies."""

from __future__ import annotations

import json
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blindmatch.client.reporting import MAX_FRAMES, Receipt, Report, server_url
from blindmatch.errors import InvalidArgument, InvalidEncoding
from blindmatch.fingerprint.types import (
    Md5Digest,
    PdqFingerprint,
    PdqHash,
    Sha256Digest,
    VideoFingerprint,
    VideoFrame,
)
from blindmatch.service.models import IntakeRequest

MD5 = Md5Digest(bytes(range(16)))
SHA256 = Sha256Digest(bytes(range(32)))

_ids = st.text("0123456789abcdef", min_size=24, max_size=24)
_secrets = st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=22, max_size=128
)


@given(_ids, _secrets)
def test_receipt_text_round_trip(report_id: str, secret: str) -> None:
    receipt = Receipt(report_id, secret)
    assert Receipt.parse(receipt.text()) == receipt
    assert Receipt.parse(f"  {receipt.text()}\n") == receipt
    assert Receipt.find_all(f"x: {receipt.text()}\n{json.dumps(receipt.text())}") == [receipt]


def test_receipt_is_the_service_receipt_and_id_unchanged() -> None:
    secret = secrets.token_urlsafe(32)  # what the service hands out
    receipt = Receipt("ab" * 12, secret)
    assert receipt.text() == f"bm1.{'ab' * 12}.{secret}"
    assert secret not in repr(receipt)
    assert "redacted" in repr(receipt)
    assert receipt != Receipt("ab" * 12, secrets.token_urlsafe(32))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "bm1.",
        "bm2." + "a" * 24 + "." + "B" * 43,
        "bm1." + "A" * 24 + "." + "B" * 43,  # an id is lowercase hex
        "bm1." + "a" * 23 + "." + "B" * 43,
        "bm1." + "a" * 24 + "." + "B" * 21,  # a secret cut short
        "bm1." + "a" * 24 + "." + "B" * 42 + "=",
        "bm1." + "a" * 24 + "." + "B" * 43 + " extra",
    ],
)
def test_receipt_parse_refuses_anything_else(text: str) -> None:
    with pytest.raises(InvalidEncoding) as caught:
        Receipt.parse(text)
    assert "B" * 20 not in str(caught.value)


def test_find_all_skips_partial_receipts_and_repeats() -> None:
    one = Receipt("1" * 24, "S" * 43)
    text = f"{one.text()}\n{one.text()}\nbm1.{'2' * 24}.short\nbm1.{'3' * 24}.{'T' * 43}.x"
    assert Receipt.find_all(text) == [one]


@pytest.mark.parametrize(
    ("given_url", "expected"),
    [
        ("https://ch.example.org", "https://ch.example.org"),
        ("https://ch.example.org:8443/intake/", "https://ch.example.org:8443/intake"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_server_url_accepts(given_url: str, expected: str) -> None:
    assert server_url(given_url) == expected


@pytest.mark.parametrize(
    ("given_url", "reason"),
    [
        ("http://ch.example.org", "use https://"),
        ("http://10.0.0.2", "use https://"),
        ("ch.example.org", "must start with https://"),
        ("ftp://ch.example.org", "must start with https://"),
        ("https://", "must start with https://"),
        ("https://user:pw@ch.example.org", "user name or password"),
        ("https://ch.example.org/?q=1", "query"),
        ("https://ch.example.org:port", "not a valid URL"),
    ],
)
def test_server_url_refuses(given_url: str, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        server_url(given_url)


def test_image_body_is_what_the_intake_accepts() -> None:
    pdq = PdqFingerprint(PdqHash(bytes(range(32))), 90)
    report = Report.image("minor", MD5, SHA256, pdq)
    body = report.body()
    parsed = IntakeRequest.model_validate(body)
    assert parsed.content_kind == "image"
    assert [f.signal for f in parsed.fingerprints] == ["pdq", "md5", "sha256"]
    assert report.perceptual
    assert set(json.dumps(body)) <= set('{}[]":, _0123456789abcdefghijklmnopqrstuvwxyz')


def test_low_quality_pdq_is_left_out() -> None:
    report = Report.image("adult", MD5, SHA256, PdqFingerprint(PdqHash(bytes(32)), 49))
    assert report.pdq is None
    assert not report.perceptual
    signals = [f["signal"] for f in report.body()["fingerprints"]]
    assert signals == ["md5", "sha256"]
    IntakeRequest.model_validate(report.body())


def test_video_keeps_distinct_good_frames_at_most_the_limit() -> None:
    def frame(i: int, quality: int) -> VideoFrame:
        return VideoFrame(i, float(i), PdqHash(i.to_bytes(32, "big")), quality)

    frames = (frame(0, 100), frame(0, 100), frame(1, 10), *(frame(i, 80) for i in range(2, 2000)))
    report = Report.video("minor", MD5, SHA256, VideoFingerprint(frames, 1.0, 1.0))
    assert len(report.frames) == MAX_FRAMES
    assert all(f.quality >= 50 for f in report.frames)
    assert len({f.pdq for f in report.frames}) == MAX_FRAMES
    assert report.frames[0] == frames[0]
    assert report.frames[-1] == frames[-1]
    IntakeRequest.model_validate(report.body())
    dark = VideoFingerprint((frame(5, 0),), 1.0, 1.0)
    assert not Report.video("minor", MD5, SHA256, dark).perceptual


def test_report_checks_its_fields() -> None:
    with pytest.raises(InvalidArgument):
        Report("audio", "minor", MD5, SHA256)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        Report("image", "teen", MD5, SHA256)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        Report("video", "minor", MD5, SHA256, pdq=PdqFingerprint(PdqHash(bytes(32)), 90))
