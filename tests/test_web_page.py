"""The reporting page end to end in chromium against a real ``blindmatch serve``, at a phone
and a desktop size: the questions (age first; 18+ pointed to StopNCII; content; already
shared -> the CyberTipline), picking real files, hashing with progress, the preview,
sending one report per file, the receipt, checking the status and taking a report back.
The database must then hold the fingerprints the Python pipeline computes for the same
files. Chromium's own network log (every process, every byte it sent) proves that every
request went to the page's origin and that nothing it sent holds any 64-byte window of a
picked file. Screenshots of every step go to test-artifacts/web/screens/."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from blindmatch.fingerprint.signals import hash_file
from blindmatch.fingerprint.types import PdqHash
from blindmatch.fingerprint.video import hash_video
from blindmatch.samples import photo_like, write_video
from blindmatch.web import CONTENT_SECURITY_POLICY, static_dir
from service_support import Server, start_server
from web_harness import (
    DESKTOP,
    PHONE,
    artifacts_dir,
    chromium,
    net_log_requests,
    net_log_sent_bytes,
    require_browser,
    run_async,
)

SIZES = {"phone": PHONE, "desktop": DESKTOP}
FRAME_BOUND = 6
"""Per-frame PDQ distance allowed between the page's and Python's video frames (the bound
of tests/test_web_video.py)."""
RECEIPT = re.compile(r"^bm1\.([0-9a-f]{24})\.([A-Za-z0-9_-]{43})$")
"""The string a person keeps for one report, as ``blindmatch report`` prints it:
``bm1.<report id>.<the service's secret receipt>``."""
WINDOW = 64
"""No run of this many bytes of a picked file may be in anything the browser sends."""


def make_media(directory: Path, seed: int) -> dict[str, Path]:
    """Real files a person might pick: two photos, a video, a plain picture whose PDQ is
    too weak to send, and a file that is neither picture nor video."""
    rng = np.random.default_rng(seed)
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
    Image.new("RGB", (300, 200), (200, 180 + seed % 50, 160)).save(files["plain"])
    files["text"].write_text("my notes\n", encoding="utf-8")
    return files


@pytest.fixture
def media(tmp_path: Path) -> dict[str, Path]:
    directory = tmp_path / "media"
    directory.mkdir()
    return make_media(directory, 2026)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    require_browser()
    running = start_server(tmp_path / "data", "")
    try:
        yield running
    finally:
        running.stop()


class Flow:
    """Drives the page like a person, and takes a full-page screenshot of each step."""

    def __init__(self, driver: webdriver.Chrome, size: str, shots: Path, prefix: str = "") -> None:
        self.driver, self.size, self.shots, self.count = driver, size, shots, 0
        self.prefix = prefix
        width, height = SIZES[size]
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": size == "phone"},
        )

    def wait(self, script: str, timeout: float = 60) -> Any:
        return WebDriverWait(self.driver, timeout).until(lambda d: d.execute_script(script))

    def step(self) -> str:
        return str(self.driver.execute_script("return document.body.dataset.step || 'start'"))

    def wait_step(self, step: str, timeout: float = 60) -> None:
        self.wait(f"return document.body.dataset.step === '{step}'", timeout)

    def click(self, element_id: str) -> None:
        self.driver.find_element(By.ID, element_id).click()

    def answer(self, name: str, value: str) -> None:
        self.driver.find_element(By.CSS_SELECTOR, f'input[name="{name}"][value="{value}"]').click()
        self.click(f"{name}-next")

    def text(self, element_id: str) -> str:
        return str(self.driver.find_element(By.ID, element_id).text)

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
        path = self.shots / f"{self.prefix}{self.size}-{self.count:02d}-{label}.png"
        path.write_bytes(base64.b64decode(shot["data"]))

    def focused(self) -> str:
        """The focused element: its id, ``name=value`` for a radio, or its tag and name."""
        return str(
            self.driver.execute_script(
                "const e = document.activeElement;"
                "if (e.id) return e.id;"
                "if (e.name) return e.name + '=' + e.value;"
                "return e.tagName.toLowerCase() + ':'"
                "  + (e.getAttribute('aria-label') || e.textContent.trim());"
            )
        )

    def keys(self, *keys: str) -> None:
        """Press keys, one after the other, wherever the focus is (as a person would)."""
        for key in keys:
            ActionChains(self.driver).send_keys(key).perform()

    def tabs(self, count: int) -> list[str]:
        """Press Tab ``count`` times; the element focused after each press."""
        seen = []
        for _ in range(count):
            self.keys(Keys.TAB)
            seen.append(self.focused())
        return seen

    def pick_files(self, paths: list[Path]) -> None:
        self.driver.find_element(By.ID, "files-input").send_keys("\n".join(map(str, paths)))
        self.wait(
            "return document.querySelector('#files-status').textContent.startsWith('All done')"
        )

    def questions(self) -> None:
        """Under 18, nude or sexual, don't know whether shared: to the file picker."""
        self.driver.find_element(By.CSS_SELECTOR, "#step-start button.primary").click()
        self.answer("age", "minor")
        self.answer("kind", "yes")
        self.answer("shared", "unknown")
        assert self.step() == "files"


