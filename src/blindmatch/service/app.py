"""The ASGI application: thin FastAPI routes over the service modules, every route under /v1.

Theory of operation
-------------------
Handlers are plain functions (FastAPI runs them on its thread pool): each opens its own
short transactions, and the matching work (scalar multiplications in libsodium, which
releases the GIL) runs outside any transaction. Nothing a request needs is kept in the
worker between requests except immutable key files read once (:mod:`.epochs`).

Errors. Every refusal is a JSON body ``{"error": {"code", "message", "fields"}}`` with a
4xx status (:mod:`blindmatch.service.errors`); request validation errors name the fields
and the kind of error, never the submitted value; an unexpected exception is answered
500 ``internal`` with no detail and logged by type only (the ``blindmatch.service``
logger never receives a hash, a receipt, an API key or a client address). The matching
routes answer the protocol's own ``ErrorMessage`` bytes on refusal, with the code in the
``Blindmatch-Error`` header.

Sizes. :class:`BodyLimit` refuses a body over the route's limit (413) while reading it,
before any parsing, whether or not it announced a ``Content-Length``.
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import FastAPI, Header, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from blindmatch import __version__
from blindmatch.service import feedback, intake, matching, platforms, publication
from blindmatch.service.epochs import KeyStore
from blindmatch.service.errors import (
    BadRequest,
    ConfigurationError,
    NotFound,
    ServiceError,
    TooManyRequests,
)
from blindmatch.service.models import (
    ErrorBody,
    FeedbackRequest,
    FeedbackResponse,
    IntakeReceipt,
    IntakeRequest,
    KeysResponse,
    ManifestResponse,
    ReportStatus,
)
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database

__all__ = ["BodyLimit", "Service", "create_app"]

log = logging.getLogger("blindmatch.service")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BINARY = "application/octet-stream"
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 409, 413, 422, 429, 503)
}


ReportId = Annotated[str, Path(pattern=r"^[0-9a-f]{24}$")]

Receipt = Annotated[str | None, Header(alias="Blindmatch-Receipt", max_length=128)]

Authorization = Annotated[str | None, Header(max_length=256)]

SessionId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


class Service:
    """What every route needs: settings, the database, the key store (one per worker)."""

    def __init__(self, settings: Settings, database: Database | None = None) -> None:
        self.settings = settings
        self.database = database or Database(settings)
        self.keys = KeyStore(settings, self.database)


def _error_response(
    status: int,
    code: str,
    message: str,
    fields: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "fields": fields or []}}
    return JSONResponse(body, status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware: refuse request bodies over the route's limit with 413."""

    def __init__(self, app: ASGIApp, *, json_limit: int, binary_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit
        self.binary_limit = binary_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.binary_limit if path.startswith("/v1/match/") else self.json_limit
        too_large = _error_response(413, "payload_too_large", f"the body is over {limit} bytes")
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    announced = limit + 1
                if announced > limit:
                    await too_large(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _binary_reply(reply: matching.Reply) -> Response:
    headers: dict[str, str] = {}
    if reply.error is not None:
        headers["Blindmatch-Error"] = reply.error
    if reply.retry_after is not None:
        headers["Retry-After"] = str(reply.retry_after)
    if reply.session_id is not None:
        headers["Blindmatch-Session"] = reply.session_id
        headers["Location"] = f"/v1/match/sessions/{reply.session_id}"
    return Response(reply.body, status_code=reply.status, media_type=_BINARY, headers=headers)


_BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {_BINARY: {"schema": {"type": "string", "format": "binary"}}},
    }
}
_BINARY_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"content": {_BINARY: {"schema": {"type": "string", "format": "binary"}}}}
    for status in (200, 201, 400, 409, 413, 422, 429)
}


