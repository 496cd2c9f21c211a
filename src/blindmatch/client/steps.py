"""The I/O a client flow asks for: sans-IO steps, and what comes back.

Theory of operation
-------------------
The SDK's logic (:mod:`blindmatch.client.flows`) is written once, as generators that
*yield* steps and receive their results, like the protocol sessions below it take and
give bytes. Two thin loops carry the steps out (:mod:`blindmatch.client.loops`): one with
``httpx.Client`` and threads, one with ``httpx.AsyncClient`` and asyncio. So the sync and
async clients share every decision (retries, backoff, verification, the session), and only
the way bytes move differs.

- :class:`Send`: HTTP requests that may run concurrently (a pipelined wave of evaluation
  requests); the loop answers a tuple of :class:`Response` in the same order.
- :class:`Download`: one GET streamed into a partial file, resuming at ``offset`` with
  ``Range`` when the server honours it; answered with a :class:`Response` without body.
- :class:`Sleep`: wait (backoff, Retry-After); answered with ``None``.

A transport failure (refused connection, reset, timeout) is a :class:`Response` with
``failure`` set to the exception's type name and status 0, never an exception: the flow
decides whether to retry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Download", "Request", "Response", "Send", "Sleep", "Step"]


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request to the clearinghouse (``path`` is relative to its base URL)."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Response:
    """What came back: status (0 on a transport failure), headers (lower-case), body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = field(default=b"", repr=False)
    failure: str | None = None

    @property
    def transient(self) -> bool:
        """A failure worth retrying: no answer, a 5xx, or 408/425."""
        return self.failure is not None or self.status >= 500 or self.status in (408, 425)

    def retry_after(self) -> float | None:
        """The ``Retry-After`` seconds, if the server gave a number."""
        value = self.headers.get("retry-after")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            return None
        return seconds if seconds >= 0 else None


@dataclass(frozen=True, slots=True)
class Send:
    """Requests to send, concurrently when there are several."""

    requests: tuple[Request, ...]


@dataclass(frozen=True, slots=True)
class Download:
    """Stream ``request``'s body into ``part``: appended when the answer is ``206`` and
    starts at ``offset``, written from the start on ``200``; at most ``limit`` bytes in
    the file (a longer body is cut, and fails verification)."""

    request: Request
    part: Path
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait this many seconds."""

    seconds: float


Step = Send | Download | Sleep
