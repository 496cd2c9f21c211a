"""Index builds on a real two-node Ray cluster (issue 13): ``RayBuild("HOST:PORT")`` and
``RayBuild("ray://...")`` (Ray Client) byte for byte the local build, with tasks on both
nodes; a hung task cancelled and resubmitted after ``task_timeout``; the second node
killed mid-build.

One cluster for the module, as an operator starts one: ``ray start --head`` and ``ray start
--address=HEAD``, one CPU each, two raylets (two nodes) on this machine, each in a process
group of its own (the teardown kills both groups, whatever happened; the workers, children
of a raylet in groups of their own, exit when it dies), under a private temp dir, with
Ray's token authentication on a token made for this module. The driver is this test
process. The test that kills the second node runs last. About 50 s on 2 loaded cores, a
third of it the cluster's start.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from blindmatch.errors import WorkerError
from blindmatch.psi import oprf
from blindmatch.psi.bands import exact_banding, pdq_banding
from blindmatch.psi.index import BuiltIndex, Reference, build_index
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.ray_build import RayBuild
from service_support import free_port

KEY = SecretKey.derive(bytes(range(32)), b"test_ray_cluster", mode=oprf.Mode.VOPRF, epoch=1)
MD5 = exact_banding("md5", 128)
PDQ = pdq_banding(384)
RAY = Path(sys.executable).with_name("ray")
STARTED = "Ray runtime started."

ChunkTask = Callable[[bytes, bytes, int, int], tuple[bytes, bytes]]


def _source(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def _md5_refs(count: int) -> list[Reference]:
    return [
        Reference(f"r{i}", "md5", hashlib.md5(b"%d" % i, usedforsecurity=False).digest())
        for i in range(count)
    ]


def _pdq_refs(count: int) -> list[Reference]:
    rng = random.Random(count)
    return [Reference(f"v{i}", "pdq", rng.randbytes(32)) for i in range(count)]


def _same(local: BuiltIndex, remote: BuiltIndex) -> None:
    assert remote.data == local.data
    assert remote.handles == local.handles


# --- the timeout's settings, without a cluster ------------------------------------------------


@pytest.mark.parametrize("timeout", [0, -1, 0.0, math.nan, math.inf, True, "5"])
def test_a_bad_task_timeout_is_refused(timeout: Any) -> None:
    from blindmatch.errors import InvalidParameter

    with pytest.raises(InvalidParameter, match="task_timeout"):
        RayBuild(task_timeout=timeout)


def test_the_task_timeout_setting_reaches_the_publisher(tmp_path: Path) -> None:
    from blindmatch.service.errors import ConfigurationError
    from blindmatch.service.publisher import evaluator_for
    from blindmatch.service.settings import ENV_RAY_TASK_TIMEOUT, Settings

    def built(**env: str) -> RayBuild:
        base = Settings(tmp_path, ray_address="10.0.0.5:6379").to_env()
        base.pop(ENV_RAY_TASK_TIMEOUT)
        evaluator = evaluator_for(Settings.from_env({**base, **env}))
        assert isinstance(evaluator, RayBuild)
        return evaluator

    assert built().task_timeout == 600.0  # the default: a hung task cannot hold a build
    assert built(BLINDMATCH_RAY_TASK_TIMEOUT="30").task_timeout == 30.0
    assert built(BLINDMATCH_RAY_TASK_TIMEOUT="0").task_timeout is None
    settings = Settings(tmp_path, ray_address="auto", ray_task_timeout=45)
    assert Settings.from_env(settings.to_env()).ray_task_timeout == 45.0
    for bad in ("soon", "-1", "nan", "inf"):
        with pytest.raises(ConfigurationError, match=r"ray_task_timeout|RAY_TASK_TIMEOUT"):
            built(BLINDMATCH_RAY_TASK_TIMEOUT=bad)


def test_the_task_timeout_option_is_read_by_serve_and_publish(tmp_path: Path) -> None:
    from blindmatch.cli import build_parser
    from blindmatch.cli.serve import settings_from

    parser = build_parser()
    where = ["--data-dir", str(tmp_path)]
    options = ["--ray-address", "auto", "--ray-task-timeout", "90"]
    for argv in (["serve", *where, *options], ["admin", *where, "index", "publish", *options]):
        settings = settings_from(parser.parse_args(argv))
        assert (settings.ray_address, settings.ray_task_timeout) == ("auto", 90.0)


def test_a_bad_task_timeout_option_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from blindmatch.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["serve", "--data-dir", "x", "--ray-task-timeout", "-5"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--ray-task-timeout: expected a number of seconds >= 0" in err
    assert "Traceback" not in err


# --- the cluster ----------------------------------------------------------------------------


@dataclass
class Cluster:
    address: str
    """``HOST:PORT`` of the head's GCS."""
    client: str
    """``ray://HOST:PORT`` of the head's Ray Client server."""
    head: subprocess.Popen[bytes]
    node: subprocess.Popen[bytes]
    """The second node's ``ray start --block``: its process group holds the node's raylet
    (its workers are children of the raylet, in groups of their own)."""
    head_id: str
    node_id: str
    """The Ray node ids of the head and of the second node."""


