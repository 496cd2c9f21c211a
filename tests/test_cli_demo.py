"""``blindmatch demo``: the whole flow across real processes (a ``blindmatch serve``
subprocess, a person's reports over HTTP, a platform's SDK), on a small sample set."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from blindmatch.cli import main
from blindmatch.cli.demo import expectation, fingerprint, generate, summarise
from blindmatch.cli.hash import HashOptions, fingerprint_file
from blindmatch.samples import EDITS, make_samples

Record = dict[str, Any]


@dataclass
class DemoRun:
    out: Path
    code: int
    stdout: str
    stderr: bytes
    server_pid: int
    results: dict[str, Any]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One real run, as a user runs it: a subprocess (which runs the server as its own
    subprocess), in a folder whose name is not UTF-8 (names are bytes on Linux)."""
    root = tmp_path_factory.mktemp("demo")
    out = os.fsencode(root) + b"/demo\xff"
    args = [b"demo", b"--out", out, b"--images", b"2", b"--videos", b"1", b"--no-progress"]
    result = subprocess.run(
        [sys.executable, "-m", "blindmatch", *args], capture_output=True, check=False, timeout=300
    )
    stdout = result.stdout.decode("utf-8", errors="surrogateescape")
    found = re.search(r"'blindmatch serve' \(pid (\d+)\)", stdout)
    assert found, stdout + result.stderr.decode(errors="replace")
    path = Path(os.fsdecode(out))
    results = json.loads((path / "results.json").read_text(encoding="utf-8"))
    return DemoRun(path, result.returncode, stdout, result.stderr, int(found[1]), results)