@pytest.mark.parametrize("size", list(SIZES))
def test_the_whole_flow(size: str, media: dict[str, Path], server: Server, tmp_path: Path) -> None:
    shots = artifacts_dir("screens")
    net_log = tmp_path / "net-log.json"
    origin = server.url + "/"
    with chromium(tmp_path / "profile", SIZES[size], net_log=net_log) as driver:
        flow = Flow(driver, size, shots)
        driver.get(origin)
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

        # Keyboard: the radio by arrow keys, the button by Enter.
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

        picked = [media[k] for k in ("photo", "text", "screenshot", "video", "plain")]
        flow.pick_files(picked)
        assert flow.text("files-status") == "All done: 4 ready, 1 left out (see below)."
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
        bodies = json.loads(flow.text("review-body"))
        _assert_bodies_are_the_python_fingerprints(bodies, media)

        flow.click("send")
        flow.wait_step("receipt")
        assert flow.focused() == "receipt-title"
        flow.shoot("receipt")
        receipts = flow.text("receipt-text")
        lines = receipts.split("\n")
        assert len(lines) == 4
        assert all(RECEIPT.match(line) for line in lines), "one receipt per file"
        assert "shown only once" in flow.text("step-receipt")
        flow.click("receipt-copy")
        flow.wait("return document.querySelector('#receipt-copied').textContent !== ''")
        assert flow.text("receipt-copied").startswith(("Copied.", "Copying did not work"))

        # The status view takes the receipt, as a person would paste it.
        flow.click("receipt-check")
        assert flow.step() == "check"
        driver.find_element(By.ID, "check-receipt").send_keys(receipts)
        flow.click("check-go")
        flow.wait("return !document.querySelector('#check-results').hidden")
        items = driver.find_elements(By.CSS_SELECTOR, "#check-list li")
        assert len(items) == 4
        for item in items:
            assert "Received." in item.text or "Active." in item.text
        flow.shoot("check")

        # Taking one back needs a confirmation; "No" changes nothing.
        items[0].find_element(By.TAG_NAME, "button").click()
        assert flow.step() == "confirm"
        assert flow.focused() == "confirm-title"
        flow.shoot("confirm")
        flow.click("confirm-no")
        assert flow.step() == "check"
        items = driver.find_elements(By.CSS_SELECTOR, "#check-list li")
        items[0].find_element(By.TAG_NAME, "button").click()
        flow.click("confirm-yes")
        flow.wait(
            "return document.querySelector('#check-list li').textContent.includes('Taken back')"
        )
        first = driver.find_elements(By.CSS_SELECTOR, "#check-list li")[0]
        assert not first.find_elements(By.TAG_NAME, "button"), "nothing left to take back"
        flow.shoot("withdrawn")

        _assert_accessible_and_stateless(driver)
        console = driver.get_log("browser")  # type: ignore[no-untyped-call]
        severe = [e for e in console if e["level"] == "SEVERE"]
        assert not severe, f"console errors (CSP violations show here): {severe}"

    ids = [RECEIPT.match(line)[1] for line in lines]  # type: ignore[index]
    _assert_the_database_holds_the_reports(server, ids, bodies)
    _assert_receipts_work_over_the_api(server, lines)
    _assert_net_log_shows_only_the_origin(net_log, origin, size, picked)


