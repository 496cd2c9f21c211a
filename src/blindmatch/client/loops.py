"""The two loops that carry out a flow's steps: httpx sync (threads) and httpx async.

Each is a few dozen lines and makes no decision: :mod:`blindmatch.client.steps` says why.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, TypeVar

import httpx

from blindmatch.client.steps import Download, Request, Response, Send, Sleep, Step

__all__ = ["run_async", "run_sync"]

T = TypeVar("T")
Flow = Generator[Step, Any, T]

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_CHUNK = 1 << 20


def _response(answer: httpx.Response, content: bytes = b"") -> Response:
    headers = {k.lower(): v for k, v in answer.headers.items()}
    return Response(answer.status_code, headers, content)


def _failed(exc: Exception) -> Response:
    return Response(0, {}, b"", type(exc).__name__)


def _appends(answer: httpx.Response, offset: int) -> bool | None:
    """True: append at ``offset``; False: write from the start; None: keep no body."""
    if answer.status_code == 200:
        return False
    if answer.status_code == 206 and offset > 0:
        found = _CONTENT_RANGE.match(answer.headers.get("content-range", ""))
        return bool(found and int(found.group(1)) == offset) or None
    return None


class _Sink:
    """The partial file being written, bounded by the step's limit."""

    def __init__(self, step: Download, append: bool) -> None:
        self.step = step
        self.file: IO[bytes] = open(step.part, "ab" if append else "wb")  # noqa: SIM115
        self.size = step.offset if append else 0

    def write(self, chunk: bytes) -> bool:
        room = self.step.limit + 1 - self.size
        if room <= 0:
            return False
        self.file.write(chunk[:room])
        self.size += min(len(chunk), room)
        return True

    def close(self) -> None:
        self.file.close()


def run_sync(flow: Flow[T], http: httpx.Client, pool: ThreadPoolExecutor) -> T:
    """Run ``flow`` to its end with ``http``; concurrent requests on ``pool``'s threads."""

    def one(request: Request) -> Response:
        try:
            answer = http.request(
                request.method, request.path, headers=dict(request.headers), content=request.content
            )
        except httpx.TransportError as exc:
            return _failed(exc)
        return _response(answer, answer.content)

    def download(step: Download) -> Response:
        request = step.request
        try:
            with http.stream(request.method, request.path, headers=dict(request.headers)) as ans:
                append = _appends(ans, step.offset)
                if append is None:
                    return _response(ans, ans.read())
                sink = _Sink(step, append)
                try:
                    for chunk in ans.iter_bytes(_CHUNK):
                        if not sink.write(chunk):
                            break
                finally:
                    sink.close()
                return _response(ans)
        except httpx.TransportError as exc:
            return _failed(exc)

    value: Any = None
    while True:
        try:
            step = flow.send(value)
        except StopIteration as stop:
            result: T = stop.value
            return result
        if isinstance(step, Send):
            if len(step.requests) == 1:
                value = (one(step.requests[0]),)
            else:
                value = tuple(pool.map(one, step.requests))
        elif isinstance(step, Download):
            value = download(step)
        elif isinstance(step, Sleep):
            time.sleep(step.seconds)
            value = None
        else:  # pragma: no cover - the flows yield nothing else
            raise TypeError("unknown step")


async def run_async(flow: Flow[T], http: httpx.AsyncClient) -> T:
    """Run ``flow`` to its end with ``http``; concurrent requests as asyncio tasks."""

    async def one(request: Request) -> Response:
        try:
            answer = await http.request(
                request.method, request.path, headers=dict(request.headers), content=request.content
            )
        except httpx.TransportError as exc:
            return _failed(exc)
        return _response(answer, answer.content)

    async def download(step: Download) -> Response:
        request = step.request
        try:
            async with http.stream(
                request.method, request.path, headers=dict(request.headers)
            ) as ans:
                append = _appends(ans, step.offset)
                if append is None:
                    return _response(ans, await ans.aread())
                sink = _Sink(step, append)
                try:
                    async for chunk in ans.aiter_bytes(_CHUNK):
                        if not sink.write(chunk):
                            break
                finally:
                    sink.close()
                return _response(ans)
        except httpx.TransportError as exc:
            return _failed(exc)

    value: Any = None
    while True:
        try:
            step = flow.send(value)
        except StopIteration as stop:
            result: T = stop.value
            return result
        if isinstance(step, Send):
            value = tuple(await asyncio.gather(*(one(r) for r in step.requests)))
        elif isinstance(step, Download):
            value = await download(step)
        elif isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            value = None
        else:  # pragma: no cover - the flows yield nothing else
            raise TypeError("unknown step")
