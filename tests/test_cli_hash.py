"""``blindmatch hash``: the real CLI (subprocess and in-process) over generated folders with
every kind of bad file; every JSON field is checked against the library functions."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from blindmatch.cli import main
from blindmatch.cli._paths import json_path, path_from_json
from blindmatch.cli.hash import (
    HashOptions,
    Progress,
    collect_files,
    fingerprint_file,
    video_fields,
    video_from_record,
)
from blindmatch.errors import InvalidEncoding
from blindmatch.fingerprint.frontend import load_rgb
from blindmatch.fingerprint.pdq import DIHEDRAL_NAMES, pdq_dihedral_from_rgb, pdq_from_rgb
from blindmatch.fingerprint.types import PdqHash, VideoFingerprint, VideoFrame
from blindmatch.fingerprint.video import hash_video
from blindmatch.samples import EDITS, make_sample_images, photo_like, write_video

Record = dict[str, Any]

# Bad files, by name, and the error type each must produce.
BAD: dict[str, str] = {
    "bad/bomb.png": "MediaTooLarge",
    "bad/corrupt.png": "CorruptMedia",
    "bad/dangling": "UnreadableMedia",
    "bad/empty.jpg": "CorruptMedia",
    "bad/fifo": "UnsupportedMedia",
    "bad/notes.txt": "UnsupportedMedia",
    "bad/truncated.jpg": "CorruptMedia",
    "bad/truncated.mp4": "CorruptMedia",
    "bad/zero-size.gif": "CorruptMedia",
}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width x height`` RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _zero_size_gif() -> bytes:
    """A GIF whose logical screen is 0 x 0."""
    return b"GIF89a" + struct.pack("<HH", 0, 0) + b"\x00\x00\x00" + b";"


SAMPLE_IMAGES = 2 * (1 + len(EDITS["image"]))
"""The files in ``media/images``: 2 originals and their edited copies."""


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    make_sample_images(root / "images", 2, seed=3)
    rng = np.random.default_rng(5)
    scene = photo_like(rng, 192, 128, shapes=30)
    frames = [scene[t : t + 64, t : t + 96].copy() for t in range(30)]
    (root / "videos" / "nested").mkdir(parents=True)
    write_video(root / "videos" / "nested" / "clip.mp4", frames, 15, codec="mpeg4")
    # Content, not extension, decides: a JPEG named .txt and a video named .jpg.
    (root / "disguised").mkdir()
    jpeg = (root / "images" / "image-000.jpg").read_bytes()
    (root / "disguised" / "photo.txt").write_bytes(jpeg)
    video = (root / "videos" / "nested" / "clip.mp4").read_bytes()
    (root / "disguised" / "movie.jpg").write_bytes(video)

    bad = root / "bad"
    bad.mkdir()
    (bad / "bomb.png").write_bytes(_bomb_png(100_000, 100_000))
    png = io.BytesIO()
    Image.fromarray(photo_like(rng, 64, 48)).save(png, format="PNG")
    corrupt = bytearray(png.getvalue())
    for k in range(60, len(corrupt) - 20, 5):
        corrupt[k] ^= 0xA5
    (bad / "corrupt.png").write_bytes(bytes(corrupt))
    (bad / "dangling").symlink_to(bad / "nowhere.jpg")  # unreadable: the target is gone
    (bad / "empty.jpg").write_bytes(b"")
    os.mkfifo(bad / "fifo")
    (bad / "notes.txt").write_text("just some notes\n" * 20, encoding="utf-8")
    (bad / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (bad / "truncated.mp4").write_bytes(video[: len(video) // 2])
    (bad / "zero-size.gif").write_bytes(_zero_size_gif())
    return root


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    # Bytes, decoded here: text mode would turn the progress bar's "\r" into "\n".
    result = subprocess.run(
        [sys.executable, "-m", "blindmatch", "hash", *args],
        capture_output=True,
        check=False,
        timeout=300,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def _records(stdout: str) -> list[Record]:
    return [json.loads(line) for line in stdout.splitlines()]


def _rel(records: list[Record], root: Path) -> dict[str, Record]:
    return {Path(r["path"]).relative_to(root).as_posix(): r for r in records}


@pytest.fixture(scope="module")
def folder_run(media: Path) -> subprocess.CompletedProcess[str]:
    return _run_cli(str(media), "--no-progress")


def test_walk_is_recursive_and_sorted(
    media: Path, folder_run: subprocess.CompletedProcess[str]
) -> None:
    records = _records(folder_run.stdout)
    names = [Path(r["path"]).relative_to(media).as_posix() for r in records]
    expected = [
        *sorted(BAD),
        "disguised/movie.jpg",
        "disguised/photo.txt",
        *sorted(f"images/{p.name}" for p in (media / "images").iterdir()),
        "videos/nested/clip.mp4",
    ]
    assert names == expected
    assert len(names) == len(BAD) + 2 + SAMPLE_IMAGES + 1


def test_every_bad_file_gets_its_error_and_the_rest_continue(
    media: Path, folder_run: subprocess.CompletedProcess[str]
) -> None:
    assert folder_run.returncode == 1
    by_name = _rel(_records(folder_run.stdout), media)
    for name, error_type in BAD.items():
        record = by_name[name]
        assert set(record) == {"path", "error"}, name
        assert record["error"]["type"] == error_type, name
        assert isinstance(record["error"]["message"], str)
        assert record["error"]["message"], name
    good = [r for n, r in by_name.items() if n not in BAD]
    assert good
    assert all("error" not in r for r in good)


def test_error_messages_carry_no_file_content(
    media: Path, folder_run: subprocess.CompletedProcess[str]
) -> None:
    by_name = _rel(_records(folder_run.stdout), media)
    assert "notes" not in by_name["bad/notes.txt"]["error"]["message"]


def test_image_fields_equal_library(
    media: Path, folder_run: subprocess.CompletedProcess[str]
) -> None:
    images = [r for r in _records(folder_run.stdout) if r.get("kind") == "image"]
    assert len(images) == SAMPLE_IMAGES + 1  # and disguised/photo.txt
    for record in images:
        path = Path(record["path"])
        data = path.read_bytes()
        fingerprint = pdq_from_rgb(load_rgb(path))
        assert list(record) == ["path", "kind", "md5", "sha256", "pdq", "quality"]
        assert record["md5"] == hashlib.md5(data).hexdigest()  # noqa: S324 -- the file's MD5 is the point
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert record["pdq"] == fingerprint.hash.hex()
        assert record["quality"] == fingerprint.quality


def test_video_fields_equal_library(
    media: Path, folder_run: subprocess.CompletedProcess[str]
) -> None:
    videos = [r for r in _records(folder_run.stdout) if r.get("kind") == "video"]
    assert {Path(r["path"]).name for r in videos} == {"clip.mp4", "movie.jpg"}
    for record in videos:
        path = Path(record["path"])
        data = path.read_bytes()
        fingerprint = hash_video(path)
        assert list(record) == ["path", "kind", "md5", "sha256", "frames", "fps"]
        assert record["md5"] == hashlib.md5(data).hexdigest()  # noqa: S324 -- the file's MD5 is the point
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert record["fps"] == fingerprint.fps == 15.0
        assert record["frames"] == [
            {
                "frame_number": f.frame_number,
                "timestamp": f.timestamp,
                "pdq": f.pdq.hex(),
                "quality": f.quality,
            }
            for f in fingerprint.frames
        ]
        assert [f["frame_number"] for f in record["frames"]] == [0, 15]


def test_seconds_per_hash_and_dihedral(media: Path) -> None:
    video = media / "videos" / "nested" / "clip.mp4"
    image = media / "images" / "image-001.png"
    result = _run_cli(str(video), str(image), "--seconds-per-hash", "0.5", "--dihedral")
    assert result.returncode == 0
    video_record, image_record = _records(result.stdout)
    assert [f["frame_number"] for f in video_record["frames"]] == [0, 7, 14, 21, 28]
    variants = pdq_dihedral_from_rgb(load_rgb(image))
    assert list(image_record["dihedral"]) == list(DIHEDRAL_NAMES)
    assert list(image_record["dihedral"].values()) == [v.hash.hex() for v in variants]
    assert image_record["pdq"] == variants[0].hash.hex()


def test_fast_policy(media: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = media / "images" / "image-000.jpg"  # 640 x 480: downsized by 'fast'
    assert main(["hash", str(image), "--policy", "fast", "--no-progress"]) == 0
    (record,) = _records(capsys.readouterr().out)
    assert record["pdq"] == pdq_from_rgb(load_rgb(image, "fast")).hash.hex()
    assert record["pdq"] != pdq_from_rgb(load_rgb(image)).hash.hex()


def test_in_process_equals_subprocess_and_jobs_keep_order(
    media: Path, folder_run: subprocess.CompletedProcess[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hash", str(media), "--no-progress"]) == 1
    single = capsys.readouterr().out
    assert single == folder_run.stdout
    assert main(["hash", str(media), "--no-progress", "--jobs", "2"]) == 1
    assert capsys.readouterr().out == single


def test_missing_path_is_an_error_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jpg"
    assert main(["hash", str(missing), "--no-progress"]) == 1
    (record,) = _records(capsys.readouterr().out)
    assert record == {
        "path": str(missing),
        "error": {"type": "UnreadableMedia", "message": record["error"]["message"]},
    }


def test_an_empty_folder_says_no_files_were_found(tmp_path: Path) -> None:
    # It printed nothing and exited 0 (issue 7). Exit code 2, as for any usage mistake.
    (tmp_path / "empty").mkdir()
    result = _run_cli(str(tmp_path / "empty"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"blindmatch: error: no files found in {tmp_path / 'empty'}\n"


def test_too_large_says_size_limit_and_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "photo.png"
    Image.fromarray(photo_like(np.random.default_rng(4), 40, 30)).save(png)
    assert main(["hash", "--max-pixels", "1000", str(png)]) == 1
    (record,) = _records(capsys.readouterr().out)
    assert record["error"] == {
        "type": "MediaTooLarge",
        "message": "the image is 40 x 30 = 1200 pixels, over the limit of 1000 pixels "
        "(raise max_pixels; on the command line --max-pixels N)",
    }
    assert main(["hash", "--max-pixels", "1200", str(png)]) == 0
    (record,) = _records(capsys.readouterr().out)
    assert record["pdq"] == pdq_from_rgb(load_rgb(png)).hash.hex()


def test_limits_and_their_defaults_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["hash", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--max-pixels N refuse images of more than N pixels (width x height; default 80000000)"
        in text
    )
    assert "--max-frames N refuse videos of more than N frames (default 500000)" in text
    assert "(default 40000000)" in text


def test_undecodable_file_name_is_valid_json(media: Path, tmp_path: Path) -> None:
    # A name that is not UTF-8 came out as "bad\udcff.jpg", which strict parsers reject.
    raw = os.fsencode(tmp_path) + b"/bad\xff.jpg"
    with open(raw, "wb") as handle:
        handle.write((media / "images" / "image-000.jpg").read_bytes())
    with open(os.fsencode(tmp_path) + b"/empty\xfe.jpg", "wb"):
        pass
    result = subprocess.run(
        [sys.executable, "-m", "blindmatch", "hash", str(tmp_path)],
        capture_output=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 1
    text = result.stdout.decode("utf-8")  # strict UTF-8
    assert "\\udc" not in text  # no lone-surrogate escape for strict JSON parsers
    good, empty = (json.loads(line) for line in text.splitlines())
    assert good["path"] == f"{tmp_path}/bad\ufffd.jpg"
    assert bytes.fromhex(good["path_hex"]) == raw
    assert good["kind"] == "image"
    assert os.path.exists(os.fsdecode(bytes.fromhex(good["path_hex"])))
    assert empty["path"] == f"{tmp_path}/empty\ufffd.jpg"
    assert empty["error"]["type"] == "CorruptMedia"
    assert bytes.fromhex(empty["path_hex"]).endswith(b"/empty\xfe.jpg")


@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"\x00" not in b))
def test_json_path_round_trip(raw: bytes) -> None:
    name = os.fsdecode(raw)
    parsed = json.loads(json.dumps(json_path("path", name)))
    for value in parsed.values():
        value.encode("utf-8")  # strict: a lone surrogate (what strict parsers reject) raises
    assert path_from_json(parsed) == name
    assert ("path_hex" in parsed) == (raw.decode("utf-8", "replace").encode() != raw)


def test_a_full_disk_on_stdout_is_one_line(media: Path) -> None:
    # `blindmatch hash DIR > out.jsonl` on a full disk: /dev/full answers ENOSPC.
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [sys.executable, "-m", "blindmatch", "hash", str(media / "images")],
            stdout=full,
            stderr=subprocess.PIPE,
            check=False,
            timeout=300,
        )
    assert result.returncode == 2
    assert result.stderr.decode() == (
        "blindmatch: error: writing the output: No space left on device\n"
    )


def test_os_errors_on_user_paths_are_one_line_and_bugs_keep_their_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import blindmatch.cli.hash as hash_command

    def fail(filename: str) -> None:
        def collect(inputs: object) -> list[str]:
            raise PermissionError(13, "Permission denied", filename)

        monkeypatch.setattr(hash_command, "collect_files", collect)

    fail(str(tmp_path / "sub" / "x.jpg"))  # below a path the user named: their mistake
    assert main(["hash", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"blindmatch: error: {tmp_path}: {tmp_path / 'sub' / 'x.jpg'}: Permission denied\n"
    )
    fail("/somewhere/the/user/never/named")  # anywhere else: a bug, with its traceback
    with pytest.raises(PermissionError):
        main(["hash", str(tmp_path)])


def test_ctrl_c_is_one_line_and_exit_130(media: Path, tmp_path: Path) -> None:
    # The terminal sends SIGINT to the whole process group: the workers too.
    names = _copies(media, tmp_path, 12)
    args = ["hash", "--jobs", "2", "--seconds-per-hash", "0", str(tmp_path)]
    with subprocess.Popen(
        [sys.executable, "-m", "blindmatch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the workers are busy now
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    assert json.loads(first)["path"] == str(tmp_path / names[0])
    assert proc.returncode == 130
    assert err == b"blindmatch: interrupted\n"
    assert len(out.splitlines()) < len(names) - 1


def test_good_files_exit_zero(media: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash", str(media / "images"), "--no-progress"]) == 0
    assert len(_records(capsys.readouterr().out)) == SAMPLE_IMAGES


def test_no_progress_bar_when_stderr_is_not_a_terminal(media: Path) -> None:
    # `2>err.txt`, a pipe, a make log: no \r redraws there (issue 7). Both streams piped.
    result = _run_cli(str(media / "images"))
    assert result.returncode == 0
    assert result.stderr == ""
    assert len(_records(result.stdout)) == SAMPLE_IMAGES  # stdout stays pure JSON Lines


def test_no_progress_bar_in_process_on_a_captured_stderr(
    media: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hash", str(media / "images")]) == 0
    assert capsys.readouterr().err == ""


def test_no_progress_is_silent(media: Path) -> None:
    result = _run_cli(str(media / "images"), "--no-progress")
    assert result.returncode == 0
    assert result.stderr == ""


def test_progress_counts_failures() -> None:
    stream = io.StringIO()
    bar = Progress(2, stream, width=10)
    bar.advance({"path": "a", "error": {"type": "CorruptMedia", "message": "x"}})
    bar.advance({"path": "b", "kind": "image"})
    bar.close()
    assert stream.getvalue().endswith("\r[##########] 2/2 files 100%, 1 failed\n")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--jobs", "0", "x"],
        ["--jobs", "two", "x"],
        ["--seconds-per-hash", "-1", "x"],
        ["--seconds-per-hash", "nan", "x"],
        ["--seconds-per-hash", "inf", "x"],
        ["--policy", "slow", "x"],
        ["--unknown", "x"],
    ],
    ids=["no-path", "jobs0", "jobs-text", "sph-neg", "sph-nan", "sph-inf", "policy", "flag"],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["hash", *args])
    assert exc.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()  # one line, no usage block
    # An unknown option is the top parser's: "blindmatch: error: unrecognized arguments".
    assert re.fullmatch(r"blindmatch( hash)?: error: .+ \(see 'blindmatch( hash)? --help'\)", line)


def test_usage_error_exit_code_from_subprocess() -> None:
    result = _run_cli("--jobs", "0", "x")
    assert result.returncode == 2
    assert result.stderr == (
        "blindmatch hash: error: argument --jobs: expected a positive integer "
        "(see 'blindmatch hash --help')\n"
    )


def test_collect_files_does_not_follow_folder_symlinks(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.jpg").write_bytes(b"x")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    (tmp_path / "b.png").write_bytes(b"y")
    files = collect_files([str(tmp_path), str(tmp_path / "b.png")])
    assert files == [
        str(tmp_path / "a" / "f.jpg"),
        str(tmp_path / "a" / "loop"),
        str(tmp_path / "b.png"),
        str(tmp_path / "b.png"),
    ]
    record = fingerprint_file(str(tmp_path / "a" / "loop"), HashOptions())
    assert record["error"]["type"] == "UnreadableMedia"


# ---- video records <-> VideoFingerprint -----------------------------------------------

_frames = st.builds(
    VideoFrame,
    frame_number=st.integers(0, 10**7),
    timestamp=st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
    pdq=st.binary(min_size=32, max_size=32).map(PdqHash),
    quality=st.integers(0, 100),
)
_videos = st.builds(
    VideoFingerprint,
    frames=st.lists(_frames, max_size=20).map(tuple),
    fps=st.floats(1e-3, 1e4, allow_nan=False, allow_infinity=False),
    seconds_per_hash=st.sampled_from([0.0, 0.5, 1.0, 2.5]),
)


@given(_videos)
def test_video_record_round_trip(fingerprint: VideoFingerprint) -> None:
    text = json.dumps(video_fields(fingerprint))
    assert video_from_record(json.loads(text), fingerprint.seconds_per_hash) == fingerprint


def test_video_record_from_real_file(media: Path) -> None:
    path = media / "videos" / "nested" / "clip.mp4"
    record = fingerprint_file(str(path), HashOptions(seconds_per_hash=0.5))
    assert video_from_record(json.loads(json.dumps(record)), 0.5) == hash_video(path, 0.5)


def _good_record() -> Record:
    frame = {"frame_number": 3, "timestamp": 0.1, "pdq": "ab" * 32, "quality": 90}
    return {"frames": [frame], "fps": 30.0}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("frames", None),
        ("frames", {"a": 1}),
        ("fps", None),
        ("fps", 0),
        ("fps", -1.0),
        ("fps", float("inf")),
        ("fps", float("nan")),
        ("fps", True),
        ("fps", "30"),
        ("frame_number", -1),
        ("frame_number", 1.5),
        ("frame_number", True),
        ("frame_number", "3"),
        ("quality", 101),
        ("quality", -1),
        ("quality", 50.0),
        ("timestamp", -0.5),
        ("timestamp", float("nan")),
        ("timestamp", float("inf")),
        ("timestamp", "0.1"),
        ("pdq", "ab" * 31),
        ("pdq", "zz" * 32),
        ("pdq", 5),
        ("extra", 1),
        ("missing", None),
    ],
    ids=lambda v: repr(v),
)
def test_video_record_rejects(field: str, value: object) -> None:
    record = _good_record()
    frame = record["frames"][0]
    if field in ("frames", "fps"):
        record[field] = value
    elif field == "extra":
        frame["extra"] = value
    elif field == "missing":
        del frame["pdq"]
    else:
        frame[field] = value
    with pytest.raises(InvalidEncoding):
        video_from_record(record)


def test_video_record_rejects_non_dict() -> None:
    with pytest.raises(InvalidEncoding):
        video_from_record([])  # type: ignore[arg-type]
    with pytest.raises(InvalidEncoding):
        video_from_record({"frames": [5], "fps": 1.0})


def test_images_hash_without_pyav(media: Path) -> None:
    # Video support is an extra: with `import av` failing, images still hash and a video
    # gets an UnsupportedMedia record.
    image = media / "images" / "image-000.jpg"
    video = media / "videos" / "nested" / "clip.mp4"
    code = (
        "import sys; sys.modules['av'] = None\n"
        "from blindmatch.cli import main\n"
        f"sys.exit(main(['hash', '--no-progress', {str(image)!r}, {str(video)!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 1, result.stderr
    image_record, video_record = _records(result.stdout)
    assert image_record["pdq"] == pdq_from_rgb(load_rgb(image)).hash.hex()
    assert video_record["error"]["type"] == "UnsupportedMedia"
    assert "video" in video_record["error"]["message"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_closed_pipe_stops_quietly(media: Path, tmp_path: Path, jobs: str) -> None:
    # `blindmatch hash DIR | head -1`. The output (40 good videos, every frame hashed, about
    # 3.7 kB each) overflows the pipe buffer, so the writer meets the closed pipe: exit 1
    # although no file failed, and no traceback.
    clip = (media / "videos" / "nested" / "clip.mp4").read_bytes()
    for i in range(40):
        (tmp_path / f"copy-{i:02d}.mp4").write_bytes(clip)
    args = ["hash", "--no-progress", "--jobs", jobs, "--seconds-per-hash", "0", str(tmp_path)]
    with subprocess.Popen(
        [sys.executable, "-m", "blindmatch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        code = proc.wait(timeout=300)
    assert len(json.loads(first)["frames"]) == 30
    assert code == 1
    assert b"Traceback" not in err
    assert err == b""


# ---- the progress bar on a terminal ----------------------------------------------------


def _run_on_terminal(*args: str, stderr_too: bool) -> tuple[int, str, str]:
    """Run the CLI with stdout on a pseudo-terminal (stderr too, or a pipe)."""
    controller, terminal = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "blindmatch", "hash", *args],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal if stderr_too else subprocess.PIPE,
    ) as proc:
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        err = proc.stderr.read() if proc.stderr is not None else b""
        code = proc.wait(timeout=300)
    os.close(controller)
    return code, b"".join(chunks).decode(), err.decode()


def _screen_lines(text: str) -> list[str]:
    """What a terminal shows: per line, each ``\\r`` returns to column 0 and overwrites."""
    lines = []
    for line in text.split("\n"):
        shown: list[str] = []
        for part in line.split("\r"):
            shown[: len(part)] = part
        lines.append("".join(shown).rstrip())
    return [line for line in lines if line]


def test_progress_bar_and_records_on_one_terminal_stay_apart(media: Path) -> None:
    # `blindmatch hash DIR` typed at a terminal: records and the bar share the screen; every
    # record must still be a line of its own, and the bar ends on the last line.
    code, screen, _ = _run_on_terminal(str(media / "images"), stderr_too=True)
    assert code == 0
    lines = _screen_lines(screen)
    assert len(lines) == SAMPLE_IMAGES + 1, lines
    for line in lines[:-1]:
        assert json.loads(line)["kind"] == "image"
    assert lines[-1] == "[" + "#" * 30 + f"] {SAMPLE_IMAGES}/{SAMPLE_IMAGES} files 100%"


def test_progress_bar_when_only_stderr_is_a_terminal(media: Path) -> None:
    # `blindmatch hash DIR > out.jsonl` at a prompt: the bar on the terminal, records in the file.
    controller, terminal = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "blindmatch", "hash", str(media / "images")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    ) as proc:
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.stdout is not None
        out = proc.stdout.read()
        code = proc.wait(timeout=300)
    os.close(controller)
    assert code == 0
    screen = b"".join(chunks).decode()
    assert "\r[" in screen
    assert _screen_lines(screen) == [
        "[" + "#" * 30 + f"] {SAMPLE_IMAGES}/{SAMPLE_IMAGES} files 100%"
    ]
    assert len(_records(out.decode())) == SAMPLE_IMAGES


def test_no_progress_bar_for_files_on_a_terminal(media: Path) -> None:
    # stdout a terminal and no folder named: the records alone, no bar.
    image = media / "images" / "image-000.jpg"
    code, screen, err = _run_on_terminal(str(image), stderr_too=False)
    assert code == 0
    assert err == ""
    (line,) = _screen_lines(screen)
    assert json.loads(line)["path"] == str(image)


# ---- a worker process that dies ---------------------------------------------------------


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (threads come and go while we look)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text(encoding="ascii").split()]
    return found


def _copies(media: Path, folder: Path, count: int) -> list[str]:
    clip = (media / "videos" / "nested" / "clip.mp4").read_bytes()
    names = [f"copy-{i}.mp4" for i in range(count)]
    for name in names:
        (folder / name).write_bytes(clip)
    return names


def _start_slow_run(folder: Path) -> subprocess.Popen[bytes]:
    """The CLI on ``folder`` with 2 workers, every video frame hashed (slow enough to kill)."""
    args = ["hash", "--no-progress", "--jobs", "2", "--seconds-per-hash", "0", str(folder)]
    return subprocess.Popen(
        [sys.executable, "-m", "blindmatch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _check_records(records: list[Record], names: list[str], folder: Path) -> list[Record]:
    """Records in input order; the good ones equal the library's; returns the failed ones."""
    assert [Path(r["path"]).name for r in records] == names
    want = video_fields(hash_video(folder / names[0], 0))
    for record in records:
        if "error" not in record:
            assert record["frames"] == want["frames"]
    return [r for r in records if "error" in r]


