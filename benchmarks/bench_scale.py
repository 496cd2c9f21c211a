"""Benchmark: the figures of the scaling model (docs/scaling.md, issue 13).

What is measured, in one run
----------------------------
1. **Build time per (reference, band)**: real PDQ builds (``build_index``, RFC 9497
   evaluations) of ``--build-refs`` references on 1 and 2 processes; wall clock, and the
   building process's CPU time (on 1 process, the whole cost in core-seconds; on 2, the
   building process's share: the worker is the fork server's child, not readable here).
2. **Index bytes per reference**, PDQ and MD5, at N = 10^3, 10^4, 10^5. MD5 indexes are
   real builds at every N. The PDQ index is a real build at 10^3; at 10^4 and 10^5 it is
   built by the **random-tag path**: the same ``build_index`` (lines, handles, masking,
   per-band sort, file assembly, digest) with the OPRF evaluation replaced by uniformly
   random tags and pads (:func:`random_tags`). A real build of 10^5 PDQ references is
   3.84 * 10^7 evaluations (about an hour of this machine's 2 cores). Random tags are what
   real tags look like to anyone without the key, and neither the file's size nor the
   work or memory of a lookup depends on their values; a real 10^3 build and a random-tag
   10^3 build are both measured, and their sizes are equal.
3. **Build peak memory**: each build runs in a child process that reports its resident
   set before building (``VmRSS``) and its peak (``VmHWM``) after writing the file; the
   ratio (peak - before) / file size is the "small multiple".
4. **Lookup memory**: a child memory-maps the PDQ index (``Index.open``, verified) and
   looks up batches of uploads (random OPRF outputs, so almost nothing matches, which is
   the common case); it reports ``VmRSS``, ``VmHWM`` and ``/proc/self/smaps_rollup``
   (``Rss`` split into anonymous and file-backed pages) after each stage. "Beyond the map"
   is the anonymous memory (the interpreter, numpy, the batch's arrays), and
   ``VmHWM - RssFile`` bounds its peak from above. Target: at most 200 MB at 10^5.
5. **Online cost per upload**: the in-process session pair (``PlatformSession`` and
   ``ClearinghouseSession``, no network), platform CPU and clearinghouse CPU per upload
   timed separately, PDQ and MD5, against each of the indexes above.
6. **Deltas**: the size of a delta of 10^3 and 10^4 new references (PDQ random-tag,
   MD5 real) and so the bytes a day of intake adds, for 10^3 and 10^4 reports a day.
7. **Projections** to 10^6 and 10^7 references from fitted models, labelled as such:
   bytes = a + b * N (least squares over the measured N: the format is linear in N),
   build CPU = N * L * (measured CPU seconds per (reference, band)), online cost per upload =
   c0 + c1 * log10(N) (least squares; the lookup is a binary search per band).

The machine is shared (2 cores, other jobs running): times are noisy; take them as the
order of magnitude the model needs, not as a regression gate.

Run: ``python -m benchmarks.bench_scale`` (writes ``benchmarks/results/scale.{json,md}``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from blindmatch.fingerprint.signals import default_registry
from blindmatch.protocols import ClearinghouseSession, PlatformSession, Upload, signal_banding
from blindmatch.psi import _index_build
from blindmatch.psi.bands import Banding
from blindmatch.psi.index import (
    Index,
    Reference,
    add_references,
    add_references_file,
    build_index,
    build_index_file,
)
from blindmatch.psi.kdf import PAD_MASK
from blindmatch.psi.keys import SecretKey

__all__ = ["main", "random_tags"]

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
SIZES = (1_000, 10_000, 100_000)
PROJECTED = (1_000_000, 10_000_000)
MB = 1024 * 1024
# Entries per chunk of the random-tag stand-in: about the real build's chunks.
_STAND_IN_CHUNK = 1024


# --- the random-tag stand-in -------------------------------------------------------------


@contextlib.contextmanager
def random_tags(seed: int = 13) -> Iterator[None]:
    """Within the block, index builds take random tags and pads instead of OPRF outputs.

    Benchmark-only: it replaces the one step of ``build_index`` and ``build_index_file``
    that evaluates the PRF (``_evaluate_into``) with draws of the same shapes and ranges
    (tags of ``tag_bytes``, pads below ``PAD_MASK``), handed over chunk by chunk as the
    real evaluation does, then runs the rest of the real build. The index is structurally
    valid (it opens, verifies and answers lookups; its public canaries are real, so a
    platform session accepts it) but matches nothing else.
    """
    original = _index_build._evaluate_into
    rng = np.random.default_rng(seed)

    def stand_in(
        secret_key: Any,
        banding: Banding,
        hashes: Any,
        tag_bytes: int,
        processes: int,
        meanwhile: Any,
        store: Any,
    ) -> Any:
        bands, count = banding.count, len(hashes)
        # The public canaries (the last rows of a full build) are evaluated for real, so the
        # platform's canary check passes and the session pair runs against the index.
        canaries = _index_build.default_canaries(banding)
        tail = len(canaries)
        real_rows = 0
        if tail and count >= tail and list(hashes[-tail:]) == canaries:
            real_rows = tail
        extra = meanwhile()
        step = max(1, _STAND_IN_CHUNK // bands)
        for start in range(0, count - real_rows, step):
            rows = min(step, count - real_rows - start)
            size = rows * bands
            tags = rng.integers(0, 1 << (8 * tag_bytes), size=size, dtype=np.uint64)
            pads = rng.integers(0, int(PAD_MASK), size=size, dtype=np.uint64, endpoint=True)
            store(start, tags, pads)
        if real_rows:
            inputs = [item for row in banding.band_inputs_many(canaries) for item in row]
            store(count - tail, *_index_build._chunk_entries(secret_key, inputs, tag_bytes))
        return extra

    _index_build._evaluate_into = stand_in
    try:
        yield
    finally:
        _index_build._evaluate_into = original


# --- /proc readings -------------------------------------------------------------------------


def _status() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[name] = int(rest.split()[0]) * 1024
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Anonymous"):
                out["smaps_" + name] = int(rest.split()[0]) * 1024
    return out


def _banding(signal: str) -> Banding:
    return signal_banding(default_registry().get(signal))


def _references(signal: str, count: int, prefix: str = "r") -> list[Reference]:
    width = _banding(signal).hash_bytes
    rng = np.random.default_rng(count)
    raw = rng.integers(0, 256, size=(count, width), dtype=np.uint8).tobytes()
    return [
        Reference(f"{prefix}{i}", signal, raw[i * width : (i + 1) * width]) for i in range(count)
    ]


# --- children ------------------------------------------------------------------------------


def _child_build(args: argparse.Namespace) -> dict[str, Any]:
    key = SecretKey.from_bytes(Path(args.key).read_bytes())
    references = _references(args.signal, args.count, args.prefix)
    before = _status()
    start, cpu = time.perf_counter(), time.process_time()
    stand_in = random_tags() if args.random else contextlib.nullcontext()
    with stand_in:
        if args.stream:
            # The streaming build (build_index_file): the file is written as it is built.
            if args.base:
                base = Index.open(args.base, verify=False).header
                written = add_references_file(
                    args.out, key, base, references, processes=args.processes
                )
            else:
                written = build_index_file(
                    args.out, key, _banding(args.signal), references, processes=args.processes
                )
            size = written.size
            del written
        else:
            if args.base:
                base = Index.open(args.base, verify=False).header
                built = add_references(key, base, references, processes=args.processes)
            else:
                built = build_index(
                    key, _banding(args.signal), references, processes=args.processes
                )
            built.write(args.out)
            size = len(built.data)
            del built
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    after = _status()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "size": size,
        "rss_before": before["VmRSS"],
        "peak": after["VmHWM"],
        "peak_over_before": after["VmHWM"] - before["VmRSS"],
    }


def _child_lookup(args: argparse.Namespace) -> dict[str, Any]:
    import blindmatch.psi.index  # noqa: F401 - everything a platform imports, before measuring

    stages = {"imported": _status()}
    index = Index.open(args.path)  # verified: the whole file is read once
    stages["opened"] = _status()
    bands = index.header.banding.count
    rng = np.random.default_rng(7)
    seconds = 0.0
    for batch in range(args.batches):
        raw = rng.integers(0, 256, size=(args.uploads * bands, 64), dtype=np.uint8).tobytes()
        outputs = [
            [raw[(u * bands + j) * 64 : (u * bands + j + 1) * 64] for j in range(bands)]
            for u in range(args.uploads)
        ]
        start = time.perf_counter()
        index.lookup_many(outputs)
        seconds += time.perf_counter() - start
        del raw, outputs
        stages[f"batch {batch + 1}"] = _status()
    last = stages[f"batch {args.batches}"]
    return {
        "file_size": os.path.getsize(args.path),
        "stages": stages,
        "anon_now": last["RssAnon"],
        "anon_peak_bound": last["VmHWM"] - last["RssFile"],
        "lookup_us_per_upload": seconds / (args.batches * args.uploads) * 1e6,
    }


def _run_child(*argv: str) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - this module's own child mode, our arguments
        [sys.executable, "-m", "benchmarks.bench_scale", "--child", *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- measurements in the parent ------------------------------------------------------------


def _build_time(key: SecretKey, count: int, processes: int, repeats: int) -> dict[str, float]:
    banding = _banding("pdq")
    references = _references("pdq", count, "t")
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        build_index(key, banding, references, processes=processes)
        best_wall = min(best_wall, time.perf_counter() - start)
        # This process only: the pool's workers are children of the fork server, not of
        # this process, so their CPU time cannot be read here.
        best_cpu = min(best_cpu, time.process_time() - cpu)
    per = count * banding.count
    return {
        "processes": processes,
        "references": count,
        "evaluations": per,
        "wall_s": best_wall,
        "us_per_ref_band_wall": best_wall / per * 1e6,
        "cpu_s": best_cpu,
        "core_us_per_ref_band": best_cpu / per * 1e6,
    }


def _uploads(signal: str, count: int) -> list[Upload]:
    if signal == "md5":
        return [Upload(f"u{i}", "md5", secrets.token_bytes(16)) for i in range(count)]
    return [Upload(f"u{i}", "pdq", secrets.token_bytes(32), 90) for i in range(count)]


def _online(key: SecretKey, path: Path, signal: str, uploads: int) -> dict[str, float]:
    index = Index.open(path, verify=False)
    platform_session = PlatformSession([index], key.public_key, batch_size=4096)
    clearinghouse = ClearinghouseSession(key, element_limit=1 << 40, max_batch=4096)
    platform_session.add_uploads(_uploads(signal, uploads))
    platform_session.receive(clearinghouse.receive(platform_session.hello()))
    client = server = 0.0
    while platform_session.wants_to_send:
        t0 = time.process_time()
        request = platform_session.next_request()
        t1 = time.process_time()
        reply = clearinghouse.receive(request)
        t2 = time.process_time()
        platform_session.receive(reply)
        client += (t1 - t0) + (time.process_time() - t2)
        server += t2 - t1
    stats = platform_session.stats
    return {
        "uploads": uploads,
        "client_cpu_ms_per_upload": client / uploads * 1e3,
        "server_cpu_ms_per_upload": server / uploads * 1e3,
        "elements_per_upload": stats.elements_sent / uploads,
        "bytes_up_per_upload": stats.bytes_sent / uploads,
        "bytes_down_per_upload": stats.bytes_received / uploads,
    }


def _fit_linear(xs: list[float], ys: list[float]) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.array(xs, dtype=float), np.array(ys, dtype=float), 1)
    return float(intercept), float(slope)


def _measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    key = SecretKey.generate()
    key_path = tmp / "key"
    key_path.write_bytes(key.to_bytes())
    key_path.chmod(0o600)
    out: dict[str, Any] = {}

    print("build time", flush=True)
    out["build_time"] = [
        _build_time(key, args.build_refs, processes, args.repeats) for processes in (1, 2)
    ]

    print("builds and sizes", flush=True)
    builds: list[dict[str, Any]] = []
    files: dict[tuple[str, int], Path] = {}
    sizes = args.sizes
    plan = [("md5", n, False) for n in sizes] + [("pdq", sizes[0], False)]
    plan += [("pdq", n, True) for n in sizes]
    for signal, count, random in plan:
        path = tmp / f"{signal}-{count}-{'random' if random else 'real'}.idx"
        flags = ["--random"] if random else []
        result = _run_child(
            "build", "--key", str(key_path), "--signal", signal, "--count", str(count),
            "--out", str(path), "--processes", "1", *flags,
        )  # fmt: skip
        result.update(signal=signal, references=count, random_tags=random)
        result["bytes_per_reference"] = result["size"] / count
        result["peak_multiple_of_file"] = result["peak_over_before"] / result["size"]
        builds.append(result)
        print(f"  {signal} {count} {'random' if random else 'real'}: {result}", flush=True)
        if signal == "md5" or random:
            files[(signal, count)] = path
    out["builds"] = builds

    print("lookup memory", flush=True)
    lookups = []
    for count in sizes:
        result = _run_child(
            "lookup", "--path", str(files[("pdq", count)]), "--uploads",
            str(args.lookup_uploads), "--batches", str(args.lookup_batches),
        )  # fmt: skip
        result["references"] = count
        lookups.append(result)
        print(f"  pdq {count}: anon {result['anon_now'] / MB:.1f} MB", flush=True)
    out["lookups"] = lookups

    print("online cost", flush=True)
    online = []
    for signal, uploads in (("pdq", args.pdq_uploads), ("md5", args.md5_uploads)):
        for count in sizes:
            row: dict[str, Any] = dict(_online(key, files[(signal, count)], signal, uploads))
            row.update(signal=signal, references=count)
            online.append(row)
            print(f"  {row}", flush=True)
    out["online"] = online

    print("deltas", flush=True)
    deltas = []
    for signal in ("pdq", "md5"):
        base = files[(signal, sizes[-1])]
        for count in args.delta_sizes:
            path = tmp / f"{signal}-delta-{count}.idx"
            flags = ["--random"] if signal == "pdq" else []
            result = _run_child(
                "build", "--key", str(key_path), "--signal", signal, "--count", str(count),
                "--out", str(path), "--processes", "2", "--base", str(base),
                "--prefix", "d", *flags,
            )  # fmt: skip
            deltas.append(
                {
                    "signal": signal,
                    "references": count,
                    "size": result["size"],
                    "random_tags": signal == "pdq",
                    "seconds": result["seconds"],
                }
            )
    out["deltas"] = deltas
    return out


def _project(measured: dict[str, Any]) -> dict[str, Any]:
    projection: dict[str, Any] = {"sizes": {}, "online": {}, "build": {}}
    for signal in ("pdq", "md5"):
        rows = [
            b
            for b in measured["builds"]
            if b["signal"] == signal and (signal == "md5" or b["random_tags"])
        ]
        a, b = _fit_linear([r["references"] for r in rows], [r["size"] for r in rows])
        projection["sizes"][signal] = {
            "model": "bytes = a + b * N",
            "a": a,
            "b": b,
            "projected": {str(n): a + b * n for n in PROJECTED},
        }
        for side in ("client", "server"):
            points = [o for o in measured["online"] if o["signal"] == signal]
            c0, c1 = _fit_linear(
                [float(np.log10(p["references"])) for p in points],
                [p[f"{side}_cpu_ms_per_upload"] for p in points],
            )
            model = "ms per upload = c0 + c1 * log10(N)"
            if c1 < 0:
                # No growth measured (the noise exceeds the binary search's log N): the
                # projection is the largest measured value, held constant.
                c0, c1 = max(p[f"{side}_cpu_ms_per_upload"] for p in points), 0.0
                model = "ms per upload = max measured (no growth with N measured)"
            projection["online"][f"{signal} {side}"] = {
                "model": model,
                "c0": c0,
                "c1": c1,
                "projected": {str(n): c0 + c1 * np.log10(n) for n in PROJECTED},
            }
    one = next(t for t in measured["build_time"] if t["processes"] == 1)
    seconds = one["core_us_per_ref_band"] / 1e6
    bands = _banding("pdq").count
    projection["build"] = {
        "model": "core-seconds = N * L * (1-process CPU seconds per (reference, band))",
        "seconds_per_ref_band": seconds,
        "bands": bands,
        "projected_core_hours": {str(n): n * bands * seconds / 3600 for n in PROJECTED},
    }
    return projection


def _markdown(result: dict[str, Any]) -> str:
    m, p = result["measured"], result["projected"]
    lines = [
        "# Scaling: build time, index bytes, memory, online cost, deltas (issue 13)",
        "",
        f"One run on {result['machine']} (shared with other jobs: times are noisy). "
        "PDQ indexes at 10^4 and 10^5 references are built by the **random-tag path** "
        "(the real build with the OPRF outputs replaced by random tags and pads: same "
        "sizes, same lookup work and memory; see the module docstring); every MD5 index "
        "and the PDQ build-time rows are real RFC 9497 builds. Projections are labelled.",
        "",
        "## Build time per (reference, band), real PDQ builds",
        "",
        "Wall clock on a machine other jobs share says little. CPU time is the building",
        "process's: on 1 process the whole cost in core-seconds (what the model uses); on 2,",
        "the building process's share only (the worker is the fork server's child).",
        "",
        "| processes | references | evaluations | wall s | wall us per (reference, band) "
        "| CPU s (building process) | its core-us per (reference, band) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in m["build_time"]:
        lines.append(
            f"| {t['processes']} | {t['references']} | {t['evaluations']} | "
            f"{t['wall_s']:.2f} | {t['us_per_ref_band_wall']:.1f} | {t['cpu_s']:.2f} | "
            f"{t['core_us_per_ref_band']:.1f} |"
        )
    lines += [
        "",
        "## Index size and build peak memory (1 process, child per build)",
        "",
        "| signal | N | tags | file MB | bytes per reference | build s | peak - before MB "
        "| peak / file |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for b in m["builds"]:
        lines.append(
            f"| {b['signal']} | {b['references']:,} | {'random' if b['random_tags'] else 'real'} "
            f"| {b['size'] / MB:.2f} | {b['bytes_per_reference']:.1f} | {b['seconds']:.1f} "
            f"| {b['peak_over_before'] / MB:.1f} | {b['peak_multiple_of_file']:.2f} |"
        )
    lines += [
        "",
        "## Lookup memory, PDQ index memory-mapped (child process, verified open)",
        "",
        f"Batches of {result['args']['lookup_uploads']} uploads x "
        f"{result['args']['lookup_batches']}. Anonymous = what the process holds beyond the "
        "map (interpreter, numpy, the batch); the peak bound is VmHWM - RssFile at the end. "
        "Target: at most 200 MB beyond the map at 10^5.",
        "",
        "| N | file MB | RssFile MB | anonymous after imports MB | anonymous after open MB "
        "| anonymous after lookups MB | peak bound beyond the map MB | lookup us per upload |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for look in m["lookups"]:
        st = look["stages"]
        last = st[f"batch {result['args']['lookup_batches']}"]
        lines.append(
            f"| {look['references']:,} | {look['file_size'] / MB:.1f} | "
            f"{last['RssFile'] / MB:.1f} | {st['imported']['RssAnon'] / MB:.1f} | "
            f"{st['opened']['RssAnon'] / MB:.1f} | {look['anon_now'] / MB:.1f} | "
            f"{look['anon_peak_bound'] / MB:.1f} | {look['lookup_us_per_upload']:.0f} |"
        )
    lines += [
        "",
        "## Online cost per upload (in-process session pair, CPU time per side)",
        "",
        "| signal | N | uploads | platform CPU ms/upload | clearinghouse CPU ms/upload "
        "| elements/upload | bytes up/upload | bytes down/upload |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in m["online"]:
        lines.append(
            f"| {o['signal']} | {o['references']:,} | {o['uploads']} | "
            f"{o['client_cpu_ms_per_upload']:.3f} | {o['server_cpu_ms_per_upload']:.3f} | "
            f"{o['elements_per_upload']:.1f} | {o['bytes_up_per_upload']:.0f} | "
            f"{o['bytes_down_per_upload']:.0f} |"
        )
    lines += [
        "",
        "## Deltas (against the 10^5 index)",
        "",
        "| signal | new references | tags | delta bytes | bytes per reference |",
        "|---|---:|---|---:|---:|",
    ]
    for d in m["deltas"]:
        lines.append(
            f"| {d['signal']} | {d['references']:,} | {'random' if d['random_tags'] else 'real'} "
            f"| {d['size']:,} | {d['size'] / d['references']:.1f} |"
        )
    lines += ["", "## PROJECTIONS (fitted models, not measurements)", ""]
    for signal, s in p["sizes"].items():
        proj = ", ".join(f"N={int(n):,}: {v / 1e9:.2f} GB" for n, v in s["projected"].items())
        lines.append(
            f"- {signal} index bytes = {s['a']:.0f} + {s['b']:.2f} * N (least squares over "
            f"the measured N) -> {proj}"
        )
    for name, o in p["online"].items():
        proj = ", ".join(f"N={int(n):,}: {v:.3f} ms" for n, v in o["projected"].items())
        lines.append(
            f"- {name} CPU per upload = {o['c0']:.3f} + {o['c1']:.4f} * log10(N) ms "
            f"({o['model']}) -> {proj}"
        )
    build = p["build"]
    proj = ", ".join(
        f"N={int(n):,}: {v:.1f} core-hours" for n, v in build["projected_core_hours"].items()
    )
    lines.append(
        f"- PDQ full build = N * {build['bands']} * {build['seconds_per_ref_band'] * 1e6:.1f} us "
        f"(1-process CPU figure) -> {proj}"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_scale")
    parser.add_argument("--child", choices=("build", "lookup"))
    parser.add_argument("--render", action="store_true", help="rewrite scale.md from scale.json")
    parser.add_argument("--key")
    parser.add_argument("--signal")
    parser.add_argument("--count", type=int)
    parser.add_argument("--out")
    parser.add_argument("--base")
    parser.add_argument("--prefix", default="r")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--random", action="store_true")
    parser.add_argument("--stream", action="store_true", help="child: build_index_file")
    parser.add_argument("--path")
    parser.add_argument("--uploads", type=int)
    parser.add_argument("--batches", type=int)
    parser.add_argument("--build-refs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--lookup-uploads", type=int, default=256)
    parser.add_argument("--lookup-batches", type=int, default=4)
    parser.add_argument("--pdq-uploads", type=int, default=32)
    parser.add_argument("--md5-uploads", type=int, default=4096)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--delta-sizes", type=int, nargs="+", default=[1_000, 10_000])
    args = parser.parse_args(argv)
    if args.child == "build":
        json.dump(_child_build(args), sys.stdout)
        return 0
    if args.child == "lookup":
        json.dump(_child_lookup(args), sys.stdout)
        return 0
    if args.render:
        # Rewrite scale.md from scale.json (after a change to the report's wording only).
        text = _markdown(json.loads((RESULTS / "scale.json").read_text()))
        (RESULTS / "scale.md").write_text(text)
        print(text)
        return 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        measured = _measure(args, Path(tmp))
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "args": {
            k: getattr(args, k)
            for k in (
                "build_refs",
                "repeats",
                "lookup_uploads",
                "lookup_batches",
                "pdq_uploads",
                "md5_uploads",
                "sizes",
                "delta_sizes",
            )
        },
        "seconds": time.perf_counter() - started,
        "measured": measured,
        "projected": _project(measured),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    text = _markdown(result)
    (RESULTS / "scale.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
