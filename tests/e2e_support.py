"""Helpers of the end-to-end matrix (tests/test_e2e_*.py): media files, a deployment made
the way its three parties make it (a person reports with ``blindmatch report``, the
operator creates a platform with ``blindmatch admin``), and the platform's two front ends
(the SDK and ``blindmatch match``), all against a real ``blindmatch serve`` process."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageEnhance

from blindmatch.client import ClientOptions, MatchReport, PlatformClient
from blindmatch.protocols import Upload
from blindmatch.samples import photo_like
from report_support import blindmatch
from service_support import BLINDMATCH, Server, published_references, wait_published

FAST = ClientOptions(backoff=0.05, max_backoff=0.2, max_retry_after=5.0)
"""Short backoffs (the defaults suit a platform, not a test)."""

PDQ_RADIUS = 31
"""The fuzzy matching radius (docs/protocol.md): a PDQ hash this close must match."""


def distance(a: str, b: str) -> int:
    """The Hamming distance of two PDQ hashes in hex."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def flip_bits(hash_hex: str, bits: int) -> bytes:
    """``hash_hex`` with its first ``bits`` bits flipped (PDQ distance ``bits``)."""
    value = int(hash_hex, 16) ^ (((1 << bits) - 1) << (256 - bits))
    return value.to_bytes(32, "big")


def make_media(folder: Path) -> dict[str, dict[str, Any]]:
    """Write the pictures of the matrix into ``folder`` and fingerprint them with
    ``blindmatch hash``; returns each file's record by name.

    ``reported.png`` and ``withdrawn.png`` are reported; ``edited.jpg`` is ``reported.png``
    shrunk, brightened, cropped and re-encoded (PDQ distance 26, within the radius);
    ``unrelated.png`` is a photo of its own (PDQ distance over 100 from both).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, seed in (("reported.png", 12), ("withdrawn.png", 13), ("unrelated.png", 14)):
        Image.fromarray(photo_like(np.random.default_rng(seed), 640, 480)).save(folder / name)
    original = Image.open(folder / "reported.png").convert("RGB")
    shrunk = original.resize((560, 420), Image.Resampling.LANCZOS)
    brighter = ImageEnhance.Brightness(shrunk).enhance(1.15)
    brighter.crop((6, 5, 554, 415)).save(folder / "edited.jpg", quality=75)
    hashed = subprocess.run(
        [*BLINDMATCH, "hash", str(folder)], capture_output=True, text=True, check=True, timeout=120
    )
    records = {Path(r["path"]).name: r for r in map(json.loads, hashed.stdout.splitlines())}
    reported = records["reported.png"]["pdq"]
    assert distance(reported, records["edited.jpg"]["pdq"]) <= PDQ_RADIUS
    for other in ("unrelated.png", "withdrawn.png"):
        assert distance(reported, records[other]["pdq"]) > 100
    assert distance(records["withdrawn.png"]["pdq"], records["unrelated.png"]["pdq"]) > 100
    return records


def uploads_of(name: str, record: dict[str, Any]) -> list[Upload]:
    """The uploads a platform makes of one file: its MD5, SHA-256 and PDQ (ref: the name)."""
    return [
        Upload(name, "md5", bytes.fromhex(record["md5"])),
        Upload(name, "sha256", bytes.fromhex(record["sha256"])),
        Upload(name, "pdq", bytes.fromhex(record["pdq"]), record["quality"]),
    ]


def found(report: MatchReport) -> list[tuple[str, str]]:
    """``(ref, signal)`` of every match, sorted."""
    return sorted((m.upload.ref, m.signal) for m in report.matches)


@dataclass
class Deployment:
    """A running clearinghouse with reports in it and one platform."""

    server: Server
    api_key: str
    publication_key: str
    media: Path
    records: dict[str, dict[str, Any]]
    receipts: dict[str, str] = field(default_factory=dict)
    """The receipt of each reported file, by name (as ``blindmatch report`` printed it)."""

    def client(self, cache: Path, **options: Any) -> PlatformClient:
        return PlatformClient(
            self.server.url,
            api_key=self.api_key,
            publication_key=self.publication_key,
            cache_dir=cache,
            options=dataclasses.replace(FAST, **options),
        )

    def match_cli(self, *args: str, cache: Path) -> subprocess.CompletedProcess[str]:
        """``blindmatch match`` as a platform runs it (API key in the environment)."""
        return blindmatch(
            "match",
            "--server",
            self.server.url,
            "--cache-dir",
            str(cache),
            "--no-progress",
            *args,
            env={"BLINDMATCH_API_KEY": self.api_key},
        )


def create_platform(server: Server, name: str = "acme", daily: int | None = None) -> str:
    """``blindmatch admin platform create``; returns the API key it printed."""
    quota = [] if daily is None else ["--daily-elements", str(daily)]
    out = server.admin("platform", "create", name, *quota)
    key: str = json.loads(out.stdout)["api_key"]
    return key


def report_files(server: Server, *paths: Path) -> dict[str, str]:
    """``blindmatch report --json`` as a person runs it; the receipt of each file by name."""
    sent = blindmatch(
        "report", "--server", server.url, "--age", "minor", "--json", *map(str, paths)
    )
    assert sent.returncode == 0, sent.stderr
    lines = [json.loads(line) for line in sent.stdout.splitlines()]
    assert all(line["status"] == "pending" for line in lines), sent.stdout
    return {Path(line["path"]).name: line["receipt"] for line in lines}


def deploy(server: Server, media: Path, records: dict[str, dict[str, Any]]) -> Deployment:
    """Report ``reported.png`` and ``withdrawn.png``, wait until both are published, create
    the platform ``acme``."""
    receipts = report_files(server, media / "reported.png", media / "withdrawn.png")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        wait_published(http, lambda m: published_references(m, "pdq") == 2)
        pinned = http.get("/v1/keys").json()["publication_key"]
    return Deployment(server, create_platform(server), pinned, media, records, receipts)


def environ_without_blindmatch() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BLINDMATCH_")}


def report_hashes(server: Server, fingerprints: list[dict[str, object]]) -> None:
    """Report fingerprints over HTTP, as ``blindmatch report`` sends them."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        made = http.post(
            "/v1/reports",
            json={
                "content_kind": "image",
                "age_attestation": "minor",
                "fingerprints": fingerprints,
            },
        )
    assert made.status_code == 201, made.text


