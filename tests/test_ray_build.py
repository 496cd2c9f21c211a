"""Index builds on Ray (issue 13): byte-identical to the local build, retried when a worker
dies or answers wrong, and used by ``blindmatch serve --ray-address``.

Runs on a real local Ray instance (``ray.init(num_cpus=2)``, once for the module) and a
real ``blindmatch serve`` whose publisher starts its own. The service test runs first so
the two instances are never up at once (module fixtures start at their first use).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from blindmatch.errors import WorkerError
from blindmatch.fingerprint import default_registry
from blindmatch.protocols.signals import signal_banding
from blindmatch.psi import _index_file, oprf
from blindmatch.psi.bands import Banding, exact_banding, pdq_banding
from blindmatch.psi.index import (
    BuiltIndex,
    CompactIndex,
    EntryChunk,
    Reference,
    add_compact_references,
    add_references,
    build_compact_index,
    build_index,
    build_index_file,
)
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.ray_build import RayBuild
from index_tools import InProcessChunks
from service_support import published_references, start_server, wait_published

KEY = SecretKey.derive(bytes(range(32)), b"test_ray_build", mode=oprf.Mode.VOPRF, epoch=2)
MD5 = exact_banding("md5", 128)
PDQ = pdq_banding(384)
VPDQ = signal_banding(default_registry().get("vpdq"))

ChunkTask = Callable[[bytes, bytes, int, int], tuple[bytes, bytes]]


def _source(seed: int) -> Callable[[int], bytes]:
    """A deterministic stand-in for ``secrets.token_bytes`` (a fresh one per build)."""
    return random.Random(seed).randbytes


def _md5_refs(count: int) -> list[Reference]:
    return [
        Reference(f"r{i}", "md5", hashlib.md5(b"%d" % i, usedforsecurity=False).digest())
        for i in range(count)
    ]


def _pdq_refs(count: int, signal: str = "pdq", reports: int | None = None) -> list[Reference]:
    rng = random.Random(count)
    per = reports or count
    return [Reference(f"v{i % per}", signal, rng.randbytes(32)) for i in range(count)]


def _same(local: BuiltIndex, remote: BuiltIndex) -> None:
    assert remote.data == local.data
    assert remote.handles == local.handles


# --- the service: first, before the module's Ray instance starts ------------------------


def test_serve_with_ray_address_publishes_an_index_a_platform_matches(tmp_path: Path) -> None:
    from blindmatch.client import ClientOptions, PlatformClient
    from blindmatch.protocols import Upload

    pdq = bytes.fromhex("f" * 16 + "0" * 16 + "a5" * 8 + "3c" * 8)
    near = (int.from_bytes(pdq, "big") ^ ((1 << 10) - 1)).to_bytes(32, "big")
    md5 = hashlib.md5(b"a reported file", usedforsecurity=False).digest()
    server = start_server(
        tmp_path / "data",
        "",
        limits={"intake_per_hour": "100"},
        # md5 compact: its OPRF goes to Ray as outputs chunks, pdq's as tags and pads.
        args=("--ray-address", "local", "--no-page", "--exact-index", "compact"),
    )
    try:
        with server.client() as http:
            made = http.post(
                "/v1/reports",
                json={
                    "content_kind": "image",
                    "age_attestation": "minor",
                    "fingerprints": [
                        {"signal": "md5", "hash": md5.hex()},
                        {"signal": "pdq", "hash": pdq.hex(), "quality": 90},
                    ],
                },
            )
            assert made.status_code == 201, made.text
            published = wait_published(
                http,
                lambda m: published_references(m, "pdq") == published_references(m, "md5") == 1,
                timeout=120,
            )
            indexes = published["indexes"]
            assert isinstance(indexes, dict)
            assert indexes["md5"]["format_version"] == 3
            publication_key = http.get("/v1/keys").json()["publication_key"]
        out = server.admin("platform", "create", "acme")
        api_key = json.loads(out.stdout)["api_key"]
        with PlatformClient(
            server.url,
            api_key=api_key,
            publication_key=publication_key,
            cache_dir=tmp_path / "cache",
            options=ClientOptions(backoff=0.05, max_backoff=0.2, max_retry_after=5.0),
        ) as client:
            found = client.match(
                [
                    Upload("near", "pdq", near, 80),
                    Upload("exact", "md5", md5),
                    Upload("other", "md5", bytes(16)),
                ]
            )
        assert sorted(m.upload.ref for m in found.matches) == ["exact", "near"]
        assert found.stats.canaries_matched >= 1
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "index builds run on Ray" in log
    assert "publication failed" not in log


def test_a_ray_build_leaves_the_process_excepthook_alone() -> None:
    """Importing Ray would install a hook that sends the driver's tracebacks to the
    cluster; a Ray build keeps the process's (this is the module's first import of ray, and
    the evaluator starts and stops its own local instance, before the module's starts)."""
    hook = sys.excepthook
    with RayBuild(num_cpus=1) as evaluator:
        built = build_index(KEY, MD5, _md5_refs(3), evaluator=evaluator)
    assert built.header.entry_count == 7
    assert sys.excepthook is hook


