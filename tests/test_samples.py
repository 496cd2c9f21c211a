"""Synthetic sample media: what is written, the edits, the manifest, determinism."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageOps

from blindmatch.errors import InvalidArgument
from blindmatch.fingerprint.pdq import pdq_from_rgb
from blindmatch.samples import (
    CROP,
    EDITS,
    IMAGE_SIZES,
    SampleFile,
    SampleManifest,
    crop_box,
    make_sample_images,
    make_sample_videos,
    make_samples,
    photo_like,
    video_codec,
    write_video,
    yuv420p_from_rgb,
)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> SampleManifest:
    return make_sample_images(tmp_path_factory.mktemp("images"), 3, seed=11)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> SampleManifest:
    return make_sample_videos(tmp_path_factory.mktemp("videos"), 1, seed=11)


def _bytes(manifest: SampleManifest) -> list[bytes]:
    return [p.read_bytes() for p in manifest.paths()]


def test_image_manifest_shape(images: SampleManifest) -> None:
    assert len(images.files) == 3 * (1 + len(EDITS["image"]))
    assert len(images.originals()) == 3
    assert len(images.derived()) == 3 * len(EDITS["image"])
    originals = {f.path for f in images.originals()}
    for sample in images.derived():
        assert sample.derived_from in originals
        assert sample.edit in EDITS["image"]
        assert sample.kind == "image"
    assert all(p.is_file() for p in images.paths())


def test_originals_cycle_formats_and_sizes(images: SampleManifest) -> None:
    formats = []
    for i, sample in enumerate(images.originals()):
        with Image.open(sample.path) as image:
            formats.append(image.format)
            assert image.size == IMAGE_SIZES[i]
    assert formats == ["JPEG", "PNG", "WEBP"]


def _by_edit(manifest: SampleManifest, original: SampleFile) -> dict[str, Path]:
    return {f.edit: f.path for f in manifest.derived() if f.derived_from == original.path}


def test_edits_do_what_they_say(images: SampleManifest) -> None:
    png = images.originals()[1]  # lossless, so the edits can be checked pixel by pixel
    edits = _by_edit(images, png)
    with Image.open(png.path) as opened:
        original = opened.convert("RGB")
    with Image.open(edits["mirrored"]) as mirrored:
        assert np.array_equal(np.asarray(mirrored), np.asarray(ImageOps.mirror(original)))
    with Image.open(edits["resized"]) as resized:
        assert resized.size == (original.width * 3 // 5, original.height * 3 // 5)
    with Image.open(edits["brightened"]) as bright:
        assert np.asarray(bright).mean() > np.asarray(original).mean() + 5
    with Image.open(edits["cropped"]) as cropped:
        assert cropped.format == "PNG"
        assert cropped.size == (original.width - 10, original.height - 12)  # 480 x 640
        pixels = np.asarray(original)[6 : original.height - 6, 5 : original.width - 5]
        assert np.array_equal(np.asarray(cropped), pixels)
    with Image.open(edits["reencoded"]) as reencoded:
        assert reencoded.format == "JPEG"
        assert reencoded.size == original.size


def test_images_are_photo_like(images: SampleManifest) -> None:
    # PDQ trusts them (quality >= 50) and the re-encoded copy stays near its original.
    for sample in images.originals():
        with Image.open(sample.path) as image:
            fingerprint = pdq_from_rgb(np.asarray(image.convert("RGB")))
        assert fingerprint.quality >= 50
        with Image.open(_by_edit(images, sample)["reencoded"]) as copy:
            other = pdq_from_rgb(np.asarray(copy.convert("RGB")))
        assert fingerprint.hash.distance(other.hash) <= 31


def test_cropped_copies_keep_the_format_and_lose_a_border(images: SampleManifest) -> None:
    for sample in images.originals():
        with (
            Image.open(sample.path) as original,
            Image.open(_by_edit(images, sample)["cropped"]) as cropped,
        ):
            assert cropped.format == original.format
            width, height = original.size
            lost_x, lost_y = 1 - cropped.width / width, 1 - cropped.height / height
            assert 0.015 <= lost_x <= 0.025, sample.path.name
            assert 0.015 <= lost_y <= 0.025, sample.path.name


@pytest.mark.parametrize(
    ("size", "box"),
    [
        ((640, 480), (6, 5, 634, 475)),
        ((333, 500), (3, 5, 330, 495)),
        ((1, 1), (0, 0, 1, 1)),  # never empty
        ((60, 40), (1, 0, 59, 40)),  # 0.6 rounds up, 0.4 down
    ],
)
def test_crop_box(size: tuple[int, int], box: tuple[int, int, int, int]) -> None:
    assert crop_box(*size) == box
    assert CROP == (0.01, 0.01, 0.01, 0.01)  # a slight crop: a border trimmed


@pytest.mark.parametrize("size", [(0, 10), (10, 0), (-1, 5)])
def test_crop_box_refuses_an_empty_picture(size: tuple[int, int]) -> None:
    with pytest.raises(InvalidArgument, match="width and height must be >= 1"):
        crop_box(*size)


def test_same_seed_same_bytes_other_seed_other_bytes(
    images: SampleManifest, tmp_path: Path
) -> None:
    again = make_sample_images(tmp_path / "again", 3, seed=11)
    assert _bytes(again) == _bytes(images)
    assert [p.name for p in again.paths()] == [p.name for p in images.paths()]
    other = make_sample_images(tmp_path / "other", 3, seed=12)
    assert all(a != b for a, b in zip(_bytes(other), _bytes(images), strict=True))


def test_video_manifest_and_content(videos: SampleManifest) -> None:
    assert [f.edit for f in videos.files] == ["original", *EDITS["video"]]
    original = videos.files[0].path
    assert all(f.derived_from == original for f in videos.derived())
    expected = {
        "original": (video_codec(), 320, 240, 72),
        "reencoded": ("mpeg4", 320, 240, 72),
        "resized": (video_codec(), 160, 120, 72),
        "trimmed": (video_codec(), 320, 240, 36),
    }
    for sample in videos.files:
        with av.open(str(sample.path)) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
            codec = stream.codec_context.name
            got = (codec, stream.codec_context.width, stream.codec_context.height, frames)
        want = expected[sample.edit]
        # The decoder of H.264 is named "h264" whichever encoder wrote it.
        assert got == (want[0].replace("libx264", "h264"), *want[1:]), sample.edit
        assert stream.average_rate == 24


# Writes one seed's videos in a fresh interpreter and prints their SHA-256 digests: what a
# second run of the demo, or another machine, would see (nothing shared with this process).
_DIGESTS = """
import hashlib, json, sys
from blindmatch.samples import make_sample_videos
manifest = make_sample_videos(sys.argv[1], 1, seed=int(sys.argv[2]))
print(json.dumps([hashlib.sha256(p.read_bytes()).hexdigest() for p in manifest.paths()]))
"""


def _digests_in_fresh_process(directory: Path, seed: int) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _DIGESTS, str(directory), str(seed)],
        capture_output=True,
        text=True,
        check=True,
    )
    digests: list[str] = json.loads(result.stdout)
    return digests


def test_videos_are_deterministic(videos: SampleManifest, tmp_path: Path) -> None:
    # The whole file, bytes for bytes: see "deterministic videos" in blindmatch.samples for
    # why this holds for one PyAV build on any machine (and what would break it).
    here = [hashlib.sha256(data).hexdigest() for data in _bytes(videos)]
    first = _digests_in_fresh_process(tmp_path / "first", 11)
    second = _digests_in_fresh_process(tmp_path / "second", 11)
    assert first == second == here
    assert len(set(here)) == len(here)  # four different files, not one written four times
    other = _digests_in_fresh_process(tmp_path / "other", 12)
    assert all(a != b for a, b in zip(other, here, strict=True))


def test_videos_carry_no_version_strings(videos: SampleManifest) -> None:
    # The muxer's "Lavf..." tag and the MPEG-4 encoder's "Lavc..." user data would make two
    # PyAV builds on one FFmpeg release write different files (+bitexact drops them).
    for path in videos.paths():
        data = path.read_bytes()
        assert b"Lavf" not in data, path.name
        assert b"Lavc" not in data, path.name


def test_yuv420p_from_rgb_agrees_with_swscale() -> None:
    # Differential check against FFmpeg's portable converter (SWS_AREA averages each 2x2
    # chroma block as we do; ACCURATE_RND | BITEXACT keep it off the SIMD special cases):
    # ours is exact integer BT.601 and may round differently by one step, never more.
    rgb = photo_like(np.random.default_rng(5), 64, 48)
    ours = yuv420p_from_rgb(rgb)
    assert ours.shape == (72, 64)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    theirs = frame.reformat(format="yuv420p", interpolation=0x20 | 0x40000 | 0x80000)
    sizes = [(48, 64), (24, 32), (24, 32)]
    expected = np.concatenate(
        [
            np.asarray(plane).reshape(rows, -1)[:, :columns].reshape(-1)  # drop the row padding
            for plane, (rows, columns) in zip(theirs.planes, sizes, strict=True)
        ]
    )
    diff = np.abs(ours.reshape(-1).astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 1
    assert diff.mean() < 0.5
    assert ours[:48].min() >= 16
    assert ours[:48].max() <= 235  # limited-range luma


def test_yuv420p_from_rgb_extremes() -> None:
    black = yuv420p_from_rgb(np.zeros((2, 2, 3), dtype=np.uint8))
    white = yuv420p_from_rgb(np.full((2, 2, 3), 255, dtype=np.uint8))
    assert black.reshape(-1).tolist() == [16, 16, 16, 16, 128, 128]
    assert white.reshape(-1).tolist() == [235, 235, 235, 235, 128, 128]


@pytest.mark.parametrize("shape", [(3, 4, 3), (4, 3, 3), (0, 0, 3), (4, 4), (4, 4, 4)])
def test_yuv420p_from_rgb_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidArgument, match="frame"):
        yuv420p_from_rgb(np.zeros(shape, dtype=np.uint8))


def test_write_video_rejects_odd_frames(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="even"):
        write_video(tmp_path / "odd.mp4", [np.zeros((5, 6, 3), dtype=np.uint8)], 10)


def test_make_samples_concatenates(tmp_path: Path) -> None:
    manifest = make_samples(tmp_path, 1, 0, seed=1)
    assert len(manifest.files) == 1 + len(EDITS["image"])
    assert all(f.kind == "image" for f in manifest.files)
    both = make_samples(tmp_path / "both", 1, 1, seed=1)
    images, videos = 1 + len(EDITS["image"]), 1 + len(EDITS["video"])
    assert [f.kind for f in both.files] == ["image"] * images + ["video"] * videos


def test_zero_and_negative_counts(tmp_path: Path) -> None:
    assert make_sample_images(tmp_path, 0, seed=1).files == ()
    assert make_sample_videos(tmp_path, 0, seed=1).files == ()
    with pytest.raises(ValueError, match="n must be"):
        make_sample_images(tmp_path, -1, seed=1)
    with pytest.raises(ValueError, match="n must be"):
        make_sample_videos(tmp_path, -1, seed=1)


def test_manifest_as_dict(images: SampleManifest) -> None:
    root = images.files[0].path.parent
    first, second = images.files[0], images.files[1]
    assert first.as_dict(root) == {
        "path": "image-000.jpg",
        "kind": "image",
        "edit": "original",
        "derived_from": None,
    }
    assert second.as_dict(root)["derived_from"] == "image-000.jpg"
    assert second.as_dict()["path"] == second.path.as_posix()
    combined = images + images
    assert len(combined.files) == 2 * len(images.files)


def test_photo_like_is_a_function_of_the_generator_state() -> None:
    a = photo_like(np.random.default_rng(3), 40, 30)
    b = photo_like(np.random.default_rng(3), 40, 30)
    c = photo_like(np.random.default_rng(4), 40, 30)
    assert a.shape == (30, 40, 3)
    assert a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.std() > 10  # not flat


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (-1, 5)])
def test_photo_like_rejects_empty(width: int, height: int) -> None:
    with pytest.raises(ValueError, match="width and height"):
        photo_like(np.random.default_rng(0), width, height)


def test_write_video_fractional_rate(tmp_path: Path) -> None:
    frames = [photo_like(np.random.default_rng(i), 32, 24) for i in range(5)]
    path = tmp_path / "ntsc.mp4"
    write_video(path, frames, Fraction(30000, 1001), codec="mpeg4")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(30000, 1001)
        assert sum(1 for _ in container.decode(stream)) == 5
