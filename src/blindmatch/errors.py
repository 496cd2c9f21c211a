"""The one exception tree of blindmatch.

Every error the library raises on purpose is a :class:`BlindmatchError`. Where a builtin
says the same thing, the class subclasses it too, so ``except ValueError`` keeps working
for callers who do not know blindmatch.

Local misuse (the caller did something wrong) is split from peer misbehaviour (the other
party sent something wrong), as h11 does: a server turns a :class:`RemoteProtocolError`
into a 4xx answer and keeps serving; a :class:`LocalProtocolError` is a bug to fix.

Wrong argument *values* raise :class:`InvalidArgument`. A typed value's constructor or
decoder (``PdqHash(...)``, ``Element.from_bytes``, ``pdq_from_rgb``'s array check) raises
:class:`InvalidEncoding` for anything that is not a valid encoding of it, whatever its
type; elsewhere an argument of the wrong *type* raises the builtin ``TypeError``, as Python
itself does (and mypy catches it before it runs).

Messages never carry secret bytes or bytes a peer controls: they name the field and the
expected shape, not the value. Verification failures say only that verification failed.

::

    BlindmatchError
    ├── InvalidArgument (ValueError)          a caller passed an argument value out of range
    ├── InvalidEncoding (ValueError)          bytes/hex of a typed value are malformed
    │   ├── InvalidElement                    not a canonical, non-identity ristretto255 point
    │   └── InvalidScalar                     not a canonical, non-zero scalar
    ├── FingerprintError                      a file could not be fingerprinted
    │   ├── UnsupportedMedia                  not an image or video we decode
    │   ├── CorruptMedia                      truncated, empty or undecodable
    │   ├── MediaTooLarge                     over the pixel/frame bounds (decompression bomb)
    │   └── UnreadableMedia                   the file cannot be opened or read (missing, denied)
    ├── RetroStoreFull                        a retro store would exceed its record bound
    ├── RegistryError                         signal-type registry misuse (duplicate, unknown)
    ├── CryptoError                           the cryptographic layer
    │   ├── BackendUnavailable (ImportError)  libsodium missing or too old; no ray extra
    │   ├── DeriveKeyPairError                RFC 9497 DeriveKeyPair found no key
    │   ├── InverseError                      RFC 9497: a scalar had no inverse
    │   ├── InvalidInput                      RFC 9497 InvalidInputError / input too long
    │   ├── InvalidParameter (InvalidArgument) a banding, share-field or index-build argument
    │   ├── VerifyError                       a DLEQ proof did not verify (no detail)
    │   ├── WorkerError (RuntimeError)        a worker process died (how to fix in the text)
    │   └── KeyFormatError                    a serialised key is malformed
    ├── IndexFormatError                      an index file is malformed or of another version
    │   └── IndexTooDense                     an upload hits more entries than an honest index has
    └── ProtocolError                         the matching protocol
        ├── LocalProtocolError                this side misused a session (wrong state, ...)
        │   └── RetroMismatch                 retained records used with a delta of another base
        ├── RequestRejected                   the clearinghouse answered with an error code
        └── RemoteProtocolError               the peer sent something wrong
            ├── MessageDecodeError            malformed, truncated or trailing bytes
            │   └── InvalidPeerElement (InvalidElement)  the peer sent an invalid element
            ├── UnsupportedVersion            a wire version we do not speak
            ├── LimitExceeded                 over a batch size or a quota
            ├── UnexpectedMessage             a message not valid in the session's state
            └── KeyMismatch                   the peer's key is not the published key
                ├── CanaryMismatch            a canary did not match: index and key disagree
                └── StaleIndex                the platform's index is not the current one
    ClientError (ProtocolError)               the platform SDK talking to a clearinghouse over HTTP
    ├── CacheLocked                           another process held the cache directory too long
    ├── ServiceUnavailable                    unreachable, or failing after the retries
    ├── ServiceRefused                        a refusal of the service; ``code`` says why
    │   ├── AuthenticationFailed              the API key is unknown or disabled (401)
    │   └── QuotaExhausted                    the daily element quota is spent (429)
    ├── ManifestError (RemoteProtocolError)   a manifest is malformed or its signature fails
    │   ├── PublicationKeyMismatch            the server's publication key is not the pinned one
    │   └── StaleManifest                     older than one already seen (a replay)
    └── IndexIntegrityError (RemoteProtocolError)  an index or delta is not the manifest's
    IntakeError                               reporting to a clearinghouse's intake failed
    ├── IntakeUnavailable                     not reached, failed (5xx), or not a clearinghouse
    └── IntakeRefused                         the intake refused the request (4xx, ``code``)
        ├── ReceiptRejected                   unknown report or wrong receipt (which: not said)
        └── IntakeRateLimited                 too many reports from this client for now
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "BackendUnavailable",
    "BlindmatchError",
    "CacheLocked",
    "CanaryMismatch",
    "ClientError",
    "CorruptMedia",
    "CryptoError",
    "DeriveKeyPairError",
    "FingerprintError",
    "IndexFormatError",
    "IndexIntegrityError",
    "IndexTooDense",
    "IntakeError",
    "IntakeRateLimited",
    "IntakeRefused",
    "IntakeUnavailable",
    "InvalidArgument",
    "InvalidElement",
    "InvalidEncoding",
    "InvalidInput",
    "InvalidParameter",
    "InvalidPeerElement",
    "InvalidScalar",
    "InverseError",
    "KeyFormatError",
    "KeyMismatch",
    "LimitExceeded",
    "LocalProtocolError",
    "ManifestError",
    "MediaTooLarge",
    "MessageDecodeError",
    "ProtocolError",
    "PublicationKeyMismatch",
    "QuotaExhausted",
    "ReceiptRejected",
    "RegistryError",
    "RemoteProtocolError",
    "RequestRejected",
    "RetroMismatch",
    "RetroStoreFull",
    "ServiceRefused",
    "ServiceUnavailable",
    "StaleIndex",
    "StaleManifest",
    "UnexpectedMessage",
    "UnreadableMedia",
    "UnsupportedMedia",
    "UnsupportedVersion",
    "VerifyError",
    "WorkerError",
]


class BlindmatchError(Exception):
    """Root of every error blindmatch raises on purpose."""


class InvalidArgument(BlindmatchError, ValueError):
    """A caller passed an argument value out of range (local misuse: a bug to fix)."""


class InvalidEncoding(BlindmatchError, ValueError):
    """Bytes or text that should encode a typed value do not (length, alphabet, range)."""


class InvalidElement(InvalidEncoding):
    """Not the canonical encoding of a non-identity ristretto255 element (RFC 9496 4.3.1)."""


class InvalidScalar(InvalidEncoding):
    """Not the canonical encoding of a scalar in [1, order) (or [0, order) where zero is legal)."""


class FingerprintError(BlindmatchError):
    """A file could not be fingerprinted. Carries no file content."""


class UnsupportedMedia(FingerprintError):
    """The bytes are not an image or video format blindmatch decodes."""


class CorruptMedia(FingerprintError):
    """The file is empty, truncated or otherwise undecodable."""


class MediaTooLarge(FingerprintError):
    """The media exceeds the configured pixel or frame bounds (decompression-bomb guard)."""


class UnreadableMedia(FingerprintError):
    """The file cannot be opened or read (missing, a directory, permission denied)."""


class RegistryError(BlindmatchError, LookupError):
    """A signal type is registered twice, or looked up under a name nobody registered."""


class CryptoError(BlindmatchError):
    """Errors of the cryptographic layer."""


class BackendUnavailable(CryptoError, ImportError):
    """libsodium (>= 1.0.18 with ristretto255) cannot be loaded, or a Ray build was asked for
    without the ``ray`` extra; the message says how to fix."""


class DeriveKeyPairError(CryptoError, ValueError):
    """RFC 9497 DeriveKeyPair: 256 counters gave a zero scalar (practically unreachable)."""


class InverseError(CryptoError, ValueError):
    """RFC 9497: a scalar that must be inverted is zero."""


class InvalidInput(CryptoError, ValueError):
    """RFC 9497 InvalidInputError: an input hashes to the identity, or an OPRF input or
    info string is 2^16 bytes or longer (the RFC frames their lengths in two bytes)."""


class VerifyError(CryptoError):
    """A proof did not verify. Deliberately carries no detail."""


class WorkerError(CryptoError, RuntimeError):
    """A worker process of a parallel OPRF job died before answering (a crash, the OOM
    killer, or a script that starts work at import time, which spawned workers re-run)."""


class InvalidParameter(CryptoError, InvalidArgument):
    """A banding, share-field or index-build argument is out of range (local misuse)."""


class KeyFormatError(CryptoError, ValueError):
    """A serialised key is malformed, of an unknown version, or of another suite."""


class IndexFormatError(BlindmatchError, ValueError):
    """An index file is malformed, truncated, corrupt or of an unsupported version."""


class IndexTooDense(IndexFormatError):
    """A lookup hit more index entries than an honest index produces (a malicious or corrupt
    index whose entries share tags): refused before the work grows with the hits."""


class ProtocolError(BlindmatchError):
    """Errors of the private matching protocol."""


class LocalProtocolError(ProtocolError):
    """This side used a session wrongly (wrong state, wrong argument). A bug to fix."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something wrong. A server answers it with 4xx and keeps serving."""