def test_keyboard_only(media: dict[str, Path], server: Server, tmp_path: Path) -> None:
    """The whole flow with Tab, Enter, Space (and typing): every control is reached, in the
    order it is read, and each new step's heading takes the focus."""
    with chromium(tmp_path / "profile", PHONE) as driver:
        flow = Flow(driver, "phone", artifacts_dir("screens"), prefix="keyboard-")
        driver.get(server.url + "/")
        flow.wait("return document.body.dataset.ready === 'true'")
        assert flow.tabs(3) == ["a:Skip to the main part", "button:Get started", "start-check"]
        ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
        assert flow.focused() == "button:Get started", "Shift+Tab goes back"
        flow.keys(Keys.ENTER)
        assert flow.focused() == "age-title"

        for name, value in (("age", "minor"), ("kind", "yes"), ("shared", "yes")):
            assert flow.tabs(1) == [f"{name}={value}"], "the first answer"
            flow.keys(Keys.SPACE)
            assert flow.tabs(2) == ["button:Back", f"{name}-next"]
            flow.keys(Keys.ENTER)
        assert flow.focused() == "files-title"
        assert flow.tabs(2) == ["a:CyberTipline", "files-input"]
        # The file dialog is the system's; choosing there puts the files in the input.
        driver.switch_to.active_element.send_keys(str(media["photo"]))
        flow.wait("return !document.querySelector('#files-next').disabled")
        assert flow.focused() == "files-input", "hashing leaves the focus where it was"
        assert flow.tabs(2) == ["button:Back", "files-next"]
        flow.keys(Keys.ENTER)

        assert flow.focused() == "review-title"
        assert flow.tabs(1) == ["summary:Show exactly what is sent"]
        flow.keys(Keys.SPACE)
        assert driver.find_element(By.ID, "review-body").is_displayed()
        assert flow.tabs(2) == ["button:Back", "send"]
        flow.keys(Keys.ENTER)

        flow.wait_step("receipt")
        assert flow.focused() == "receipt-title"
        assert flow.tabs(2) == ["receipt-text", "receipt-copy"]
        flow.keys(Keys.SPACE)
        flow.wait("return document.querySelector('#receipt-copied').textContent !== ''")
        flow.shoot("receipt-focus")
        receipt = flow.text("receipt-text")
        assert RECEIPT.match(receipt)
        assert flow.tabs(1) == ["receipt-check"]
        flow.keys(Keys.ENTER)

        assert flow.focused() == "check-title"
        assert flow.tabs(1) == ["check-receipt"]
        flow.keys(receipt)
        assert flow.tabs(2) == ["button:Back", "check-go"]
        flow.keys(Keys.ENTER)
        flow.wait("return document.activeElement.id === 'check-results'")
        assert "Received." in flow.text("check-list") or "Active." in flow.text("check-list")
        assert flow.tabs(1) == ["button:Take this report back"]
        flow.keys(Keys.ENTER)
        assert flow.focused() == "confirm-title"
        assert flow.tabs(2) == ["confirm-no", "confirm-yes"]
        flow.keys(Keys.SPACE)
        flow.wait("return document.activeElement.id === 'check-results'")
        assert "Taken back" in flow.text("check-list")
        flow.shoot("withdrawn")
    [(status, _)] = _stored(server).values()
    assert status == "withdrawn"