def test_a_killed_worker_costs_no_file(media: Path, tmp_path: Path) -> None:
    # A worker killed from outside (the kernel's OOM killer, an operator): the files it and
    # the other worker had in flight are hashed again, alone, and succeed.
    names = _copies(media, tmp_path, 6)
    with _start_slow_run(tmp_path) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        first = proc.stdout.readline()  # the workers are running now
        os.kill(_children(proc.pid)[0], signal.SIGKILL)
        rest = proc.stdout.read()
        err = proc.stderr.read()
        code = proc.wait(timeout=300)
    assert b"Traceback" not in err, err.decode()[-2000:]
    assert code == 0
    assert _check_records(_records((first + rest).decode()), names, tmp_path) == []


def test_a_file_that_kills_its_worker_gets_an_error_record(media: Path, tmp_path: Path) -> None:
    # Every worker is killed as soon as it appears -- also the process a file is retried in
    # alone -- until the first error record is out: that file failed twice, as a file that
    # crashes its decoder does. It gets a CorruptMedia record; the files after it go on.
    names = _copies(media, tmp_path, 6)
    stop = threading.Event()

    def kill_workers(pid: int) -> None:
        while not stop.is_set():
            for child in _children(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            stop.wait(0.005)

    with _start_slow_run(tmp_path) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        # Only once a record is out: at start-up, library loading runs short-lived helper
        # processes (ctypes' find_library) that must not be killed.
        lines = [proc.stdout.readline()]
        killer = threading.Thread(target=kill_workers, args=(proc.pid,))
        killer.start()
        try:
            for line in proc.stdout:
                lines.append(line)
                if b'"error"' in line:
                    stop.set()
        finally:
            stop.set()
            killer.join()
        err = proc.stderr.read()
        code = proc.wait(timeout=300)
    assert b"Traceback" not in err, err.decode()[-2000:]
    assert code == 1
    failed = _check_records(_records(b"".join(lines).decode()), names, tmp_path)
    assert failed
    assert len(failed) < len(names)  # the run went on after the killing stopped
    for record in failed:
        assert record["error"] == {
            "type": "CorruptMedia",
            "message": "the worker process died on this file (a crash or out of memory)",
        }


def test_many_jobs_under_a_small_open_file_limit_run_with_fewer_workers(tmp_path: Path) -> None:
    # `--jobs 30` under `ulimit -n 40` used to fail to start its workers and then hang in
    # the pool's shutdown; now the worker count is lowered to what the limit allows.
    import resource

    for number in range(24):
        pixels = np.random.default_rng(number).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{number:02}.png")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    result = subprocess.run(
        [sys.executable, "-m", "blindmatch", "hash", "--jobs", "30", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        preexec_fn=limit,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 24
    assert all("error" not in r and len(r["pdq"]) == 64 for r in records)
    notice = result.stderr.strip().splitlines()
    assert len(notice) == 1
    assert "worker processes instead of 24" in notice[0]
    assert "open-file limit (ulimit -n) is 40" in notice[0]
