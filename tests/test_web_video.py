"""Video frames in chromium against the Python vPDQ pipeline, on the same files: the page
hashes the frame at every whole second (video.js: a WebCodecs VideoFrame of the <video>
element, its YUV planes converted as vPDQ does in yuv.js, hashed with vPDQ's luma) and
``hash_video`` the frames ``n % int(fps) == 0``.

Bound (docs/web.md, "Video frames"): 6 bits per frame (2 measured), a fifth of the match
threshold; a video the browser cannot play (MPEG-4 Part 2) gets no frames, and still its
MD5 and SHA-256. Figures go to test-artifacts/web/video.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from blindmatch.fingerprint.types import PdqHash
from blindmatch.fingerprint.video import hash_video
from blindmatch.samples import make_sample_videos, photo_like, write_video
from web_harness import artifacts_dir, chromium, page_server, run_async

FRAME_BOUND = 6

HASH_FILES = """
const { hashFiles } = await import("/hashing.js");
const files = [];
for (const name of args[0]) {
  files.push(new File([await (await fetch("/_test/" + name)).blob()], name));
}
return await hashFiles(files);
"""


def _videos(directory: Path) -> list[str]:
    """The sample videos (H.264 320x240 at 24 fps, its MPEG-4 Part 2 re-encode, a 160x120
    copy, a trimmed copy) and panning HD (1280x720) H.264 videos at 25 and 30 fps."""
    names = [path.name for path in make_sample_videos(directory, 1, 5).paths()]
    rng = np.random.default_rng(3)
    for fps in (25, 30):
        base = photo_like(rng, 1280, 720)
        frames = [np.roll(base, i * 4, axis=1) for i in range(fps * 3)]
        write_video(directory / f"hd-{fps}fps.mp4", frames, fps)
        names.append(f"hd-{fps}fps.mp4")
    return names


@pytest.fixture(scope="module")
def hashed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    data = tmp_path_factory.mktemp("web-video-data")
    names = _videos(data)
    with page_server(data) as server, chromium(tmp_path_factory.mktemp("profile")) as driver:
        driver.get(server.url)
        outcomes = run_async(driver, HASH_FILES, names)
    return data, dict(zip(names, outcomes, strict=True))


def _frame_distances(path: Path, frames: list[dict[str, Any]]) -> list[dict[str, int]]:
    video = hash_video(path)
    period = max(1, int(video.fps))
    by_number = {frame.frame_number: frame for frame in video.frames}
    assert len(frames) == len(video.frames), "one frame per second on both sides"
    rows = []
    for frame in frames:
        want = by_number[frame["second"] * period]
        rows.append(
            {
                "second": frame["second"],
                "distance": PdqHash(bytes.fromhex(frame["pdq"])).distance(want.pdq),
                "quality_browser": frame["quality"],
                "quality_python": want.quality,
            }
        )
    return rows


def test_frames_close_to_python_vpdq(hashed: tuple[Path, dict[str, Any]]) -> None:
    data, outcomes = hashed
    report: dict[str, Any] = {}
    for name, outcome in outcomes.items():
        frames = outcome["result"]["frames"]
        if frames is None:
            continue
        report[name] = _frame_distances(data / name, frames)
    (artifacts_dir() / "video.json").write_text(json.dumps(report, indent=1) + "\n", "utf-8")
    assert set(report) == {n for n in outcomes if "reencoded" not in n}
    distances = [row["distance"] for rows in report.values() for row in rows]
    assert len(distances) >= 14
    assert max(distances) <= FRAME_BOUND, report
    qualities = [
        abs(row["quality_browser"] - row["quality_python"])
        for rows in report.values()
        for row in rows
    ]
    assert max(qualities) <= 2


def test_unplayable_video_still_gets_exact_fingerprints(
    hashed: tuple[Path, dict[str, Any]],
) -> None:
    """MPEG-4 Part 2 is not a codec chromium plays: no frames, the file's digests still."""
    data, outcomes = hashed
    (name,) = [n for n in outcomes if "reencoded" in n]
    result = outcomes[name]["result"]
    assert result["frames"] is None
    content = (data / name).read_bytes()
    assert result["md5"] == hashlib.md5(content).hexdigest()  # noqa: S324 - the MD5 signal
    assert result["sha256"] == hashlib.sha256(content).hexdigest()