def test_refusals_lose_nothing(tmp_path: Path) -> None:
    """The server unreachable, then over the intake limit: each time a kind sentence, the
    reports not taken stay ready, and "Try again" sends only those, without picking the
    files again."""
    require_browser()
    directory = tmp_path / "media"
    directory.mkdir()
    media = make_media(directory, 7)
    third = directory / "IMG_0002.jpg"
    Image.fromarray(photo_like(np.random.default_rng(8), 640, 480)).save(third, quality=90)
    data = tmp_path / "data"
    server = start_server(data, "", limits={"intake_per_hour": "2"})
    try:
        with chromium(tmp_path / "profile", PHONE) as driver:
            flow = Flow(driver, "phone", artifacts_dir("screens"), prefix="refusal-")
            driver.get(server.url + "/")
            flow.wait("return document.body.dataset.ready === 'true'")
            _assert_refusals_are_explained(driver)
            flow.questions()
            flow.pick_files([media["photo"], media["screenshot"], third])
            flow.click("files-next")
            server.stop()

            flow.click("send")
            flow.wait("return !document.querySelector('#send-retry').hidden")
            assert flow.text("send-problem-text").startswith("We could not reach the service.")
            assert flow.text("send-status") == "0 of 3 sent, 3 not sent yet."
            assert not driver.find_element(By.ID, "send-receipt").is_displayed()
            flow.shoot("unreachable")

            server = start_server(data, "", limits={"intake_per_hour": "2"}, port=server.port)
            flow.click("send-retry")
            flow.wait("return !document.querySelector('#send-retry').hidden")
            assert flow.text("send-problem-text").startswith(
                "Too many reports came from this connection in the last hour. Please wait"
            )
            assert flow.text("send-status") == "2 of 3 sent, 1 not sent yet."
            states = [
                e.text for e in driver.find_elements(By.CSS_SELECTOR, "#send-list .file-state")
            ]
            assert states[:2] == ["Sent.", "Sent."]
            assert states[2].startswith("Too many reports")
            flow.shoot("rate-limited")

            flow.click("send-receipt")
            assert flow.step() == "receipt"
            receipts = flow.text("receipt-text").split("\n")
            assert len(receipts) == 2
            assert flow.text("receipt-unsent-text").startswith("1 file is not sent yet.")
            flow.click("receipt-unsent-back")
            assert flow.step() == "send", "the file not sent is still there"
            assert driver.find_element(By.ID, "send-retry").is_displayed()
            ids = [match[1] for match in map(RECEIPT.match, receipts) if match]
            assert sorted(_stored(server)) == sorted(ids)
    finally:
        server.stop()


def _assert_refusals_are_explained(driver: webdriver.Chrome) -> None:
    """Every answer the page cannot use becomes a sentence, and says whether a retry can
    help; receipts are found in whatever a person pastes."""
    script = """
    const intake = await import("/intake.js");
    const cases = [[0, null, null], [429, "rate_limited", 1800], [413, "payload_too_large", null],
                   [422, "pdq_quality_too_low", null], [422, "invalid_request", null],
                   [409, "duplicate_submission", null], [503, "database_unavailable", 5]];
    const explained = cases.map(([status, code, after]) =>
      intake.explainRefusal(status, code, after));
    const id = "0123456789abcdef01234567", secret = "A".repeat(42) + "_";
    const glued = `xbm1.${id.replace("0", "f")}.${secret}`;  // not a receipt: no word break
    const pasted = `My receipts:\n  ${intake.receiptFor(id, secret)}\n${glued}\n`;
    const none = intake.parseReceipts("bm1.nope");
    return { explained, found: intake.parseReceipts(pasted), none };
    """
    result = run_async(driver, script)
    retry = [item["retry"] for item in result["explained"]]
    assert retry == [True, True, False, False, False, False, True]
    messages = [item["message"] for item in result["explained"]]
    assert len(set(messages)) == len(messages), "each refusal has its own words"
    assert "about 30 minutes" in messages[1]
    assert "too plain" in messages[3]
    assert result["explained"][5]["done"] is True, "already reported is not a failure"
    assert result["found"] == [{"reportId": "0123456789abcdef01234567", "secret": "A" * 42 + "_"}]
    assert result["none"] == []


