"""The JSON bodies of the HTTP API (pydantic models; the OpenAPI document is made from them).

Hashes travel as lowercase or uppercase hex of their exact length; qualities are PDQ
qualities 0..100. Validation errors are answered by :mod:`blindmatch.service.app` with the
field's location and an error type only, never the submitted value.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "ExactFingerprint",
    "FeedbackRequest",
    "FeedbackResponse",
    "FrameFingerprint",
    "IntakeReceipt",
    "IntakeRequest",
    "KeysResponse",
    "ManifestResponse",
    "PdqFingerprint",
    "ReportStatus",
    "VpdqFingerprint",
]

_Hex32 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$")]
_Hex64 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
_Quality = Annotated[int, Field(ge=0, le=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PdqFingerprint(_Strict):
    """A PDQ hash of an image with its quality (refused below 50)."""

    signal: Literal["pdq"]
    hash: _Hex64
    quality: _Quality


class ExactFingerprint(_Strict):
    """An MD5 or SHA-256 digest of the file's bytes."""

    signal: Literal["md5", "sha256"]
    hash: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}([0-9a-fA-F]{32})?$")]


class FrameFingerprint(_Strict):
    """One vPDQ frame: its PDQ hash and quality."""

    hash: _Hex64
    quality: _Quality


class VpdqFingerprint(_Strict):
    """The frames of a video (frames below quality 50 are skipped, not refused)."""

    signal: Literal["vpdq"]
    frames: Annotated[list[FrameFingerprint], Field(min_length=1, max_length=1024)]


Fingerprint = Annotated[
    PdqFingerprint | ExactFingerprint | VpdqFingerprint, Field(discriminator="signal")
]


class IntakeRequest(_Strict):
    """An anonymous report: fingerprints only, never the media."""

    content_kind: Literal["image", "video"]
    age_attestation: Literal["minor", "adult"] = Field(
        description="the reporter attests the person depicted was a minor (under 18) or an "
        "adult when the content was made"
    )
    fingerprints: Annotated[list[Fingerprint], Field(min_length=1, max_length=64)]


class IntakeReceipt(BaseModel):
    """The answer to an intake: the receipt is shown this once and stored only hashed."""

    report_id: str
    receipt: str
    status: str


class ReportStatus(BaseModel):
    """What the holder of a receipt may read about their report."""

    report_id: str
    status: Literal["pending", "published", "withdrawn", "suspended", "removed"]
    created_at: int
    withdrawn_at: int | None = None


class FeedbackRequest(_Strict):
    """What a platform did with a matched handle."""

    handle: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    verdict: Literal["actioned", "not_reported_kind"]


class FeedbackResponse(BaseModel):
    """The report's state after the feedback (``suspended`` once disputes reach the bar)."""

    status: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: list[str] = []


class ErrorBody(BaseModel):
    """Every 4xx/5xx JSON answer."""

    error: ErrorDetail


class KeysResponse(BaseModel):
    """The key epochs and the manifest signing key platforms pin."""

    current_epoch: int
    epochs: list[dict[str, object]]
    publication_key: str = Field(description="Ed25519 public key (hex) that signs manifests")


class ManifestResponse(BaseModel):
    """A signed manifest: verify ``signature`` over the UTF-8 bytes of ``manifest``."""

    manifest: str
    signature: str
    publication_key: str
