"""The reporting page's test harness: the page on a real HTTP server on loopback, opened in
Debian's headless chromium through Debian's chromedriver (selenium, with the driver's path
given, so nothing is ever downloaded).

Where chromium or chromedriver is missing the browser tests are skipped, except under CI
(``CI=true``), where a missing browser is a failure: CI installs both (scripts/system-deps).
"""

from __future__ import annotations

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

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

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
def chromium(profile: Path, size: tuple[int, int] = DESKTOP) -> Iterator[webdriver.Chrome]:
    """Headless chromium with a fresh profile, no background traffic, window ``size``."""
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
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_script_timeout(300)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


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
