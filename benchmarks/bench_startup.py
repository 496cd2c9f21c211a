"""Benchmark: start-up, what a person hashing a few photos waits for, as whole processes.

What is measured
----------------
Each command runs as a fresh process (the installed ``blindmatch`` console script), the way
a person runs it; the time is the wall-clock time from start to exit, caches warm (one
untimed run of every command first). The CPU time of the child (user + system) is
reported beside it, since this machine is shared and a busy neighbour stretches the wall
time but not the CPU time.

==============================  ===============================================================
command                         what
==============================  ===============================================================
python -c pass                  the interpreter alone: the floor under every other line
blindmatch --help               parsing and help, nothing else
blindmatch hash one.jpg         one 1024x768 JPEG: MD5, SHA-256, PDQ, one JSON line
blindmatch hash --jobs 1 DIR    a folder of 40 such JPEGs, one process
reference DIR                   a script doing the least the same PDQ needs: Pillow decode,
                                EXIF transpose, RGB, ``pdqhash.compute`` (the reference C++
                                core), one hex line per file (no MD5/SHA-256: less work)
==============================  ===============================================================

The JPEGs are :func:`blindmatch.samples.photo_like` pictures (seeds 0..39, quality 90),
written to a temporary directory. Before timing, our PDQ hashes of the folder are checked
equal to the reference script's.

Every round runs every command once, in a rotated order; figures are medians over rounds,
and the folder verdict is the median over rounds of the per-round ratio reference/ours
(the two run moments apart, so load from other processes hits both alike).

Targets (issue 7): ``--help`` <= 0.25 s, one JPEG <= 0.5 s (medians of wall time), and the
folder at >= 1.5x the reference script's rate.

Run: ``python -m benchmarks startup`` or ``python -m benchmarks.bench_startup --rounds 15``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from blindmatch.samples import photo_like

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
NAME = "startup"
WIDTH, HEIGHT = 1024, 768
FOLDER_IMAGES = 40
HELP_TARGET_S = 0.25
ONE_TARGET_S = 0.5
FOLDER_TARGET = 1.5

REFERENCE_SCRIPT = """\
import os, sys
import numpy as np
import pdqhash
from PIL import Image, ImageOps
folder = sys.argv[1]
for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    with Image.open(path) as image:
        rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    bits, quality = pdqhash.compute(rgb)
    print(path, np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex(), quality)
