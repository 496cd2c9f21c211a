"""The reporting page's test harness: the page on a real HTTP server on loopback, opened in
Debian's headless chromium through Debian's chromedriver (selenium, with the driver's path
given, so nothing is ever downloaded).

Where chromium or chromedriver is missing the browser tests are skipped, except under CI
(``CI=true``), where a missing browser is a failure: CI installs both (scripts/system-deps).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from blindmatch.fingerprint.frontend import load_rgb
from blindmatch.fingerprint.pdq import pdq_from_rgb
from blindmatch.fingerprint.types import PdqHash
from blindmatch.samples import photo_like
from blindmatch.web import CONTENT_SECURITY_POLICY, static_dir

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = (390, 844)
DESKTOP = (1280, 800)
TEST_PREFIX = "/_test/"
"""Files a test puts in front of the browser (RGB arrays, images) are served under this
path, from a temporary directory; the page itself never asks for it."""


def require_browser() -> None:
    """Skip (or, under CI, fail) when Debian's chromium and its driver are not installed."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    if not missing:
        return
    message = f"not installed: {', '.join(missing)} (apt-get install chromium chromium-driver)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Request:
    """One request the server saw: enough to prove what the page sent."""

    method: str
    path: str
    headers: dict[str, str]
    body_length: int


@dataclass
class PageServer:
    """A running server: its base URL, the test-data directory, the requests it saw."""

    url: str
    test_dir: Path
    requests: list[Request] = field(default_factory=list)


class _Handler(SimpleHTTPRequestHandler):
    """Serves the page's static directory, and TEST_PREFIX from the test directory."""

    extensions_map = {  # noqa: RUF012 - the base class's attribute, extended
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".wasm": "application/wasm",
    }

    def __init__(self, *args: Any, server_state: PageServer, **kwargs: Any) -> None:
        self.server_state = server_state
        super().__init__(*args, directory=str(static_dir()), **kwargs)

    def translate_path(self, path: str) -> str:
        if path.startswith(TEST_PREFIX):
            name = path[len(TEST_PREFIX) :].split("?", 1)[0]
            return str(self.server_state.test_dir / Path(name).name)
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server_state.requests.append(
            Request(self.command, self.path, dict(self.headers.items()), length)
        )

    def do_GET(self) -> None:
        self._record()
        super().do_GET()

    def do_POST(self) -> None:
        self._record()
        self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def page_server(test_dir: Path) -> Iterator[PageServer]:
    """The page's static files on http://127.0.0.1:<free port>/ for the block's duration."""
    state = PageServer(url="", test_dir=test_dir)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, server_state=state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@contextmanager
def chromium(
    profile: Path, size: tuple[int, int] = DESKTOP, net_log: Path | None = None
) -> Iterator[webdriver.Chrome]:
    """Headless chromium with a fresh profile, no background traffic, window ``size``.

    ``net_log``: where chromium writes its NetLog (every request of every process, the
    page's workers included), complete once the block has exited (read it with
    :func:`net_log_requests`)."""
    require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",  # the tests run as root
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}",
    ):
        options.add_argument(argument)
    if net_log is not None:
        options.add_argument(f"--log-net-log={net_log}")
        # Every byte sent on every socket goes into the log (request bodies included).
        options.add_argument("--net-log-capture-mode=Everything")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_script_timeout(300)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@dataclass(frozen=True)
class NetRequest:
    """A request from chromium's NetLog: its method, URL, whether it carried a body, the
    origin that started it, and the top-level site it was made for (the first half of its
    network isolation key): the page and its workers have the page's site; the browser's
    own background requests (update checks, its start page) have another, or "null"."""

    method: str
    url: str
    has_body: bool
    initiator: str
    site: str


