"""The reporting page end to end in chromium, at a phone and a desktop size: the questions
(age first; 18+ pointed to StopNCII; content; already shared -> the CyberTipline), picking
real files, hashing with progress, the preview, and the exact bodies it would send, whose
fingerprints must be the Python pipeline's for the same files. A recorded network log
proves no request leaves the page's origin and none carries a body. Screenshots of every
step go to test-artifacts/web/screens/."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from blindmatch.fingerprint.signals import hash_file
from blindmatch.fingerprint.types import PdqHash
from blindmatch.fingerprint.video import hash_video
from blindmatch.samples import photo_like, write_video
from blindmatch.web import CONTENT_SECURITY_POLICY, static_dir
from web_harness import (
    DESKTOP,
    PHONE,
    PageServer,
    artifacts_dir,
    chromium,
    net_log_requests,
    page_server,
)

SIZES = {"phone": PHONE, "desktop": DESKTOP}
FRAME_BOUND = 6
"""Per-frame PDQ distance allowed between the page's and Python's video frames (the bound
of tests/test_web_video.py)."""


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real files a person might pick: two photos, a video, a plain picture whose PDQ is
    too weak to send, and a file that is neither picture nor video."""
    directory = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(2026)
    files = {
        "photo": directory / "IMG_0001.jpg",
        "screenshot": directory / "screenshot.png",
        "video": directory / "clip.mp4",
        "plain": directory / "plain.png",
        "text": directory / "notes.txt",
    }
    Image.fromarray(photo_like(rng, 1024, 768)).save(files["photo"], quality=90)
    Image.fromarray(photo_like(rng, 390, 844)).save(files["screenshot"])
    write_video(files["video"], [photo_like(rng, 320, 240) for _ in range(6)], 3)
    Image.new("RGB", (300, 200), (200, 180, 160)).save(files["plain"])
    files["text"].write_text("my notes\n", encoding="utf-8")
    return files


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageServer]:
    with page_server(tmp_path_factory.mktemp("web-page-data")) as running:
        yield running


class Flow:
    """Drives the page like a person, and takes a full-page screenshot of each step."""

    def __init__(self, driver: webdriver.Chrome, size: str, shots: Path) -> None:
        self.driver, self.size, self.shots, self.count = driver, size, shots, 0
        width, height = SIZES[size]
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": size == "phone"},
        )

    def wait(self, script: str, timeout: float = 60) -> Any:
        return WebDriverWait(self.driver, timeout).until(lambda d: d.execute_script(script))

    def step(self) -> str:
        return str(self.driver.execute_script("return document.body.dataset.step || 'start'"))

    def click(self, element_id: str) -> None:
        self.driver.find_element(By.ID, element_id).click()

    def answer(self, name: str, value: str) -> None:
        self.driver.find_element(By.CSS_SELECTOR, f'input[name="{name}"][value="{value}"]').click()
        self.click(f"{name}-next")

    def shoot(self, label: str) -> None:
        self.count += 1
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        content = metrics["cssContentSize"]
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": SIZES[self.size][0],
                    "height": max(SIZES[self.size][1], content["height"]),
                    "scale": 1,
                },
            },
        )
        path = self.shots / f"{self.size}-{self.count:02d}-{label}.png"
        path.write_bytes(base64.b64decode(shot["data"]))

    def focused(self) -> str:
        return str(self.driver.execute_script("return document.activeElement.id"))


def _page_requests(driver: webdriver.Chrome, origin: str) -> list[dict[str, Any]]:
    """Every request the page (its document and its workers) made, from chromium's own
    network log; the browser's start-up tab (chrome:// pages) is not the page."""
    requests = []
    for entry in driver.get_log("performance"):  # type: ignore[no-untyped-call]
        message = json.loads(entry["message"])["message"]
        if message["method"] != "Network.requestWillBeSent":
            continue
        params = message["params"]
        if params.get("documentURL", "").startswith(origin):
            requests.append(params["request"])
    return requests


