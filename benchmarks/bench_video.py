"""Benchmark: vPDQ video hashing, frames per second (decode + RGB + PDQ).

What is measured
----------------
**Ours** is :func:`blindmatch.fingerprint.video.hash_video` with every frame hashed
(``seconds_per_hash=0``): PyAV decode, the pinned swscale YUV->RGB conversion, float32
luma, our PDQ core. The **peer** in the same run is the same decode with PyAV's default
RGB conversion and the reference C++ PDQ core (``pdqhash.compute``), i.e. what a plain
Python vPDQ built on the reference binding does. The stages are also timed alone (decode
only; decode + RGB). At the default sampling (1 s per hash) every frame is still decoded,
so the rate in video seconds per second is reported too.

Inputs: a generated 640x360, 30 fps, 10 s H.264 clip (photo-like panning scene), and the
four vPDQ reference sample videos (``tests/vectors/vpdq``), for which the agreement with the
reference hashes is recorded as well (frames, qualities, bit-exact frames, max distance).

The machine is shared and noisy: each round runs ours and the peer back to back, the
clock is the process CPU time (decoder threads included), and the median over rounds of
the per-round ratio is the verdict; best times are reported too.

Run: ``python -m benchmarks video`` or ``python -m benchmarks.bench_video --rounds 5``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pdqhash

from blindmatch.fingerprint import pdq
from blindmatch.fingerprint.types import PdqHash
from blindmatch.fingerprint.video import frame_to_rgb, hash_video
from blindmatch.samples import photo_like, write_video

__all__ = ["main"]

RESULTS = Path(__file__).parent / "results"
VECTORS = Path(__file__).parent.parent / "tests" / "vectors" / "vpdq"
NAME = "video"
SIZE = (640, 360)
FPS = 30
SECONDS = 10


def make_clip(path: Path) -> Path:
    """The generated 640x360 H.264 clip: a camera panning over a photo-like scene."""
    width, height = SIZE
    rng = np.random.default_rng(2024)
    scene = photo_like(rng, width * 2, height * 2, shapes=60)
    count = FPS * SECONDS
    frames = []
    for t in range(count):
        y, x = t * height // count, t * width // count
        frames.append(np.ascontiguousarray(scene[y : y + height, x : x + width]))
    write_video(path, frames, FPS, codec="libx264", options={"crf": "23", "preset": "veryfast"})
    return path


def _decode_only(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _decode_rgb(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for frame in container.decode(video=0) if frame_to_rgb(frame).size)


def _ours(path: Path) -> int:
    return len(hash_video(path, 0).frames)


def _ours_sampled(path: Path) -> int:
    hash_video(path, 1.0)
    return _frames_of(path)


def _peer(path: Path) -> int:
    count = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            pdqhash.compute(frame.to_ndarray(format="rgb24"))
            count += 1
    return count


_FRAMES: dict[Path, int] = {}


def _frames_of(path: Path) -> int:
    if path not in _FRAMES:
        _FRAMES[path] = _decode_only(path)
    return _FRAMES[path]


def _cpu(func: Callable[[Path], int], path: Path) -> tuple[float, int]:
    start = time.process_time()
    frames = func(path)
    return time.process_time() - start, frames


def _measure(path: Path, rounds: int) -> dict[str, Any]:
    stages: dict[str, Callable[[Path], int]] = {
        "decode": _decode_only,
        "decode_rgb": _decode_rgb,
        "ours": _ours,
        "ours_sampled_1s": _ours_sampled,
        "peer": _peer,
    }
    times: dict[str, list[float]] = {name: [] for name in stages}
    frames = _frames_of(path)
    for _ in range(rounds):
        for name, func in stages.items():
            seconds, counted = _cpu(func, path)
            if counted != frames:
                raise AssertionError(f"{name} saw {counted} frames, expected {frames}")
            times[name].append(seconds)
    ratios = [p / o for p, o in zip(times["peer"], times["ours"], strict=True)]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        fps = float(stream.average_rate or FPS)
    out: dict[str, Any] = {
        "file": path.name,
        "frames": frames,
        "size": [width, height],
        "rounds": rounds,
    }
    for name, values in times.items():
        out[f"{name}_fps"] = frames / statistics.median(values)
        out[f"{name}_fps_best"] = frames / min(values)
    out["ours_sampled_1s_video_seconds_per_s"] = out["ours_sampled_1s_fps"] / fps
    out["ratio_ours_vs_peer_median"] = statistics.median(ratios)
    return out


def _agreement(path: Path) -> dict[str, Any]:
    """Our every-frame fingerprint against the reference output beside the video."""
    rows = [line.split(",") for line in path.with_suffix(".txt").read_text().splitlines()]
    ours = hash_video(path, 0).frames
    distances = [f.pdq.distance(PdqHash.from_hex(r[2])) for f, r in zip(ours, rows, strict=True)]
    return {
        "frames": len(rows),
        "frames_ours": len(ours),
        "frame_numbers_equal": [f.frame_number for f in ours] == [int(r[0]) for r in rows],
        "timestamps_equal": [f"{f.timestamp:.3f}" for f in ours] == [r[3] for r in rows],
        "quality_mismatches": sum(f.quality != int(r[1]) for f, r in zip(ours, rows, strict=True)),
        "bit_exact_frames": sum(d == 0 for d in distances),
        "max_distance": max(distances),
        "mean_distance": statistics.fmean(distances),
    }


def run(rounds: int) -> dict[str, Any]:
    """All measurements, as the JSON written to ``benchmarks/results``."""
    start = time.perf_counter()
    pdq.pdq_from_rgb(np.zeros((64, 64, 3), dtype=np.uint8))  # load the PDQ kernels first
    warmup_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip-640x360.mp4")
        generated = _measure(clip, rounds)
    vectors = {}
    for path in sorted(VECTORS.glob("*.mp4")):
        entry = _measure(path, max(1, rounds // 2))
        entry["agreement"] = _agreement(path)
        vectors[path.stem] = entry
    return {
        "benchmark": NAME,
        "pdq_backend": pdq.pdq_backend(),
        "pdq_first_call_s": warmup_s,
        "generated_640x360": generated,
        "reference_vectors": vectors,
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pyav": av.__version__,
            "ffmpeg_libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
            "pdqhash": getattr(pdqhash, "__version__", "unknown"),
            "platform": platform.platform(),
        },
        "clock": "time.process_time (CPU time of this process, decoder threads included)",
    }


def markdown(result: dict[str, Any]) -> str:
    """The results as markdown tables."""
    lines = [
        "# vPDQ video hashing: frames per second (decode + RGB + PDQ)",
        "",
        "Process CPU time, median over rounds (best in parentheses). *Ours*: "
        "`hash_video(path, 0)` (pinned swscale conversion, float32 luma, our PDQ core, "
        f"backend **{result['pdq_backend']}**). *Peer*: same PyAV decode, PyAV's default "
        "RGB conversion, the reference C++ core `pdqhash.compute`. *Sampled 1 s*: "
        "`hash_video(path)` at the default sampling, every frame still decoded.",
        "",
        "| video | size | frames | decode only | decode + RGB | ours | peer | ours / peer "
        "| sampled 1 s (frames/s; video s/s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    entries = [("generated 640x360 H.264", result["generated_640x360"])]
    entries += [(name, entry) for name, entry in result["reference_vectors"].items()]
    for name, e in entries:
        lines.append(
            f"| {name} | {e['size'][0]}x{e['size'][1]} | {e['frames']} "
            f"| {e['decode_fps']:.0f} ({e['decode_fps_best']:.0f}) "
            f"| {e['decode_rgb_fps']:.0f} ({e['decode_rgb_fps_best']:.0f}) "
            f"| {e['ours_fps']:.1f} ({e['ours_fps_best']:.1f}) "
            f"| {e['peer_fps']:.1f} ({e['peer_fps_best']:.1f}) "
            f"| {e['ratio_ours_vs_peer_median']:.2f}x "
            f"| {e['ours_sampled_1s_fps']:.0f}; {e['ours_sampled_1s_video_seconds_per_s']:.1f} |"
        )
    lines += [
        "",
        "## Agreement with the vPDQ reference hashes (every frame hashed)",
        "",
        "| video | frames | frame numbers | timestamps | quality mismatches | bit-exact frames "
        "| max distance | mean distance |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    for name, entry in result["reference_vectors"].items():
        a = entry["agreement"]
        lines.append(
            f"| {name} | {a['frames']} | {'equal' if a['frame_numbers_equal'] else 'DIFFER'} "
            f"| {'equal' if a['timestamps_equal'] else 'DIFFER'} | {a['quality_mismatches']} "
            f"| {a['bit_exact_frames']}/{a['frames']} | {a['max_distance']} "
            f"| {a['mean_distance']:.2f} |"
        )
    machine = result["machine"]
    lines += [
        "",
        f"PDQ kernels' first call in the process: {result['pdq_first_call_s']:.2f} s. "
        f"Python {machine['python']}, numpy {machine['numpy']}, PyAV {machine['pyav']} "
        f"(libavcodec {machine['ffmpeg_libavcodec']}), pdqhash {machine['pdqhash']}, "
        f"{machine['platform']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``benchmarks/results/video.{json,md}``."""
    parser = argparse.ArgumentParser(prog="bench_video", description="vPDQ frames per second")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (default 3)")
    args = parser.parse_args(argv)
    result = run(max(1, args.rounds))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    text = markdown(result)
    (RESULTS / f"{NAME}.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
