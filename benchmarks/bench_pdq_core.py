"""Benchmark: the PDQ core (RGB array -> hash + quality) against the reference C++ core.

What is measured
----------------
**Ours** is :func:`blindmatch.fingerprint.pdq.pdq_from_rgb` (and the dihedral form, and
the pure-numpy fallback backend); the **reference** is ``pdqhash.compute`` (the C++ core
behind a Cython binding, which also computes the luma in numpy: the same work as ours,
RGB array in, hash out). Both run on the same uint8 arrays, in one process, one core.
No file decoding is timed: that is the front end's benchmark.

Inputs are deterministic 1024x768 images with natural-looking content (smooth shading,
soft blobs, hard-edged shapes, mild sensor noise), plus a batch of mixed sizes from 64x64
to 12 megapixels. Every timed hash is checked equal to the reference's first.

The machine is shared and noisy, so every round times ours and the reference back to back
on every image with the process CPU clock (time spent descheduled does not count); the
verdict uses the median over rounds of the per-round ratio reference/ours. The best
(minimum) time per image is reported too. Target: ours >= 1.5x the reference's rate.

Run: ``python -m benchmarks pdq_core`` or ``python -m benchmarks.bench_pdq_core --rounds 15``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pdqhash

from blindmatch.fingerprint import _pdq_numpy, pdq
from blindmatch.fingerprint.types import PdqHash

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
NAME = "pdq_core"
TARGET = 1.5
MAIN_SHAPE = (768, 1024)
MIXED_SHAPES = [
    (64, 64),
    (256, 256),
    (480, 640),
    (723, 1152),
    (1004, 1600),
    (1080, 1920),
    (1500, 2000),
    (3024, 4032),
]

RGB = npt.NDArray[np.uint8]


def natural_image(rows: int, cols: int, seed: int) -> RGB:
    """A deterministic photo-like image: shading, soft blobs, hard shapes and fine noise."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, rows, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, cols, dtype=np.float32)[None, :]
    image = np.zeros((rows, cols, 3), dtype=np.float32)
    base = rng.uniform(60, 190, 3).astype(np.float32)
    image += base
    for _ in range(4):  # smooth shading
        fy, fx, phase = rng.uniform(0.5, 4.0, 3)
        amplitude = rng.uniform(10, 40, 3).astype(np.float32)
        wave = np.sin(np.float32(fy * 6.28) * y + np.float32(fx * 6.28) * x + np.float32(phase))
        image += wave[:, :, None] * amplitude
    for _ in range(6):  # soft blobs
        cy, cx, radius = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / np.float32(2 * radius**2))
        image += blob[:, :, None] * rng.uniform(-60, 60, 3).astype(np.float32)
    for _ in range(5):  # hard-edged rectangles
        top, left = int(rng.integers(0, rows)), int(rng.integers(0, cols))
        bottom = top + int(rng.integers(rows // 10 + 1, rows // 3 + 2))
        right = left + int(rng.integers(cols // 10 + 1, cols // 3 + 2))
        image[top:bottom, left:right] = rng.uniform(0, 255, 3).astype(np.float32)
    image += rng.normal(0, 3, (rows, cols, 3)).astype(np.float32)  # sensor noise
    result: RGB = np.clip(image, 0, 255).astype(np.uint8)
    return result


def _reference_hash(rgb: RGB) -> tuple[PdqHash, int]:
    bits, quality = pdqhash.compute(rgb)
    return PdqHash(np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()), int(quality)


def _ours_numpy(rgb: RGB) -> object:
    return pdq._rgb_fingerprints(rgb, _pdq_numpy, dihedral=False)


def _time_once(func: Callable[[RGB], object], rgb: RGB) -> float:
    start = time.process_time()
    func(rgb)
    return time.process_time() - start


def _compare(
    ours: Callable[[RGB], object],
    reference: Callable[[RGB], object],
    images: Sequence[RGB],
    rounds: int,
) -> dict[str, Any]:
    """Time ``ours`` and ``reference`` back to back on every image, ``rounds`` times.

    Returns per-image seconds (best and median over rounds, summed over the images), the
    rates in images/second, and the median over rounds of the per-round ratio.
    """
    ours_rounds: list[float] = []
    ref_rounds: list[float] = []
    for _ in range(rounds):
        ours_total = ref_total = 0.0
        for rgb in images:
            ours_total += _time_once(ours, rgb)
            ref_total += _time_once(reference, rgb)
        ours_rounds.append(ours_total)
        ref_rounds.append(ref_total)
    count = len(images)
    ratios = [r / o for r, o in zip(ref_rounds, ours_rounds, strict=True)]
    return {
        "images": count,
        "rounds": rounds,
        "ours_ms_best": 1e3 * min(ours_rounds) / count,
        "ours_ms_median": 1e3 * statistics.median(ours_rounds) / count,
        "reference_ms_best": 1e3 * min(ref_rounds) / count,
        "reference_ms_median": 1e3 * statistics.median(ref_rounds) / count,
        "ours_images_per_s": count / statistics.median(ours_rounds),
        "reference_images_per_s": count / statistics.median(ref_rounds),
        "ratio_median": statistics.median(ratios),
        "ratio_best": min(ref_rounds) / min(ours_rounds),
    }


def run(rounds: int, images: int, mixed_rounds: int) -> dict[str, Any]:
    """All measurements, as the JSON written to ``benchmarks/results``."""
    main_images = [natural_image(*MAIN_SHAPE, seed) for seed in range(images)]
    mixed_images = [natural_image(r, c, 100 + i) for i, (r, c) in enumerate(MIXED_SHAPES)]

    # First call in this process: loads the backend (the C extension: about a millisecond).
    start = time.perf_counter()
    pdq.pdq_from_rgb(main_images[0])
    first_call_s = time.perf_counter() - start

    for rgb in [*main_images, *mixed_images]:  # correctness guard; also warms every path
        fingerprint = pdq.pdq_from_rgb(rgb)
        if (fingerprint.hash, fingerprint.quality) != _reference_hash(rgb):
            raise AssertionError(f"PDQ differs from the reference on a {rgb.shape} image")

    single = _compare(pdq.pdq_from_rgb, pdqhash.compute, main_images, rounds)
    dihedral = _compare(pdq.pdq_dihedral_from_rgb, pdqhash.compute_dihedral, main_images, rounds)
    fallback = _compare(_ours_numpy, pdqhash.compute, main_images, max(3, rounds // 3))
    mixed = _compare(pdq.pdq_from_rgb, pdqhash.compute, mixed_images, mixed_rounds)
    return {
        "benchmark": NAME,
        "target_ratio": TARGET,
        "backend": pdq.pdq_backend(),
        "first_call_s": first_call_s,
        "main_shape": list(MAIN_SHAPE),
        "mixed_shapes": [list(s) for s in MIXED_SHAPES],
        "single_1024x768": single,
        "dihedral_1024x768": dihedral,
        "numpy_fallback_1024x768": fallback,
        "mixed_sizes": mixed,
        "meets_target": single["ratio_median"] >= TARGET,
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pdqhash": getattr(pdqhash, "__version__", "unknown"),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "clock": "time.process_time (CPU time of this process, one core)",
    }


def markdown(result: dict[str, Any]) -> str:
    """The results as a markdown table."""
    rows = [
        ("PDQ, 1024x768 (`pdq_from_rgb` vs `pdqhash.compute`)", result["single_1024x768"]),
        (
            "PDQ + 8 dihedral, 1024x768 (vs `pdqhash.compute_dihedral`)",
            result["dihedral_1024x768"],
        ),
        ("PDQ, mixed sizes 64x64 .. 4032x3024 (per image)", result["mixed_sizes"]),
        ("numpy fallback backend, 1024x768", result["numpy_fallback_1024x768"]),
    ]
    lines = [
        "# PDQ core: ours vs the reference C++ core (`pdqhash`)",
        "",
        f"Backend: **{result['backend']}**; one core, process CPU time; target: ours >= "
        f"{result['target_ratio']}x the reference's rate on 1024x768 "
        f"(**{'met' if result['meets_target'] else 'NOT met'}**). Ratio = median over "
        "rounds of the per-round ratio reference time / our time.",
        "",
        "| workload | ours (images/s) | reference (images/s) | ours ms (best / median) "
        "| reference ms (best / median) | ratio (median) | ratio (best) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['ours_images_per_s']:.1f} | {r['reference_images_per_s']:.1f} "
            f"| {r['ours_ms_best']:.2f} / {r['ours_ms_median']:.2f} "
            f"| {r['reference_ms_best']:.2f} / {r['reference_ms_median']:.2f} "
            f"| {r['ratio_median']:.2f}x | {r['ratio_best']:.2f}x |"
        )
    machine = result["machine"]
    lines += [
        "",
        f"First call in a process (loads the {result['backend']} backend): "
        f"{result['first_call_s']:.3f} s.",
        "",
        f"Python {machine['python']}, numpy {machine['numpy']}, "
        f"pdqhash {machine['pdqhash']}, {machine['platform']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write ``results/pdq_core.{json,md}``."""
    parser = argparse.ArgumentParser(prog="bench_pdq_core", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (default 9)")
    parser.add_argument("--images", type=int, default=6, help="1024x768 images (default 6)")
    parser.add_argument("--mixed-rounds", type=int, default=3, help="rounds of the mixed batch")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    result = run(args.rounds, args.images, args.mixed_rounds)
    table = markdown(result)
    print(table)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=1) + "\n", "utf-8")
        (RESULTS / f"{NAME}.md").write_text(table, "utf-8")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