def create_app(settings: Settings, database: Database | None = None) -> FastAPI:
    """The clearinghouse's ASGI application for ``settings`` (migrations already run)."""
    service = Service(settings, database)
    app = FastAPI(
        title="blindmatch clearinghouse",
        version=__version__,
        description=(
            "Anonymous intake of fingerprints, signed index publication and the private "
            "matching protocol (docs/protocol.md) over HTTP. Every route is under /v1."
        ),
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
    )
    app.state.service = service
    limits = settings.limits

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        headers = None
        if isinstance(exc, TooManyRequests):
            headers = {"Retry-After": str(exc.retry_after)}
        status = exc.status if 400 <= exc.status < 600 else 500
        return _error_response(status, exc.code, str(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = sorted(
            {".".join(str(part) for part in err.get("loc", ())) for err in exc.errors()}
        )[:20]
        kinds = sorted({str(err.get("type", "invalid")) for err in exc.errors()})[:5]
        return _error_response(
            422,
            "invalid_request",
            f"the request does not match the schema ({', '.join(kinds)})",
            fields,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        return _error_response(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            "no such resource" if exc.status_code == 404 else "the request was refused",
        )

    @app.exception_handler(sa.exc.DataError)
    async def _out_of_range(_request: Request, exc: sa.exc.DataError) -> JSONResponse:
        # A value the schema let through but the column cannot hold (PostgreSQL int4).
        log.warning("refused a value out of the database's range: %s", type(exc.orig).__name__)
        return _error_response(400, "bad_request", "a value is out of range")

    @app.exception_handler(sa.exc.OperationalError)
    async def _database(_request: Request, exc: sa.exc.OperationalError) -> JSONResponse:
        log.error("database unavailable: %s", type(exc.orig).__name__)
        return _error_response(
            503, "database_unavailable", "try again later", headers={"Retry-After": "5"}
        )

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__)
        return _error_response(500, "internal", "internal error")

    @app.get("/v1/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness and database reachability."""
        with service.database.begin() as connection:
            connection.execute(sa.select(1))
        return {"status": "ok"}

    @app.post(
        "/v1/reports",
        status_code=201,
        response_model=IntakeReceipt,
        responses=_ERRORS,
        tags=["intake"],
    )
    def submit_report(body: IntakeRequest, request: Request) -> IntakeReceipt:
        """Report fingerprints anonymously; the receipt in the answer is shown once."""
        submission = intake.normalise(body, limits)
        address = request.client.host if request.client else "unknown"
        with service.database.begin() as connection:
            report_id, receipt = intake.submit(connection, submission, address, limits)
        return IntakeReceipt(report_id=report_id, receipt=receipt, status="pending")

    @app.get(
        "/v1/reports/{report_id}", response_model=ReportStatus, responses=_ERRORS, tags=["intake"]
    )
    def report_status(report_id: ReportId, receipt: Receipt = None) -> ReportStatus:
        """The status of a report, for the holder of its receipt (``Blindmatch-Receipt``)."""
        with service.database.begin() as connection:
            return intake.status(connection, report_id, receipt)

    @app.delete(
        "/v1/reports/{report_id}", response_model=ReportStatus, responses=_ERRORS, tags=["intake"]
    )
    def withdraw_report(report_id: ReportId, receipt: Receipt = None) -> ReportStatus:
        """Withdraw a report: its handles are revoked in the manifest at once."""
        with service.database.begin() as connection:
            return intake.withdraw(connection, report_id, receipt)

    @app.post("/v1/feedback", response_model=FeedbackResponse, responses=_ERRORS, tags=["matching"])
    def match_feedback(
        body: FeedbackRequest, authorization: Authorization = None
    ) -> FeedbackResponse:
        """What the platform did with a matched handle; disputes can suspend a report."""
        with service.database.begin() as connection:
            platform = platforms.authenticate(connection, authorization)
            status = feedback.record(
                connection,
                platform,
                bytes.fromhex(body.handle),
                body.verdict,
                limits.dispute_threshold,
            )
        return FeedbackResponse(status=status)

    @app.get("/v1/keys", response_model=KeysResponse, tags=["publication"])
    def keys() -> KeysResponse:
        """The key epochs still answering and the manifest signing key to pin."""
        with service.database.begin() as connection:
            epochs = service.keys.list(connection)
        from blindmatch.service.storage import now

        at = now()
        live = [e.to_json() for e in epochs if e.accepts(at)]
        return KeysResponse(
            current_epoch=epochs[-1].epoch,
            epochs=live,
            publication_key=bytes(service.keys.signing_key().verify_key).hex(),
        )

    @app.get(
        "/v1/index/manifest",
        response_model=ManifestResponse,
        responses=_ERRORS,
        tags=["publication"],
    )
    def index_manifest(epoch: int | None = None) -> ManifestResponse:
        """The signed manifest of the newest publication (of ``epoch``, default current)."""
        if epoch is not None and not 0 <= epoch < 1 << 31:
            raise BadRequest("epoch out of range", code="invalid_epoch")
        with service.database.begin() as connection:
            signed = publication.manifest(connection, service.keys, epoch)
        return ManifestResponse(
            manifest=signed.text,
            signature=signed.signature.hex(),
            publication_key=bytes(service.keys.signing_key().verify_key).hex(),
        )

    @app.get(
        "/v1/index/{epoch}/{version}/{signal}",
        responses={
            200: {"content": {_BINARY: {"schema": {"type": "string", "format": "binary"}}}},
            **_ERRORS,
        },
        tags=["publication"],
    )
    def index_file(
        request: Request,
        epoch: Annotated[int, Path(ge=0, lt=1 << 31)],
        version: Annotated[int, Path(ge=1, lt=1 << 31)],
        signal: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")],
    ) -> Response:
        """One published index file (supports ``Range`` and ``If-None-Match``)."""
        with service.database.begin() as connection:
            found = publication.published_file(connection, settings, epoch, version, signal)
        return _immutable_file(request, found)

    @app.get(
        "/v1/index/{epoch}/{version}/{signal}/deltas/{sequence}",
        responses={
            200: {"content": {_BINARY: {"schema": {"type": "string", "format": "binary"}}}},
            **_ERRORS,
        },
        tags=["publication"],
    )
    def delta_file(
        request: Request,
        epoch: Annotated[int, Path(ge=0, lt=1 << 31)],
        version: Annotated[int, Path(ge=1, lt=1 << 31)],
        signal: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")],
        sequence: Annotated[int, Path(ge=1, lt=1 << 31)],
    ) -> Response:
        """One published delta file (as full files: ``Range``, ``If-None-Match``)."""
        with service.database.begin() as connection:
            found = publication.published_delta(
                connection, settings, epoch, version, signal, sequence
            )
        return _immutable_file(request, found)

    @app.post(
        "/v1/match/sessions",
        status_code=201,
        openapi_extra=_BINARY_BODY,
        responses={**_BINARY_RESPONSES, 401: {"model": ErrorBody}},
        tags=["matching"],
    )
    async def open_session(request: Request, authorization: Authorization = None) -> Response:
        """Open a matching session: the body is a ``Hello``, the answer ``ServerInfo``."""
        data = await request.body()
        return await _in_thread(lambda: _open(authorization, data))

    def _open(authorization: str | None, data: bytes) -> Response:
        with service.database.begin() as connection:
            platform = platforms.authenticate(connection, authorization)
        reply = matching.open_session(settings, service.database, service.keys, platform, data)
        return _binary_reply(reply)

    @app.post(
        "/v1/match/sessions/{session_id}",
        openapi_extra=_BINARY_BODY,
        responses={**_BINARY_RESPONSES, 401: {"model": ErrorBody}, 404: {"model": ErrorBody}},
        tags=["matching"],
    )
    async def session_message(
        session_id: SessionId, request: Request, authorization: Authorization = None
    ) -> Response:
        """One message of a session: ``EvaluateRequest``, ``ProofRequest`` or ``Close``."""
        data = await request.body()
        return await _in_thread(lambda: _message(authorization, session_id, data))

    def _message(authorization: str | None, session_id: str, data: bytes) -> Response:
        with service.database.begin() as connection:
            platform = platforms.authenticate(connection, authorization)
        reply = matching.handle_message(
            settings, service.database, service.keys, platform, session_id, data
        )
        return _binary_reply(reply)

    if settings.page_dir is not None:
        _serve_page(app, settings.page_dir, settings.page_policy)
    app.add_middleware(
        BodyLimit, json_limit=limits.max_json_body, binary_limit=limits.max_binary_body
    )
    return app


def _immutable_file(request: Request, found: publication.PublishedFile) -> Response:
    """A published file: never changes under its URL, so ETag = its SHA-256 and cached
    for a year; ``FileResponse`` answers ``Range`` requests."""
    etag = f'"{found.sha256.hex()}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return FileResponse(
        found.path,
        media_type=_BINARY,
        headers={"ETag": etag, "Cache-Control": "public, max-age=31536000, immutable"},
    )


_PAGE_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
}


def _serve_page(app: FastAPI, directory: pathlib.Path, policy: str) -> None:
    """Serve the static files of ``directory`` (one level, known types) at ``/``.

    The page is the reporting page of :mod:`blindmatch.web`, which ``blindmatch serve``
    passes in: same origin as /v1, so its policy can say ``connect-src 'self'``. The files
    are read once, here: no request path ever reaches the file system. Every answer carries
    the policy and headers that keep the page to itself (no sniffing, no referrer, no
    framing); nothing sets a cookie. The routes stay out of the OpenAPI document.
    """
    try:
        files = {
            path.name: (path.read_bytes(), _PAGE_TYPES[path.suffix])
            for path in sorted(directory.iterdir())
            if path.is_file() and path.suffix in _PAGE_TYPES
        }
    except OSError as exc:
        raise ConfigurationError(f"cannot read the page directory ({exc.strerror})") from None
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }

    def answer(name: str) -> Response:
        found = files.get(name)
        if found is None:
            raise NotFound("no such resource")
        body, media_type = found
        return Response(body, media_type=media_type, headers=headers)

    # HEAD too: link checkers and caches ask it (the body is dropped by the server).
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page_index() -> Response:
        return answer("index.html")

    @app.api_route("/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    def page_file(name: str) -> Response:
        return answer(name)


async def _in_thread(work: Callable[[], Response]) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(work)
