"""Run a script in a child process under an address-space limit; return its JSON output.

The out-of-memory tests of the front end and of the PDQ core share this harness: the limit
must be set in a child (it cannot be lifted again for the test process), after the child has
imported and warmed up everything, at a margin above what the child already holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

PRELUDE = '''
import json, resource, sys

def address_space():
    """Bytes of address space this process holds now (VmSize)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmSize:")) * 1024

_SOFT, _HARD = resource.getrlimit(resource.RLIMIT_AS)

def limit_to(margin):
    """Allow ``margin`` bytes of address space above what is held now."""
    resource.setrlimit(resource.RLIMIT_AS, (address_space() + margin, _HARD))

def lift():
    resource.setrlimit(resource.RLIMIT_AS, (_SOFT, _HARD))

def report(value):
    lift()
    json.dump(value, sys.stdout)
'''


def run_limited(script: str) -> Any:
    """Run ``PRELUDE + script`` (which ends with ``report(...)``) and return what it reported.

    The child's failure is the test's failure, with the end of its stderr.
    """
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + script],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)
