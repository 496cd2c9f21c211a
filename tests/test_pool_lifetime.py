"""The package's process pool does not outlive the process that made it.

A pool's workers used to wait forever for their next task once their parent was killed
(``kill -9``, or a publisher ended by its server), and kept their fork server and resource
tracker alive with them. Real processes: a child makes a pool, reports its workers' pids,
and is killed with SIGKILL; the workers must be gone within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

_CHILD = """
import os, sys, time
from blindmatch.psi.parallel import process_pool

if __name__ == "__main__":
    pool = process_pool(2, preload="blindmatch.psi._index_build")
    assert pool is not None
    pids = {pool.submit(os.getpid).result() for _ in range(8)}
    print(" ".join(map(str, sorted(pids))), flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_workers_end_when_their_parent_is_killed() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert child.stdout is not None
        pids = [int(p) for p in child.stdout.readline().split()]
        assert pids
        assert all(_alive(p) for p in pids)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids), "pool workers outlived their parent"
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