@pytest.mark.parametrize("size", list(SIZES))
def test_the_whole_flow(
    size: str, media: dict[str, Path], server: PageServer, tmp_path: Path
) -> None:
    shots = artifacts_dir("screens")
    net_log = tmp_path / "net-log.json"
    with chromium(tmp_path / "profile", SIZES[size], net_log=net_log) as driver:
        flow = Flow(driver, size, shots)
        driver.get(server.url)
        flow.wait("return document.body.dataset.ready === 'true'")
        flow.shoot("start")

        driver.find_element(By.CSS_SELECTOR, "#step-start button.primary").click()
        assert flow.step() == "age"
        assert flow.focused() == "age-title", "the new step's heading takes the focus"
        flow.click("age-next")
        assert driver.find_element(By.ID, "age-problem").is_displayed()
        flow.shoot("age-unanswered")

        flow.answer("age", "adult")
        assert flow.step() == "adult"
        link = driver.find_element(By.CSS_SELECTOR, "#step-adult a")
        assert link.get_attribute("href") == "https://stopncii.org/"
        flow.shoot("adult-pointed-to-stopncii")
        driver.find_element(By.CSS_SELECTOR, "#step-adult [data-back]").click()

        # Keyboard only: the radio by arrow keys, the button by Enter.
        driver.find_element(By.CSS_SELECTOR, 'input[name="age"][value="adult"]').send_keys(
            Keys.ARROW_UP
        )
        assert (
            driver.execute_script("return document.querySelector('input[name=age]:checked').value")
            == "minor"
        )
        driver.find_element(By.ID, "age-next").send_keys(Keys.ENTER)
        assert flow.step() == "kind"
        flow.shoot("kind")

        flow.answer("kind", "no")
        assert flow.step() == "notfor"
        driver.find_element(By.CSS_SELECTOR, "#step-notfor [data-back]").click()
        flow.answer("kind", "yes")
        assert flow.step() == "shared"
        flow.shoot("shared")

        flow.answer("shared", "unknown")
        assert flow.step() == "files"
        tipline = driver.find_element(By.CSS_SELECTOR, "#tipline a")
        assert tipline.is_displayed()
        assert tipline.get_attribute("href") == "https://report.cybertip.org/"
        assert driver.find_element(By.ID, "files-next").get_attribute("disabled")
        flow.shoot("files-empty")

        picked = "\n".join(str(media[k]) for k in ("photo", "text", "screenshot", "video", "plain"))
        driver.find_element(By.ID, "files-input").send_keys(picked)
        flow.wait(
            "return document.querySelector('#files-status').textContent.startsWith('All done')"
        )
        status = driver.find_element(By.ID, "files-status").text
        assert status == "All done: 4 ready, 1 left out (see below)."
        states = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#files-list .file-state")]
        assert states == [
            "Picture ready.",
            "This file is not a picture or a video, so it was left out. Your other files are fine.",
            "Picture ready.",
            "Video ready: fingerprints of 2 moments and of the whole file.",
            "Picture ready. It is very plain, so only its exact fingerprints are used.",
        ]
        flow.shoot("files-hashed")

        flow.click("files-next")
        assert flow.step() == "review"
        driver.find_element(By.CSS_SELECTOR, "#step-review summary").click()
        flow.shoot("review")
        review_body = json.loads(driver.find_element(By.ID, "review-body").text)

        flow.click("send")
        assert flow.step() == "sent"
        flow.shoot("sent")
        sent = driver.find_element(By.ID, "sent-body")
        bodies = json.loads(sent.text)
        assert bodies == review_body
        assert sent.get_attribute("data-path") == "/v1/reports"

        _assert_bodies_are_the_python_fingerprints(bodies, media)
        _assert_only_same_origin_requests_without_bodies(driver, server)
        _assert_accessible_and_stateless(driver)
        console = driver.get_log("browser")  # type: ignore[no-untyped-call]
        severe = [e for e in console if e["level"] == "SEVERE"]
        assert not severe, f"console errors (CSP violations show here): {severe}"
    _assert_net_log_shows_only_the_origin(net_log, server, size)


def _assert_bodies_are_the_python_fingerprints(
    bodies: list[dict[str, Any]], media: dict[str, Path]
) -> None:
    """The exact JSON the page would POST: the service's IntakeRequest shape, and for each
    file the fingerprints the Python pipeline computes (PDQ distance 0 on opaque images,
    docs/web.md; MD5/SHA-256 exactly). Nothing else: no names, no sizes."""

    def exact(path: Path) -> list[dict[str, Any]]:
        data = path.read_bytes()
        return [
            {"signal": "md5", "hash": hashlib.md5(data).hexdigest()},  # noqa: S324 - the signal
            {"signal": "sha256", "hash": hashlib.sha256(data).hexdigest()},
        ]

    def pdq(path: Path) -> list[dict[str, Any]]:
        fingerprint = hash_file(path, "pdq")
        return [{"signal": "pdq", "hash": fingerprint.hash.hex(), "quality": fingerprint.quality}]

    images = pdq(media["photo"]) + exact(media["photo"])
    images += pdq(media["screenshot"]) + exact(media["screenshot"])
    assert hash_file(media["plain"], "pdq").quality < 50
    images += exact(media["plain"])
    video = hash_video(media["video"])
    frames = [f for f in video.frames if f.quality >= 50]
    assert len(frames) == 2, "the clip's two seconds are both good frames"
    sent_video = bodies[1]["fingerprints"]
    assert sent_video[0]["signal"] == "vpdq"
    sent_frames = sent_video[0]["frames"]
    assert len(sent_frames) == len(frames)
    for sent_frame, frame in zip(sent_frames, frames, strict=True):
        assert set(sent_frame) == {"hash", "quality"}
        distance = PdqHash(bytes.fromhex(sent_frame["hash"])).distance(frame.pdq)
        assert distance <= FRAME_BOUND, [
            [PdqHash(bytes.fromhex(s["hash"])).distance(f.pdq) for f in video.frames]
            for s in sent_frames
        ]
    assert bodies == [
        {"content_kind": "image", "age_attestation": "minor", "fingerprints": images},
        {
            "content_kind": "video",
            "age_attestation": "minor",
            "fingerprints": [sent_video[0], *exact(media["video"])],
        },
    ]


