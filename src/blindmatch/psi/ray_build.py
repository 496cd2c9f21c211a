"""Index builds on a Ray cluster: :func:`~blindmatch.psi.index.build_index` with
``evaluator=RayBuild(address)`` (needs the ``ray`` extra: ``pip install 'blindmatch[ray]'``).

Theory of operation
-------------------
A build has two halves (:mod:`blindmatch.psi._index_build`): the PRF work, ``N * L``
OPRF evaluations turned into tags and pads, which is deterministic given the key; and
everything random (the Shamir lines, the report handles, the group handles), which is
cheap. Only the first half goes to Ray: the building process cuts the band inputs into
chunks of whole references (:class:`~blindmatch.psi.index.EntryChunk`), each chunk is one
Ray task running :func:`~blindmatch.psi._index_build.evaluate_chunk`, and the randomness
is drawn in the building process, from the caller's random source, while the first tasks
run. So a Ray build is byte-identical to a local build with the same key and random
source, whichever worker ran which chunk, in whatever order, however often.

A compact exact build (:func:`~blindmatch.psi.compact.build_compact_index` with
``evaluator=``) sends the same tasks with ``tag_bytes``
:data:`~blindmatch.psi._index_build.RAW_OUTPUTS`: they answer the 64-byte OPRF outputs
(its filter keys and handles derive from them; 256 KiB for 4096 entries, so through the
object store), and the shard split and Ribbon solve run in the building process. A
compact build draws nothing random.

Bounded memory: at most ``in_flight`` tasks are submitted at once (by default twice the
cluster's CPUs); the building process pulls the next chunk from a lazy generator only
when ``ray.wait`` hands back a finished one, so it holds the chunks in flight plus the
``(N, L)`` tag and pad arrays (16 bytes per entry, as a local build does), never all the
band inputs. A chunk's answer (16 bytes per entry, 64 KiB for the default 4096 entries)
stays under Ray's inline limit, so it travels back to the driver in the task's reply
rather than through the object store.

Failures: each task has Ray's ``max_retries`` (a worker process or node that dies is
retried by Ray itself); on top of that, an answer that is an error or has the wrong
length is resubmitted here, up to ``attempts`` times per chunk, and the build checks
again that every row was stored exactly once (:class:`~blindmatch.psi.index.ChunkEvaluator`).
A chunk that still fails ends the build with :class:`~blindmatch.errors.WorkerError`
(no partial index).

Hangs: a task that neither answers nor dies (a wedged node, a worker stuck in a system
call) would hold the build forever, since Ray retries only tasks whose worker died. With
``task_timeout`` a task still unanswered that many seconds after its submission is
cancelled with ``force=True`` (Ray kills the worker running it; a cancelled task is not
retried by Ray) and resubmitted here like a failed one, within the same ``attempts``.
The clock starts at submission, so it includes the time a task waits for a CPU: at most
``in_flight`` tasks are submitted, by default twice the cluster's CPUs, so on a cluster
that runs only this build a task waits for about one other chunk (~0.3 s at the default
chunk); a timeout is meant to be minutes, not a tight bound on a chunk's run.

Key material: the 32-byte secret key scalar is an argument of every task (inline in the
task's specification, never in the object store), and each task carries its references'
band inputs (above Ray's 100 KiB inline limit at the default chunk, so those do pass
through the object store). A Ray cluster operator can therefore evaluate the PRF on
anything and sees the reported hashes; docs/deployment.md "Index builds on Ray" says
exactly what each party sees. Run the cluster inside the clearinghouse's trust boundary.

``ray`` is imported only when a :class:`RayBuild` first evaluates, never on import of
this module, so the rest of the package needs no Ray.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from blindmatch.errors import BackendUnavailable, InvalidParameter, WorkerError
from blindmatch.psi._index_build import EntryChunk, answer_sizes, evaluate_chunk
from blindmatch.psi.group import Scalar
from blindmatch.psi.parallel import Closing

__all__ = ["LOCAL", "RayBuild"]

LOCAL: Final = "local"
"""The address that starts a Ray instance on this machine (``ray.init()``)."""

_MISSING = "Ray builds need the 'ray' extra: pip install 'blindmatch[ray]'"
_DEFAULT_CHUNK: Final = 4096
log = logging.getLogger("blindmatch.psi.ray_build")

ChunkTask = Callable[[bytes, bytes, int, int], tuple[bytes, bytes]]


def _import_ray() -> Any:
    """``ray``, imported without its side effect on this process: importing Ray replaces
    ``sys.excepthook`` with one that sends the driver's uncaught tracebacks to the
    cluster's GCS; the process keeps its own hook."""
    hook = sys.excepthook
    try:
        import ray
    except ImportError:
        raise BackendUnavailable(_MISSING) from None
    finally:
        sys.excepthook = hook
    return ray


