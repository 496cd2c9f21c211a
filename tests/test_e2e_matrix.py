"""The end-to-end matrix of issue 11: real ``blindmatch serve`` processes on SQLite and
PostgreSQL, with 1 and 2 workers, driven through the platform SDK (sync and async) and the
command line (``blindmatch report|status|withdraw|match`` as subprocesses).

One server per case (module scope): a person reports two pictures with ``blindmatch
report``, the operator creates a platform, and the platform matches an exact copy (MD5,
SHA-256, PDQ), an edited copy (PDQ distance 26: shrunk, brightened, cropped, re-encoded),
hashes at distance 20 and 100, and an unrelated picture; then the person withdraws a
report and its match disappears, at once and after the next publication.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from blindmatch.client import AsyncPlatformClient, MatchReport
from blindmatch.protocols import Upload
from e2e_support import (
    FAST,
    Deployment,
    deploy,
    flip_bits,
    found,
    make_media,
    uploads_of,
)
from report_support import blindmatch
from service_support import (  # noqa: F401 - fixtures
    PostgresServer,
    postgres,
    published_references,
    start_server,
    wait_published,
)

CASES = [("sqlite", 1), ("sqlite", 2), ("postgresql", 1), ("postgresql", 2)]

EXPECTED = [
    ("edited.jpg", "pdq"),
    ("near-20", "pdq"),
    ("reported.png", "md5"),
    ("reported.png", "pdq"),
    ("reported.png", "sha256"),
]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("media")
    return folder, make_media(folder)


@pytest.fixture(
    scope="module", params=CASES, ids=[f"{db}-{n}worker{'s' * (n > 1)}" for db, n in CASES]
)
def deployment(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    media: tuple[Path, dict[str, dict[str, Any]]],
) -> Iterator[Deployment]:
    kind, workers = request.param
    url = ""
    if kind == "postgresql":
        server_: PostgresServer = request.getfixturevalue("postgres")
        url = server_.new_database()
    root = tmp_path_factory.mktemp(f"matrix-{kind}-{workers}")
    server = start_server(root / "data", url, workers=workers, limits={"intake_per_hour": "1000"})
    try:
        yield deploy(server, *media)
    finally:
        server.stop()


def _uploads(deployment: Deployment) -> list[Upload]:
    records = deployment.records
    pdq = records["reported.png"]["pdq"]
    return [
        *uploads_of("reported.png", records["reported.png"]),
        *uploads_of("edited.jpg", records["edited.jpg"]),
        *uploads_of("unrelated.png", records["unrelated.png"]),
        Upload("near-20", "pdq", flip_bits(pdq, 20), 90),
        Upload("far-100", "pdq", flip_bits(pdq, 100), 90),
    ]


def _check(report: MatchReport, uploads: list[Upload]) -> None:
    assert found(report) == EXPECTED
    assert report.unfinished == ()
    assert report.answered == len(uploads)
    fuzzy = [m for m in report.matches if m.signal == "pdq"]
    # Every PDQ match names the one report of reported.png; the copy agrees on every
    # band, the edited copy and the flipped hash on some.
    assert len({m.handle for m in fuzzy}) == 1
    bands = {m.upload.ref: m.agreeing_bands for m in fuzzy}
    assert bands["reported.png"] == 384
    assert 0 < bands["edited.jpg"] < 384
    assert 0 < bands["near-20"] < 384
    assert report.stats.canaries_matched >= 3  # one per signal at least
    assert report.stats.audits_verified >= 1


def test_sdk_exact_and_fuzzy(deployment: Deployment, tmp_path: Path) -> None:
    uploads = _uploads(deployment)
    with deployment.client(tmp_path / "cache") as client:
        report = client.match(uploads)
    _check(report, uploads)
    assert report.stats.downloads >= 3  # md5, sha256 and pdq indexes (and any deltas)


def test_async_sdk_exact_and_fuzzy(deployment: Deployment, tmp_path: Path) -> None:
    uploads = _uploads(deployment)

    async def run() -> MatchReport:
        async with AsyncPlatformClient(
            deployment.server.url,
            api_key=deployment.api_key,
            publication_key=deployment.publication_key,
            cache_dir=tmp_path / "cache",
            options=FAST,
        ) as client:
            return await client.match(uploads)

    _check(asyncio.run(run()), uploads)


def _lines(stdout: str) -> list[tuple[str, str]]:
    return sorted((Path(m["path"]).name, m["signal"]) for m in map(json.loads, stdout.splitlines()))


def test_cli_exact_and_fuzzy(deployment: Deployment, tmp_path: Path) -> None:
    media = deployment.media
    files = [str(media / name) for name in ("reported.png", "edited.jpg", "unrelated.png")]
    done = deployment.match_cli(
        "--publication-key", deployment.publication_key, *files, cache=tmp_path
    )
    assert done.returncode == 0, done.stderr
    expected = [e for e in EXPECTED if e[0] != "near-20"]
    assert _lines(done.stdout) == expected
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(r["agreeing_bands"] > 0 for r in records if r["signal"] == "pdq")
    assert "3 files" in done.stderr
    assert "0 files unfinished" in done.stderr


def test_withdrawal_sdk_and_cli(deployment: Deployment, tmp_path: Path) -> None:
    server, records = deployment.server, deployment.records
    uploads = uploads_of("withdrawn.png", records["withdrawn.png"])
    receipt = deployment.receipts["withdrawn.png"]
    cli = ("--publication-key", deployment.publication_key, str(deployment.media / "withdrawn.png"))
    with deployment.client(tmp_path / "cache") as client:
        before = client.match(uploads)
        signals = [("withdrawn.png", s) for s in ("md5", "pdq", "sha256")]
        assert found(before) == signals
        matched = deployment.match_cli(*cli, cache=tmp_path / "cli")
        assert matched.returncode == 0, matched.stderr
        assert _lines(matched.stdout) == signals

        shown = blindmatch("status", "--server", server.url, "--receipt", receipt)
        assert shown.returncode == 0, shown.stderr
        assert ": published: " in shown.stdout
        gone = blindmatch("withdraw", "--server", server.url, "--receipt", receipt)
        assert gone.returncode == 0, gone.stderr
        assert ": withdrawn: " in gone.stdout

        # At once: the next manifest revokes the handle, with the indexes unchanged.
        after = client.match(uploads)
        assert after.matches == ()
        assert after.stats.revoked_dropped == 3
        assert after.answered == len(uploads)
    again = deployment.match_cli(*cli, cache=tmp_path / "cli")
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    assert "0 matches" in again.stderr

    # After the next publication the reference is gone from the index itself.
    with httpx.Client(base_url=server.url, timeout=60) as http:
        wait_published(http, lambda m: published_references(m, "pdq") == 1)
    with deployment.client(tmp_path / "fresh") as client:
        published = client.match(uploads + uploads_of("reported.png", records["reported.png"]))
    assert found(published) == [("reported.png", s) for s in ("md5", "pdq", "sha256")]
    assert published.stats.revoked_dropped == 0
    assert published.answered == 6
