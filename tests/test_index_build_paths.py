"""The build's fast paths agree with their plain definitions.

The handle set is sorted in numpy (two big-endian integers per prefix) rather than as
``bytes``; the multi-process build hands chunks to a worker and evaluates the rest in the
building process. Both must give exactly what the plain definitions give.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from blindmatch.psi._index_build import _handle_set
from blindmatch.psi.bands import exact_banding
from blindmatch.psi.index import Index, Reference, build_index
from blindmatch.psi.keys import SecretKey
from blindmatch.psi.shares import RandomBytes

KEY = SecretKey.generate()


def _seeded(seed: int) -> RandomBytes:
    """A deterministic byte source, so two builds draw the same lines."""
    generator = np.random.default_rng(seed)
    return generator.bytes


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.binary(min_size=16, max_size=16), max_size=40),
    repeats=st.lists(st.integers(min_value=0, max_value=39), max_size=10),
    width=st.integers(min_value=8, max_value=16),
)
def test_handle_set_is_the_sorted_distinct_prefixes(
    rows: list[bytes], repeats: list[int], width: int
) -> None:
    handles = rows + [rows[i] for i in repeats if i < len(rows)]
    array = np.frombuffer(b"".join(handles), dtype=np.uint8).reshape(len(handles), 16)
    assert _handle_set(array, width) == b"".join(sorted({h[:width] for h in handles}))


def test_handle_set_orders_prefixes_differing_only_in_trailing_zeros() -> None:
    handles = [bytes(8) + b"\x01" + bytes(7), bytes(16), bytes(8) + b"\x00\x01" + bytes(6)]
    array = np.frombuffer(b"".join(handles), dtype=np.uint8).reshape(3, 16)
    expected = bytes(10) + bytes(8) + b"\x00\x01" + bytes(8) + b"\x01\x00"
    assert _handle_set(array, 10) == expected


def test_two_process_exact_build_equals_inline_build() -> None:
    # 3000 inputs: several chunks, some evaluated by the worker, some by this process.
    banding = exact_banding("sha256", 256)
    refs = [Reference(f"r{i}", "sha256", i.to_bytes(32, "big")) for i in range(3000)]
    inline = build_index(KEY, banding, refs, processes=1, random_bytes=_seeded(5))
    spread = build_index(KEY, banding, refs, processes=2, random_bytes=_seeded(5))
    assert inline.to_bytes() == spread.to_bytes()
    assert inline.handles == spread.handles


def test_contains_handles_vectorised_path_equals_set_membership() -> None:
    banding = exact_banding("sha256", 256)
    refs = [Reference(f"r{i}", "sha256", (i + 7).to_bytes(32, "big")) for i in range(40)]
    for width in (8, 12, 16):
        built = build_index(KEY, banding, refs, handle_bytes=width, random_bytes=_seeded(width))
        index = Index.from_bytes(built.to_bytes())
        stored = [bytes(h) for h in built.handles]
        strangers = [_seeded(99 + width)(16) for _ in range(30)]
        # Same first 8 bytes as a stored handle, different after: only a wide compare sees it.
        near = [h[:8] + bytes(x ^ 0xFF for x in h[8:]) for h in stored[:10]]
        candidates = stored + strangers + near
        expected = [True] * len(stored) + [False] * len(strangers) + [width == 8] * len(near)
        assert index.contains_handles(candidates) == expected


_UNGUARDED_SCRIPT = """
import hashlib
from blindmatch.psi.bands import exact_banding
from blindmatch.psi.index import Reference, build_index
from blindmatch.psi.keys import SecretKey

references = [
    Reference(f"r{i}", "sha256", hashlib.sha256(str(i).encode()).digest()) for i in range(600)
]
built = build_index(SecretKey.generate(), exact_banding("sha256", 256), references, processes=2)
print("built", built.header.entry_count)
"""


def _run(
    args: list[str], stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_one_process_with_one_warning(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    assert done.stdout == "built 604\n"  # 600 references and the 4 default canaries
    assert "Traceback" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(warnings) == 1
    assert "running in one process" in warnings[0]
    assert len(done.stderr.splitlines()) <= 2  # the warning and, at most, its source line


def test_a_script_without_a_main_guard_runs_in_one_process(tmp_path: Path) -> None:
    """Spawned and fork-server workers re-run the main script, whose top level starts the
    build again: each such worker ends quietly and the build goes on in one process."""
    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED_SCRIPT)
    _assert_one_process_with_one_warning(_run([str(script)]))


def test_a_program_from_standard_input_runs_in_one_process(tmp_path: Path) -> None:
    """``python - < file``: workers could not import ``<stdin>``; none is started."""
    done = _run(["-"], stdin=_UNGUARDED_SCRIPT, cwd=tmp_path)
    _assert_one_process_with_one_warning(done)
    assert "cannot import the main module" in done.stderr


_UNGUARDED_PDQ_SCRIPT = """
import random
from blindmatch.psi.bands import pdq_banding
from blindmatch.psi.index import Index, Reference, build_index
from blindmatch.psi.keys import SecretKey

def seeded(seed):
    return random.Random(seed).randbytes

key = SecretKey.generate()
rng = random.Random(1)
references = [Reference(f"r{i}", "pdq", rng.randbytes(32)) for i in range(100)]
banding = pdq_banding(256)
two = build_index(key, banding, references, processes=2, random_bytes=seeded(5)).to_bytes()
one = build_index(key, banding, references, processes=1, random_bytes=seeded(5)).to_bytes()
Index.from_bytes(two)
print("identical", two == one)
"""


def test_a_build_whose_workers_die_mid_build_loses_no_chunk(tmp_path: Path) -> None:
    """The workers die while the building process is between chunks (a script without a
    main guard: each worker re-runs it and ends); the chunk it held when the pool broke is
    redone, so the index is whole, valid and byte-identical to the one-process build.
    (Before the fix its rows kept uninitialised memory: "band entries are not sorted".)"""
    script = tmp_path / "unguarded_pdq.py"
    script.write_text(_UNGUARDED_PDQ_SCRIPT)
    done = _run([str(script)])
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == "identical True\n"
