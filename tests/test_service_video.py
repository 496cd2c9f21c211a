"""Reported videos over HTTP: a grouped ``vpdq`` index, and frames in ``pdq`` too.

A person reports a real video's vPDQ fingerprint to the real ``blindmatch serve``; the
publisher builds the grouped ``vpdq`` index (format version 2); a platform downloads it
and the ``pdq`` index (with its deltas) over HTTP, and a trimmed copy of the video
matches the report through ``VideoMatcher`` under the vPDQ rule, while one frame of it
posted as an image matches the same report's frames in the ``pdq`` index.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from blindmatch import hash_file
from blindmatch.fingerprint.types import VideoFingerprint
from blindmatch.protocols import Match, PlatformSession, Upload, VideoMatcher
from blindmatch.psi.group import Element
from blindmatch.psi.index import Index, IndexSet
from blindmatch.psi.keys import PublicKey
from blindmatch.psi.oprf import Mode
from blindmatch.samples import photo_like, video_codec, write_video
from service_support import (  # noqa: F401 - fixtures
    Server,
    database_url,
    postgres,
    references,
    start_server,
    wait_published,
)

FPS = 8
SIZE = (192, 144)


def _video(path: Path, scenes: list[Any]) -> VideoFingerprint:
    """One second per scene held still, so vPDQ hashes one frame per scene."""
    frames = [scene for scene in scenes for _ in range(FPS)]
    codec = video_codec()
    write_video(path, frames, FPS, codec=codec, options={"crf": "18"} if codec == "libx264" else {})
    fingerprint = hash_file(path, "vpdq")
    assert isinstance(fingerprint, VideoFingerprint)
    return fingerprint


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("service-videos")
    rng = np.random.default_rng(21)
    reported = [photo_like(rng, *SIZE) for _ in range(5)]
    unrelated = [photo_like(rng, *SIZE) for _ in range(4)]
    Image.fromarray(reported[1]).save(root / "screenshot.png")
    return {
        "reported": _video(root / "reported.mp4", reported),
        "trimmed": _video(root / "trimmed.mp4", reported[:3]),
        "unrelated": _video(root / "unrelated.mp4", unrelated),
        "screenshot": hash_file(root / "screenshot.png", "pdq"),
    }


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:  # noqa: F811
    running = start_server(tmp_path / "data", database_url, limits={"intake_per_hour": "1000"})
    yield running
    running.stop()


def _download(client: httpx.Client, entry: dict[str, Any]) -> Index:
    answer = client.get(str(entry["url"]))
    assert answer.status_code == 200
    assert hashlib.sha256(answer.content).hexdigest() == entry["sha256"]
    return Index.from_bytes(answer.content)


def test_a_trimmed_copy_of_a_reported_video_matches_through_the_server(
    server: Server, media: dict[str, Any]
) -> None:
    reported: VideoFingerprint = media["reported"]
    with server.client() as client:
        made = client.post(
            "/v1/reports",
            json={
                "content_kind": "video",
                "age_attestation": "minor",
                "fingerprints": [
                    {
                        "signal": "vpdq",
                        "frames": [
                            {"hash": f.pdq.hex(), "quality": f.quality} for f in reported.frames
                        ],
                    }
                ],
            },
        )
        assert made.status_code == 201, made.text
        frames = len({f.pdq for f in reported.frames})
        manifest: dict[str, Any] = wait_published(
            client,
            lambda m: (
                m["indexes"]["vpdq"]["references"] == frames and references(m, "pdq") == frames
            ),
        )
        vpdq = _download(client, manifest["indexes"]["vpdq"])
        assert vpdq.grouped
        pdq = IndexSet(
            _download(client, manifest["indexes"]["pdq"]),
            [_download(client, d) for d in manifest["deltas"] if d["signal"] == "pdq"],
        )
        api_key = json.loads(server.admin("platform", "create", "tube").stdout)["api_key"]
        key = PublicKey(
            Element(bytes.fromhex(manifest["public_key"])), mode=Mode.VOPRF, epoch=manifest["epoch"]
        )
        session = PlatformSession([pdq, vpdq], key, batch_size=512)
        matcher = VideoMatcher(vpdq)
        auth = {"Authorization": f"Bearer {api_key}"}
        opened = client.post("/v1/match/sessions", content=session.hello(), headers=auth)
        assert opened.status_code == 201
        session.receive(opened.content)
        assert session.index_digests_checked
        path = opened.headers["Location"]
        session.add_uploads(
            [
                *matcher.frame_uploads("trimmed", media["trimmed"]),
                *matcher.frame_uploads("unrelated", media["unrelated"]),
                Upload(
                    "screenshot",
                    "pdq",
                    bytes(media["screenshot"].hash),
                    media["screenshot"].quality,
                ),
            ]
        )
        found: list[Match] = []
        while session.wants_to_send:
            reply = client.post(path, content=session.next_request(), headers=auth)
            assert reply.status_code == 200, reply.headers.get("Blindmatch-Error")
            found.extend(session.receive(reply.content))
        client.post(path, content=session.close(), headers=auth)
    others = matcher.add_matches(found)
    [video] = matcher.results(session.unfinished())
    assert video.upload_ref == "trimmed"
    assert video.query_pct == 100.0
    assert video.report_frames == frames
    assert video.report_frames_matched == len({f.pdq for f in media["trimmed"].frames})
    # The same report's frames in the pdq index: a screenshot of the video matches.
    assert [m.upload_ref for m in others] == ["screenshot"]
