"""The service's errors: each one is an HTTP status and a machine-readable code.

They sit under :class:`blindmatch.errors.BlindmatchError` like every error of the
package. A handler in :mod:`blindmatch.service.app` turns each into a JSON body
``{"error": {"code": ..., "message": ...}}`` with its status; the message is our own text
and never quotes a submitted hash, a receipt or an API key.

::

    BlindmatchError
    └── ServiceError                      the clearinghouse service refused or failed
        ├── ConfigurationError            the operator's settings or data directory are wrong
        ├── BadRequest           400      malformed body or parameter
        ├── Unauthorized         401      missing, unknown or disabled API key / wrong receipt
        ├── NotFound             404      no such report, session or file
        ├── Conflict             409      duplicate submission, already withdrawn
        ├── PayloadTooLarge      413      a body over the size limit
        ├── Unprocessable        422      a well-formed request the service will not take
        ├── TooManyRequests      429      rate limit or daily quota (with Retry-After)
        └── Unavailable          503      nothing published yet
"""

from __future__ import annotations

from blindmatch.errors import BlindmatchError

__all__ = [
    "BadRequest",
    "ConfigurationError",
    "Conflict",
    "NotFound",
    "PayloadTooLarge",
    "ServiceError",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
]


class ServiceError(BlindmatchError):
    """A refusal of the service: ``status`` is the HTTP status, ``code`` the error code."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ConfigurationError(ServiceError):
    """The operator's settings, data directory or database are wrong (a CLI error)."""

    code = "configuration"


class BadRequest(ServiceError):
    status = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class Unprocessable(ServiceError):
    status = 422
    code = "unprocessable"


class TooManyRequests(ServiceError):
    """Over a rate limit or a quota; ``retry_after`` seconds until it resets."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after))


class Unavailable(ServiceError):
    status = 503
    code = "unavailable"