def _assert_bodies_are_the_python_fingerprints(
    bodies: list[dict[str, Any]], media: dict[str, Path]
) -> None:
    """The exact JSON the page sends, one report per file: the service's IntakeRequest
    shape, and for each file the fingerprints the Python pipeline computes (PDQ distance 0
    on opaque images, docs/web.md; MD5/SHA-256 exactly). Nothing else: no names, no sizes."""

    def exact(path: Path) -> list[dict[str, Any]]:
        data = path.read_bytes()
        return [
            {"signal": "md5", "hash": hashlib.md5(data).hexdigest()},  # noqa: S324 - the signal
            {"signal": "sha256", "hash": hashlib.sha256(data).hexdigest()},
        ]

    def pdq(path: Path) -> list[dict[str, Any]]:
        fingerprint = hash_file(path, "pdq")
        return [{"signal": "pdq", "hash": fingerprint.hash.hex(), "quality": fingerprint.quality}]

    def image(prints: list[dict[str, Any]]) -> dict[str, Any]:
        return {"content_kind": "image", "age_attestation": "minor", "fingerprints": prints}

    assert hash_file(media["plain"], "pdq").quality < 50
    video = hash_video(media["video"])
    frames = [f for f in video.frames if f.quality >= 50]
    assert len(frames) == 2, "the clip's two seconds are both good frames"
    sent_video = bodies[2]["fingerprints"]
    assert sent_video[0]["signal"] == "vpdq"
    sent_frames = sent_video[0]["frames"]
    assert len(sent_frames) == len(frames)
    for sent_frame, frame in zip(sent_frames, frames, strict=True):
        assert set(sent_frame) == {"hash", "quality"}
        distance = PdqHash(bytes.fromhex(sent_frame["hash"])).distance(frame.pdq)
        assert distance <= FRAME_BOUND
    assert bodies == [
        image(pdq(media["photo"]) + exact(media["photo"])),
        image(pdq(media["screenshot"]) + exact(media["screenshot"])),
        {
            "content_kind": "video",
            "age_attestation": "minor",
            "fingerprints": [sent_video[0], *exact(media["video"])],
        },
        image(exact(media["plain"])),
    ]


def _stored(server: Server) -> dict[str, tuple[str, set[tuple[str, str, int | None]]]]:
    """Per report id: its status and its fingerprints (signal, hex, quality), as stored."""
    connection = sqlite3.connect(server.data_dir / "blindmatch.sqlite3")
    try:
        rows = connection.execute(
            "SELECT r.report_id, r.status, f.signal, f.hash, f.quality "
            "FROM reports r JOIN fingerprints f ON f.report = r.id"
        ).fetchall()
    finally:
        connection.close()
    stored: dict[str, tuple[str, set[tuple[str, str, int | None]]]] = {}
    for report_id, status, signal, value, quality in rows:
        stored.setdefault(report_id, (status, set()))[1].add((signal, value.hex(), quality))
    return stored


def _assert_the_database_holds_the_reports(
    server: Server, ids: list[str], bodies: list[dict[str, Any]]
) -> None:
    """Each report holds exactly its file's fingerprints (the bodies were checked against
    the Python pipeline above); the first one was taken back."""
    stored = _stored(server)
    assert sorted(stored) == sorted(ids)
    for report_id, body in zip(ids, bodies, strict=True):
        want: set[tuple[str, str, int | None]] = set()
        for item in body["fingerprints"]:
            if item["signal"] == "vpdq":
                want |= {("vpdq", f["hash"], f["quality"]) for f in item["frames"]}
            else:
                want.add((item["signal"], item["hash"], item.get("quality")))
        status, prints = stored[report_id]
        assert prints == want
        assert status == ("withdrawn" if report_id == ids[0] else "active")


def _assert_receipts_work_over_the_api(server: Server, receipts: list[str]) -> None:
    """The receipts the page showed are the service's: they read each report's status."""
    with server.client() as client:
        parts = [receipt.split(".", 2)[1:] for receipt in receipts]
        for index, (report_id, secret) in enumerate(parts):
            answer = client.get(f"/v1/reports/{report_id}", headers={"Blindmatch-Receipt": secret})
            assert answer.status_code == 200
            assert (answer.json()["status"] == "withdrawn") == (index == 0)
        wrong = client.get(
            f"/v1/reports/{parts[1][0]}", headers={"Blindmatch-Receipt": parts[2][1]}
        )
        assert wrong.status_code == 401