"""
"""The reference pipeline of ``fingerprint_pipeline``, as a whole process over a folder."""


def _blindmatch() -> list[str]:
    """The installed console script beside this interpreter, else ``python -m blindmatch``."""
    script = Path(sys.executable).parent / "blindmatch"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "blindmatch"]


def _write_jpegs(folder: Path) -> list[Path]:
    paths = []
    for seed in range(FOLDER_IMAGES):
        path = folder / f"photo-{seed:02d}.jpg"
        pixels = photo_like(np.random.default_rng(seed), WIDTH, HEIGHT)
        Image.fromarray(pixels).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def _run(argv: list[str]) -> tuple[float, float, bytes]:
    """Wall seconds, child CPU seconds and stdout of one fresh process; it must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)  # noqa: S603
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:3]} exited with {done.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def _check_same_hashes(ours: bytes, reference: bytes) -> None:
    """Our JSON lines and the reference's hex lines give the same PDQ for every file."""
    mine = {}
    for line in ours.decode().splitlines():
        record = json.loads(line)
        mine[os.path.basename(record["path"])] = (record["pdq"], record["quality"])
    theirs = {}
    for line in reference.decode().splitlines():
        path, digest, quality = line.split()
        theirs[os.path.basename(path)] = (digest, int(quality))
    if mine != theirs or len(mine) != FOLDER_IMAGES:
        raise AssertionError("our PDQ hashes differ from the reference script's")


def _summary(walls: list[float], cpus: list[float]) -> dict[str, float]:
    return {
        "wall_s_median": statistics.median(walls),
        "wall_s_best": min(walls),
        "cpu_s_median": statistics.median(cpus),
    }


def run(rounds: int) -> dict[str, Any]:
    """All measurements, as the JSON written to ``benchmarks/results``."""
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        one = _write_jpegs(folder)[0]
        blindmatch = _blindmatch()
        commands: dict[str, list[str]] = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "blindmatch --help": [*blindmatch, "--help"],
            "blindmatch hash one.jpg": [*blindmatch, "hash", str(one)],
            f"blindmatch hash --jobs 1 DIR ({FOLDER_IMAGES} JPEGs)": [
                *blindmatch,
                "hash",
                "--jobs",
                "1",
                str(folder),
            ],
            f"reference DIR ({FOLDER_IMAGES} JPEGs)": [
                sys.executable,
                "-c",
                REFERENCE_SCRIPT,
                str(folder),
            ],
        }
        names = list(commands)
        folder_ours, folder_ref = names[3], names[4]
        # Warm-up (caches, .pyc files) and the correctness guard.
        outputs = {name: _run(argv)[2] for name, argv in commands.items()}
        _check_same_hashes(outputs[folder_ours], outputs[folder_ref])
        walls: dict[str, list[float]] = {name: [] for name in names}
        cpus: dict[str, list[float]] = {name: [] for name in names}
        for index in range(rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                wall, cpu, _ = _run(commands[name])
                walls[name].append(wall)
                cpus[name].append(cpu)
    ratios = [r / o for r, o in zip(walls[folder_ref], walls[folder_ours], strict=True)]
    cpu_ratios = [r / o for r, o in zip(cpus[folder_ref], cpus[folder_ours], strict=True)]
    measured = {name: _summary(walls[name], cpus[name]) for name in names}
    help_s = measured[names[1]]["wall_s_median"]
    one_s = measured[names[2]]["wall_s_median"]
    folder_ratio = statistics.median(ratios)
    return {
        "benchmark": NAME,
        "rounds": rounds,
        "images": FOLDER_IMAGES,
        "image_size": [WIDTH, HEIGHT],
        "commands": measured,
        "folder_ratio_wall_median": folder_ratio,
        "folder_ratio_cpu_median": statistics.median(cpu_ratios),
        "targets": {
            "help_s": HELP_TARGET_S,
            "one_jpeg_s": ONE_TARGET_S,
            "folder_ratio": FOLDER_TARGET,
        },
        "meets": {
            "help": help_s <= HELP_TARGET_S,
            "one_jpeg": one_s <= ONE_TARGET_S,
            "folder": folder_ratio >= FOLDER_TARGET,
        },
        "pdq_backend": _backend(),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "clock": "wall: time.perf_counter around subprocess.run; cpu: RUSAGE_CHILDREN delta",
    }


def _backend() -> str:
    from blindmatch.fingerprint.pdq import pdq_backend

    return pdq_backend()


def markdown(result: dict[str, Any]) -> str:
    """The results as a markdown table."""
    meets, targets = result["meets"], result["targets"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = [
        "# Start-up: whole processes, warm caches",
        "",
        f"Median of {result['rounds']} fresh processes per command (rotated order); "
        f"{result['images']} photo-like {result['image_size'][0]}x{result['image_size'][1]} "
        f"JPEGs; PDQ backend **{result['pdq_backend']}**.",
        "",
        "| command | wall s (median) | wall s (best) | CPU s (median) |",
        "|---|---:|---:|---:|",
    ]
    for name, r in result["commands"].items():
        lines.append(
            f"| `{name}` | {r['wall_s_median']:.3f} | {r['wall_s_best']:.3f} "
            f"| {r['cpu_s_median']:.3f} |"
        )
    lines += [
        "",
        f"- `--help` <= {targets['help_s']} s: **{verdict(meets['help'])}**",
        f"- one JPEG <= {targets['one_jpeg_s']} s: **{verdict(meets['one_jpeg'])}**",
        f"- folder, reference time / ours (median of per-round ratios) >= "
        f"{targets['folder_ratio']}x: **{result['folder_ratio_wall_median']:.2f}x** wall, "
        f"{result['folder_ratio_cpu_median']:.2f}x CPU: **{verdict(meets['folder'])}**",
        "",
        f"Python {result['machine']['python']}, {result['machine']['platform']}, "
        f"{result['machine']['cpus']} CPUs (shared).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write ``results/startup.{json,md}``."""
    parser = argparse.ArgumentParser(prog="bench_startup", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (default 9)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if shutil.which(_blindmatch()[0]) is None:
        print("the blindmatch command is not installed beside this interpreter")
        return 2
    result = run(args.rounds)
    table = markdown(result)
    print(table)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=1) + "\n", "utf-8")
        (RESULTS / f"{NAME}.md").write_text(table, "utf-8")
    return 0 if all(result["meets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