def net_log_requests(net_log: Path) -> list[NetRequest]:
    """The URL requests in a NetLog file (written by chromium's ``--log-net-log``)."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    kinds = {value: name for name, value in log["constants"]["logEventTypes"].items()}
    found = []
    for event in log["events"]:
        if kinds.get(event.get("type")) == "URL_REQUEST_START_JOB" and "url" in event.get(
            "params", {}
        ):
            params = event["params"]
            found.append(
                NetRequest(
                    method=params.get("method", "?"),
                    url=params["url"],
                    has_body="upload_id" in params,
                    initiator=params.get("initiator", ""),
                    site=params.get("network_isolation_key", "").split(" ")[0],
                )
            )
    return found


def net_log_sent_bytes(net_log: Path) -> bytes:
    """Every byte chromium sent on any socket, as logged (``--net-log-capture-mode=
    Everything``), concatenated per event: request lines, headers and bodies of plain
    HTTP. Concatenation can only join runs, never hide one inside an event."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    kinds = {value: name for name, value in log["constants"]["logEventTypes"].items()}
    chunks = []
    for event in log["events"]:
        if kinds.get(event.get("type")) == "SOCKET_BYTES_SENT" and "bytes" in event.get(
            "params", {}
        ):
            chunks.append(base64.b64decode(event["params"]["bytes"]))
    return b"".join(chunks)


def run_async(driver: webdriver.Chrome, body: str, *args: Any) -> Any:
    """Runs ``body`` (an async function body; ``args`` is its argument list) in the page
    and returns its result; a rejected promise becomes an AssertionError with its message."""
    script = (
        "const done = arguments[arguments.length - 1];"
        "const args = Array.from(arguments).slice(0, -1);"
        f"(async (args) => {{ {body} }})(args).then("
        "  (value) => done({ok: value}),"
        "  (error) => done({error: String((error && error.stack) || error)}));"
    )
    reply = driver.execute_async_script(script, *args)
    assert "error" not in reply, reply["error"]
    return reply["ok"]


# ------------------------------------------------ browser decoding vs the Python front end

REFERENCE_IMAGES = Path(__file__).parent / "vectors" / "pdq" / "images"
GENERATED_SIZES = ((640, 480), (1024, 768), (333, 500), (1200, 1600), (64, 64), (101, 37))
"""(width, height) of the generated pictures."""


def generated_images(directory: Path, seed: int = 12) -> list[tuple[str, Path]]:
    """Photo-like pictures in the formats phones make and share, as (group, path): JPEG at
    quality 90 and 60 (4:2:0 chroma), PNG, lossy and lossless WebP, a translucent RGBA PNG,
    and JPEGs with EXIF orientations 3, 6 and 8."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, Path]] = []

    def save(group: str, image: Image.Image, name: str, **options: Any) -> None:
        path = directory / name
        image.save(path, **options)
        out.append((group, path))

    for width, height in GENERATED_SIZES:
        image = Image.fromarray(photo_like(rng, width, height))
        stem = f"photo-{width}x{height}"
        save("jpeg-q90", image, f"{stem}-q90.jpg", quality=90)
        save("jpeg-q60", image, f"{stem}-q60.jpg", quality=60)
        save("png", image, f"{stem}.png", compress_level=1)
        save("webp-lossy", image, f"{stem}.webp", quality=85, method=2)
        save("webp-lossless", image, f"{stem}-lossless.webp", lossless=True, method=0)
        alpha = Image.fromarray(rng.integers(64, 256, (height, width), dtype=np.uint8))
        rgba = image.copy()
        rgba.putalpha(alpha)
        save("png-translucent", rgba, f"{stem}-rgba.png", compress_level=1)
    image = Image.fromarray(photo_like(rng, 800, 600))
    for orientation in (3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        save("jpeg-exif", image, f"exif-{orientation}.jpg", quality=90, exif=exif.tobytes())
    return out


def reference_images() -> list[tuple[str, Path]]:
    """The PDQ reference vector images, as (group, path)."""
    return [("reference", path) for path in sorted(REFERENCE_IMAGES.iterdir())]


DECODE_AND_HASH = """
const [names] = args;
const { decodeImage } = await import("/decode.js");
const { pdqFromPixels } = await import("/pdq.js");
const out = {};
for (const name of names) {
  const blob = await (await fetch("/_test/" + name)).blob();
  try {
    const image = await decodeImage(blob);
    const rgb = new Uint8Array(image.width * image.height * 3);
    for (let i = 0, j = 0; i < image.pixels.length; i += 4, j += 3) {
      rgb[j] = image.pixels[i]; rgb[j + 1] = image.pixels[i + 1]; rgb[j + 2] = image.pixels[i + 2];
    }
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", rgb));
    const hash = await pdqFromPixels(image.pixels, image.height, image.width, 4);
    out[name] = { ...hash, width: image.width, height: image.height,
                  rgb_sha256: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("") };
  } catch (error) {
    out[name] = { error: String(error.message) };
  }
}
return out;
"""


@dataclass
class DecodeComparison:
    """One file decoded and hashed by the browser and by the Python ``default`` pipeline."""

    name: str
    group: str
    distance: int
    quality_browser: int
    quality_python: int
    same_pixels: bool
    same_size: bool


def compare_decoding(
    driver: webdriver.Chrome, server: PageServer, files: list[tuple[str, Path]]
) -> list[DecodeComparison]:
    """Decode and PDQ-hash ``files`` ((group, path)) in the browser (decode.js, pdq.js) and
    with the Python front end; the files are copied into the server's test directory."""
    names = []
    for group, path in files:
        name = f"{group}--{path.name}"
        shutil.copyfile(path, server.test_dir / name)
        names.append(name)
    browser: dict[str, dict[str, Any]] = run_async(driver, DECODE_AND_HASH, names)
    results = []
    for name, (group, path) in zip(names, files, strict=True):
        rgb = np.ascontiguousarray(load_rgb(path))
        want = pdq_from_rgb(rgb)
        got = browser[name]
        assert "error" not in got, f"{path.name}: the browser could not decode it: {got}"
        distance = PdqHash(bytes.fromhex(got["pdq"])).distance(want.hash)
        results.append(
            DecodeComparison(
                name=path.name,
                group=group,
                distance=distance,
                quality_browser=got["quality"],
                quality_python=want.quality,
                same_pixels=got["rgb_sha256"] == hashlib.sha256(rgb.tobytes()).hexdigest(),
                same_size=(got["height"], got["width"]) == rgb.shape[:2],
            )
        )
        (server.test_dir / name).unlink()
    return results


