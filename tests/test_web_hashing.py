"""The page's file fingerprints in chromium: MD5 (md5.js) on RFC 1321's vectors and against
hashlib at every chunking, and whole files through the worker pool (hashing.js): MD5 and
SHA-256 equal hashlib's, images get PDQ, a file that is neither image nor video gets a
plain message while the others go on."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver

from blindmatch.samples import photo_like, write_video
from web_harness import PageServer, chromium, page_server, run_async

Browser = tuple[webdriver.Chrome, PageServer]

# RFC 1321, appendix A.5.
RFC1321 = [
    ("", "d41d8cd98f00b204e9800998ecf8427e"),
    ("a", "0cc175b9c0f1b6a831c399e269772661"),
    ("abc", "900150983cd24fb0d6963f7d28e17f72"),
    ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
    (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "d174ab98d277d9f5a5611c2c9f419d9f",
    ),
    ("1234567890" * 8, "57edf4a22be3c955ac49da2e2107b67a"),
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    data = tmp_path_factory.mktemp("web-hashing-data")
    with page_server(data) as server, chromium(tmp_path_factory.mktemp("profile")) as driver:
        driver.get(server.url)
        yield driver, server


@pytest.mark.parametrize(("message", "digest"), RFC1321, ids=[d for _, d in RFC1321])
def test_md5_rfc1321_vectors(browser: Browser, message: str, digest: str) -> None:
    got = run_async(
        browser[0],
        """const { md5Hex } = await import("/md5.js");
        return md5Hex(new TextEncoder().encode(args[0]));""",
        message,
    )
    assert got == digest


def test_md5_incremental_equals_hashlib(browser: Browser) -> None:
    """Every length around the 56/64-byte padding edges, fed in random chunk sizes."""
    rng = random.Random(12)
    cases = []
    for length in [*range(130), 1000, 4095, 65537, 1 << 20]:
        data = rng.randbytes(length)
        cuts = sorted(rng.sample(range(length + 1), min(length + 1, 3)))
        cases.append((data.hex(), cuts, hashlib.md5(data).hexdigest()))  # noqa: S324 - the MD5 signal
    got = run_async(
        browser[0],
        """const { Md5 } = await import("/md5.js");
        const out = [];
        for (const [hexData, cuts] of args[0]) {
          const bytes = new Uint8Array(hexData.length / 2);
          for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hexData.substr(2 * i, 2), 16);
          const md5 = new Md5();
          let start = 0;
          for (const cut of cuts) { md5.update(bytes.subarray(start, cut)); start = cut; }
          md5.update(bytes.subarray(start));
          out.push(md5.hex());
        }
        return out;""",
        [[data, cuts] for data, cuts, _ in cases],
    )
    assert got == [digest for _, _, digest in cases]


HASH_FILES = """
const { hashFiles } = await import("/hashing.js");
const files = [];
for (const name of args[0]) {
  const blob = await (await fetch("/_test/" + name)).blob();
  files.push(new File([blob], name));
}
const progress = new Array(files.length).fill(0);
const outcomes = await hashFiles(files, (index, update) => {
  if ("progress" in update) progress[index] += 1;
});
return { outcomes, progress };
"""


def _write_files(directory: Path) -> list[str]:
    rng = np.random.default_rng(7)
    Image.fromarray(photo_like(rng, 640, 480)).save(directory / "photo.jpg", quality=90)
    Image.fromarray(photo_like(rng, 300, 200)).save(directory / "drawing.png")
    Image.fromarray(photo_like(rng, 257, 301)).save(directory / "sticker.webp", quality=85)
    (directory / "notes.txt").write_bytes(b"not a picture at all\n" * 100)
    (directory / "empty.jpg").write_bytes(b"")
    (directory / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
    (directory / "scan.tiff").write_bytes(b"II*\x00" + bytes(100))
    frames = [photo_like(rng, 160, 120) for _ in range(6)]
    write_video(directory / "clip.mp4", frames, 3)
    return [
        "photo.jpg",
        "notes.txt",
        "drawing.png",
        "empty.jpg",
        "clip.mp4",
        "broken.jpg",
        "scan.tiff",
        "sticker.webp",
    ]


def test_files_through_the_worker_pool(browser: Browser) -> None:
    driver, server = browser
    names = _write_files(server.test_dir)
    reply: dict[str, Any] = run_async(driver, HASH_FILES, names)
    by_name = dict(zip(names, reply["outcomes"], strict=True))
    for name in ("photo.jpg", "drawing.png", "sticker.webp", "clip.mp4"):
        data = (server.test_dir / name).read_bytes()
        result = by_name[name]["result"]
        assert result["md5"] == hashlib.md5(data).hexdigest()  # noqa: S324 - the MD5 signal
        assert result["sha256"] == hashlib.sha256(data).hexdigest()
        assert result["size"] == len(data)
        assert result["kind"] == ("video" if name.endswith(".mp4") else "image")
    for name in ("photo.jpg", "drawing.png", "sticker.webp"):
        result = by_name[name]["result"]
        assert len(result["pdq"]) == 64
        assert result["quality"] >= 50
    assert by_name["notes.txt"] == {
        "error": "This file is not a picture or a video, so it was left out."
    }
    assert by_name["empty.jpg"] == by_name["notes.txt"]
    assert by_name["broken.jpg"] == {
        "error": "This picture could not be opened, so it was left out."
    }
    assert by_name["scan.tiff"] == {
        "error": "This kind of picture cannot be opened in a browser, so it was left out."
    }
    hashed = [i for i, name in enumerate(names) if "result" in by_name[name]]
    assert all(reply["progress"][i] >= 2 for i in hashed), "each hashed file shows progress"
