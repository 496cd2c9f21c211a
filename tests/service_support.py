"""Real servers for the service tests: a throwaway PostgreSQL cluster and `blindmatch serve`.

PostgreSQL. With ``BLINDMATCH_TEST_POSTGRES_URL`` set (a server someone else started; the
URL of a database where we may ``CREATE DATABASE``), that server is used. Otherwise a
cluster is created in a temporary directory with the binaries of Debian's ``postgresql``
package (``/usr/lib/postgresql/*/bin``), run as the ``postgres`` user when the tests run
as root (PostgreSQL refuses to run as root), on a free loopback port. Every test gets a
database of its own. Without PostgreSQL the PostgreSQL cases are skipped, except under
``CI=true``, where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

BLINDMATCH = [sys.executable, "-m", "blindmatch"]
ENV_POSTGRES = "BLINDMATCH_TEST_POSTGRES_URL"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI: {reason}")
    pytest.skip(reason)


@dataclass
class PostgresServer:
    """A PostgreSQL server: ``admin_url`` may create databases."""

    admin_url: str
    process_dir: Path | None = None
    databases: list[str] = field(default_factory=list)

    def new_database(self) -> str:
        import psycopg

        name = "bm_" + secrets.token_hex(6)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        base = self.admin_url.rsplit("/", 1)[0]
        return f"{base}/{name}"


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    external = os.environ.get(ENV_POSTGRES)
    if external:
        yield PostgresServer(external)
        return
    bin_dir = _pg_bin()
    if bin_dir is None:
        _missing("no PostgreSQL binaries under /usr/lib/postgresql (package postgresql)")
        return
    root = Path(tempfile.mkdtemp(prefix="bm-pg-"))
    data = root / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            _missing("no postgres user to run PostgreSQL as")
            return
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    try:
        subprocess.run(
            [
                *run_as,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *run_as,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-t",
                "60",
                "-l",
                str(root / "log"),
                "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        yield PostgresServer(f"postgresql://postgres@127.0.0.1:{port}/postgres", root)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                check=False,
                capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Server:
    """A running ``blindmatch serve`` and what it needs."""

    data_dir: Path
    database_url: str
    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        db = ["--database-url", self.database_url] if self.database_url else []
        return subprocess.run(
            [*BLINDMATCH, "admin", "--data-dir", str(self.data_dir), *db, *args],
            capture_output=True,
            text=True,
            check=check,
            env=self.env,
        )

    def stop(self, kill: bool = False) -> None:
        if self.process.poll() is None:
            if kill:
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if kill:
            # The publisher notices its parent is gone; wait until it has.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


def start_server(
    data_dir: Path,
    database_url: str,
    *,
    workers: int = 1,
    limits: dict[str, str] | None = None,
    port: int | None = None,
    args: tuple[str, ...] = (),
    exact_index: str = "compact",
) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDMATCH_")}
    # How md5/sha256 are published, for serve and for the admin commands alike.
    env["BLINDMATCH_EXACT_INDEX"] = exact_index
    env["BLINDMATCH_LIMIT_PUBLISH_INTERVAL"] = "1"
    # A withdrawal leaves the full index at the next poll (tests that keep deltas set more).
    env["BLINDMATCH_LIMIT_REBUILD_SECONDS"] = "0"
    for name, value in (limits or {}).items():
        env[f"BLINDMATCH_LIMIT_{name.upper()}"] = value
    port = port or free_port()
    db = ["--database-url", database_url] if database_url else []
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                *BLINDMATCH,
                "serve",
                "--data-dir",
                str(data_dir),
                *db,
                "--port",
                str(port),
                "--workers",
                str(workers),
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = Server(data_dir, database_url, port, process, env, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                "blindmatch serve exited: " + (data_dir.parent / f"serve-{port}.log").read_text()
            )
        try:
            if httpx.get(server.url + "/v1/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop(kill=True)
    raise AssertionError("blindmatch serve did not answer within 60 s")


def published_references(manifest: dict[str, object], signal: str) -> int:
    """References of ``signal`` a platform holding the manifest's full index and all its
    deltas can match (new reports usually arrive in a delta, not a new full version)."""
    indexes = manifest["indexes"]
    deltas = manifest.get("deltas", [])
    assert isinstance(indexes, dict)
    assert isinstance(deltas, list)
    full = indexes.get(signal)
    count = int(full["references"]) if full else 0
    return count + sum(int(d["references"]) for d in deltas if d["signal"] == signal)


def wait_published(
    client: httpx.Client, predicate: object = None, timeout: float = 60
) -> dict[str, object]:
    """Poll the manifest until it exists (and ``predicate(manifest)`` holds)."""
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get("/v1/index/manifest")
        if answer.status_code == 200:
            manifest: dict[str, object] = json.loads(answer.json()["manifest"])
            if predicate is None or predicate(manifest):  # type: ignore[operator]
                return manifest
        # A manifest is cheap to serve; a short interval keeps tests from idling after
        # the publisher (it polls every second in these tests) has published.
        time.sleep(0.1)
    raise AssertionError("nothing was published in time")


def references(manifest: dict[str, object], signal: str) -> int:
    """References of ``signal`` in the manifest's full index and all its deltas."""
    indexes = manifest["indexes"]
    deltas = manifest["deltas"]
    assert isinstance(indexes, dict)
    assert isinstance(deltas, list)
    return int(indexes[signal]["references"]) + sum(
        int(d["references"]) for d in deltas if d["signal"] == signal
    )


@pytest.fixture(scope="session")
def postgres(postgres_cluster: PostgresServer) -> PostgresServer:
    """The session's PostgreSQL server. A session fixture imported into several modules is
    set up once per module; the cluster itself is ``postgres_cluster`` of conftest.py, so
    the whole session starts one."""
    return postgres_cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """``""`` (SQLite in the data directory) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return ""
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()
