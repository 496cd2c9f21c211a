"""``blindmatch simulate``: in process (the library call and ``cli.main``) and as a subprocess."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from blindmatch import errors
from blindmatch.cli import main
from blindmatch.protocols import messages as m
from blindmatch.psi import oprf
from blindmatch.psi.keys import SecretKey
from blindmatch.simulate import list_files, simulate


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    rng = random.Random(5)
    root = tmp_path_factory.mktemp("simulate")
    refs, ups = root / "refs", root / "ups"
    (refs / "case-7").mkdir(parents=True)
    ups.mkdir()
    for i in range(6):
        (refs / "case-7" / f"item-{i}.bin").write_bytes(rng.randbytes(64 + i))
    (refs / ".hidden").write_bytes(b"not a reference")
    (ups / "same-as-item-3.bin").write_bytes((refs / "case-7" / "item-3.bin").read_bytes())
    (ups / "fresh.bin").write_bytes(rng.randbytes(70))
    (ups / "hidden-copy.bin").write_bytes(b"not a reference")
    return refs, ups


def _records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_library_call_matches_and_summarises(dirs: tuple[Path, Path]) -> None:
    refs, ups = dirs
    result = simulate(refs, ups, processes=1, batch_size=8)
    assert [(x.upload, x.report, x.signal) for x in result.matches] == [
        (str(ups / "same-as-item-3.bin"), "case-7/item-3.bin", "md5"),
        (str(ups / "same-as-item-3.bin"), "case-7/item-3.bin", "sha256"),
    ]
    summary = result.summary()
    clearinghouse = summary["clearinghouse"]
    platform = summary["platform"]
    assert isinstance(clearinghouse, dict)
    assert isinstance(platform, dict)
    assert clearinghouse["elements_evaluated"] == platform["elements_sent"]
    assert platform["bytes_sent"] == clearinghouse["bytes_received"]
    assert platform["bytes_received"] == clearinghouse["bytes_sent"]
    assert platform["audits_verified"] == 1
    assert platform["uploads_matched"] == 2
    assert summary["references"] == {"md5": 6, "sha256": 6}
    assert summary["uploads"] == {"md5": 3, "sha256": 3}
    assert summary["messages"] == len(result.transcript)
    assert all(type(m.decode(e.data)).__name__ != "ErrorMessage" for e in result.transcript)


def test_threads_give_the_same_matches_and_counts(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    refs, ups = dirs
    plain = simulate(refs, ups, processes=1, batch_size=1024)
    threaded = simulate(refs, ups, processes=1, batch_size=1024, threads=2)
    assert [(x.upload, x.report, x.signal) for x in threaded.matches] == [
        (x.upload, x.report, x.signal) for x in plain.matches
    ]
    assert threaded.clearinghouse.elements_evaluated == plain.clearinghouse.elements_evaluated
    assert (
        main(
            [
                "simulate",
                "--references",
                str(refs),
                "--uploads",
                str(ups),
                "--processes",
                "1",
                "--threads",
                "2",
                "--json",
            ]
        )
        == 0
    )
    assert len(_records(capsys.readouterr().out)) == len(plain.matches) + 1
    with pytest.raises(errors.LocalProtocolError):
        simulate(refs, ups, threads=0)


def test_simulation_with_a_given_key_and_no_audit(dirs: tuple[Path, Path]) -> None:
    refs, ups = dirs
    key = SecretKey.derive(bytes(32), b"cli", mode=oprf.Mode.VOPRF, epoch=9)
    result = simulate(refs, ups, signals=["sha256"], processes=1, audit_batches=0, key=key)
    assert [x.signal for x in result.matches] == ["sha256"]
    assert result.audits == 0
    info = m.decode(result.transcript[1].data)
    assert isinstance(info, m.ServerInfo)
    assert info.key_epoch == 9


def test_pdq_signal_matches_a_re_encoded_image(tmp_path: Path) -> None:
    rng = random.Random(3)
    refs, ups = tmp_path / "refs", tmp_path / "ups"
    refs.mkdir()
    ups.mkdir()
    base = Image.linear_gradient("L").resize((64, 64)).convert("RGB")
    noise = Image.frombytes("RGB", (64, 64), rng.randbytes(64 * 64 * 3))
    picture = Image.blend(base, noise, 0.3)
    picture.save(refs / "reported.png")
    picture.save(ups / "reencoded.jpg", quality=85)
    Image.frombytes("RGB", (64, 64), rng.randbytes(64 * 64 * 3)).save(ups / "other.png")
    (ups / "notes.txt").write_bytes(b"not an image")
    result = simulate(refs, ups, signals=["pdq"], processes=1, batch_size=512)
    assert [(Path(x.upload).name, x.report) for x in result.matches] == [
        ("reencoded.jpg", "reported.png")
    ]
    assert result.skipped == {"pdq": 1}


def test_dihedral_option_matches_mirrored_and_rotated_copies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    from blindmatch.samples import photo_like

    refs, ups = tmp_path / "refs", tmp_path / "ups"
    refs.mkdir()
    ups.mkdir()
    picture = Image.fromarray(photo_like(np.random.default_rng(4), 256, 192))
    picture.save(refs / "reported.png")
    picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(ups / "mirrored.png")
    picture.transpose(Image.Transpose.ROTATE_90).save(ups / "rotated.png")
    picture.save(ups / "same.jpg", quality=90)
    args = ["simulate", "--references", str(refs), "--uploads", str(ups), "--signals", "pdq"]
    assert main([*args, "--processes", "1", "--batch-size", "1024", "--json"]) == 0
    plain = _records(capsys.readouterr().out)
    assert [Path(str(r["upload"])).name for r in plain[:-1]] == ["same.jpg"]
    assert "variant" not in plain[0]
    assert main([*args, "--processes", "1", "--batch-size", "1024", "--json", "--dihedral"]) == 0
    records = _records(capsys.readouterr().out)
    assert [(Path(str(r["upload"])).name, r["report"], r["variant"]) for r in records[:-1]] == [
        ("mirrored.png", "reported.png", "flipY"),
        ("rotated.png", "reported.png", "rot270"),
        ("same.jpg", "reported.png", "original"),
    ]
    summary = records[-1]["summary"]
    assert isinstance(summary, dict)
    assert summary["dihedral"] is True
    assert summary["uploads"] == {"pdq": 3}
    assert summary["platform"]["variant_queries"] == 3 * 7
    assert summary["platform"]["uploads_looked_up"] == 3
    # 3 uploads x 8 variants x 384 bands, a 2-band canary, pads to a multiple of 128
    sent = summary["platform"]["elements_sent"]
    assert 3 * 8 * 384 + 2 <= sent < 3 * 8 * 384 + 2 + 128
    assert main([*args, "--processes", "1", "--dihedral"]) == 0
    out = capsys.readouterr().out
    assert "[pdq flipY " in out
    assert "dihedral: true" in out


def test_cli_json_lines_in_process(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    refs, ups = dirs
    code = main(
        [
            "simulate",
            "--references",
            str(refs),
            "--uploads",
            str(ups),
            "--signals",
            "md5",
            "--processes",
            "1",
            "--json",
        ]
    )
    assert code == 0
    records = _records(capsys.readouterr().out)
    assert records[:-1] == [
        {
            "upload": str(ups / "same-as-item-3.bin"),
            "report": "case-7/item-3.bin",
            "handle": records[0]["handle"],
            "signal": "md5",
        }
    ]
    handle = records[0]["handle"]
    assert isinstance(handle, str)
    assert len(bytes.fromhex(handle)) == 16
    assert set(records[-1]) == {"summary"}


def test_cli_text_output(dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    refs, ups = dirs
    assert (
        main(["simulate", "--references", str(refs), "--uploads", str(ups), "--processes", "1"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("match  ") == 2
    assert "clearinghouse saw:" in out
    assert "elements_evaluated" in out


def test_cli_subprocess(dirs: tuple[Path, Path]) -> None:
    refs, ups = dirs
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "blindmatch",
            "simulate",
            "--references",
            str(refs),
            "--uploads",
            str(ups),
            "--signals",
            "md5,sha256",
            "--processes",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    records = _records(done.stdout)
    assert [r["signal"] for r in records[:-1]] == ["md5", "sha256"]
    summary = records[-1]["summary"]
    assert isinstance(summary, dict)
    assert summary["platform"]["matches"] == 2


def test_cli_missing_directory_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["simulate", "--references", str(tmp_path / "nope"), "--uploads", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("blindmatch: error:")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "extra",
    [
        ["--signals", "md5,crc32"],
        ["--signals", ""],
        ["--processes", "0"],
        ["--batch-size", "x"],
        ["--threads", "0"],
    ],
    ids=["unknown-signal", "empty-signals", "zero-processes", "batch-not-int", "zero-threads"],
)
def test_cli_bad_arguments_exit_2(
    dirs: tuple[Path, Path], extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    refs, ups = dirs
    with pytest.raises(SystemExit) as caught:
        main(["simulate", "--references", str(refs), "--uploads", str(ups), *extra])
    assert caught.value.code == 2
    capsys.readouterr()


def test_library_rejects_bad_signals_and_directories(tmp_path: Path) -> None:
    with pytest.raises(errors.LocalProtocolError):
        simulate(tmp_path, tmp_path, signals=["crc32"])
    with pytest.raises(errors.LocalProtocolError):
        simulate(tmp_path, tmp_path, signals=[])
    with pytest.raises(errors.LocalProtocolError):
        list_files(tmp_path / "missing")


def test_empty_uploads_run_cleanly(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    refs, _ = dirs
    result = simulate(refs, tmp_path, processes=1)
    assert result.matches == []
    assert result.platform.requests == 0
    assert result.clearinghouse.elements_evaluated == 0


def test_an_empty_reference_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / ".hidden").write_bytes(b"hidden names are skipped")
    with pytest.raises(errors.LocalProtocolError, match="refs: no reference files"):
        simulate(tmp_path / "refs", tmp_path, processes=1)
    # Files, but not one gives a reference for the chosen signals: an error too.
    (tmp_path / "refs" / "notes.txt").write_bytes(b"not an image")
    with pytest.raises(errors.LocalProtocolError, match="no file in this folder gave a ref"):
        simulate(tmp_path / "refs", tmp_path, signals=["pdq"], processes=1)


def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "blindmatch", "simulate", *args],
        capture_output=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("option", ["--references", "--uploads"])
def test_missing_folder_names_the_option_and_the_path(
    dirs: tuple[Path, Path], tmp_path: Path, option: str
) -> None:
    refs, ups = dirs
    paths = {"--references": str(refs), "--uploads": str(ups)}
    paths[option] = str(tmp_path / "nonexistent")
    result = _run(*(x for item in paths.items() for x in item))
    assert result.returncode == 2
    assert result.stderr.decode() == (
        f"blindmatch: error: {option} {tmp_path / 'nonexistent'}: no such folder\n"
    )
    (tmp_path / "file").write_bytes(b"x")
    paths[option] = str(tmp_path / "file")
    result = _run(*(x for item in paths.items() for x in item))
    assert result.returncode == 2
    assert result.stderr.decode().endswith(f"{option} {tmp_path / 'file'}: not a folder\n")


def test_empty_reference_folder_from_the_command_line(tmp_path: Path) -> None:
    result = _run("--references", str(tmp_path), "--uploads", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.decode() == (
        f"blindmatch: error: {tmp_path}: no reference files in this folder "
        "(hidden names are skipped)\n"
    )


def test_skipped_files_are_named_with_their_reason(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    # Corrupt and empty files among the references (issue 7: only a count came out).
    _, ups = dirs
    refs = tmp_path / "refs"
    refs.mkdir()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(refs / "flat.png")
    Image.effect_noise((64, 64), 60).convert("RGB").save(refs / "good.png")
    png = (refs / "good.png").read_bytes()
    (refs / "cut.png").write_bytes(png[: len(png) // 2])
    (refs / "empty.jpg").write_bytes(b"")
    (refs / "notes.txt").write_bytes(b"not an image")
    result = _run(
        "--references",
        str(refs),
        "--uploads",
        str(ups),
        "--signals",
        "md5,pdq",
        "--processes",
        "1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    assert lines == [
        f"blindmatch: skipped {refs / 'cut.png'} for pdq: CorruptMedia: the image data is "
        "truncated or corrupt",
        f"blindmatch: skipped {refs / 'empty.jpg'} for md5: CorruptMedia: the file is empty",
        f"blindmatch: skipped {refs / 'empty.jpg'} for pdq: CorruptMedia: the file is empty",
        f"blindmatch: skipped {refs / 'flat.png'} for pdq: PDQ quality 0 is below 50",
        f"blindmatch: skipped {refs / 'notes.txt'} for pdq: UnsupportedMedia: not an image "
        "format blindmatch decodes",
        *(
            f"blindmatch: skipped {ups / name} for pdq: UnsupportedMedia: not an image format "
            "blindmatch decodes"
            for name in ("fresh.bin", "hidden-copy.bin", "same-as-item-3.bin")
        ),
    ]
    summary = _records(result.stdout.decode())[-1]["summary"]
    assert isinstance(summary, dict)
    skipped = summary["skipped_files"]
    assert [(s["folder"], Path(s["path"]).name, s["signal"]) for s in skipped] == [
        ("references", "cut.png", "pdq"),
        ("references", "empty.jpg", "md5"),
        ("references", "empty.jpg", "pdq"),
        ("references", "flat.png", "pdq"),
        ("references", "notes.txt", "pdq"),
        ("uploads", "fresh.bin", "pdq"),
        ("uploads", "hidden-copy.bin", "pdq"),
        ("uploads", "same-as-item-3.bin", "pdq"),
    ]
    assert summary["skipped"] == {"md5": 1, "pdq": 7}
    assert summary["references"] == {"md5": 4, "pdq": 1}


def test_undecodable_file_names_are_valid_json(tmp_path: Path) -> None:
    # A name that is not UTF-8 came out as a lone surrogate escape, which strict parsers
    # reject (issue 7). Now: readable "upload" plus the exact bytes in "upload_hex".
    refs, ups = tmp_path / "refs", tmp_path / "ups"
    refs.mkdir()
    ups.mkdir()
    (refs / "reported.bin").write_bytes(b"the same bytes")
    raw_name = os.fsencode(ups) + b"/bad\xff.bin"
    with open(raw_name, "wb") as handle:
        handle.write(b"the same bytes")
    result = _run(
        "--references",
        str(refs),
        "--uploads",
        str(ups),
        "--signals",
        "md5",
        "--processes",
        "1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode("utf-8")  # strict: no raw invalid bytes either
    assert "\\udc" not in text
    match = json.loads(text.splitlines()[0])
    assert match["upload"] == f"{ups}/bad\ufffd.bin"
    assert bytes.fromhex(match["upload_hex"]) == raw_name
    # Text output writes the name's own bytes, as ls does.
    plain = _run(
        "--references", str(refs), "--uploads", str(ups), "--signals", "md5", "--processes", "1"
    )
    assert plain.returncode == 0, plain.stderr
    assert b"match  " + raw_name + b"  ->  report reported.bin" in plain.stdout