_TAKEN: set[int] = set()


def _port() -> int:
    """A free port this module has not handed out yet: ``free_port`` releases the port it
    found, so two calls can return the same one, and Ray refuses two of its components on
    one port (seen in CI: the GCS and the object manager drew the same)."""
    while True:
        port = free_port()
        if port not in _TAKEN:
            _TAKEN.add(port)
            return port


def _ports(names: list[str]) -> list[str]:
    # Every port a node opens, chosen free: two nodes on one host (and anybody else's Ray
    # on this machine, e.g. another test run) must not take each other's defaults.
    return [f"--{name}={_port()}" for name in names]


_NODE_PORTS = [
    "node-manager-port",
    "object-manager-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "metrics-export-port",
    "runtime-env-agent-port",
]


def _wait_for(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            pytest.fail(f"a Ray node did not start:\n{tail}")
        time.sleep(0.2)


def _says_started(log: Path) -> bool:
    return STARTED in log.read_text(errors="replace")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Stop one node: every process of its group (raylet, workers, agents, and on the
    head the GCS), SIGTERM first and SIGKILL after a short grace."""
    for sig, grace in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 0.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _import_ray() -> Any:
    hook = sys.excepthook
    import ray  # the ray extra: locked with every extra, so CI has it

    sys.excepthook = hook  # importing ray installs its own hook
    return ray


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    ray = _import_ray()
    from ray._private.authentication_test_utils import reset_auth_token_state

    # A short path: Ray's Unix sockets live under it (at most 107 bytes), so not in pytest's.
    tmp = Path(tempfile.mkdtemp(prefix="bm-ray-"))
    token = secrets.token_hex(32)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    env = {
        **os.environ,
        **auth,
        "RAY_USAGE_STATS_ENABLED": "0",
        # The head's Ray Client proxier forks a server per client while its gRPC threads
        # run; gRPC's fork handlers then now and then kill the child (ray-project/ray#63202).
        # The child execs at once, so it needs no fork support.
        "GRPC_ENABLE_FORK_SUPPORT": "0",
        # A node whose raylet died is declared dead after ~1.5 s instead of ~15 s.
        "RAY_health_check_period_ms": "500",
        "RAY_health_check_timeout_ms": "500",
        "RAY_health_check_failure_threshold": "3",
    }
    gcs, client = _port(), _port()
    common = [
        "--num-cpus=1",
        "--object-store-memory=100000000",
        f"--temp-dir={tmp / 'ray'}",
        "--disable-usage-stats",
        "--block",
    ]
    started: list[subprocess.Popen[bytes]] = []
    saved = {name: os.environ.get(name) for name in auth}

    def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(RAY), "start", *args, *common],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the node, for killpg
            )
        started.append(process)
        return process

    try:
        head = start(
            [
                "--head",
                f"--port={gcs}",
                f"--ray-client-server-port={client}",
                "--include-dashboard=false",
                *_ports([*_NODE_PORTS, "dashboard-port"]),
            ],
            tmp / "head.log",
        )
        # The second node can start joining as soon as the GCS listens (in parallel with
        # the rest of the head's start-up).
        _wait_for(lambda: _listening(gcs), head, tmp / "head.log")
        manager = _port()
        node = start(
            [
                f"--address=127.0.0.1:{gcs}",
                f"--node-manager-port={manager}",
                *_ports(_NODE_PORTS[1:]),
            ],
            tmp / "node.log",
        )
        for process, log in ((head, tmp / "head.log"), (node, tmp / "node.log")):
            _wait_for(partial(_says_started, log), process, log)
        # The driver (this process) authenticates with the cluster's token. Ray reads the
        # variables when it loads its config: reload it (Ray's own test helper does that).
        os.environ.update(auth)
        reset_auth_token_state()
        ray.init(address=f"127.0.0.1:{gcs}", log_to_driver=False, configure_logging=False)
        try:
            deadline = time.monotonic() + 60
            while len(alive := [n for n in ray.nodes() if n["Alive"]]) < 2:
                assert time.monotonic() < deadline, "the second node never joined"
                time.sleep(0.2)
            by_port = {n["NodeManagerPort"]: n["NodeID"] for n in alive}
            node_id = by_port.pop(manager)
            (head_id,) = by_port.values()
        finally:
            ray.shutdown()
        yield Cluster(
            f"127.0.0.1:{gcs}",
            f"ray://127.0.0.1:{client}",
            head,
            node,
            head_id,
            node_id,
        )
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        for process in reversed(started):
            _kill_group(process)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_auth_token_state()
        shutil.rmtree(tmp, ignore_errors=True)


class _Probe(RayBuild):
    """A RayBuild whose tasks run a wrapper of the chunk function (the ``_task`` hook)."""

    def __init__(self, address: str, task: ChunkTask, **options: Any) -> None:
        super().__init__(address, **options)
        self._probe = task

    def _task(self) -> ChunkTask:
        return self._probe


def _recording(marks: Path, pause: float) -> ChunkTask:
    """The chunk function, leaving a file named by the Ray node it ran on; ``pause`` keeps
    a task busy so that the other node's CPU takes the next one."""

    def task(key: bytes, joined: bytes, width: int, tag_bytes: int) -> tuple[bytes, bytes]:
        import ray

        from blindmatch.psi._index_build import evaluate_chunk

        node = ray.get_runtime_context().get_node_id()
        (marks / f"{node}.{secrets.token_hex(4)}").touch()
        time.sleep(pause)
        return evaluate_chunk(key, joined, width, tag_bytes)

    return task


def _ran_on(marks: Path) -> set[str]:
    return {path.name.split(".")[0] for path in marks.iterdir()}


def test_a_build_on_two_nodes_is_the_local_build(cluster: Cluster, tmp_path: Path) -> None:
    references = _pdq_refs(16)  # with the canaries, 10 chunks of 2 references
    local = build_index(KEY, PDQ, references, processes=1, random_bytes=_source(1))
    with _Probe(cluster.address, _recording(tmp_path, 0.3), chunk_entries=768) as evaluator:
        remote = build_index(KEY, PDQ, references, random_bytes=_source(1), evaluator=evaluator)
    _same(local, remote)
    # Both nodes (two raylets, two node ids) ran chunks.
    assert _ran_on(tmp_path) == {cluster.head_id, cluster.node_id}


def _build(
    make: Callable[[], RayBuild], references: list[Reference], banding: Any, seed: int
) -> BuiltIndex:
    """``build_index`` on a new evaluator from ``make``, which it connects and closes.

    A Ray Client connection is tried twice: Ray 2.60's client proxier now and then fails
    to start the server of a new client (it reads the command line of a server process
    that has already exited: psutil's ZombieProcess in ray/util/client/server/proxier.py),
    and ``ray.init`` raises ConnectionAbortedError before any task ran. The publisher
    retries such a build at its next poll; the test connects once more. A Ray Client
    connection has also been seen to hang in ``ray.init`` (in a full suite run on a loaded
    machine): the build then runs in a thread given ``_CLIENT_LIMIT`` seconds, and the test
    fails instead of holding the suite (the cluster's teardown kills the head, which ends
    the connection)."""
    if make().address.startswith("ray://"):
        done: list[BuiltIndex] = []
        failed: list[BaseException] = []

        def run() -> None:
            try:
                done.append(_build_with_retry(make, references, banding, seed))
            except BaseException as exc:  # handed to the test's thread below
                failed.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(_CLIENT_LIMIT)
        if failed:
            raise failed[0]
        if not done:
            pytest.fail(f"a Ray Client build did not finish within {_CLIENT_LIMIT} s")
        return done[0]
    return _build_with_retry(make, references, banding, seed)


_CLIENT_LIMIT = 240


def _build_with_retry(
    make: Callable[[], RayBuild], references: list[Reference], banding: Any, seed: int
) -> BuiltIndex:
    for attempt in (1, 2):
        try:
            with make() as evaluator:
                return build_index(
                    KEY, banding, references, random_bytes=_source(seed), evaluator=evaluator
                )
        except ConnectionAbortedError:
            if attempt == 2 or not make().address.startswith("ray://"):
                raise
            _import_ray().shutdown()  # whatever half of the client connection was made
    raise AssertionError("unreachable")


def test_a_build_through_ray_client_is_the_local_build(cluster: Cluster, tmp_path: Path) -> None:
    references = _md5_refs(300)
    local = build_index(KEY, MD5, references, processes=1, random_bytes=_source(2))
    # The wrapper is pickled on this side and runs on the cluster through the client server.
    remote = _build(
        lambda: _Probe(cluster.client, _recording(tmp_path, 0.05), chunk_entries=64),
        references,
        MD5,
        2,
    )
    _same(local, remote)
    ran = _ran_on(tmp_path)
    assert ran, "no task of ours ran"
    assert ran <= {cluster.head_id, cluster.node_id}


# --- hung tasks: task_timeout ----------------------------------------------------------------


def _hang_first_attempt(marker: Path) -> ChunkTask:
    """A chunk function whose first run anywhere hangs (sleeps; it neither answers nor
    dies), leaving its pid in ``marker``; later runs evaluate normally."""

    def task(key: bytes, joined: bytes, width: int, tag_bytes: int) -> tuple[bytes, bytes]:
        from blindmatch.psi._index_build import evaluate_chunk

        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return evaluate_chunk(key, joined, width, tag_bytes)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        time.sleep(3600)
        raise AssertionError("a hung task was left running")

    return task


def _always_hang() -> ChunkTask:
    """A chunk function that always hangs (a closure: pickled by value, as every task
    function here, so the cluster's workers need not import this test module)."""

    def task(key: bytes, joined: bytes, width: int, tag_bytes: int) -> tuple[bytes, bytes]:
        time.sleep(3600)
        raise AssertionError("a hung task was left running")

    return task


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


# Over HOST:PORT only: the timeout lives in RayBuild's driver loop, the same code whatever
# the connection (one Ray Client connection per module keeps the suite's exposure to
# ray-project/ray#63202 small).
def test_a_hung_task_is_cancelled_and_resubmitted(cluster: Cluster, tmp_path: Path) -> None:
    references = _md5_refs(300)
    marker = tmp_path / "hung"
    local = build_index(KEY, MD5, references, processes=1, random_bytes=_source(3))
    remote = _build(
        lambda: _Probe(
            cluster.address, _hang_first_attempt(marker), chunk_entries=64, task_timeout=6
        ),
        references,
        MD5,
        3,
    )
    _same(local, remote)
    assert marker.exists(), "no task hung: the test proved nothing"
    hung = int(marker.read_text())
    assert hung != os.getpid()
    assert _gone(hung, 20), "the hung task's worker was not killed"


def test_a_task_that_always_hangs_fails_the_build(cluster: Cluster) -> None:
    evaluator = _Probe(
        cluster.address, _always_hang(), chunk_entries=64, attempts=2, task_timeout=1.5
    )
    with evaluator, pytest.raises(WorkerError, match=r"failed 2 times .*no answer within 1.5 s"):
        build_index(KEY, MD5, _md5_refs(10), evaluator=evaluator)


# --- last: the second node dies mid-build ------------------------------------------------------


def _stall_on(node_id: str, marker: Path) -> ChunkTask:
    """The chunk function; a run on the Ray node ``node_id`` announces itself in ``marker``
    and stalls (until the node is killed under it)."""

    def task(key: bytes, joined: bytes, width: int, tag_bytes: int) -> tuple[bytes, bytes]:
        import ray

        from blindmatch.psi._index_build import evaluate_chunk

        if ray.get_runtime_context().get_node_id() == node_id:
            marker.write_text(str(os.getpid()))
            time.sleep(600)
        time.sleep(0.1)
        return evaluate_chunk(key, joined, width, tag_bytes)

    return task


def test_the_second_node_killed_mid_build(cluster: Cluster, tmp_path: Path) -> None:
    references = _pdq_refs(16)
    marker = tmp_path / "on-node"
    local = build_index(KEY, PDQ, references, processes=1, random_bytes=_source(4))
    killed = threading.Event()

    def kill_when_running() -> None:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if marker.exists():
            os.killpg(cluster.node.pid, signal.SIGKILL)  # the raylet and all it runs
            killed.set()

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    # task_timeout is only a backstop here, so that the test cannot hang; Ray itself is
    # expected to notice the dead node and retry its task on the head.
    evaluator = _Probe(
        cluster.address, _stall_on(cluster.node_id, marker), chunk_entries=768, task_timeout=120
    )
    started = time.monotonic()
    with evaluator:
        remote = build_index(KEY, PDQ, references, random_bytes=_source(4), evaluator=evaluator)
    took = time.monotonic() - started
    killer.join(timeout=5)
    assert killed.is_set(), "no task ran on the second node: nothing was killed mid-build"
    _same(local, remote)
    sys.stderr.write(f"build with the second node killed mid-build: {took:.1f} s\n")