# --- builds on the module's Ray instance ---------------------------------------------------


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # Importing ray replaces sys.excepthook (other tests use the interpreter's): import it
    # here, not at collection, and put the hook back.
    hook = sys.excepthook
    import ray  # the ray extra: locked with every extra, so CI has it

    sys.excepthook = hook
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        sys.excepthook = hook


@pytest.mark.usefixtures("local_ray")
@pytest.mark.parametrize(
    ("banding", "references", "grouped"),
    [
        pytest.param(MD5, _md5_refs(300), False, id="exact-md5"),
        pytest.param(PDQ, _pdq_refs(12), False, id="pdq-384"),
        pytest.param(VPDQ, _pdq_refs(10, "vpdq", reports=3), True, id="vpdq-grouped"),
    ],
)
def test_a_ray_build_is_byte_identical_to_the_local_build(
    banding: Banding, references: list[Reference], grouped: bool
) -> None:
    # Small chunks: many tasks, finishing in any order, some while the lines are drawn.
    evaluator = RayBuild(chunk_entries=1024 if banding.count > 1 else 64, in_flight=3)
    local = build_index(
        KEY, banding, references, processes=1, random_bytes=_source(7), grouped=grouped
    )
    remote = build_index(
        KEY, banding, references, random_bytes=_source(7), grouped=grouped, evaluator=evaluator
    )
    _same(local, remote)
    # A different random source changes the file: the equality above is not vacuous.
    other = build_index(
        KEY, banding, references, random_bytes=_source(8), grouped=grouped, evaluator=evaluator
    )
    assert other.data != local.data


@pytest.mark.usefixtures("local_ray")
def test_a_streaming_ray_build_writes_the_local_build_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # build_index_file on Ray: answers in any order, written in runs of a few rows.
    monkeypatch.setattr(_index_file, "_RUN_ENTRIES", 1000)
    references = _pdq_refs(10, "vpdq", reports=3)
    local = build_index(KEY, VPDQ, references, processes=1, random_bytes=_source(9), grouped=True)
    evaluator = RayBuild(chunk_entries=512, in_flight=3)
    written = build_index_file(
        tmp_path / "vpdq.idx",
        KEY,
        VPDQ,
        references,
        random_bytes=_source(9),
        grouped=True,
        evaluator=evaluator,
    )
    assert (tmp_path / "vpdq.idx").read_bytes() == local.data
    assert written.handles == local.handles


@pytest.mark.usefixtures("local_ray")
def test_a_ray_delta_is_byte_identical_to_the_local_delta() -> None:
    base = build_index(KEY, MD5, _md5_refs(20), processes=1, random_bytes=_source(1))
    new = _md5_refs(60)[20:]
    local = add_references(KEY, base.header, new, processes=1, random_bytes=_source(2))
    remote = add_references(
        KEY, base.header, new, random_bytes=_source(2), evaluator=RayBuild(chunk_entries=16)
    )
    _same(local, remote)


