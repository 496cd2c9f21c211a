"""``blindmatch match`` as a user runs it, against a real `blindmatch serve` on loopback."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from blindmatch.samples import photo_like
from service_support import (
    BLINDMATCH,
    Server,
    published_references,
    start_server,
    wait_published,
)
from test_client import platform_key, report


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, str, str]]:
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(7)
    uploads = root / "uploads"
    uploads.mkdir()
    reported = uploads / "reported.png"
    Image.fromarray(photo_like(rng, 640, 480)).save(reported)
    Image.open(reported).convert("RGB").save(uploads / "reencoded.jpg", quality=70)
    Image.fromarray(photo_like(rng, 640, 480)).save(uploads / "unrelated.png")
    hashed = subprocess.run(
        [*BLINDMATCH, "hash", str(reported)], capture_output=True, text=True, check=True
    )
    record = json.loads(hashed.stdout)
    server = start_server(root / "data", "", limits={"intake_per_hour": "1000"})
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            report(
                http,
                [
                    {"signal": "md5", "hash": record["md5"]},
                    {"signal": "pdq", "hash": record["pdq"], "quality": record["quality"]},
                ],
            )
            wait_published(http, lambda m: published_references(m, "pdq") == 1)
            pinned = http.get("/v1/keys").json()["publication_key"]
        yield server, uploads, platform_key(server), pinned
    finally:
        server.stop()


def _match(
    server: Server, api_key: str, *args: str, cache: Path
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BLINDMATCH_API_KEY": api_key}
    return subprocess.run(
        [*BLINDMATCH, "match", "--server", server.url, "--cache-dir", str(cache), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_match_files_exact_and_fuzzy(served: tuple[Server, Path, str, str], tmp_path: Path) -> None:
    server, uploads, api_key, pinned = served
    done = _match(server, api_key, "--publication-key", pinned, str(uploads), cache=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    found = sorted((Path(m["path"]).name, m["signal"]) for m in lines)
    assert found == [("reencoded.jpg", "pdq"), ("reported.png", "md5"), ("reported.png", "pdq")]
    assert len({m["handle"] for m in lines if m["signal"] == "pdq"}) == 1
    assert all(m["agreeing_bands"] > 0 for m in lines if m["signal"] == "pdq")
    assert "3 files" in done.stderr
    assert "0 files unfinished" in done.stderr

    # The same through --hashes, as `blindmatch hash` wrote them.
    hashes = tmp_path / "hashes.jsonl"
    written = subprocess.run(
        [*BLINDMATCH, "hash", str(uploads)], capture_output=True, text=True, check=True
    )
    hashes.write_text(written.stdout)
    again = _match(
        server, api_key, "--publication-key", pinned, "--hashes", str(hashes), cache=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert (
        sorted(
            (Path(json.loads(x)["path"]).name, json.loads(x)["signal"])
            for x in again.stdout.splitlines()
        )
        == found
    )


def test_user_mistakes_are_one_line_and_exit_2(
    served: tuple[Server, Path, str, str], tmp_path: Path
) -> None:
    server, uploads, api_key, pinned = served
    cases = [
        ((str(uploads),), "/v1/keys"),  # no publication key: says how to get it
        (("--publication-key", "abc", str(uploads)), "64 hex"),
        (("--publication-key", pinned), "PATH"),
        (("--publication-key", pinned, "--hashes", str(tmp_path / "none.jsonl")), "--hashes"),
        (("--publication-key", "00" * 32, str(uploads)), "publication key"),
    ]
    for args, hint in cases:
        done = _match(server, api_key, *args, cache=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert hint in done.stderr
        assert "Traceback" not in done.stderr
    refused = _match(
        server, "bm_wrong_key", "--publication-key", pinned, str(uploads), cache=tmp_path
    )
    assert refused.returncode == 2
    assert "API key" in refused.stderr
    assert api_key not in refused.stderr


def test_trust_server_key_warns(served: tuple[Server, Path, str, str], tmp_path: Path) -> None:
    server, uploads, api_key, pinned = served
    done = _match(
        server, api_key, "--trust-server-key", str(uploads / "reported.png"), cache=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "warning" in done.stderr
    assert pinned in done.stderr
    assert len(done.stdout.splitlines()) == 2
