"""The intake client: a person's fingerprints to a clearinghouse, a receipt back.

Theory of operation
-------------------
What leaves the machine. A report is the JSON body of the service's ``POST /v1/reports``
and nothing else: the content kind (image or video), the age attestation, and the
fingerprints of one file (PDQ with its quality or vPDQ frames with theirs, MD5, SHA-256).
No file name, size, date or byte of the file is sent, and no cookie; the ``User-Agent`` is
``blindmatch`` without a version. (``tests/test_report_privacy.py`` proves it through a
recording proxy.)

What the service accepts. It refuses a PDQ hash below quality 50 (it would match unrelated
pictures) and takes at most 1024 frames of a video. :meth:`Report.image` and
:meth:`Report.video` therefore leave out a PDQ hash below 50 (the file is still reported by
MD5 and SHA-256, which match exact copies only), and keep a video's distinct frames of
quality 50 or more, at most 1024 spread evenly (:func:`~blindmatch.fingerprint.video.
sample_frames`, the rule the clearinghouse applies too): the person learns up front what
was sent rather than seeing the whole report refused.

One string to keep. The service answers a report id (24 hex digits, public: it appears in
URLs) and a receipt (256 bits from :mod:`secrets`, shown once, stored only hashed), and
asks for both to read the status or withdraw: the id in the URL, the receipt in the
``Blindmatch-Receipt`` header. A person should have one thing to keep, so
:class:`Receipt` joins them as ``bm1.<report id>.<receipt>``: ``.`` is in neither alphabet,
so the string splits one way only; the secret part is the service's receipt unchanged, so
nothing is weakened (the id was never a secret); ``bm1`` names the format, so a tool can
find receipts in any text (:meth:`Receipt.find_all`: a saved output of ``blindmatch
report``, text or JSON).

Retries. None. A report whose answer is lost on the way back is stored, but its receipt is
gone; sending it again is refused as a duplicate (409 ``duplicate_submission``), which is
what the person is then told. Status and withdrawal are cheap to run again by hand.

Transport. ``https://``, or ``http://`` to this machine only (``localhost``, ``127.0.0.0/8``,
``::1``): over plain HTTP anyone on the network would read the receipt. TLS certificates
are verified (httpx's default); redirects are not followed (a receipt never goes to a
second address).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import urllib.parse
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, cast, get_args

import httpx

from blindmatch.errors import (
    IntakeRateLimited,
    IntakeRefused,
    IntakeUnavailable,
    InvalidArgument,
    InvalidEncoding,
    ReceiptRejected,
)
from blindmatch.fingerprint.signals import PdqSignal
from blindmatch.fingerprint.types import (
    Md5Digest,
    PdqFingerprint,
    Sha256Digest,
    VideoFingerprint,
    VideoFrame,
)
from blindmatch.fingerprint.video import sample_frames, unique_frames

__all__ = [
    "AgeAttestation",
    "ContentKind",
    "MAX_FRAMES",
    "Receipt",
    "Report",
    "ReportStatus",
    "ReportingClient",
    "Status",
    "server_url",
]

ContentKind = Literal["image", "video"]
AgeAttestation = Literal["minor", "adult"]
"""``minor``: the person depicted was under 18 when the content was made."""
Status = Literal["pending", "published", "withdrawn", "suspended", "removed"]

MAX_FRAMES: Final = 1024
"""Most vPDQ frames the intake takes in one report (the service's default limit)."""

_REPORT_ID = re.compile(r"[0-9a-f]{24}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{22,128}")
_RECEIPT = re.compile(
    r"(?<![A-Za-z0-9_.-])bm1\.([0-9a-f]{24})\.([A-Za-z0-9_-]{22,128})(?![A-Za-z0-9_.-])"
)
_CODE = re.compile(r"[a-z0-9_]{1,40}")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Receipt:
    """A report id and its secret receipt, kept as one string ``bm1.<id>.<receipt>``.

    The secret is kept out of ``repr`` (logs, tracebacks); :meth:`text` is the only way to
    see it. Receipts compare in constant time.

    Raises:
        InvalidEncoding: the id or the secret has the wrong length or alphabet.
    """

    report_id: str
    secret: str

    def __post_init__(self) -> None:
        if not isinstance(self.report_id, str) or not _REPORT_ID.fullmatch(self.report_id):
            raise InvalidEncoding("a report id is 24 lowercase hex digits")
        if not isinstance(self.secret, str) or not _SECRET.fullmatch(self.secret):
            raise InvalidEncoding("a receipt's secret is 22 to 128 URL-safe base64 characters")

    @classmethod
    def parse(cls, text: str) -> Receipt:
        """Read one receipt as :meth:`text` writes it (surrounding spaces ignored).

        Raises:
            InvalidEncoding: ``text`` is not a whole receipt (the message never quotes it).
        """
        found = _RECEIPT.fullmatch(text.strip()) if isinstance(text, str) else None
        if found is None:
            raise InvalidEncoding(
                "not a blindmatch receipt: one line that starts with 'bm1.' (check that all "
                "of it was copied)"
            )
        return cls(found.group(1), found.group(2))

    @classmethod
    def find_all(cls, text: str) -> list[Receipt]:
        """Every receipt in ``text`` (e.g. a saved output of ``blindmatch report``), in
        order, each once."""
        seen: set[str] = set()
        found: list[Receipt] = []
        for match in _RECEIPT.finditer(text):
            if match.group(0) not in seen:
                seen.add(match.group(0))
                found.append(cls(match.group(1), match.group(2)))
        return found

    def text(self) -> str:
        """The one string a person keeps: ``bm1.<report id>.<receipt>``."""
        return f"bm1.{self.report_id}.{self.secret}"

    def __repr__(self) -> str:
        return f"Receipt(report_id={self.report_id!r}, secret=<redacted>)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Receipt):
            return NotImplemented
        return hmac.compare_digest(self.text().encode(), other.text().encode())

    def __hash__(self) -> int:
        return hash(self.report_id)


@dataclass(frozen=True, slots=True)
class Report:
    """The fingerprints of one file, as one report (one receipt) of the intake.

    Attributes:
        content_kind: ``image`` or ``video``.
        age_attestation: ``minor`` or ``adult`` (the person depicted, when it was made).
        md5: MD5 of the file's bytes.
        sha256: SHA-256 of the file's bytes.
        pdq: An image's PDQ fingerprint (``None``: left out, e.g. quality below 50).
        frames: A video's vPDQ frames (empty: left out).
    """

    content_kind: ContentKind
    age_attestation: AgeAttestation
    md5: Md5Digest
    sha256: Sha256Digest
    pdq: PdqFingerprint | None = None
    frames: tuple[VideoFrame, ...] = ()

    def __post_init__(self) -> None:
        if self.content_kind not in get_args(ContentKind):
            raise InvalidArgument("content_kind must be 'image' or 'video'")
        if self.age_attestation not in get_args(AgeAttestation):
            raise InvalidArgument("age_attestation must be 'minor' or 'adult'")
        if self.content_kind == "image" and self.frames:
            raise InvalidArgument("an image report has no video frames")
        if self.content_kind == "video" and self.pdq is not None:
            raise InvalidArgument("a video report has frames, not one PDQ hash")
        if len(self.frames) > MAX_FRAMES:
            raise InvalidArgument(f"at most {MAX_FRAMES} frames in one report")

    @classmethod
    def image(
        cls,
        age_attestation: AgeAttestation,
        md5: Md5Digest,
        sha256: Sha256Digest,
        pdq: PdqFingerprint,
    ) -> Report:
        """An image's report; its PDQ hash is left out below quality 50 (module docstring)."""
        kept = pdq if pdq.quality >= PdqSignal.quality_floor else None
        return cls("image", age_attestation, md5, sha256, pdq=kept)

    @classmethod
    def video(
        cls,
        age_attestation: AgeAttestation,
        md5: Md5Digest,
        sha256: Sha256Digest,
        fingerprint: VideoFingerprint,
    ) -> Report:
        """A video's report: its distinct frames of quality >= 50, at most
        :data:`MAX_FRAMES` spread evenly (none: MD5 and SHA-256 only)."""
        good = unique_frames(fingerprint, PdqSignal.quality_floor)
        kept = sample_frames(good, MAX_FRAMES) if good else ()
        return cls("video", age_attestation, md5, sha256, frames=tuple(kept))

    @property
    def perceptual(self) -> bool:
        """Whether a PDQ hash or vPDQ frames are sent (they also match edited copies; MD5
        and SHA-256 match exact copies only)."""
        return self.pdq is not None or bool(self.frames)

    def body(self) -> dict[str, Any]:
        """The JSON body of ``POST /v1/reports`` (the service's ``IntakeRequest``)."""
        fingerprints: list[dict[str, Any]] = []
        if self.pdq is not None:
            fingerprints.append(
                {"signal": "pdq", "hash": self.pdq.hash.hex(), "quality": self.pdq.quality}
            )
        if self.frames:
            fingerprints.append(
                {
                    "signal": "vpdq",
                    "frames": [{"hash": f.pdq.hex(), "quality": f.quality} for f in self.frames],
                }
            )
        fingerprints.append({"signal": "md5", "hash": self.md5.hex()})
        fingerprints.append({"signal": "sha256", "hash": self.sha256.hex()})
        return {
            "content_kind": self.content_kind,
            "age_attestation": self.age_attestation,
            "fingerprints": fingerprints,
        }


@dataclass(frozen=True, slots=True)
class ReportStatus:
    """What the holder of a receipt may read about their report.

    Attributes:
        report_id: The report.
        status: ``pending`` (received, not yet in a published index), ``published``,
            ``withdrawn``, ``suspended`` (held for review) or ``removed``.
        created_at: When it was received (Unix seconds).
        withdrawn_at: When it was withdrawn, if it was.
    """

    report_id: str
    status: Status
    created_at: int
    withdrawn_at: int | None = None


def server_url(text: str) -> str:
    """The base URL of a clearinghouse, checked: ``https://HOST[:PORT][/PATH]``, or
    ``http://`` to this machine only (module docstring). Returns it without a trailing
    slash.

    Raises:
        InvalidArgument: not such a URL (the message says what is wrong).
    """
    try:
        parts = urllib.parse.urlsplit(text.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - parsing the port raises ValueError when it is not a number
    except ValueError:
        raise InvalidArgument("the server address is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidArgument("the server address must start with https:// and name a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument("the server address must not hold a user name or password")
    if parts.query or parts.fragment:
        raise InvalidArgument("the server address must not have a '?' query or a '#' part")
    if parts.scheme == "http" and not _loopback(host):
        raise InvalidArgument(
            "use https:// for a clearinghouse on another machine (over plain http:// anyone "
            "on the network could read your receipt)"
        )
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ReportingClient:
    """Report fingerprints to a clearinghouse, read a report's status, withdraw it.

    One HTTP connection pool; use it as a context manager or call :meth:`close`.

    Args:
        server: The clearinghouse's base URL (checked by :func:`server_url`).
        timeout: Seconds to wait for a connection or an answer.
        transport: An httpx transport (a test may route requests elsewhere).

    Raises:
        InvalidArgument: ``server`` is not an acceptable URL.
    """

    def __init__(
        self,
        server: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server_url(server)
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self.server + "/v1",
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": "blindmatch"},
            transport=transport,
        )

    def __enter__(self) -> ReportingClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def check(self) -> None:
        """Ask whether the clearinghouse is up (before fingerprinting a folder for nothing).

        Raises:
            IntakeUnavailable: not reached, or not a clearinghouse.
        """
        answer = self._send("GET", "/health")
        if answer.status_code != 200 or _json(answer).get("status") != "ok":
            raise self._failure(answer)

    def submit(self, report: Report) -> Receipt:
        """Send one report; return its receipt (shown to the person once: keep it).

        Raises:
            IntakeRefused: refused; ``code`` says why (``duplicate_submission``: these
                fingerprints are already reported).
            IntakeRateLimited: too many reports from this client for now.
            IntakeUnavailable: not reached or failed (a report cut off after it was sent
                may be stored; sending it again is then refused as a duplicate).
        """
        answer = self._send("POST", "/reports", json=report.body())
        if answer.status_code != 201:
            raise self._failure(answer)
        body = _json(answer)
        try:
            return Receipt(body.get("report_id"), body.get("receipt"))  # type: ignore[arg-type]
        except InvalidEncoding:
            raise _not_a_clearinghouse() from None

    def status(self, receipt: Receipt) -> ReportStatus:
        """The report's status.

        Raises:
            ReceiptRejected: unknown report, or the receipt is wrong.
            IntakeUnavailable: not reached or failed.
        """
        answer = self._send("GET", f"/reports/{receipt.report_id}", receipt=receipt)
        return self._status(answer, receipt)

    def withdraw(self, receipt: Receipt) -> ReportStatus:
        """Withdraw the report: platforms stop matching it at once.

        Raises:
            ReceiptRejected: unknown report, or the receipt is wrong.
            IntakeRefused: ``already_withdrawn``.
            IntakeUnavailable: not reached or failed.
        """
        answer = self._send("DELETE", f"/reports/{receipt.report_id}", receipt=receipt)
        return self._status(answer, receipt)

    def _status(self, answer: httpx.Response, receipt: Receipt) -> ReportStatus:
        if answer.status_code != 200:
            raise self._failure(answer)
        body = _json(answer)
        status, created, withdrawn = (
            body.get("status"),
            body.get("created_at"),
            body.get("withdrawn_at"),
        )
        if (
            body.get("report_id") != receipt.report_id
            or status not in get_args(Status)
            or not isinstance(created, int)
            or isinstance(created, bool)
            or not (withdrawn is None or _is_int(withdrawn))
        ):
            raise _not_a_clearinghouse()
        return ReportStatus(receipt.report_id, cast(Status, status), created, withdrawn)

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        receipt: Receipt | None = None,
    ) -> httpx.Response:
        headers = {"Blindmatch-Receipt": receipt.secret} if receipt is not None else None
        try:
            return self._http.request(method, path, json=json, headers=headers)
        except httpx.TimeoutException:
            raise IntakeUnavailable(
                f"the clearinghouse at {self.server} did not answer within "
                f"{self._timeout:g} seconds"
            ) from None
        except httpx.ConnectError:
            raise IntakeUnavailable(
                f"could not connect to the clearinghouse at {self.server} (is the address "
                "right, and are you online?)"
            ) from None
        except httpx.HTTPError as exc:
            raise IntakeUnavailable(
                f"the connection to the clearinghouse at {self.server} failed "
                f"({type(exc).__name__})"
            ) from None

    def _failure(self, answer: httpx.Response) -> IntakeRefused | IntakeUnavailable:
        """The typed error for an answer that is not the expected success."""
        status = answer.status_code
        if status >= 500:
            return IntakeUnavailable(
                f"the clearinghouse at {self.server} has a problem (HTTP {status}): try again later"
            )
        if not 400 <= status < 500:
            return _not_a_clearinghouse()
        error = _json(answer).get("error")
        if not isinstance(error, dict) or not isinstance(error.get("code"), str):
            return _not_a_clearinghouse()
        code = error["code"] if _CODE.fullmatch(error["code"]) else "unknown"
        peer_text = str(error.get("message", ""))[:200]
        if status == 404:
            return _not_a_clearinghouse()
        if status == 401 and code == "invalid_receipt":
            return ReceiptRejected(
                "the clearinghouse does not recognise this receipt: check that all of it was "
                "copied (one line that starts with 'bm1.')",
                status=status,
                code=code,
                peer_text=peer_text,
            )
        if status == 429:
            wait = _retry_after(answer)
            return IntakeRateLimited(
                "the clearinghouse has had too many reports from this connection for now. "
                f"Nothing is wrong with your files: please try again in {_minutes(wait)}",
                status=status,
                code=code,
                peer_text=peer_text,
                retry_after=wait,
            )
        message = _REFUSALS.get(code, f"the clearinghouse refused the request ({code})")
        return IntakeRefused(message, status=status, code=code, peer_text=peer_text)


_REFUSALS: Final = {
    "duplicate_submission": "this file was already reported (its fingerprints are on the list "
    "or about to be), so no new receipt was made",
    "already_withdrawn": "this report is already withdrawn",
    "pdq_quality_too_low": "the picture has too little detail for a PDQ fingerprint",
    "too_many_fingerprints": "the clearinghouse takes fewer fingerprints in one report",
    "payload_too_large": "the report is too large for this clearinghouse",
    "invalid_request": "the clearinghouse did not accept the fingerprints (invalid_request): "
    "it may run another version of blindmatch",
}


def _not_a_clearinghouse() -> IntakeUnavailable:
    return IntakeUnavailable(
        "the server did not answer as a blindmatch clearinghouse does: check the address"
    )


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _retry_after(answer: httpx.Response) -> int:
    try:
        return max(1, min(int(answer.headers.get("Retry-After", "3600")), 86400))
    except ValueError:
        return 3600


def _minutes(seconds: int) -> str:
    minutes = -(-seconds // 60)
    return "about a minute" if minutes <= 1 else f"about {minutes} minutes"