@pytest.mark.usefixtures("local_ray")
def test_a_ray_compact_build_and_delta_are_byte_identical_to_the_local_ones(
    tmp_path: Path,
) -> None:
    """The compact exact index's OPRF as Ray tasks (outputs, not tags and pads, come back):
    the filter solved on the driver is the one-process build's, full file and delta; a
    task that answers short once is resubmitted."""
    references, new = _md5_refs(400), _md5_refs(460)[400:]
    local = build_compact_index(KEY, MD5, references, shard_keys=128, processes=1)
    remote = build_compact_index(
        KEY, MD5, references, shard_keys=128, evaluator=RayBuild(chunk_entries=64, in_flight=3)
    )
    assert len(remote.header.shards) > 1
    assert remote.data == local.data
    assert remote.handles == local.handles
    marker = tmp_path / "truncated"
    evaluator = _FaultyBuild(_truncate_first_attempt(marker), chunk_entries=16)
    local_delta = add_compact_references(KEY, local.header, new, processes=1)
    remote_delta = add_compact_references(KEY, remote.header, new, evaluator=evaluator)
    assert marker.exists()
    assert remote_delta.data == local_delta.data
    hit = oprf.evaluate(KEY.scalar, MD5.band_inputs(new[0].hash)[0], oprf.Mode.VOPRF)
    assert CompactIndex.from_bytes(remote_delta.data).match_outputs([hit]) != [None]


@pytest.mark.usefixtures("local_ray")
def test_at_most_in_flight_chunks_are_taken_ahead_of_the_answers() -> None:
    """The driver pulls a chunk only when a task's answer came back: its memory holds
    ``in_flight`` chunks, not the build's band inputs."""
    from blindmatch.psi._index_build import evaluate_chunk

    width, rows = 45, 40
    rng = random.Random(5)
    joined = [rng.randbytes(width * 16) for _ in range(rows)]
    pulled = 0

    def chunks() -> Iterator[EntryChunk]:
        nonlocal pulled
        for i, data in enumerate(joined):
            pulled += 1
            yield EntryChunk(i, 1, data, width)

    answered, ahead, ran = 0, [], []
    evaluator = RayBuild(chunk_entries=16, in_flight=3)
    for chunk, tags, pads in evaluator.evaluate_chunks(
        KEY.scalar, chunks(), 4, lambda: ran.append(pulled)
    ):
        answered += 1
        ahead.append(pulled - answered)
        assert (tags, pads) == evaluate_chunk(bytes(KEY.scalar), chunk.joined, width, 4)
    assert answered == rows
    assert max(ahead) <= 3
    assert ran == [3]  # the build's own work ran once, with the first window submitted


def _crash_first_attempt(marker: Path) -> ChunkTask:
    """A chunk task whose first run anywhere kills its own worker process (the marker file
    says whether a run already did); later runs evaluate normally."""
    from blindmatch.psi._index_build import evaluate_chunk

    def task(key: bytes, joined: bytes, width: int, tag_bytes: int) -> tuple[bytes, bytes]:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return evaluate_chunk(key, joined, width, tag_bytes)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)  # the worker dies mid-build, as on a lost node

    return task


def _truncate_first_attempt(marker: Path) -> ChunkTask:
    """A chunk task whose first run answers a short tag array (a corrupted answer)."""
    from blindmatch.psi._index_build import evaluate_chunk

    def task(key: bytes, joined: bytes, width: int, tag_bytes: int) -> tuple[bytes, bytes]:
        tags, pads = evaluate_chunk(key, joined, width, tag_bytes)
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return tags, pads
        return tags[:-8], pads

    return task


def _always_short(key: bytes, joined: bytes, width: int, tag_bytes: int) -> tuple[bytes, bytes]:
    return b"", b""


class _FaultyBuild(RayBuild):
    """A RayBuild whose tasks run a fault-injecting wrapper (the ``_task`` hook)."""

    def __init__(self, task: ChunkTask, *, chunk_entries: int, attempts: int = 3) -> None:
        super().__init__(chunk_entries=chunk_entries, attempts=attempts)
        self._fault = task

    def _task(self) -> ChunkTask:
        return self._fault