class RayBuild(Closing):
    """A :class:`~blindmatch.psi.index.ChunkEvaluator` that runs a build's PRF work as Ray
    tasks. Use as a context manager (or :meth:`close` it) when it may start Ray itself.

    Args:
        address: ``"local"`` starts Ray on this machine (``ray.init()``) unless this
            process is connected already; anything else is handed to
            ``ray.init(address=...)``: ``"auto"``, ``"HOST:PORT"`` of a cluster's head, or
            ``"ray://HOST:10001"`` (Ray Client). Every node needs this version of
            blindmatch installed (its workers import :mod:`blindmatch.psi`).
        chunk_entries: band inputs per task (whole references: a PDQ reference at
            L = 384 is 384 inputs); each task costs ~65 microseconds per input.
        in_flight: tasks submitted at once; default twice the cluster's CPUs.
        attempts: submissions of one chunk before the build fails (each also has Ray's
            own ``max_retries``).
        max_retries: Ray's retries of a task whose worker died.
        num_cpus: CPUs of a local Ray instance this starts (``None``: all).
        task_timeout: seconds after its submission that a task still unanswered is
            cancelled (its worker killed) and resubmitted, as one of its ``attempts``;
            ``None`` waits for ever (Ray still retries a task whose worker dies).

    Raises:
        InvalidParameter: a count that is not a positive int, an empty address, a
            timeout that is not a positive finite number.
    """

    def __init__(
        self,
        address: str = LOCAL,
        *,
        chunk_entries: int = _DEFAULT_CHUNK,
        in_flight: int | None = None,
        attempts: int = 3,
        max_retries: int = 3,
        num_cpus: int | None = None,
        task_timeout: float | None = None,
    ) -> None:
        if not isinstance(address, str) or not address:
            raise InvalidParameter("a Ray address is a non-empty string")
        for name, value in (
            ("chunk_entries", chunk_entries),
            ("attempts", attempts),
            ("in_flight", 1 if in_flight is None else in_flight),
            ("num_cpus", 1 if num_cpus is None else num_cpus),
        ):
            if type(value) is not int or value < 1:
                raise InvalidParameter(f"{name} must be a positive int")
        if type(max_retries) is not int or max_retries < 0:
            raise InvalidParameter("max_retries must be a non-negative int")
        if task_timeout is not None and (
            type(task_timeout) not in (int, float)
            or not math.isfinite(task_timeout)
            or task_timeout <= 0
        ):
            raise InvalidParameter("task_timeout must be a positive number of seconds or None")
        self._address = address
        self._chunk_entries = chunk_entries
        self._in_flight = in_flight
        self._attempts = attempts
        self._max_retries = max_retries
        self._num_cpus = num_cpus
        self._task_timeout = None if task_timeout is None else float(task_timeout)
        self._started = False
        self._remote: Any = None

    def __repr__(self) -> str:
        return f"RayBuild(address={self._address!r}, chunk_entries={self._chunk_entries})"

    @property
    def address(self) -> str:
        """The Ray address this evaluator connects to."""
        return self._address

    @property
    def chunk_entries(self) -> int:
        """Band inputs per task."""
        return self._chunk_entries

    @property
    def task_timeout(self) -> float | None:
        """Seconds a task may stay unanswered before it is cancelled and resubmitted."""
        return self._task_timeout

    def _task(self) -> ChunkTask:
        """The function each task runs (a test subclass wraps it to inject faults)."""
        return evaluate_chunk

    def _connect(self) -> Any:
        ray = _import_ray()
        if not ray.is_initialized():
            if self._address == LOCAL:
                ray.init(
                    address="local",  # a new instance, never one found on the machine
                    num_cpus=self._num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            else:
                ray.init(address=self._address, log_to_driver=False, configure_logging=False)
            self._started = True
        if self._remote is None:
            self._remote = ray.remote(max_retries=self._max_retries, retry_exceptions=False)(
                self._task()
            )
        return ray

    def _window(self, ray: Any) -> int:
        if self._in_flight is not None:
            return self._in_flight
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return max(2, 2 * cpus)

    def evaluate_chunks(
        self,
        secret_key: Scalar,
        chunks: Iterator[EntryChunk],
        tag_bytes: int,
        meanwhile: Callable[[], None],
    ) -> Iterator[tuple[EntryChunk, bytes, bytes]]:
        """Yield ``(chunk, tags, pads)`` as tasks finish (any order), at most
        ``in_flight`` tasks at once; ``meanwhile()`` runs once the first are submitted.

        Raises:
            BackendUnavailable: the ``ray`` extra is not installed.
            WorkerError: a chunk failed (or timed out) ``attempts`` times.
        """
        if not isinstance(secret_key, Scalar):
            raise TypeError("secret_key must be a Scalar")
        ray = self._connect()
        remote = self._remote
        window = self._window(ray)
        key = bytes(secret_key)
        timeout = self._task_timeout
        # ObjectRef -> (chunk, submissions so far, deadline); chunks are kept until answered.
        pending: dict[Any, tuple[EntryChunk, int, float]] = {}

        def submit(chunk: EntryChunk, attempt: int) -> None:
            ref = remote.remote(key, chunk.joined, chunk.width, tag_bytes)
            deadline = math.inf if timeout is None else time.monotonic() + timeout
            pending[ref] = (chunk, attempt, deadline)

        def retry(chunk: EntryChunk, attempt: int, reason: str) -> None:
            if attempt >= self._attempts:
                raise WorkerError(
                    f"a Ray task of the index build failed {attempt} times (the last: {reason})"
                )
            log.warning("a Ray task of the index build failed (%s); resubmitting it", reason)
            submit(chunk, attempt + 1)

        def refill() -> None:
            while len(pending) < window:
                chunk = next(chunks, None)
                if chunk is None:
                    return
                submit(chunk, 1)

        try:
            refill()
            meanwhile()
            while pending:
                wait: float | None = None
                if timeout is not None:
                    first = min(deadline for _, _, deadline in pending.values())
                    wait = max(0.0, first - time.monotonic())
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=wait)
                for ref in ready:
                    chunk, attempt, _ = pending.pop(ref)
                    answer = self._answer(ray, ref, chunk, tag_bytes)
                    if answer is None:
                        retry(chunk, attempt, "an error or a wrong answer")
                        continue
                    yield chunk, answer[0], answer[1]
                if timeout is not None:
                    now = time.monotonic()
                    for ref in [r for r, (_, _, deadline) in pending.items() if deadline <= now]:
                        chunk, attempt, _ = pending.pop(ref)
                        # force: a hung task ignores the KeyboardInterrupt of a plain cancel;
                        # Ray kills its worker instead, and does not retry it itself.
                        with contextlib.suppress(Exception):
                            ray.cancel(ref, force=True)
                        retry(chunk, attempt, f"no answer within {timeout:g} s")
                refill()
        finally:
            # A build that stops early (an error here or in the caller) cancels what is in
            # flight; a cancel that fails (Ray already gone) must not hide the first error.
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=False)
            pending.clear()

    @staticmethod
    def _answer(
        ray: Any, ref: Any, chunk: EntryChunk, tag_bytes: int
    ) -> tuple[bytes, bytes] | None:
        """The chunk's tags and pads (or outputs), or ``None`` when the task failed or
        answered something that is not two byte strings of the lengths
        :func:`~blindmatch.psi._index_build.answer_sizes` says."""
        try:
            answer = ray.get(ref)
        except ray.exceptions.RayError as exc:
            # The type only: a task's error text may quote its arguments.
            log.warning("a Ray task failed: %s", type(exc).__name__)
            return None
        expected = answer_sizes(chunk.entries, tag_bytes)
        if (
            not isinstance(answer, tuple)
            or len(answer) != 2
            or not all(isinstance(part, bytes) for part in answer)
            or (len(answer[0]), len(answer[1])) != expected
        ):
            return None
        return answer[0], answer[1]

    def close(self) -> None:
        """Disconnect from Ray (and stop a local instance) if this evaluator started it."""
        if self._started:
            _import_ray().shutdown()
            self._started = False
        self._remote = None
