"""``blindmatch demo``: end to end on a small sample set, in process and as a subprocess."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from blindmatch.cli import main
from blindmatch.cli.demo import summarise
from blindmatch.cli.hash import HashOptions, fingerprint_file
from blindmatch.samples import EDITS, make_samples

Record = dict[str, Any]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("demo")
    stdout = io.StringIO()  # capsys is function-scoped; this fixture runs the demo once
    with contextlib.redirect_stdout(stdout):
        code = main(["demo", "--out", str(out), "--images", "2", "--videos", "1", "--no-progress"])
    return out, code, stdout.getvalue()


def _records(path: Path) -> list[Record]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_demo_writes_media_manifest_and_fingerprints(demo_run: tuple[Path, int, str]) -> None:
    out, code, _ = demo_run
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest) == 2 * (1 + len(EDITS["image"])) + 1 + len(EDITS["video"])
    assert all((out / entry["path"]).is_file() for entry in manifest)
    assert all(entry["path"].startswith("media/") for entry in manifest)
    records = _records(out / "fingerprints.jsonl")
    assert [Path(r["path"]) for r in records] == [out / e["path"] for e in manifest]
    assert all("error" not in r for r in records)


def test_demo_records_are_the_hash_command_records(demo_run: tuple[Path, int, str]) -> None:
    out, _, _ = demo_run
    for record in _records(out / "fingerprints.jsonl"):
        assert record == fingerprint_file(record["path"], HashOptions(dihedral=True))


def test_demo_summary(demo_run: tuple[Path, int, str]) -> None:
    out, _, text = demo_run
    assert "Generated 14 files" in text
    assert "Fingerprinted 10 images and 4 videos" in text
    assert str(out / "fingerprints.jsonl") in text
    for edit in EDITS["image"]:
        line = next(x for x in text.splitlines() if x.strip().startswith(f"image {edit} "))
        assert line.endswith("matched 2/2"), line
    for edit in EDITS["video"]:
        line = next(x for x in text.splitlines() if x.strip().startswith(f"video {edit} "))
        assert line.endswith("matched 1/1"), line


def test_summarise_skips_failed_files(tmp_path: Path) -> None:
    manifest = make_samples(tmp_path, 1, 0, seed=2)
    records = [fingerprint_file(str(p), HashOptions(dihedral=True)) for p in manifest.paths()]
    records[1] = {"path": records[1]["path"], "error": {"type": "CorruptMedia", "message": "x"}}
    summaries = summarise(manifest, records)
    assert [s.edit for s in summaries] == list(EDITS["image"][1:])
    mirrored = summaries[-1]
    assert mirrored.edit == "mirrored"
    assert min(mirrored.distances) > 31  # PDQ alone misses a mirror ...
    assert mirrored.matched == 1  # ... its dihedral variants find it


def test_demo_subprocess_draws_no_bar_into_a_log(tmp_path: Path) -> None:
    # `make demo > log 2>&1`: stderr is not a terminal, so no \r redraws (issue 7).
    args = ["demo", "--out", str(tmp_path), "--images", "1", "--videos", "0"]
    result = subprocess.run(
        [sys.executable, "-m", "blindmatch", *args],
        capture_output=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    assert b"\r" not in result.stdout
    assert b"Fingerprinted 5 images and 0 videos" in result.stdout


def test_demo_draws_the_bar_on_a_terminal(tmp_path: Path) -> None:
    args = ["demo", "--out", str(tmp_path), "--images", "1", "--videos", "0"]
    controller, terminal = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "blindmatch", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    ) as proc:
        os.close(terminal)
        screen = _read_terminal(controller)
        assert proc.stdout is not None
        out = proc.stdout.read()
        code = proc.wait(timeout=300)
    os.close(controller)
    assert code == 0
    assert "\r[" + "#" * 30 + "] 5/5 files 100%" in screen
    assert b"Fingerprinted 5 images and 0 videos" in out


def _read_terminal(controller: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--out"],
        ["--out", "x", "--images", "-1"],
        ["--out", "x", "--jobs", "0"],
        ["--out", "x", "--seed", "-1"],
        ["--out", "x", "--max-pixels", "0"],
        ["--out", "x", "--images", "1001"],
        ["--out", "x", "--videos", "10**20"],
    ],
    ids=[
        "no-out",
        "out-empty",
        "images-neg",
        "jobs0",
        "seed-neg",
        "max-pixels0",
        "images-huge",
        "videos-text",
    ],
)
def test_demo_usage_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", *args])
    assert exc.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("blindmatch demo: error: ")


def _demo(*args: str, code: str = "") -> subprocess.CompletedProcess[str]:
    """``blindmatch demo ARGS`` as a subprocess; ``code`` runs first (to remove PyAV)."""
    script = f"import sys\n{code}\nfrom blindmatch.cli import main\nsys.exit(main({list(args)!r}))"
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=300
    )


def test_demo_with_no_samples_is_a_usage_mistake(tmp_path: Path) -> None:
    result = _demo("demo", "--out", str(tmp_path / "out"), "--images", "0", "--videos", "0")
    assert result.returncode == 2
    assert result.stderr == (
        "blindmatch: error: nothing to demonstrate: --images and --videos are both 0\n"
    )
    assert not (tmp_path / "out").exists()


def test_demo_in_a_folder_whose_name_is_not_utf8(tmp_path: Path) -> None:
    out = os.fsencode(tmp_path) + b"/demo\xff"
    args = [b"demo", b"--out", out, b"--images", b"1", b"--videos", b"0"]
    result = subprocess.run(
        [sys.executable, "-m", "blindmatch", *args], capture_output=True, check=False, timeout=300
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert out + b"/fingerprints.jsonl" in result.stdout  # the name's own bytes, as ls does
    with open(out + b"/fingerprints.jsonl", "rb") as handle:
        records = [json.loads(line.decode("utf-8")) for line in handle]
    assert all(bytes.fromhex(r["path_hex"]).startswith(out + b"/media/") for r in records)


def test_demo_out_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine\n", encoding="utf-8")
    result = _demo("demo", "--out", str(tmp_path / "afile"), "--images", "1", "--videos", "0")
    assert result.returncode == 2
    assert result.stderr == (
        f"blindmatch: error: --out {tmp_path / 'afile'}: exists and is not a folder\n"
    )
    assert (tmp_path / "afile").read_text(encoding="utf-8") == "mine\n"


@pytest.mark.parametrize(
    ("out", "reason"),
    [("/proc/nope", "No such file or directory"), ("/proc/self/status/x", "Not a directory")],
    ids=["proc", "under-a-file"],
)
def test_demo_out_that_cannot_be_made(out: str, reason: str) -> None:
    result = _demo("demo", "--out", out, "--images", "1", "--videos", "0")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"blindmatch: error: --out {out}: ")
    assert line.endswith(reason)


def test_demo_without_pyav_says_what_to_do(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _demo("demo", "--out", str(out), "--images", "1", code="sys.modules['av'] = None")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "pip install 'blindmatch[video]'" in line
    assert "--videos 0" in line
    assert not out.exists()  # checked before anything is written
    assert (
        _demo(
            "demo",
            "--out",
            str(out),
            "--images",
            "1",
            "--videos",
            "0",
            "--no-progress",
            code="sys.modules['av'] = None",
        ).returncode
        == 0
    )


def test_demo_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in (
        "(default 6)",
        "(default 2)",
        "(default 2024)",
        "default 80000000",
        "(default 500000)",
        "(default 40000000)",
    ):
        assert default in text


def test_demo_matches_privately_as_plaintext_does(demo_run: tuple[Path, int, str]) -> None:
    out, code, text = demo_run
    assert code == 0
    reported = sorted(p.name for p in (out / "clearinghouse" / "reported").iterdir())
    uploads = list((out / "platform" / "uploads").iterdir())
    assert reported == ["image-000.jpg", "video-000.mp4"]  # every other original
    assert len(uploads) == 14
    line = next(x for x in text.splitlines() if "agreement with a plaintext comparison" in x)
    found, expected = line.split(": ")[1].split(" plaintext")[0].split("/")
    # The reported image matches itself on md5, sha256 and pdq, its edited copies (but the
    # mirror) on pdq; the reported video itself on md5, sha256 and vpdq, its edited copies
    # (re-encoded, resized, trimmed) privately on vpdq: 3 + 3 + 3 + 3.
    assert int(expected) == 12
    assert found == expected
    assert line.endswith(", 0 unexpected")
    assert "via pdq" in text
    for edit, compared in (("reencoded", 100), ("resized", 100), ("trimmed", 67)):
        copy = next(x for x in text.splitlines() if f"match  video-000-{edit}.mp4" in x)
        assert copy.endswith(f"via vpdq (query 100 %, compared {compared} %)"), copy
    assert "1 DLEQ audit(s) verified" in text


def test_match_privately_against_plaintext(tmp_path: Path) -> None:
    from blindmatch.cli.demo import fingerprint, generate, match_privately

    manifest = generate(tmp_path, 2, 0, seed=5)
    records = fingerprint(manifest, tmp_path, jobs=1, progress=False)
    check = match_privately(manifest, records, tmp_path)
    assert not check.unexpected
    exact = {m for m in check.expected if m[2] != "pdq"}
    assert exact == {("image-000.jpg", "image-000.jpg", s) for s in ("md5", "sha256")}
    assert exact <= check.found
    # Band recall is 1.0 up to distance 20 (docs/protocol.md): nothing that close is missed.
    assert all(check.distances[m] > 20 for m in check.missed)
    # Unrelated images (the second original and its copies) match nothing.
    assert not any(upload.startswith("image-001") for upload, _, _ in check.found)
    # Nothing the platform received holds a plaintext hash of an upload.
    wire = b"".join(entry.data for entry in check.result.transcript)
    for record in records:
        for signal in ("md5", "sha256", "pdq"):
            assert bytes.fromhex(record[signal])[:8] not in wire
