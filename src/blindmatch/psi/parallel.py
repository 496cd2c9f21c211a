"""Spread large OPRF batches over cores (index builds, big server batches).

Two ways, measured on a 2-core machine:

- **Processes** (:func:`process_pool`, the one pool of the package): every worker runs the
  whole pipeline (hashing, SHA-512, Python glue) on its own core: about 1.9x on 2 cores for
  long jobs, but a worker costs an interpreter and an import of blindmatch to start, and
  arguments and results cross pipes. :func:`blindmatch.psi.index.build_index` runs on it;
  :class:`OprfPool` wraps it for ``evaluate_batch`` (benchmarks/bench_oprf.py measures
  process scaling with it).
- **Threads** (:class:`ThreadedEvaluator`): ctypes releases the GIL during each libsodium
  call, and a server's BlindEvaluate is nearly all libsodium (one scalar multiplication per
  element), so threads share one process's memory and start for free; the Python between
  calls still takes turns on the GIL: about 1.8x on 2 cores for BlindEvaluate of 4096
  elements, but only 1.3-1.5x for an index build, whose hashing and KDF are more Python.
  For a server answering batches of a few thousand elements, where a process pool's
  transfer would eat the gain, and for a platform's blind/finalize.

"Every core" means the cores this process may run on (:func:`available_cores`), for
processes and threads alike.

Evaluators. A session does its batch steps (Blind, BlindEvaluate, Finalize) through an
:class:`Evaluator`: :data:`SERIAL` (the default) runs them on the calling thread, a
:class:`ThreadedEvaluator` spreads them over threads. Both return the same values.

Worker processes and the main module. ``forkserver`` and ``spawn`` workers import the
caller's main module again before they run anything. That fails when it cannot be imported
(a program read from standard input) and misbehaves when its top level starts the work
itself (a script without an ``if __name__ == "__main__":`` guard: every worker would start
the build again). :func:`process_pool` returns ``None`` in the first case, and a worker that
finds itself starting a build while it imports the main module exits at once, quietly; the
caller then runs in one process with one warning instead of failing.

Secrets: each task carries the 32-byte secret scalar to the worker through the pool's pipe
(in memory, never a file). Scalars themselves refuse to be pickled; the pool sends the raw
bytes on purpose and rebuilds the ``Scalar`` in the worker.

Results are identical to the serial functions and in input order: the work is deterministic
and the chunks are reassembled in order (``tests/test_oprf.py`` checks it).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Final, Protocol, Self, TypeVar, final, runtime_checkable

from blindmatch import errors
from blindmatch.psi.group import Element, Scalar
from blindmatch.psi.oprf import (
    Mode,
    blind_batch,
    blind_evaluate_batch,
    evaluate_batch,
    finalize_batch,
)

__all__ = [
    "Closing",
    "DEFAULT_CHUNK",
    "Evaluator",
    "OprfPool",
    "SERIAL",
    "SerialEvaluator",
    "ThreadedEvaluator",
    "available_cores",
    "process_pool",
    "warn_one_process",
    "worker_error",
]

#: Elements per task: large enough that pickling and scheduling (~tens of microseconds per
#: task) vanish against ~100 microseconds of group work per element.
DEFAULT_CHUNK: Final = 2048

_R = TypeVar("_R")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it), >= 1.

    ``os.cpu_count()`` counts the machine's cores, which a container or ``taskset`` may
    not grant: starting more workers than granted cores only adds start-up and switching.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


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


def warn_one_process(reason: str, stacklevel: int) -> None:
    """The one warning of a build that runs in one process because workers could not."""
    warnings.warn(
        f"blindmatch: {reason}; running in one process", RuntimeWarning, stacklevel=stacklevel + 1
    )


def _main_importable() -> bool:
    """Whether worker processes can import the main module again (see the module docstring).

    A main module run by path must still be a file there: ``python - < file`` names it
    ``<stdin>``, which a worker cannot read. A module run with ``-m`` is imported by name,
    and an interactive session or ``-c`` has no path, so workers skip it.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return True
    path = getattr(main, "__file__", None)
    return path is None or os.path.isfile(path)


def _starting_inside_a_worker() -> bool:
    """Whether this process is a worker still importing its parent's main module.

    ``multiprocessing`` marks a starting child ``_inheriting`` until its preparation (the
    import of the main module) is done, and refuses to start processes meanwhile; it is the
    flag that refusal reads (``multiprocessing.spawn._check_not_importing_main``).
    """
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def process_pool(workers: int, *, preload: str) -> ProcessPoolExecutor | None:
    """The package's process pool: ``workers`` processes, or ``None`` when they cannot run.

    Where available, a fork server with ``preload`` (a module name) imported: workers start
    as cheap forks of a clean single-threaded server that already imported numpy and
    blindmatch (never of the caller, whose threads and state a plain fork would copy); else
    spawn. Both need only what spawn needs: an importable worker and picklable arguments.

    Returns:
        The pool (the caller shuts it down), or ``None`` when worker processes cannot
        import the main module (the caller runs in one process and warns).

    Raises:
        SystemExit: in a worker process that is importing its parent's main script, which
            starts this work again at its top level (no main guard): that worker ends there,
            quietly, and its parent falls back to one process.
    """
    if _starting_inside_a_worker():
        raise SystemExit(1)
    if not _main_importable():
        return None
    context: multiprocessing.context.BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload([preload])
        context = forkserver
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_end_with_parent,
        initargs=(os.getpid(),),
    )