class MessageDecodeError(RemoteProtocolError, InvalidEncoding):
    """A wire message is malformed, truncated, or has trailing bytes."""


class UnsupportedVersion(RemoteProtocolError):
    """A wire message or file carries a version this build does not speak."""


class LimitExceeded(RemoteProtocolError):
    """A batch is over the size limit, or a session is over its element quota."""


class InvalidPeerElement(MessageDecodeError, InvalidElement):
    """A message from the peer holds an element that is not canonical or is the identity."""


class UnexpectedMessage(RemoteProtocolError):
    """The peer sent a message the session's state does not allow (or an unknown/reused id)."""


class KeyMismatch(RemoteProtocolError):
    """The peer evaluates with, or names, a key other than the published one."""


class CanaryMismatch(KeyMismatch):
    """A canary reference did not match: the index and the online key disagree. No detail."""


class StaleIndex(KeyMismatch):
    """The clearinghouse's current index of a signal differs from the platform's (same key
    epoch, another digest): download the index again. ``signals`` names the platform's own
    stale signal types (never peer bytes)."""

    def __init__(self, signals: tuple[str, ...]) -> None:
        super().__init__("index not current, download it again: " + ", ".join(signals))
        self.signals = signals


class RequestRejected(ProtocolError):
    """The clearinghouse refused a request with an error message; ``code`` says why.

    The peer's text is kept in ``peer_text`` for logs; it is not part of ``str(error)``.
    """

    def __init__(self, code: int, code_name: str, peer_text: str) -> None:
        super().__init__(f"the clearinghouse refused the request: {code_name}")
        self.code = code
        self.peer_text = peer_text


