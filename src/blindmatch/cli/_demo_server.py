"""The demo's clearinghouse: ``blindmatch serve`` as a child process, driven as an operator
would drive it (``blindmatch admin``), and stopped whatever happens.

Theory of operation
-------------------
The server runs as ``sys.executable -m blindmatch serve`` in a session of its own (its
publisher process is in the same process group), with SQLite in a temporary data
directory, a one-second publish interval and full rebuilds allowed at every poll, so a
withdrawal or a new video is published within seconds. Its output goes to a log file.
:meth:`DemoServer.stop` sends SIGTERM (uvicorn shuts down, ``serve`` stops its publisher),
waits, then kills the whole process group: nothing is left behind, also after Ctrl-C or
an error (the demo calls it in a ``finally``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blindmatch.errors import BlindmatchError

__all__ = ["DemoFailed", "DemoServer", "free_port", "log_tail", "start_server"]

_LIMITS = {
    "PUBLISH_INTERVAL": "1",  # publish within a second of a report or a withdrawal
    "REBUILD_SECONDS": "0",  # a withdrawal or a new video: a full index at the next poll
    "INTAKE_PER_HOUR": "10000",  # the demo reports from one address
}


class DemoFailed(BlindmatchError):
    """The demo could not run a step (the server did not start, nothing was published)."""


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 12) -> list[str]:
    """The last lines of a log file (none if it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


@dataclass
class DemoServer:
    """A running ``blindmatch serve`` of the demo."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    log_path: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        """The base URL (loopback)."""
        return f"http://127.0.0.1:{self.port}"

    def admin(self, *args: str) -> Any:
        """Run ``blindmatch admin --json ARGS`` on the server's data directory, as its
        operator would; returns the parsed JSON it prints.

        Raises:
            DemoFailed: the command failed (its last line of stderr is in the message).
        """
        command = [sys.executable, "-m", "blindmatch", "admin", "--data-dir", str(self.data_dir)]
        done = subprocess.run(  # noqa: S603 - the project's own command, our arguments
            [*command, "--json", *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise DemoFailed(f"'blindmatch admin {' '.join(args)}' failed: {last}")
        return json.loads(done.stdout)

    def wait_healthy(self, timeout: float) -> None:
        """Poll ``GET /v1/health`` until it answers 200.

        Raises:
            DemoFailed: the server exited or did not answer within ``timeout`` seconds.
        """
        import httpx  # the client extra, checked by the demo before it starts the server

        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise DemoFailed(
                    f"the clearinghouse did not start: 'blindmatch serve' exited with code "
                    f"{code} (its log: {self.log_path})"
                )
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise DemoFailed(
                    f"the clearinghouse did not answer within {timeout:g} s "
                    f"(its log: {self.log_path})"
                )
            time.sleep(0.2)

    def wait_manifest(
        self, ready: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        """Poll the published manifest until ``ready(manifest)``; returns it (unverified:
        the demo only waits on it; the platform's SDK verifies what it uses).

        Raises:
            DemoFailed: not ready within ``timeout`` seconds, or the server exited.
        """
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DemoFailed(f"the clearinghouse exited (its log: {self.log_path})")
            with contextlib.suppress(httpx.TransportError, ValueError, KeyError, TypeError):
                answer = httpx.get(self.url + "/v1/index/manifest", timeout=5)
                if answer.status_code == 200:
                    manifest: dict[str, Any] = json.loads(answer.json()["manifest"])
                    if ready(manifest):
                        return manifest
            time.sleep(0.25)
        raise DemoFailed(f"{what} was not published within {timeout:g} s (log: {self.log_path})")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL the whole process group
        (the publisher too). Returns the server's exit code (``None`` if it was killed)."""
        code = self.process.poll()
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever is left of the group
        if self.process.poll() is None:
            self.process.wait()
        return code


def start_server(data_dir: Path, log_path: Path, port: int | None = None) -> DemoServer:
    """Start ``blindmatch serve`` (SQLite in ``data_dir``, output to ``log_path``); returns
    at once: call :meth:`DemoServer.wait_healthy` before using it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDMATCH_")}
    env.update({f"BLINDMATCH_LIMIT_{name}": value for name, value in _LIMITS.items()})
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "blindmatch", "serve", "--data-dir", str(data_dir)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(  # noqa: S603 - the project's own command
            [*command, "--port", str(port), "--no-page"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stop() takes the publisher too
        )
    return DemoServer(process, data_dir, port, log_path, env)