def _end_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the process that made the pool is gone.

    A pool's workers wait for their next task on a pipe whose write end they hold
    themselves, so a parent killed without shutting the pool down (``kill -9``, a publisher
    ended by its server) left them, their fork server and its resource tracker running
    forever. A daemon thread waits on a pidfd of the parent (no polling, no pid reuse) and
    exits the worker when it closes.
    """
    import select
    import threading

    try:
        handle = os.pidfd_open(parent)
    except ProcessLookupError:
        os._exit(0)  # the parent is already gone
    except (AttributeError, OSError):
        return  # no pidfd (not Linux >= 5.3): as before

    def wait() -> None:
        select.select([handle], [], [])
        os._exit(0)

    threading.Thread(target=wait, name="blindmatch-parent-watch", daemon=True).start()


def _evaluate_chunk(sk: bytes, mode: int, info: bytes, inputs: list[bytes]) -> list[bytes]:
    return evaluate_batch(Scalar.from_bytes(sk), inputs, Mode(mode), info=info)


def _ready(_: int) -> bool:
    return True


def _processes(processes: int | None, what: str = "processes") -> int:
    if processes is None:
        return available_cores()
    if type(processes) is not int or processes < 1:
        raise errors.InvalidArgument(f"{what} must be a positive int")
    return processes


@runtime_checkable
class Evaluator(Protocol):
    """The batch steps a session delegates: RFC 9497 Blind, BlindEvaluate and Finalize.

    Implementations return exactly what the serial functions of :mod:`blindmatch.psi.oprf`
    return, in order: :data:`SERIAL` is those functions, :class:`ThreadedEvaluator` spreads
    them over threads.
    """

    def blind_batch(
        self, inputs: Sequence[bytes], mode: Mode, *, blinds: Sequence[Scalar]
    ) -> list[Element]:
        """The blinded elements of ``inputs`` under the given blinds (one per input)."""
        ...

    def blind_evaluate_batch(
        self, sk: Scalar, blinded: Sequence[Element], mode: Mode, *, info: bytes = b""
    ) -> list[Element]:
        """The server's BlindEvaluate of every element."""
        ...

    def finalize_batch(
        self,
        inputs: Sequence[bytes],
        blinds: Sequence[Scalar],
        evaluated: Sequence[Element],
        mode: Mode,
        *,
        info: bytes = b"",
    ) -> list[bytes]:
        """The client's Finalize of every input."""
        ...


@final
class SerialEvaluator:
    """The default :class:`Evaluator`: the serial functions, on the calling thread."""

    __slots__ = ()

    def blind_batch(
        self, inputs: Sequence[bytes], mode: Mode, *, blinds: Sequence[Scalar]
    ) -> list[Element]:
        """:func:`blindmatch.psi.oprf.blind_batch` with the given blinds (elements only)."""
        if len(blinds) != len(inputs):
            raise errors.InvalidArgument("one blind per input")
        return blind_batch(inputs, mode, blinds=blinds)[1]

    def blind_evaluate_batch(
        self, sk: Scalar, blinded: Sequence[Element], mode: Mode, *, info: bytes = b""
    ) -> list[Element]:
        """:func:`blindmatch.psi.oprf.blind_evaluate_batch`."""
        return blind_evaluate_batch(sk, blinded, mode, info=info)

    def finalize_batch(
        self,
        inputs: Sequence[bytes],
        blinds: Sequence[Scalar],
        evaluated: Sequence[Element],
        mode: Mode,
        *,
        info: bytes = b"",
    ) -> list[bytes]:
        """:func:`blindmatch.psi.oprf.finalize_batch`."""
        return finalize_batch(inputs, blinds, evaluated, mode, info=info)


SERIAL: Final = SerialEvaluator()
"""The default evaluator of both sessions."""


class Closing:
    """The context-manager protocol of a resource with a :meth:`close`: ``with`` closes it
    on the way out (the pools here, :class:`blindmatch.psi.ray_build.RayBuild`)."""

    __slots__ = ()

    def close(self) -> None:
        """Release the resource (idempotent)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _Workers(Closing):
    """What :class:`OprfPool` and :class:`ThreadedEvaluator` share: an executor they own
    and :meth:`close`."""

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


@final
class OprfPool(_Workers):
    """A pool of worker processes for OPRF batches (:func:`process_pool`). Use as a context
    manager. Nothing in the package needs it; benchmarks/bench_oprf.py measures process
    scaling of ``evaluate_batch`` with it.

    Args:
        processes: worker count; all available cores when omitted.
        chunk: elements per task.

    Raises:
        errors.WorkerError: worker processes cannot import the main module.
    """

    def __init__(self, processes: int | None = None, *, chunk: int = DEFAULT_CHUNK) -> None:
        if type(chunk) is not int or chunk < 1:
            raise errors.InvalidArgument("chunk must be a positive int")
        self._processes = _processes(processes)
        self._chunk = chunk
        pool = process_pool(self._processes, preload=__name__)
        if pool is None:
            raise worker_error()
        self._executor = pool

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
        futures = [executor.submit(part, i, min(i + step, count)) for i in range(0, count, step)]
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
