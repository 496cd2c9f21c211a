"""``blindmatch serve`` serves the reporting page at ``/``, beside the API: a real server
on loopback, every file of the page with its type and the headers that keep it to itself;
``--no-page`` turns it off; /v1 and the OpenAPI document are as they were."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from blindmatch.web import CONTENT_SECURITY_POLICY, INDEX, static_dir
from service_support import Server, start_server

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("serve-page") / "data", "")
    try:
        yield running
    finally:
        running.stop()


def test_every_file_of_the_page_is_served_with_its_type_and_headers(server: Server) -> None:
    files = sorted(p for p in static_dir().iterdir() if p.is_file())
    assert {p.suffix for p in files} <= set(TYPES), "a file of the page has an unknown type"
    with server.client() as client:
        for path in [static_dir() / INDEX, *files]:
            url = "/" if path.name == INDEX else f"/{path.name}"
            answer = client.get(url)
            assert answer.status_code == 200, url
            assert answer.content == path.read_bytes(), url
            assert answer.headers["content-type"] == TYPES[path.suffix], url
            assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "no-referrer"
            assert answer.headers["x-frame-options"] == "DENY"
            assert "set-cookie" not in answer.headers
            head = client.head(url)
            assert head.status_code == 200, url
            assert head.content == b"", url
            assert head.headers["content-length"] == str(path.stat().st_size), url
            assert head.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_nothing_else_is_served_from_the_root(server: Server) -> None:
    """Only the page's own files by name: no listing, no other file, no way out of it."""
    with server.client() as client:
        for url in ("/nope.js", "/wasm_build.py", "/__init__.py", "/..%2F__init__.py", "/static"):
            answer = client.get(url)
            assert answer.status_code == 404, url
            assert answer.json()["error"]["code"] == "not_found"
            assert client.head(url).status_code == 404, url
        assert client.post("/").status_code == 405


def test_the_api_is_unchanged_beside_the_page(server: Server) -> None:
    with server.client() as client:
        paths = client.get("/v1/openapi.json").json()["paths"]
        assert paths, "the OpenAPI document lists the API"
        assert all(path.startswith("/v1/") for path in paths), "the page is not in it"
        health = client.get("/v1/health")
        assert health.json() == {"status": "ok"}
        assert "content-security-policy" not in health.headers


def test_no_page_serves_only_the_api(tmp_path: Path) -> None:
    running = start_server(tmp_path / "data", "", args=("--no-page",))
    try:
        with running.client() as client:
            assert client.get("/").status_code == 404
            assert client.get("/app.js").status_code == 404
            assert client.get("/v1/health").status_code == 200
    finally:
        running.stop()
