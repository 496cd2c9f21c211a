"""Benchmark (b): file-to-hash pipelines, images per second per core, and the fast policy's cost.

What is measured
----------------
Generated 1024x768 photo-like JPEGs (smooth colour fields at four scales, hard-edged shapes,
a light blur and sensor-like noise; quality 90; deterministic seeds) are written to a temp
directory. Each pipeline goes from the file path to a hash:

========================  ==================================================================
pipeline                  steps
========================  ==================================================================
ours default              ``load_rgb(path)`` (Pillow, EXIF transpose, RGB, full size) ->
                          ``pdq_from_rgb``
ours fast                 ``load_rgb(path, "fast")`` (JPEG draft, <= 512 px) -> ``pdq_from_rgb``
reference (pdqhash)       ``Image.open`` -> ``exif_transpose`` -> ``convert("RGB")`` ->
                          ``np.asarray`` -> ``pdqhash.compute`` (the reference C++ core)
imagehash.phash           ``Image.open`` -> ``imagehash.phash`` (64-bit DCT hash)
========================  ==================================================================

Every round runs every pipeline over all images back to back, timed with the process CPU
clock (``time.process_time``: time spent descheduled on this shared machine does not count;
all threads of the process do, so the figure is per core). One warm-up round first.
Reported: images/s from the best round and from the median round; the verdict uses the
median over rounds of the per-round ratio fast/reference (the two are timed moments apart,
so load from other processes hits both alike).

Deviation: PDQ Hamming distance between the ``fast`` and ``default`` hashes of the same
file, mean and max, over the generated JPEGs and over the 43 reference vector images.

Targets (issue 2): fast >= 5x the reference pipeline; mean fast-vs-default distance <= 8.

Run: ``python -m benchmarks fingerprint_pipeline`` or
``python -m benchmarks.bench_fingerprint_pipeline --images 24 --rounds 7``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
import pdqhash
import PIL
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from blindmatch.fingerprint.frontend import FAST_MAX_SIDE, load_rgb
from blindmatch.fingerprint.pdq import pdq_backend, pdq_from_rgb

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
VECTOR_IMAGES = Path(__file__).parent.parent / "tests" / "vectors" / "pdq" / "images"
SPEEDUP_TARGET = 5.0
DEVIATION_TARGET = 8.0
WIDTH, HEIGHT = 1024, 768


def photo_like_jpeg(seed: int, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A deterministic photo-like JPEG: multi-scale colour noise, shapes, blur, grain."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((height, width, 3), np.float32)
    for cells, amplitude in ((4, 90.0), (12, 50.0), (40, 25.0), (160, 10.0)):
        grid = rng.normal(0.0, 1.0, (max(2, cells * height // width), cells, 3))
        for channel in range(3):
            layer = Image.fromarray(grid[:, :, channel].astype(np.float32))
            layer = layer.resize((width, height), Image.Resampling.BICUBIC)
            canvas[:, :, channel] += amplitude * np.asarray(layer)
    canvas += 128.0 + rng.normal(0.0, 40.0, 3).astype(np.float32)
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1 = x0 + int(rng.integers(20, width // 3))
        y1 = y0 + int(rng.integers(20, height // 3))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=fill)
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    grain = rng.normal(0.0, 4.0, (height, width, 3))
    pixels = np.clip(np.asarray(image, np.float32) + grain, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _ours_default(path: Path) -> object:
    return pdq_from_rgb(load_rgb(path))


def _ours_fast(path: Path) -> object:
    return pdq_from_rgb(load_rgb(path, "fast"))


def _reference(path: Path) -> object:
    with Image.open(path) as image:
        rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    return pdqhash.compute(rgb)


def _phash(path: Path) -> object:
    with Image.open(path) as image:
        return imagehash.phash(image)


PIPELINES: dict[str, Callable[[Path], object]] = {
    "ours default": _ours_default,
    "ours fast": _ours_fast,
    "reference (pdqhash + Pillow)": _reference,
    "imagehash.phash": _phash,
}
REFERENCE = "reference (pdqhash + Pillow)"


def _time_round(func: Callable[[Path], object], paths: list[Path]) -> float:
    start = time.process_time()
    for path in paths:
        func(path)
    return time.process_time() - start


def _deviation(paths: list[Path]) -> dict[str, float | int]:
    distances = []
    for path in paths:
        default = pdq_from_rgb(load_rgb(path)).hash
        fast = pdq_from_rgb(load_rgb(path, "fast")).hash
        distances.append(default.distance(fast))
    return {
        "images": len(distances),
        "mean": round(statistics.fmean(distances), 2),
        "max": max(distances),
        "median": statistics.median(distances),
    }


def _markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [
        "# File-to-hash pipelines (benchmark b)",
        "",
        f"{result['images']} generated {WIDTH}x{HEIGHT} photo-like JPEGs (quality 90), "
        f"{result['rounds']} rounds; process CPU time (one core); Python {env['python']}, "
        f"numpy {env['numpy']}, Pillow {env['pillow']}, PDQ backend `{env['pdq_backend']}`, "
        f"{env['cpus']} CPUs (1-min load average {env['load_average_1min_at_end']} at the end: "
        "the machine is shared). Fast policy: JPEG draft + longer side <= "
        f"{FAST_MAX_SIDE} px.",
        "",
        "| pipeline | ms/image (best) | images/s/core (best) | images/s/core (median) "
        "| vs reference (median of rounds) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in result["pipelines"].items():
        lines.append(
            f"| {name} | {row['ms_per_image_best']:.2f} | {row['images_per_s_best']:.1f} "
            f"| {row['images_per_s_median']:.1f} | {row['speedup_vs_reference_median']:.2f}x |"
        )
    verdict = result["verdict"]
    lines += [
        "",
        "Fast vs default PDQ distance (bits of 256):",
        "",
        "| images | n | mean | median | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, dev in result["fast_deviation"].items():
        lines.append(
            f"| {name} | {dev['images']} | {dev['mean']:.2f} | {dev['median']} | {dev['max']} |"
        )
    lines += [
        "",
        f"Targets: fast >= {SPEEDUP_TARGET:g}x reference -> "
        f"{verdict['fast_speedup_median']:.2f}x "
        f"({'met' if verdict['speedup_met'] else 'NOT met'}); mean deviation <= "
        f"{DEVIATION_TARGET:g} bits -> {verdict['mean_deviation_generated']:.2f} on generated, "
        f"{verdict['mean_deviation_vectors']:.2f} on vectors "
        f"({'met' if verdict['deviation_met'] else 'NOT met'}).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``results/fingerprint_pipeline.{json,md}``.

    Args:
        argv: Command-line arguments (``--images``, ``--rounds``, ``--out``).

    Returns:
        0 when both targets are met, 1 otherwise.
    """
    parser = argparse.ArgumentParser(prog="bench_fingerprint_pipeline")
    parser.add_argument("--images", type=int, default=24, help="generated JPEGs (default 24)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        paths = []
        for seed in range(args.images):
            path = Path(tmp) / f"photo{seed:03d}.jpg"
            path.write_bytes(photo_like_jpeg(seed))
            paths.append(path)
        for func in PIPELINES.values():  # warm-up: caches, the PDQ backend
            _time_round(func, paths[:2])
        rounds: dict[str, list[float]] = {name: [] for name in PIPELINES}
        for _ in range(args.rounds):
            for name, func in PIPELINES.items():
                rounds[name].append(_time_round(func, paths))
        deviation = {
            "generated JPEGs": _deviation(paths),
            "reference vectors": _deviation(sorted(VECTOR_IMAGES.iterdir())),
        }

    n = len(paths)
    pipelines: dict[str, dict[str, float]] = {}
    for name, times in rounds.items():
        ratios = [ref / t for ref, t in zip(rounds[REFERENCE], times, strict=True)]
        pipelines[name] = {
            "ms_per_image_best": 1000 * min(times) / n,
            "ms_per_image_median": 1000 * statistics.median(times) / n,
            "images_per_s_best": n / min(times),
            "images_per_s_median": n / statistics.median(times),
            "speedup_vs_reference_median": statistics.median(ratios),
            "speedup_vs_reference_best": min(rounds[REFERENCE]) / min(times),
        }
    fast_speedup = pipelines["ours fast"]["speedup_vs_reference_median"]
    verdict = {
        "fast_speedup_median": fast_speedup,
        "fast_speedup_best": pipelines["ours fast"]["speedup_vs_reference_best"],
        "speedup_met": fast_speedup >= SPEEDUP_TARGET,
        "mean_deviation_generated": deviation["generated JPEGs"]["mean"],
        "mean_deviation_vectors": deviation["reference vectors"]["mean"],
        "deviation_met": max(d["mean"] for d in deviation.values()) <= DEVIATION_TARGET,
    }
    result: dict[str, Any] = {
        "benchmark": "fingerprint_pipeline",
        "images": n,
        "size": [WIDTH, HEIGHT],
        "rounds": args.rounds,
        "clock": "time.process_time",
        "pipelines": pipelines,
        "fast_deviation": deviation,
        "targets": {"fast_speedup": SPEEDUP_TARGET, "mean_deviation_bits": DEVIATION_TARGET},
        "verdict": verdict,
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pillow": PIL.__version__,
            "pdq_backend": pdq_backend(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fingerprint_pipeline.json").write_text(
        json.dumps(result, indent=1) + "\n", encoding="utf-8"
    )
    markdown = _markdown(result)
    (args.out / "fingerprint_pipeline.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    return 0 if verdict["speedup_met"] and verdict["deviation_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
