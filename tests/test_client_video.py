"""Private vPDQ video matching through the platform SDK against a real `blindmatch serve`.

A person reports a real video (its fingerprints only, through ``ReportingClient``); the
server publishes the grouped ``vpdq`` index; a platform's ``PlatformClient.match_videos``
(and the async client's) finds a trimmed, re-encoded copy of it under the vPDQ rule and not
an unrelated video, in the same call as an exact upload; a withdrawal drops the match. On
SQLite with one worker and on PostgreSQL with two.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pytest

from blindmatch import errors, hash_file
from blindmatch.cli import main
from blindmatch.client import (
    AsyncPlatformClient,
    ClientOptions,
    PlatformClient,
    VideoMatchReport,
)
from blindmatch.client.flows import Flow
from blindmatch.client.loops import run_sync
from blindmatch.client.reporting import Receipt, Report, ReportingClient
from blindmatch.client.steps import Send
from blindmatch.client.videos import match_videos
from blindmatch.fingerprint.types import Md5Digest, Sha256Digest, VideoFingerprint
from blindmatch.protocols import Upload
from blindmatch.samples import photo_like, video_codec, write_video
from service_support import (  # noqa: F401 - the postgres fixture
    Server,
    postgres,
    references,
    start_server,
    wait_published,
)

T = TypeVar("T")
FPS = 8
SIZE = (192, 144)
FAST = ClientOptions(backoff=0.05, max_backoff=0.2, max_retry_after=5.0)


def _video(path: Path, scenes: list[Any], crf: str) -> VideoFingerprint:
    """One second per scene held still, so vPDQ hashes one frame per scene."""
    frames = [scene for scene in scenes for _ in range(FPS)]
    codec = video_codec()
    write_video(path, frames, FPS, codec=codec, options={"crf": crf} if codec == "libx264" else {})
    fingerprint = hash_file(path, "vpdq")
    assert isinstance(fingerprint, VideoFingerprint)
    return fingerprint


@dataclass
class World:
    server: Server
    api_key: str
    publication_key: str
    receipt: Receipt
    reported: VideoFingerprint
    reported_md5: bytes
    trimmed: VideoFingerprint
    unrelated: VideoFingerprint
    frames: int
    root: Path

    def client(self, cache: Path) -> PlatformClient:
        return PlatformClient(
            self.server.url,
            api_key=self.api_key,
            publication_key=self.publication_key,
            cache_dir=cache,
            options=FAST,
        )


@pytest.fixture(scope="module")
def videos(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, VideoFingerprint, VideoFingerprint, VideoFingerprint]:
    """The three videos (encoded and hashed once for both deployments) and their folder."""
    root = tmp_path_factory.mktemp("client-video-media")
    rng = np.random.default_rng(31)
    scenes = [photo_like(rng, *SIZE) for _ in range(5)]
    reported = _video(root / "reported.mp4", scenes, "18")
    # The first three seconds, encoded again at another quality: other bytes, same scenes.
    trimmed = _video(root / "trimmed.mp4", scenes[:3], "28")
    unrelated = _video(root / "unrelated.mp4", [photo_like(rng, *SIZE) for _ in range(4)], "18")
    return root, reported, trimmed, unrelated


@pytest.fixture(
    scope="module",
    params=[("sqlite", 1), ("postgresql", 2)],
    ids=["sqlite-1-worker", "postgresql-2-workers"],
)
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    videos: tuple[Path, VideoFingerprint, VideoFingerprint, VideoFingerprint],
) -> Iterator[World]:
    database, workers = request.param
    database_url = ""
    if database == "postgresql":
        database_url = request.getfixturevalue("postgres").new_database()
    root, reported, trimmed, unrelated = videos
    data = (root / "reported.mp4").read_bytes()
    md5 = hashlib.md5(data, usedforsecurity=False).digest()
    server = start_server(
        tmp_path_factory.mktemp("client-video") / "data",
        database_url,
        workers=workers,
        limits={"intake_per_hour": "1000"},
    )
    try:
        with ReportingClient(server.url) as person:
            report = Report.video(
                "minor", Md5Digest(md5), Sha256Digest(hashlib.sha256(data).digest()), reported
            )
            receipt = person.submit(report)
        frames = len(report.frames)
        with server.client() as http:
            wait_published(
                http,
                lambda m: (
                    m["indexes"]["vpdq"]["references"] == frames and references(m, "md5") == 1
                ),
            )
            publication_key = http.get("/v1/keys").json()["publication_key"]
        created = server.admin("platform", "create", "tube")
        yield World(
            server,
            json.loads(created.stdout)["api_key"],
            publication_key,
            receipt,
            reported,
            md5,
            trimmed,
            unrelated,
            frames,
            root,
        )
    finally:
        server.stop()


def _check(world: World, found: VideoMatchReport) -> None:
    [video] = found.videos
    assert video.upload_ref == "trimmed"
    assert video.signal == "vpdq"
    assert video.query_pct == 100.0
    assert video.report_frames == world.frames
    assert video.report_frames_matched == len({f.pdq for f in world.trimmed.frames})
    assert 0 < video.compared_pct < 100  # three of the five scenes
    assert found.unfinished_videos == ()
    assert found.videos_answered == 2
    # The exact upload went in the same call and matched the same report's MD5.
    assert [m.upload.ref for m in found.report.matches] == ["file-md5"]
    assert found.report.answered == 2
    assert found.report.stats.elements_sent >= 384 * 7  # frames are banded as PDQ
    assert found.report.stats.audits_verified >= 1


def _asked(world: World) -> tuple[list[tuple[str, VideoFingerprint]], list[Upload]]:
    videos = [("trimmed", world.trimmed), ("unrelated", world.unrelated)]
    uploads = [
        Upload("file-md5", "md5", world.reported_md5),
        Upload("other-md5", "md5", hashlib.md5(b"other", usedforsecurity=False).digest()),
    ]
    return videos, uploads


def test_a_trimmed_copy_matches_and_an_unrelated_video_does_not(
    world: World, tmp_path: Path
) -> None:
    videos, uploads = _asked(world)
    with world.client(tmp_path) as client:
        found = client.match_videos(videos, uploads)
    _check(world, found)


def test_the_async_client_gives_the_same_video_matches(world: World, tmp_path: Path) -> None:
    videos, uploads = _asked(world)

    async def run() -> VideoMatchReport:
        async with AsyncPlatformClient(
            world.server.url,
            api_key=world.api_key,
            publication_key=world.publication_key,
            cache_dir=tmp_path,
            options=FAST,
        ) as client:
            return await client.match_videos(videos, uploads)

    _check(world, asyncio.run(run()))


def test_videos_are_given_as_videos(world: World, tmp_path: Path) -> None:
    with world.client(tmp_path) as client:
        with pytest.raises(errors.InvalidArgument):
            client.match_videos([], [Upload("v", "vpdq", bytes(32), 90)])
        with pytest.raises(TypeError):
            client.match_videos([("x", "not a fingerprint")])  # type: ignore[list-item]
        alone = client.match_videos([], [Upload("file-md5", "md5", world.reported_md5)])
    assert alone.videos == ()
    assert [m.upload.ref for m in alone.report.matches] == ["file-md5"]


def test_match_command_prints_vpdq_records(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BLINDMATCH_API_KEY", world.api_key)
    files = [str(world.root / name) for name in ("trimmed.mp4", "unrelated.mp4", "reported.mp4")]
    code = main(
        [
            "match",
            "--server",
            world.server.url,
            "--publication-key",
            world.publication_key,
            "--cache-dir",
            str(tmp_path),
            "--no-progress",
            *files,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    vpdq = sorted((Path(x["path"]).name, x["query_pct"]) for x in lines if x["signal"] == "vpdq")
    assert vpdq == [("reported.mp4", 100.0), ("trimmed.mp4", 100.0)]
    exact = sorted((Path(x["path"]).name, x["signal"]) for x in lines if x["signal"] != "vpdq")
    assert exact == [("reported.mp4", "md5"), ("reported.mp4", "sha256")]
    assert all(len(x["handle"]) == 32 for x in lines)
    assert "3 files" in err
    assert "4 matches in 2 files" in err


def _interposed(flow: Flow[T], hook: Callable[[], None]) -> Flow[T]:
    """``flow``, with ``hook()`` run once just before its first session opens."""
    answer: Any = None
    hooked = False
    while True:
        try:
            step = flow.send(answer)
        except StopIteration as stop:
            return cast(T, stop.value)
        if not hooked and isinstance(step, Send) and step.requests[0].path == "/v1/match/sessions":
            hook()
            hooked = True
        answer = yield step


def test_a_new_vpdq_index_mid_call_is_followed(world: World, tmp_path: Path) -> None:
    # After the platform took the vpdq index and before its session opens, a new video is
    # reported and a new full index published: the session is refused as stale, the flow
    # moves to the new manifest, and the videos are asked again on the new vpdq index, so
    # every share is counted on one index.
    data = (world.root / "unrelated.mp4").read_bytes()

    def report_another_video() -> None:
        with ReportingClient(world.server.url) as person:
            person.submit(
                Report.video(
                    "adult",
                    Md5Digest(hashlib.md5(data, usedforsecurity=False).digest()),
                    Sha256Digest(hashlib.sha256(data).digest()),
                    world.unrelated,
                )
            )
        with world.server.client() as http:
            wait_published(http, lambda m: m["indexes"]["vpdq"]["references"] > world.frames)

    videos = [("trimmed", world.trimmed), ("unrelated", world.unrelated)]
    with world.client(tmp_path) as client:
        flow = _interposed(match_videos(client._flows, videos), report_another_video)
        found = run_sync(flow, client._http, client._pool)
    assert sorted((v.upload_ref, v.query_pct) for v in found.videos) == [
        ("trimmed", 100.0),
        ("unrelated", 100.0),
    ]
    assert found.report.stats.manifest_refreshes >= 1
    assert found.unfinished_videos == ()


def test_a_withdrawn_video_no_longer_matches(world: World, tmp_path: Path) -> None:
    # Last in the module: it withdraws the shared report.
    with world.client(tmp_path) as client:
        before = client.match_videos([("trimmed", world.trimmed)])
        assert [v.upload_ref for v in before.videos] == ["trimmed"]
        with ReportingClient(world.server.url) as person:
            assert person.withdraw(world.receipt).status == "withdrawn"
        after = client.match_videos([("trimmed", world.trimmed)])
    assert after.videos == ()
    assert after.videos_answered == 1
