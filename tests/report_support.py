"""Helpers of the reporting tests: media files, and `blindmatch report|status|withdraw`
run as the person runs them (a subprocess)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from blindmatch.samples import photo_like, write_video
from service_support import BLINDMATCH


def picture(path: Path, seed: int, *, flat: bool = False) -> Path:
    """A photo-like JPEG of its own (a distinct seed: distinct fingerprints), or a flat grey
    one (PDQ quality far below 50)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if flat:
        pixels = np.full((96, 128, 3), 128, dtype=np.uint8)
    else:
        pixels = photo_like(np.random.default_rng(seed), 160, 120)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)
    return path


def video(path: Path, seed: int) -> Path:
    """A 3-second 160x120 MP4 of a scene of its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    frames = [photo_like(rng, 160, 120) for _ in range(3)]
    write_video(path, (f for f in frames for _ in range(8)), 8)
    return path


def blindmatch(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``blindmatch ARGS`` and capture its output (never raises on the exit code)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BLINDMATCH_")}
    environ.update(env or {})
    return subprocess.run(
        [*BLINDMATCH, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
        check=False,
    )


def one_line(stderr: str) -> str:
    """The only line of ``stderr`` (asserts there is exactly one, and no traceback)."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]