def _assert_only_same_origin_requests_without_bodies(
    driver: webdriver.Chrome, server: PageServer
) -> None:
    requests = _page_requests(driver, server.url)
    urls = {r["url"].removeprefix(server.url) for r in requests}
    # The document's own requests (its workers' are in the NetLog, checked after exit).
    assert {"", "app.js", "hash-worker.js"} <= urls, "the log saw the page load"
    foreign = [r["url"] for r in requests if not r["url"].startswith((server.url, "blob:"))]
    assert not foreign, f"requests left the page's origin: {foreign}"
    with_body = [r["url"] for r in requests if r.get("hasPostData") or r.get("postData")]
    assert not with_body
    assert all(r.method == "GET" and r.body_length == 0 for r in server.requests)
    assert not [r.path for r in server.requests if r.path.startswith("/_test/")]


def _assert_accessible_and_stateless(driver: webdriver.Chrome) -> None:
    """Every control has an accessible name from a label (or aria-label), every step a
    heading that can take the focus; and the page kept nothing: no cookie, no storage."""
    unlabelled = driver.execute_script(
        """return Array.from(document.querySelectorAll("input, button, progress"))
             .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
                            && !(e.textContent || "").trim())
             .map((e) => e.outerHTML);"""
    )
    assert unlabelled == []
    headings = driver.execute_script(
        """return Array.from(document.querySelectorAll(".step")).map(
             (s) => s.querySelector("h1, h2") && s.querySelector("h1, h2").tabIndex);"""
    )
    assert len(headings) == 9
    assert all(index == -1 for index in headings)
    stored = driver.execute_script(
        "return [document.cookie, localStorage.length, sessionStorage.length];"
    )
    assert stored == ["", 0, 0]


def _assert_net_log_shows_only_the_origin(net_log: Path, server: PageServer, size: str) -> None:
    """Chromium's NetLog covers every process, the page's workers included: every request
    made for the page's site went to the page's origin, none carried a body."""
    site = server.url.rsplit(":", 1)[0]
    origin = server.url.rstrip("/")
    everything = net_log_requests(net_log)
    page = [r for r in everything if r.site == site or r.initiator == origin]
    paths = {r.url.removeprefix(server.url) for r in page}
    assert {"", "app.js", "hash-worker.js", "md5.js", "decode.js", "pdq.wasm"} <= paths
    assert all(r.url.startswith(server.url) for r in page), [r.url for r in page]
    assert not [r.url for r in page if r.has_body or r.method != "GET"]
    (artifacts_dir() / f"net-log-{size}.txt").write_text(
        "".join(f"{r.method} {r.url} site={r.site} body={r.has_body}\n" for r in everything),
        encoding="utf-8",
    )


def test_meta_policy_is_the_header_policy() -> None:
    """The page's meta tag says what the server sends, less frame-ancestors (which a meta
    tag cannot carry)."""
    html = (static_dir() / "index.html").read_text(encoding="utf-8")
    meta = CONTENT_SECURITY_POLICY.replace("; frame-ancestors 'none'", "")
    assert f'http-equiv="Content-Security-Policy" content="{meta}"' in html
    assert "frame-ancestors" in CONTENT_SECURITY_POLICY


def test_static_files_name_no_other_origin() -> None:
    """No file of the page loads anything from elsewhere (the only absolute URLs are the
    two links a person may choose to follow)."""
    allowed = {"https://stopncii.org/", "https://report.cybertip.org/"}
    for path in static_dir().iterdir():
        if path.suffix in {".html", ".js", ".css"}:
            text = path.read_text(encoding="utf-8")
            for scheme in ("http://", "https://", "//cdn", "@import"):
                for start in _find_all(text, scheme):
                    url = text[start:].split('"', 1)[0]
                    assert url in allowed, f"{path.name} names {url}"


def _find_all(text: str, needle: str) -> Iterator[int]:
    start = text.find(needle)
    while start != -1:
        yield start
        start = text.find(needle, start + 1)