def _records(path: Path) -> list[Record]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _group_alive(pgid: int) -> list[int]:
    """Processes of the process group ``pgid`` still running (the server and its publisher
    run in a session of their own, whose group id is the server's pid)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


def test_demo_runs_and_agrees(demo_run: DemoRun) -> None:
    assert demo_run.code == 0, demo_run.stdout + demo_run.stderr.decode(errors="replace")
    assert demo_run.stderr == b""  # no progress bar, no warning into a log (issue 7)
    assert "\r" not in demo_run.stdout
    assert demo_run.results["ok"] is True
    assert "Result: the private results agree with the plaintext comparison" in demo_run.stdout
    # The exact signals are published compact by default, the fuzzy ones banded.
    published = re.search(r"Clearinghouse: published index version .*", demo_run.stdout)
    assert published, demo_run.stdout
    assert re.search(r"md5 compact exact \(format 3, \d+ refs", published[0])
    assert re.search(r"sha256 compact exact \(format 3, ", published[0])
    assert re.search(r"pdq banded \(format 1, ", published[0])
    assert re.search(r"Stopped the clearinghouse \(.*\); no process of it is left", demo_run.stdout)


def test_the_server_is_gone_afterwards(demo_run: DemoRun) -> None:
    assert _group_alive(demo_run.server_pid) == []
    with pytest.raises(ProcessLookupError):
        os.kill(demo_run.server_pid, 0)


def test_demo_writes_media_manifest_and_fingerprints(demo_run: DemoRun) -> None:
    out = demo_run.out
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest) == 2 * (1 + len(EDITS["image"])) + 1 + len(EDITS["video"])
    assert all((out / entry["path"]).is_file() for entry in manifest)
    assert all(entry["path"].startswith("media/") for entry in manifest)
    records = _records(out / "fingerprints.jsonl")
    assert [bytes.fromhex(r["path_hex"]) for r in records] == [
        os.fsencode(out / e["path"]) for e in manifest
    ]
    assert all("error" not in r for r in records)
    assert str(out / "fingerprints.jsonl") in demo_run.stdout  # the name's own bytes


def test_demo_records_are_the_hash_command_records(demo_run: DemoRun) -> None:
    for record in _records(demo_run.out / "fingerprints.jsonl"):
        path = os.fsdecode(bytes.fromhex(record["path_hex"]))
        assert record == fingerprint_file(path, HashOptions(dihedral=True))


def test_demo_summary(demo_run: DemoRun) -> None:
    text = demo_run.stdout
    images, videos = 2 * (1 + len(EDITS["image"])), 1 + len(EDITS["video"])
    assert f"Generated {images + videos} files" in text
    assert f"Fingerprinted {images} images and {videos} videos" in text
    for edit in EDITS["image"]:
        line = next(x for x in text.splitlines() if x.strip().startswith(f"image {edit} "))
        if edit != "cropped":
            assert line.endswith("matched 2/2"), line
    # PDQ is not crop-invariant: the line shows how far a slight crop moves the hash, and
    # counts as matched exactly the copies whose closest dihedral variant is within 31.
    line = next(x for x in text.splitlines() if x.strip().startswith("image cropped "))
    found = re.search(
        r"PDQ distance min/median/max (\d+)/[\d.]+/(\d+) +best dihedral (\d+)/[\d.]+/(\d+) "
        r"+matched (\d)/2$",
        line,
    )
    assert found, line
    low, high, best_low, best_high, matched = map(int, found.groups())
    assert 0 < low <= high
    assert best_low <= low
    assert best_high <= high
    assert matched == (best_low <= 31) + (best_high <= 31)
    for edit in EDITS["video"]:
        line = next(x for x in text.splitlines() if x.strip().startswith(f"video {edit} "))
        assert line.endswith("matched 1/1"), line


def _row(text: str, name: str) -> str:
    return next(x for x in text.splitlines() if x.startswith(f"  {name} "))


def test_demo_matches_privately_through_the_server(demo_run: DemoRun) -> None:
    before = {tuple(p) for p in demo_run.results["before_withdrawal"]["found"]}
    # Every other original is reported (image-000, video-000). The reported image matches
    # itself on md5, sha256 and pdq, its edited copies but the mirror (no --dihedral) on
    # pdq, the slight crop included; the reported video itself on
    # md5, sha256 and vpdq, its re-encoded, resized and trimmed copies privately on vpdq;
    # the unrelated image-001 and its copies nothing.
    assert before == {
        ("image-000.jpg", "md5"),
        ("image-000.jpg", "sha256"),
        ("image-000.jpg", "pdq"),
        ("image-000-reencoded.jpg", "pdq"),
        ("image-000-resized.jpg", "pdq"),
        ("image-000-brightened.jpg", "pdq"),
        ("image-000-cropped.jpg", "pdq"),
        ("video-000.mp4", "md5"),
        ("video-000.mp4", "sha256"),
        ("video-000.mp4", "vpdq"),
        ("video-000-reencoded.mp4", "vpdq"),
        ("video-000-resized.mp4", "vpdq"),
        ("video-000-trimmed.mp4", "vpdq"),
    }
    first = demo_run.results["before_withdrawal"]
    assert first["unexpected"] == first["missed"] == []
    assert {tuple(p) for p in first["expected"]} == before
    shares = first["vpdq_shares"]
    assert shares["video-000-trimmed.mp4"][0] == 100.0
    assert 0 < shares["video-000-trimmed.mp4"][1] < 100  # the first half of the frames
    assert first["stats"]["audits_verified"] >= 1
    assert first["stats"]["elements_sent"] > 0
    text = demo_run.stdout
    assert "md5 sha256 pdq / md5 sha256 pdq" in _row(text, "image-000.jpg")
    assert "vpdq / vpdq" in _row(text, "video-000-trimmed.mp4")
    assert "unrelated" in _row(text, "image-001.png")
    cropped = _row(text, "image-000-cropped.jpg")
    assert "copy of image-000.jpg" in cropped
    # Matched and expected agree (a slight crop usually stays within the band rule's reach).
    found = re.search(r"  (pdq|-) / (pdq|-)  ", cropped)
    assert found, cropped
    assert found.group(1) == found.group(2), cropped
    assert "unrelated" in _row(text, "image-001-cropped.png")


def test_the_withdrawn_report_stops_matching(demo_run: DemoRun) -> None:
    results = demo_run.results
    assert results["withdrawn"] == "image-000.jpg"
    before = {tuple(p) for p in results["before_withdrawal"]["found"]}
    after = {tuple(p) for p in results["after_withdrawal"]["found"]}
    assert before - after == {p for p in before if p[0].startswith("image-000")}
    assert after == {p for p in before if p[0].startswith("video-000")}
    assert results["after_withdrawal"]["agrees"] is True
    assert results["published_versions"][-1] > results["published_versions"][0]
    assert "the withdrawal of image-000.jpg: 7 matches disappeared" in demo_run.stdout


def test_what_each_party_saw(demo_run: DemoRun) -> None:
    text = demo_run.stdout
    person = next(x for x in text.splitlines() if x.startswith("  the person:"))
    assert "only the fingerprints of the 2 reported files left the device" in person
    clearinghouse = next(x for x in text.splitlines() if x.startswith("  the clearinghouse:"))
    elements = sum(
        demo_run.results[r]["stats"]["elements_sent"]
        for r in ("before_withdrawal", "after_withdrawal")
    )
    assert f"{elements} blinded elements" in clearinghouse
    assert "never an upload's hash" in clearinghouse
    assert "opaque handles" in next(x for x in text.splitlines() if x.startswith("  the platform:"))
    assert demo_run.results["person"]["reports"] == 2


def test_receipts_are_kept_privately_and_never_printed(demo_run: DemoRun) -> None:
    receipts = demo_run.out / "person" / "receipts.txt"
    assert stat.S_IMODE(receipts.stat().st_mode) == 0o600
    lines = receipts.read_text(encoding="utf-8").splitlines()
    assert [line.split()[0] for line in lines] == ["image-000.jpg", "video-000.mp4"]
    log = (demo_run.out / "clearinghouse" / "serve.log").read_text(errors="replace")
    for line in lines:
        secret = line.split()[1].rsplit(".", 1)[1]
        assert secret not in demo_run.stdout
        assert secret not in log
        assert secret not in (demo_run.out / "results.json").read_text(encoding="utf-8")


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


def test_the_plaintext_expectation(tmp_path: Path) -> None:
    manifest = generate(tmp_path, 2, 0, seed=2024)
    records = fingerprint(manifest, tmp_path, jobs=1, progress=False)
    media = tmp_path / "media"
    reported = [media / "image-000.jpg"]
    plain = expectation(manifest, records, media, reported)
    assert {k for k in plain.sources if k[1] != "pdq"} == {
        ("image-000.jpg", "md5"),
        ("image-000.jpg", "sha256"),
    }
    assert ("image-000-mirrored.jpg", "pdq") not in plain.sources
    assert not any(name.startswith("image-001") for name, _ in plain.sources)
    turned = expectation(manifest, records, media, reported, dihedral=True)
    assert ("image-000-mirrored.jpg", "pdq") in turned.sources  # the closest variant
    assert plain.without("image-000.jpg").sources == {}


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something else listens on: the clearinghouse cannot bind it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_server_that_cannot_start_is_one_line_and_its_log(tmp_path: Path, busy_port: int) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    args = ["demo", "--images", "1", "--videos", "0", "--port", str(busy_port)]
    result = subprocess.run(
        [sys.executable, "-m", "blindmatch", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("blindmatch: error: the clearinghouse did not start")
    assert "The last lines of the clearinghouse's log" in result.stdout
    assert "address already in use" in result.stdout.lower()
    assert list(tmp_path.iterdir()) == []  # no --out: the temporary folders are gone


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["int", "term"])
def test_a_stopped_demo_leaves_no_server_behind(tmp_path: Path, signal_number: int) -> None:
    args = ["demo", "--out", str(tmp_path / "out"), "--images", "1", "--videos", "0"]
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    with subprocess.Popen(
        [sys.executable, "-m", "blindmatch", *args, "--no-progress"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(temporary)},
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            found = re.search(r"'blindmatch serve' \(pid (\d+)\)", line)
            if found:
                break
        assert found, "".join(seen)
        proc.send_signal(signal_number)  # Ctrl-C, or `kill`/`timeout`
        code = proc.wait(timeout=120)
        rest = proc.stdout.read()
        error = proc.stderr.read()
    assert code == 130, error
    assert error == "blindmatch: interrupted\n"
    assert "Stopped the clearinghouse" in rest
    assert _group_alive(int(found[1])) == []
    # The clearinghouse's data folder is gone too (multiprocessing may leave its own).
    assert [p.name for p in temporary.iterdir() if p.name.startswith("blindmatch")] == []


def test_demo_draws_the_bar_on_a_terminal(tmp_path: Path, busy_port: int) -> None:
    # The bar is drawn while fingerprinting, before the server is needed: a server that
    # cannot start keeps this test short.
    args = ["demo", "--out", str(tmp_path), "--images", "1", "--videos", "0"]
    controller, terminal = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "blindmatch", *args, "--port", str(busy_port)],
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
    files = 1 + len(EDITS["image"])
    assert code == 2
    assert "\r[" + "#" * 30 + f"] {files}/{files} files 100%" in screen
    assert f"Fingerprinted {files} images and 0 videos".encode() in out


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
        ["--out"],
        ["--images", "-1"],
        ["--jobs", "0"],
        ["--seed", "-1"],
        ["--max-pixels", "0"],
        ["--images", "1001"],
        ["--videos", "10**20"],
        ["--port", "0"],
        ["--port", "65536"],
        ["--startup-timeout", "0"],
        ["--startup-timeout", "nan"],
    ],
    ids=[
        "out-empty",
        "images-neg",
        "jobs0",
        "seed-neg",
        "max-pixels0",
        "images-huge",
        "videos-text",
        "port0",
        "port-huge",
        "startup-timeout0",
        "startup-timeout-nan",
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


def test_demo_without_pyav_says_what_to_do_and_runs_images_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _demo("demo", "--out", str(out), "--images", "1", code="sys.modules['av'] = None")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "pip install 'blindmatch[video]'" in line
    assert "--videos 0" in line
    assert not out.exists()  # checked before anything is written
    # Without the video extra, the whole flow still runs on images.
    done = _demo(
        "demo",
        "--out",
        str(out),
        "--images",
        "1",
        "--videos",
        "0",
        "--no-progress",
        code="sys.modules['av'] = None",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["ok"] is True
    assert {tuple(p) for p in results["before_withdrawal"]["found"]} >= {
        ("image-000.jpg", "md5"),
        ("image-000-resized.jpg", "pdq"),
    }
    assert results["after_withdrawal"]["found"] == []


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
        "(default 60)",
        "removed at the end",
    ):
        assert default in text
