"""Spread large OPRF batches over cores (index builds, big server batches).

Two ways, measured on this 2-core machine class:

- **Processes** (:class:`OprfPool`, :func:`evaluate_batch_parallel`,
  :func:`blind_evaluate_encoded_parallel`): every worker runs the whole pipeline (hashing,
  SHA-512, Python glue) on its own core: about 1.9x on 2 cores for long jobs, but a worker
  costs an interpreter and an import of blindmatch to start (about a second with
  ``spawn``), and arguments and results cross pipes. For index builds and other long jobs.
- **Threads** (:class:`ThreadedEvaluator`): ctypes releases the GIL during each libsodium
  call, and a server's BlindEvaluate is nearly all libsodium (one scalar multiplication per
  element), so threads share one process's memory and start for free; the Python between
  calls still takes turns on the GIL: about 1.8x on 2 cores for BlindEvaluate of 4096
  elements, but only 1.3-1.5x for an index build, whose hashing and KDF are more Python.
  For a server answering batches of a few thousand elements, where a process pool's
  transfer would eat the gain, and for a platform's blind/finalize.

Secrets: each task carries the 32-byte secret scalar to the worker through the pool's pipe
(in memory, never a file). Scalars themselves refuse to be pickled; the pool sends the raw
bytes on purpose and rebuilds the ``Scalar`` in the worker.

Results are identical to the serial functions and in input order: the work is deterministic
and the chunks are reassembled in order (``tests/test_oprf.py`` checks it).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Final, Self, TypeVar, final

from blindmatch import errors
from blindmatch.psi.group import ELEMENT_BYTES, Element, Scalar
from blindmatch.psi.oprf import (
    Mode,
    blind_batch,
    blind_evaluate_batch,
    blind_evaluate_encoded,
    evaluate_batch,
    finalize_batch,
)

__all__ = [
    "DEFAULT_CHUNK",
    "OprfPool",
    "ThreadedEvaluator",
    "blind_evaluate_encoded_parallel",
    "evaluate_batch_parallel",
    "worker_error",
]

#: Elements per task: large enough that pickling and scheduling (~tens of microseconds per
#: task) vanish against ~100 microseconds of group work per element.
DEFAULT_CHUNK: Final = 2048

_R = TypeVar("_R")


def worker_error() -> errors.WorkerError:
    """The error to raise when a pool's worker process died (``BrokenProcessPool``).

    The commonest cause in a script is work started at import time: ``spawn`` and
    ``forkserver`` workers import the main script again, so its top level runs in every
    worker, which may not start processes of its own.
    """
    return errors.WorkerError(
        "a worker process died before answering; if this runs from a script, start the "
        'work under `if __name__ == "__main__":` (workers re-import the main script), or '
        "use one process (processes=1)"
    )


def _evaluate_chunk(sk: bytes, mode: int, info: bytes, inputs: list[bytes]) -> list[bytes]:
    return evaluate_batch(Scalar.from_bytes(sk), inputs, Mode(mode), info=info)


def _blind_evaluate_chunk(sk: bytes, mode: int, info: bytes, blinded: bytes) -> bytes:
    return blind_evaluate_encoded(Scalar.from_bytes(sk), blinded, Mode(mode), info=info)


def _ready(_: int) -> bool:
    return True


def _processes(processes: int | None, what: str = "processes") -> int:
    if processes is None:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    if type(processes) is not int or processes < 1:
        raise errors.InvalidArgument(f"{what} must be a positive int")
    return processes


class _Workers:
    """What :class:`OprfPool` and :class:`ThreadedEvaluator` share: an executor they own,
    :meth:`close`, and the context-manager protocol."""

    _executor: Executor | None

    def _live(self) -> Executor:
        if self._executor is None:
            raise errors.LocalProtocolError(f"the {type(self).__name__} is closed")
        return self._executor

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@final
class OprfPool(_Workers):
    """A pool of worker processes for OPRF batches. Use as a context manager.

    Args:
        processes: worker count; all available cores when omitted.
        chunk: elements per task.
    """

    def __init__(self, processes: int | None = None, *, chunk: int = DEFAULT_CHUNK) -> None:
        if type(chunk) is not int or chunk < 1:
            raise errors.InvalidArgument("chunk must be a positive int")
        self._processes = _processes(processes)
        self._chunk = chunk
        self._executor = ProcessPoolExecutor(
            max_workers=self._processes, mp_context=multiprocessing.get_context("spawn")
        )

    @property
    def processes(self) -> int:
        """The number of worker processes."""
        return self._processes

    def warm_up(self) -> None:
        """Start every worker now rather than at the first batch (each costs ~1 s to spawn).

        One task per worker is submitted at once, so the executor spawns them all.
        """
        executor = self._live()
        try:
            list(executor.map(_ready, range(self._processes)))
        except BrokenProcessPool:
            raise worker_error() from None

    def evaluate_batch(
        self, sk: Scalar, inputs: Sequence[bytes], mode: Mode = Mode.OPRF, *, info: bytes = b""
    ) -> list[bytes]:
        """:func:`blindmatch.psi.oprf.evaluate_batch`, spread over the workers.

        Raises:
            as :func:`blindmatch.psi.oprf.evaluate_batch` (re-raised from the worker).
        """
        if not isinstance(sk, Scalar):
            raise TypeError("sk must be a Scalar")
        executor = self._live()
        step = self._chunk
        chunks = [list(inputs[i : i + step]) for i in range(0, len(inputs), step)]
        n = len(chunks)
        key = bytes(sk)
        results = executor.map(
            _evaluate_chunk, [key] * n, [int(Mode(mode))] * n, [info] * n, chunks
        )
        out: list[bytes] = []
        try:
            for part in results:
                out.extend(part)
        except BrokenProcessPool:
            raise worker_error() from None
        return out

    def blind_evaluate_encoded(
        self, sk: Scalar, blinded: bytes, mode: Mode = Mode.OPRF, *, info: bytes = b""
    ) -> bytes:
        """:func:`blindmatch.psi.oprf.blind_evaluate_encoded`, spread over the workers.

        Raises:
            as :func:`blindmatch.psi.oprf.blind_evaluate_encoded`; an invalid element's
            index is relative to its chunk.
        """
        if not isinstance(sk, Scalar):
            raise TypeError("sk must be a Scalar")
        if type(blinded) is not bytes:
            raise TypeError("blinded must be bytes")
        if len(blinded) % ELEMENT_BYTES:
            raise errors.InvalidEncoding("element batch length is not a multiple of 32")
        executor = self._live()
        step = self._chunk * ELEMENT_BYTES
        chunks = [blinded[i : i + step] for i in range(0, len(blinded), step)]
        n = len(chunks)
        key = bytes(sk)
        results = executor.map(
            _blind_evaluate_chunk, [key] * n, [int(Mode(mode))] * n, [info] * n, chunks
        )
        try:
            return b"".join(results)
        except BrokenProcessPool:
            raise worker_error() from None


@final
class ThreadedEvaluator(_Workers):
    """RFC 9497 batch steps over threads of this process: the server's BlindEvaluate and
    the client's Blind and Finalize.

    Batches of fewer than ``2 * min_chunk`` elements run on the calling thread; larger ones
    are cut into one contiguous part per thread. Results equal the serial functions of
    :mod:`blindmatch.psi.oprf` in order (a client part inverts its blinds with one
    inversion of its own). Safe to share between sessions served on different threads
    (the executor queues their parts). Use as a context manager, or :meth:`close` it.

    Args:
        threads: worker threads; all available cores when omitted.
        min_chunk: the smallest part worth a thread hand-off.

    Raises:
        errors.InvalidArgument: ``threads`` or ``min_chunk`` is not a positive int.
    """

    def __init__(self, threads: int | None = None, *, min_chunk: int = 256) -> None:
        if type(min_chunk) is not int or min_chunk < 1:
            raise errors.InvalidArgument("min_chunk must be a positive int")
        self._threads = _processes(threads, "threads")
        self._min_chunk = min_chunk
        self._executor = ThreadPoolExecutor(
            max_workers=self._threads, thread_name_prefix="blindmatch-oprf"
        )

    @property
    def threads(self) -> int:
        """The number of worker threads."""
        return self._threads

    def _split(self, count: int, part: Callable[[int, int], list[_R]]) -> list[_R]:
        """``part(start, end)`` over one contiguous range per thread, concatenated."""
        executor = self._live()
        parts = min(self._threads, count // self._min_chunk)
        if parts < 2:
            return part(0, count)
        step = -(-count // parts)
        futures = [
            executor.submit(part, i, min(i + step, count)) for i in range(0, count, step)
        ]
        out: list[_R] = []
        for future in futures:
            out.extend(future.result())
        return out

    def blind_evaluate_batch(
        self,
        sk: Scalar,
        blinded: Sequence[Element],
        mode: Mode = Mode.OPRF,
        *,
        info: bytes = b"",
    ) -> list[Element]:
        """:func:`blindmatch.psi.oprf.blind_evaluate_batch`, spread over the threads.

        Raises:
            errors.LocalProtocolError: the evaluator is closed.
            as :func:`blindmatch.psi.oprf.blind_evaluate_batch`.
        """
        return self._split(
            len(blinded), lambda i, j: blind_evaluate_batch(sk, blinded[i:j], mode, info=info)
        )

    def blind_batch(
        self, inputs: Sequence[bytes], mode: Mode = Mode.OPRF, *, blinds: Sequence[Scalar]
    ) -> list[Element]:
        """The blinded elements of :func:`blindmatch.psi.oprf.blind_batch` with the given
        blinds (one per input; a platform repeats an upload's blind over its bands).

        Raises:
            errors.LocalProtocolError: the evaluator is closed.
            errors.InvalidArgument: ``blinds`` and ``inputs`` differ in length.
            as :func:`blindmatch.psi.oprf.blind_batch`.
        """
        if len(blinds) != len(inputs):
            raise errors.InvalidArgument("one blind per input")
        return self._split(
            len(inputs), lambda i, j: blind_batch(inputs[i:j], mode, blinds=blinds[i:j])[1]
        )

    def finalize_batch(
        self,
        inputs: Sequence[bytes],
        blinds: Sequence[Scalar],
        evaluated: Sequence[Element],
        mode: Mode = Mode.OPRF,
        *,
        info: bytes = b"",
    ) -> list[bytes]:
        """:func:`blindmatch.psi.oprf.finalize_batch`, spread over the threads.

        Raises:
            errors.LocalProtocolError: the evaluator is closed.
            errors.InvalidArgument: the sequences differ in length.
            as :func:`blindmatch.psi.oprf.finalize_batch`.
        """
        if not len(inputs) == len(blinds) == len(evaluated):
            raise errors.InvalidArgument("inputs, blinds and evaluated elements differ in number")
        return self._split(
            len(inputs),
            lambda i, j: finalize_batch(inputs[i:j], blinds[i:j], evaluated[i:j], mode, info=info),
        )


def evaluate_batch_parallel(
    sk: Scalar,
    inputs: Sequence[bytes],
    mode: Mode = Mode.OPRF,
    *,
    info: bytes = b"",
    processes: int | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> list[bytes]:
    """:func:`blindmatch.psi.oprf.evaluate_batch` over ``processes`` worker processes.

    Runs in this process when one process is asked for or the batch fits in one chunk.

    Raises:
        as :func:`blindmatch.psi.oprf.evaluate_batch`.
    """
    count = _processes(processes)
    if count == 1 or len(inputs) <= chunk:
        return evaluate_batch(sk, inputs, mode, info=info)
    with OprfPool(count, chunk=chunk) as pool:
        return pool.evaluate_batch(sk, inputs, mode, info=info)


def blind_evaluate_encoded_parallel(
    sk: Scalar,
    blinded: bytes,
    mode: Mode = Mode.OPRF,
    *,
    info: bytes = b"",
    processes: int | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> bytes:
    """:func:`blindmatch.psi.oprf.blind_evaluate_encoded` over worker processes.

    Raises:
        as :func:`blindmatch.psi.oprf.blind_evaluate_encoded`.
    """
    count = _processes(processes)
    if count == 1 or len(blinded) <= chunk * ELEMENT_BYTES:
        return blind_evaluate_encoded(sk, blinded, mode, info=info)
    with OprfPool(count, chunk=chunk) as pool:
        return pool.blind_evaluate_encoded(sk, blinded, mode, info=info)