def summarize(results: list[DecodeComparison]) -> dict[str, dict[str, Any]]:
    """Per group: files, PDQ distance mean/median/max, pixel-identical files, the largest
    quality difference."""
    groups: dict[str, list[DecodeComparison]] = {}
    for result in results:
        groups.setdefault(result.group, []).append(result)
    summary = {}
    for group, members in groups.items():
        distances = sorted(r.distance for r in members)
        summary[group] = {
            "files": len(members),
            "distance_mean": round(sum(distances) / len(distances), 3),
            "distance_median": distances[len(distances) // 2],
            "distance_max": distances[-1],
            "pixel_identical": sum(r.same_pixels for r in members),
            "quality_diff_max": max(abs(r.quality_browser - r.quality_python) for r in members),
            "over_zero": {r.name: r.distance for r in members if r.distance},
        }
    return summary


def summary_markdown(summary: dict[str, dict[str, Any]], browser_version: str) -> str:
    """The summary as a markdown table."""
    lines = [
        f"# Browser decoding vs the Python `default` pipeline ({browser_version})",
        "",
        "| files | n | pixel-identical | PDQ distance mean | median | max | quality diff max |",
        "|---|---|---|---|---|---|---|",
    ]
    for group, row in summary.items():
        lines.append(
            f"| {group} | {row['files']} | {row['pixel_identical']} | {row['distance_mean']} "
            f"| {row['distance_median']} | {row['distance_max']} | {row['quality_diff_max']} |"
        )
    lines.append("")
    for group, row in summary.items():
        for name, distance in row["over_zero"].items():
            lines.append(f"- {group} / {name}: {distance} bits")
    return "\n".join(lines) + "\n"


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"
"""Screenshots and measurements the browser tests keep for people to look at (git-ignored;
CI keeps the directory as an artefact)."""


def artifacts_dir(*parts: str) -> Path:
    """A directory under :data:`ARTIFACTS`, created."""
    path = ARTIFACTS.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