def pinned_key(server: Server) -> str:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        key: str = http.get("/v1/keys").json()["publication_key"]
    return key


def quota_used(server: Server, platform: str) -> int:
    """Elements the service counted against ``platform``'s quota (all days), read from its
    database: what the quota holds is the server's own count, not the clients'."""
    query = (
        "SELECT COALESCE(SUM(q.used), 0) FROM quota_usage q "
        "JOIN platforms p ON p.id = q.platform WHERE p.name = "
    )
    row: tuple[Any, ...] | None
    if server.database_url:
        import psycopg

        with psycopg.connect(server.database_url) as pg:
            row = pg.execute(query + "%s", (platform,)).fetchone()
    else:
        import sqlite3

        lite = sqlite3.connect(server.data_dir / "blindmatch.sqlite3")
        try:
            row = lite.execute(query + "?", (platform,)).fetchone()
        finally:
            lite.close()
    assert row is not None
    return int(row[0])


class TamperingProxy:
    """A real HTTP proxy on loopback in front of a clearinghouse that changes what it
    serves: ``tamper(path, body) -> body`` rewrites every answer (a man in the middle, or
    a compromised mirror). Everything else (status, headers, other paths) passes."""

    _DROP = frozenset(
        {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}
    )

    def __init__(self, upstream: str, tamper: Any) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        proxy = self
        self.tamper = tamper
        self.upstream = httpx.Client(base_url=upstream, timeout=60)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in proxy._DROP and k.lower() != "host"
                }
                answer = proxy.upstream.request(
                    self.command, self.path, content=body, headers=headers
                )
                content = proxy.tamper(self.path, answer.content)
                self.send_response(answer.status_code)
                for key, value in answer.headers.multi_items():
                    if key.lower() not in proxy._DROP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            # http.server dispatches on these names.
            do_GET = do_POST = do_DELETE = _forward  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.upstream.close()