class ClientError(ProtocolError):
    """The platform SDK (:mod:`blindmatch.client`) could not finish talking to a
    clearinghouse. ``partial`` holds what a ``match`` call had found when it stopped (a
    :class:`blindmatch.client.MatchReport`: its matches stay true, its ``unfinished``
    uploads got no answer), or ``None``."""

    partial: object = None


class CacheLocked(ClientError):
    """Another client (process or thread) held the index cache directory's lock for longer
    than ``ClientOptions.lock_timeout``: nothing of the cache was changed. Run again later,
    or give each client its own cache directory."""


class ServiceUnavailable(ClientError):
    """The clearinghouse did not answer, or answered 5xx, through every retry."""


class ServiceRefused(ClientError):
    """The clearinghouse refused a request; ``code`` is its machine-readable code.

    The service's own message text is kept in ``peer_text`` for logs, not in ``str()``."""

    def __init__(self, message: str, *, code: str, status: int, peer_text: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.peer_text = peer_text


class AuthenticationFailed(ServiceRefused):
    """The API key is unknown or disabled (HTTP 401)."""


class QuotaExhausted(ServiceRefused):
    """The platform's daily element quota is spent; ``retry_after`` seconds until it resets
    (``None`` when the service did not say)."""

    def __init__(self, message: str, *, retry_after: int | None) -> None:
        super().__init__(message, code="quota_exhausted", status=429)
        self.retry_after = retry_after


class ManifestError(ClientError, RemoteProtocolError):
    """A publication manifest is malformed, or its signature does not verify under the
    pinned publication key (tampered). No detail of the bytes."""


class PublicationKeyMismatch(ManifestError):
    """The clearinghouse signs with another publication key than the one pinned."""


class StaleManifest(ManifestError):
    """A manifest older (key epoch, version) than one this cache already verified: a replay
    that would hide newer revocations or indexes."""


class IndexIntegrityError(ClientError, RemoteProtocolError):
    """A downloaded index or delta is not the one the signed manifest names (size, SHA-256,
    index digest, key or current digest differ)."""


class IntakeError(BlindmatchError):
    """Reporting fingerprints to a clearinghouse's intake (``blindmatch.client.reporting``)
    failed. Messages are this package's own plain text: never a receipt, a hash, or text
    the server sent."""


class IntakeUnavailable(IntakeError):
    """The clearinghouse could not be reached, failed (5xx), or answered in a way no
    clearinghouse does (the address is probably wrong). A request cut off after it was
    sent may still have been stored: a report sent again is then refused as a duplicate."""


class IntakeRefused(IntakeError):
    """The intake refused the request (4xx). ``status`` is the HTTP status and ``code`` the
    service's error code (``duplicate_submission``, ``already_withdrawn``, ...); the
    server's own text is kept in ``peer_text`` for logs, not in ``str(error)``."""

    def __init__(self, message: str, *, status: int, code: str, peer_text: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.peer_text = peer_text


class ReceiptRejected(IntakeRefused):
    """The clearinghouse knows no report with this id and receipt (it does not say which
    part is wrong, so a guess learns nothing)."""


class IntakeRateLimited(IntakeRefused):
    """Too many reports from this client for now; ``retry_after`` seconds until it resets."""

    def __init__(
        self, message: str, *, status: int, code: str, peer_text: str = "", retry_after: int
    ) -> None:
        super().__init__(message, status=status, code=code, peer_text=peer_text)
        self.retry_after = retry_after


class RetroMismatch(LocalProtocolError):
    """Retained upload records (:mod:`blindmatch.protocols.retro`) were used with an index
    they were not made for: a delta of another base index, key epoch or key id, or an index
    of the other format (banded records and a compact index, or the reverse). They mean
    nothing there (a lookup would silently find nothing)."""


class RetroStoreFull(BlindmatchError):
    """A retro store (:mod:`blindmatch.client.retro_store`) would exceed its record bound:
    nothing of the refused batch was written. Forget an old epoch or raise the bound."""