def windows_found(sent: bytes, files: list[Path], size: int = WINDOW) -> list[str]:
    """The files of which some run of ``size`` bytes occurs in ``sent``."""
    seen = {sent[i : i + size] for i in range(len(sent) - size + 1)}
    found = []
    for path in files:
        data = path.read_bytes()
        if any(data[i : i + size] in seen for i in range(len(data) - size + 1)):
            found.append(path.name)
    return found


def test_windows_found_finds_a_window(tmp_path: Path) -> None:
    """The check below can fail: one window of a file inside other bytes is found."""
    path = tmp_path / "f.bin"
    data = bytes(range(256)) * 4
    path.write_bytes(data)
    assert windows_found(b"x" * 100 + data[500:564] + b"y" * 10, [path]) == ["f.bin"]
    assert windows_found(b"x" * 100 + data[500:563] + b"y" * 10, [path]) == []


def _assert_net_log_shows_only_the_origin(
    net_log: Path, origin: str, size: str, picked: list[Path]
) -> None:
    """Chromium's NetLog covers every process, the page's workers included: every request
    made for the page's site went to the page's origin; the only bodies went to the intake
    API; and no byte run of a picked file is in anything chromium sent on any socket."""
    site = origin.rsplit(":", 1)[0]
    everything = net_log_requests(net_log)
    page = [r for r in everything if r.site == site or r.initiator == origin.rstrip("/")]
    paths = {r.url.removeprefix(origin) for r in page}
    assert {"", "app.js", "intake.js", "hash-worker.js", "md5.js", "pdq.wasm"} <= paths
    assert all(r.url.startswith(origin) for r in page), [
        r.url for r in page if not r.url.startswith(origin)
    ]
    posts = [r for r in page if r.method == "POST"]
    assert [r.url for r in posts] == [origin + "v1/reports"] * 4
    assert all(r.has_body for r in posts)
    reports = re.compile(re.escape(origin) + r"v1/reports/[0-9a-f]{24}$")
    assert len([r for r in page if r.method == "DELETE" and reports.match(r.url)]) == 1
    others = [r for r in page if r.method not in ("GET", "POST", "DELETE")]
    assert not others
    assert not [r.url for r in page if r.method == "GET" and r.has_body]

    sent = net_log_sent_bytes(net_log)
    assert b"POST /v1/reports HTTP/1.1" in sent, "the log holds the bytes sent"
    assert b'"age_attestation":"minor"' in sent, "the log holds the request bodies"
    assert windows_found(sent, picked) == []
    for path in picked:
        assert path.name.encode() not in sent, "no file name leaves the page"
    (artifacts_dir() / f"net-log-{size}.txt").write_text(
        "".join(f"{r.method} {r.url} site={r.site} body={r.has_body}\n" for r in everything),
        encoding="utf-8",
    )


def _assert_accessible_and_stateless(driver: webdriver.Chrome) -> None:
    """Every control has an accessible name from a label (or aria-label), every step a
    heading that can take the focus; and the page kept nothing: no cookie, no storage."""
    unlabelled = driver.execute_script(
        """return Array.from(document.querySelectorAll(
               "input, button, progress, textarea, [role=textbox], [tabindex='0']"))
             .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
                            && !e.getAttribute("aria-labelledby")
                            && !(e.tagName === "BUTTON" && e.textContent.trim()))
             .map((e) => e.outerHTML);"""
    )
    assert unlabelled == []
    headings = driver.execute_script(
        """return Array.from(document.querySelectorAll(".step")).map(
             (s) => s.querySelector("h1, h2") && s.querySelector("h1, h2").tabIndex);"""
    )
    assert len(headings) == 12
    assert all(index == -1 for index in headings)
    stored = driver.execute_script(
        "return [document.cookie, localStorage.length, sessionStorage.length];"
    )
    assert stored == ["", 0, 0]


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
