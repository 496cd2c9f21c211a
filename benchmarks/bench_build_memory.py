"""Build peak memory: the in-memory build against the streaming file build (issue 13).

``python -m benchmarks build_memory`` writes ``results/build_memory.{json,md}``.

Each build runs in a child process of :mod:`benchmarks.bench_scale` (``--child build``),
one process, which reports its resident set before the build (``VmRSS``) and its peak
(``VmHWM``) after the file is written; the figure is (peak - before), and its ratio to the
file's size. Both builds of a row run in the same benchmark run, on the same machine:

- ``memory``: :func:`~blindmatch.psi.index.build_index` then ``BuiltIndex.write`` (the
  ``N x L`` tag and pad arrays, the sorted bands, the file in one buffer);
- ``file``: :func:`~blindmatch.psi.index.build_index_file` (runs of about 2^19 entries
  written into each band's region of the output, then each band sorted in place).

PDQ (L = 384) rows use the random-tag path of :mod:`benchmarks.bench_scale` (the real
build with OPRF outputs replaced by random tags and pads: memory does not depend on the
tags' values; ``tests/test_index_stream.py`` checks the file build is byte-identical on
real builds); MD5 rows are real RFC 9497 builds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_scale import _run_child
from blindmatch.psi.keys import SecretKey

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
MB = 1024 * 1024
PDQ_SIZES = (1_000, 10_000, 100_000)
# The streaming build alone beyond the in-memory build's sizes: is its peak bounded in N?
PDQ_FILE_ONLY = (300_000,)
MD5_SIZES = (100_000,)


def _build(key_path: Path, out: Path, signal: str, count: int, mode: str) -> dict[str, Any]:
    flags = ["--random"] if signal == "pdq" else []
    if mode == "file":
        flags.append("--stream")
    result = _run_child(
        "build", "--key", str(key_path), "--signal", signal, "--count", str(count),
        "--out", str(out), "--processes", "1", *flags,
    )  # fmt: skip
    out.unlink()
    result.update(signal=signal, references=count, mode=mode, random_tags=signal == "pdq")
    result["peak_multiple_of_file"] = result["peak_over_before"] / result["size"]
    return result


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Build peak memory: in-memory build vs streaming file build (issue 13)",
        "",
        f"One run on {result['machine']} (shared with other jobs: times are noisy; memory "
        "is not). Each build in its own child process, 1 process (no workers); peak - before "
        "is VmHWM at the end minus VmRSS before the build. PDQ rows: random-tag path "
        "(benchmarks/bench_scale.py); MD5 rows: real builds. `memory` = `build_index` + "
        "`write`; `file` = `build_index_file`.",
        "",
        "| signal | N | build | file MB | build s | peak - before MB | peak / file |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for b in result["builds"]:
        lines.append(
            f"| {b['signal']} | {b['references']:,} | {b['mode']} | {b['size'] / MB:.2f} "
            f"| {b['seconds']:.1f} | {b['peak_over_before'] / MB:.1f} "
            f"| {b['peak_multiple_of_file']:.3f} |"
        )
    pdq = [b for b in result["builds"] if b["signal"] == "pdq" and b["mode"] == "file"]
    if len(pdq) >= 2:
        first, last = pdq[0], pdq[-1]
        slope = (last["peak_over_before"] - first["peak_over_before"]) / (
            last["references"] - first["references"]
        )
        fixed = first["peak_over_before"] - slope * first["references"]
        lines += [
            "",
            "## Streaming build: fitted through its smallest and largest PDQ rows",
            "",
            f"- peak - before = {fixed / MB:.1f} MB + {slope:.0f} bytes per reference "
            f"(the file: {last['size'] / last['references']:.0f} bytes per reference).",
            f"- PROJECTION, N = 10^7 PDQ: {(fixed + slope * 1e7) / 1e9:.2f} GB of build "
            f"memory for a {last['size'] / last['references'] * 1e7 / 1e9:.1f} GB file, "
            "and free disk of the file's length in its directory (no other temporary file).",
            "- Most of the per-reference part is the build's lines and private handle map "
            "(the report handle -> report id dict it returns, about 180 bytes per reference), "
            "not the assembly, which holds one run (2^19 entries) and one band (N entries).",
        ]
    gathered = [b for b in result["builds"] if b["signal"] == "pdq" and b["mode"] == "memory"]
    if gathered:
        big = gathered[-1]
        lines.append(
            f"- The in-memory build in this run: {big['peak_multiple_of_file']:.1f}x the file "
            f"at N = {big['references']:,}; PROJECTION at that multiple, N = 10^7: "
            f"{big['peak_multiple_of_file'] * big['size'] / big['references'] * 1e7 / 1e9:.0f}"
            " GB."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_build_memory")
    parser.add_argument("--render", action="store_true", help="rewrite the .md from the .json")
    parser.add_argument("--pdq-sizes", type=int, nargs="+", default=list(PDQ_SIZES))
    parser.add_argument("--pdq-file-only", type=int, nargs="*", default=list(PDQ_FILE_ONLY))
    parser.add_argument("--md5-sizes", type=int, nargs="*", default=list(MD5_SIZES))
    args = parser.parse_args(argv)
    if args.render:
        text = _markdown(json.loads((RESULTS / "build_memory.json").read_text()))
        (RESULTS / "build_memory.md").write_text(text)
        print(text)
        return 0
    started = time.perf_counter()
    builds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-build-memory-") as tmp:
        key_path = Path(tmp) / "key"
        key_path.write_bytes(SecretKey.generate().to_bytes())
        key_path.chmod(0o600)
        plan = [("md5", n, mode) for n in args.md5_sizes for mode in ("memory", "file")]
        plan += [("pdq", n, mode) for n in args.pdq_sizes for mode in ("memory", "file")]
        plan += [("pdq", n, "file") for n in args.pdq_file_only]
        for signal, count, mode in plan:
            row = _build(key_path, Path(tmp) / "index", signal, count, mode)
            builds.append(row)
            print(
                f"  {signal} {count} {mode}: {row['peak_over_before'] / MB:.1f} MB, "
                f"{row['peak_multiple_of_file']:.3f}x the file, {row['seconds']:.1f} s",
                flush=True,
            )
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "seconds": time.perf_counter() - started,
        "builds": builds,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "build_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    text = _markdown(result)
    (RESULTS / "build_memory.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