@pytest.mark.usefixtures("local_ray")
def test_a_worker_killed_mid_build_is_retried_and_the_index_is_identical(
    tmp_path: Path,
) -> None:
    references = _pdq_refs(8)
    marker = tmp_path / "killed"
    local = build_index(KEY, PDQ, references, processes=1, random_bytes=_source(3))
    evaluator = _FaultyBuild(_crash_first_attempt(marker), chunk_entries=768)
    remote = build_index(KEY, PDQ, references, random_bytes=_source(3), evaluator=evaluator)
    assert marker.exists(), "no worker was killed: the test proved nothing"
    killed = int(marker.read_text())
    assert killed != os.getpid()
    _same(local, remote)


@pytest.mark.usefixtures("local_ray")
def test_a_wrong_length_answer_is_resubmitted(tmp_path: Path) -> None:
    references = _md5_refs(100)
    marker = tmp_path / "truncated"
    local = build_index(KEY, MD5, references, processes=1, random_bytes=_source(4))
    evaluator = _FaultyBuild(_truncate_first_attempt(marker), chunk_entries=32)
    remote = build_index(KEY, MD5, references, random_bytes=_source(4), evaluator=evaluator)
    assert marker.exists()
    _same(local, remote)


@pytest.mark.usefixtures("local_ray")
def test_a_chunk_that_keeps_failing_fails_the_build() -> None:
    evaluator = _FaultyBuild(_always_short, chunk_entries=32, attempts=2)
    with pytest.raises(WorkerError, match="failed 2 times"):
        build_index(KEY, MD5, _md5_refs(10), evaluator=evaluator)


# --- the build's own checks of an evaluator, without Ray -----------------------------------


class _Skipping(InProcessChunks):
    """An evaluator that drops its last chunk, or answers one twice: the build must notice
    rather than publish uninitialised rows."""

    def __init__(self, mode: str) -> None:
        super().__init__(chunk_entries=8)
        self.mode = mode

    def answers(
        self, answered: list[tuple[EntryChunk, bytes, bytes]]
    ) -> list[tuple[EntryChunk, bytes, bytes]]:
        return answered[:-1] if self.mode == "drop" else [*answered, answered[0]]


@pytest.mark.parametrize("mode", ["drop", "twice"])
def test_an_evaluator_that_misses_or_repeats_a_chunk_fails_the_build(mode: str) -> None:
    with pytest.raises(WorkerError):
        build_index(KEY, MD5, _md5_refs(40), evaluator=_Skipping(mode))


def test_an_evaluator_must_be_one() -> None:
    with pytest.raises(TypeError):
        build_index(KEY, MD5, _md5_refs(2), evaluator=object())  # type: ignore[arg-type]


def test_a_ray_build_without_the_extra_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from blindmatch.errors import BackendUnavailable

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    with pytest.raises(BackendUnavailable, match=r"blindmatch\[ray\]"):
        build_index(KEY, MD5, _md5_refs(2), evaluator=RayBuild())


def test_bad_ray_options_are_refused() -> None:
    from blindmatch.errors import InvalidParameter

    makers: list[Callable[[], RayBuild]] = [
        lambda: RayBuild(chunk_entries=0),
        lambda: RayBuild(attempts=0),
        lambda: RayBuild(in_flight=-1),
        lambda: RayBuild(num_cpus=0),
        lambda: RayBuild(max_retries=-1),
        lambda: RayBuild(""),
    ]
    for make in makers:
        with pytest.raises(InvalidParameter):
            make()


def test_the_ray_address_setting_reaches_the_publisher(tmp_path: Path) -> None:
    from blindmatch.service.publisher import evaluator_for
    from blindmatch.service.settings import ENV_RAY_ADDRESS, Settings

    env = Settings(tmp_path, ray_address="ray://head:10001").to_env()
    assert env[ENV_RAY_ADDRESS] == "ray://head:10001"
    evaluator = evaluator_for(Settings.from_env(env))
    assert isinstance(evaluator, RayBuild)
    assert evaluator.address == "ray://head:10001"
    assert evaluator_for(Settings.from_env(Settings(tmp_path).to_env())) is None
