"""PDQ in the browser (pdq.wasm, built from the project's C core) against the Python core:
the same RGB arrays in both, every hash bit and the quality compared, on every reference
image (decoded by the Python front end) and on generated images of many sizes and kinds.
Also: the checked-in module is what ``make wasm`` builds, from the checked-in DCT table."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from selenium import webdriver

from blindmatch.fingerprint.frontend import load_rgb
from blindmatch.fingerprint.pdq import pdq_from_luma, pdq_from_rgb
from blindmatch.fingerprint.video import luma_from_rgb
from blindmatch.web import static_dir, wasm_build
from web_harness import PageServer, chromium, page_server, run_async

VECTORS = Path(__file__).parent / "vectors" / "pdq" / "images"
RGB = npt.NDArray[np.uint8]

HASH_ALL = """
const [names, videoFrame] = args;
const { pdqFromPixels } = await import("/pdq.js");
const out = {};
for (const [name, rows, cols, channels] of names) {
  const response = await fetch("/_test/" + name);
  const pixels = new Uint8Array(await response.arrayBuffer());
  out[name] = await pdqFromPixels(pixels, rows, cols, channels, { videoFrame });
}
return out;
"""


@pytest.fixture(scope="module")
def browser(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[webdriver.Chrome, PageServer]]:
    data = tmp_path_factory.mktemp("web-pdq-data")
    with page_server(data) as server, chromium(tmp_path_factory.mktemp("profile")) as driver:
        driver.get(server.url)
        yield driver, server


def _generated() -> Iterator[tuple[str, RGB]]:
    """Images of every shape class the core branches on, and flat/few-valued ones whose DCT
    coefficients tie at the median."""
    rng = np.random.default_rng(20261205)
    sides = [1, 4, 5, 6, 7, 17, 63, 64, 65, 127, 128, 129, 255, 256, 257, 300, 511, 640, 1001]
    shapes = [(h, w) for h in sides[::3] for w in sides[1::3]] + [(5, 1500), (1500, 5), (720, 1280)]
    for h, w in shapes:
        yield f"noise-{h}x{w}.rgb", rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    for h, w in [(100, 150), (333, 222), (480, 640)]:
        y, x = np.mgrid[0:h, 0:w]
        smooth = np.stack([(x * 255) // w, (y * 255) // h, ((x + y) * 255) // (h + w)], axis=2)
        yield f"gradient-{h}x{w}.rgb", smooth.astype(np.uint8)
        blocks = ((x // 37 + y // 23) % 3 * 100).astype(np.uint8)
        yield f"blocks-{h}x{w}.rgb", np.stack([blocks] * 3, axis=2)
        rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        yield f"rgba-{h}x{w}.rgb", rgba
    yield "flat-64x64.rgb", np.full((64, 64, 3), 77, np.uint8)
    yield "black-200x100.rgb", np.zeros((200, 100, 3), np.uint8)


def _hash_in_browser(
    browser: tuple[webdriver.Chrome, PageServer],
    images: list[tuple[str, RGB]],
    *,
    video_frame: bool = False,
) -> dict[str, dict[str, object]]:
    driver, server = browser
    for name, rgb in images:
        (server.test_dir / name).write_bytes(np.ascontiguousarray(rgb).tobytes())
    names = [[name, *rgb.shape] for name, rgb in images]
    result: dict[str, dict[str, object]] = run_async(driver, HASH_ALL, names, video_frame)
    for name, _ in images:
        (server.test_dir / name).unlink()
    return result


def _assert_same(
    images: list[tuple[str, RGB]],
    got: dict[str, dict[str, object]],
    *,
    video_frame: bool = False,
) -> None:
    mismatches = []
    for name, rgb in images:
        want = pdq_from_luma(luma_from_rgb(rgb[:, :, :3])) if video_frame else pdq_from_rgb(rgb)
        if got[name] != {"pdq": want.hash.hex(), "quality": want.quality}:
            mismatches.append(name)
    assert not mismatches, f"browser PDQ differs from the Python core on {mismatches}"


@pytest.mark.parametrize("start", [0, 11, 22, 33])
def test_reference_images_bit_identical(
    browser: tuple[webdriver.Chrome, PageServer], start: int
) -> None:
    """Every reference image (in four batches, to bound the temporary files)."""
    files = sorted(VECTORS.iterdir())[start : start + 11]
    assert files
    images = [(f"{path.name}.rgb", np.asarray(load_rgb(path))) for path in files]
    _assert_same(images, _hash_in_browser(browser, images))


def test_generated_images_bit_identical(browser: tuple[webdriver.Chrome, PageServer]) -> None:
    images = list(_generated())
    assert len(images) > 50
    _assert_same(images, _hash_in_browser(browser, images))


def test_video_frames_bit_identical(browser: tuple[webdriver.Chrome, PageServer]) -> None:
    """The video-frame entry (vPDQ's float32 luma) against pdq_from_luma(luma_from_rgb)."""
    images = [(name, rgb) for name, rgb in _generated() if rgb.shape[2] == 3]
    images += [
        (f"{path.name}.rgb", np.asarray(load_rgb(path)))
        for path in sorted(VECTORS.iterdir())
        if path.stat().st_size < 400_000
    ]
    assert len(images) > 60
    got = _hash_in_browser(browser, images, video_frame=True)
    _assert_same(images, got, video_frame=True)


def test_bad_pixel_array_is_refused(browser: tuple[webdriver.Chrome, PageServer]) -> None:
    driver, _ = browser
    message = run_async(
        driver,
        """const { pdqFromPixels } = await import("/pdq.js");
        try { await pdqFromPixels(new Uint8Array(10), 5, 5, 3); return "accepted"; }
        catch (error) { return String(error.message); }""",
    )
    assert message == "pixel array and size disagree"


def test_dct_table_is_the_python_matrix() -> None:
    """The header the module is built from holds pdq.py's matrix, every float exact."""
    assert wasm_build.TABLE.read_text(encoding="utf-8") == wasm_build.dct_table_header()


def test_checked_in_wasm_is_what_make_wasm_builds(tmp_path: Path) -> None:
    """Rebuild with the same clang and compare byte for byte (skipped without it: the
    checked-in module is then used as is; CI installs clang and lld)."""
    clang = shutil.which("clang")
    if clang is None or shutil.which("wasm-ld") is None:
        pytest.skip("clang and lld not installed")
    version = subprocess.run(
        [clang, "--version"], capture_output=True, text=True, check=True
    ).stdout
    if f"clang version {wasm_build.CLANG_MAJOR}." not in version:
        pytest.skip(f"pdq.wasm is built with clang {wasm_build.CLANG_MAJOR}")
    rebuilt = tmp_path / "pdq.wasm"
    wasm_build.build_wasm(rebuilt)
    assert rebuilt.read_bytes() == (static_dir() / "pdq.wasm").read_bytes()
